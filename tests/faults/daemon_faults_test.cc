// Faults with the real storegw binary (integration):
//   * a full disk: the journal on a small tmpfs the test mounts in a private
//     mount namespace (unshare; a user namespace when the kernel allows it,
//     so it also runs unprivileged), ingest until the disk is full, then the
//     tmpfs is grown (mount -o remount) and ingest resumes by itself;
//   * the corrupt golden journals of golden/: what the daemon does is what
//     README.md documents (start on a new epoch with the file moved aside
//     byte for byte, or refuse to start with the file untouched).
// The three invariants are checked on `storegw journal export`: every event
// answered 200 is there with its seq, each event_id once, seqs dense from 1.
#include <doctest/doctest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "test_util.h"

namespace storegw::test {
namespace {

namespace fs = std::filesystem;
const fs::path kGolden = fs::path(STOREGW_TEST_SOURCE_DIR) / "faults" / "golden";

// ------------------------------------------------------------ helpers

// event_id -> seq of every event answered 200, and the checks on an export.
using Acked = std::map<std::string, uint64_t>;

// `prefix`: runs the export inside another mount namespace (nsenter ...).
void CheckExport(const fs::path& data_dir, const Acked& acked, size_t expect_events,
                 const std::vector<std::string>& prefix = {}) {
  std::vector<std::string> args = prefix;
  args.push_back(StoregwPath());
  args.insert(args.end(), {"journal", "export", "--data-dir", data_dir.string()});
  RunResult r = Run(args);
  REQUIRE_MESSAGE(r.exit.ok(), "journal export: " << Describe(r.exit) << ": " << r.err);
  std::optional<std::vector<v1::JournaledEvent>> events(std::in_place);
  std::istringstream lines(r.out);
  std::string line;
  while (std::getline(lines, line)) {
    auto e = FromJson<v1::JournaledEvent>(line);
    REQUIRE_MESSAGE(e.has_value(), "export line does not parse: " << line);
    events->push_back(std::move(*e));
  }
  std::map<std::string, uint64_t> present;
  for (size_t i = 0; i < events->size(); ++i) {
    const auto& e = (*events)[i];
    REQUIRE_MESSAGE(e.seq() == i + 1, "seq gap at index " << i << ": seq " << e.seq());
    REQUIRE_MESSAGE(present.emplace(e.event().event_id(), e.seq()).second,
                    e.event().event_id() << " is journaled twice");
  }
  for (const auto& [id, seq] : acked) {
    auto it = present.find(id);
    REQUIRE_MESSAGE(it != present.end(), "acknowledged " << id << " (seq " << seq << ") is lost");
    REQUIRE_MESSAGE(it->second == seq,
                    id << " acknowledged with seq " << seq << ", exported with " << it->second);
  }
  CHECK(events->size() == expect_events);
}

// Records the results of a 200 answer; fails on a duplicate (every test
// batch is new or was refused before).
void RecordAcks(const HttpResult& r, Acked& acked) {
  auto resp = FromJson<v1::IngestResponse>(r.body);
  REQUIRE_MESSAGE(resp.has_value(), r.body);
  for (const auto& res : resp->results()) {
    REQUIRE_MESSAGE(!res.duplicate(), res.event_id() << " answered as a duplicate");
    REQUIRE(acked.emplace(res.event_id(), res.seq()).second);
  }
}

std::string Batch(const std::string& prefix, int first, int n) {
  std::vector<std::string> events;
  for (int i = first; i < first + n; ++i) {
    events.push_back(
        ReceiptJson(prefix + std::to_string(i), "till-1", "sku-" + std::to_string(i % 50), 1));
  }
  return BatchJson(events);
}

std::string Header(const HttpResult& r, const std::string& name) {
  auto it = r.headers.find(name);
  return it == r.headers.end() ? std::string() : it->second;
}

// How this machine lets the test mount a tmpfs of its own.
struct NsMode {
  std::vector<std::string> unshare;  // prefix that runs a command in a new mount namespace
  std::vector<std::string> nsenter;  // options of nsenter to enter it again
  std::string name;
};

std::optional<NsMode> FindNsMode(std::string* why) {
  const std::vector<std::string> user = {"/usr/bin/unshare", "--user",        "--map-root-user",
                                         "--mount",          "--propagation", "private"};
  auto probe = [](std::vector<std::string> args) {
    args.insert(args.end(), {"/bin/sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"});
    return Run(args, 10s);
  };
  RunResult r = probe(user);
  if (r.exit.ok())
    return NsMode{user, {"--user", "--mount", "--preserve-credentials"}, "user namespace"};
  *why = "unshare --user --map-root-user failed (" + r.err + ")";
  if (geteuid() == 0) {
    const std::vector<std::string> root = {"/usr/bin/unshare", "--mount", "--propagation",
                                           "private"};
    RunResult rr = probe(root);
    if (rr.exit.ok()) return NsMode{root, {"--mount"}, "root, mount namespace"};
    *why += "; unshare --mount as root failed (" + rr.err + ")";
  }
  return std::nullopt;
}

// ------------------------------------------------------------ full disk

TEST_CASE(
    "full disk: 503 + Retry-After - status says why - nothing acknowledged lost - ingest "
    "resumes by itself when the disk grows") {
  std::string why;
  auto ns = FindNsMode(&why);
  REQUIRE_MESSAGE(ns.has_value(), "cannot mount a test tmpfs: "
                                      << why << " (needs user namespaces, or run as root)");
  MESSAGE("full disk: tmpfs via " << ns->name);

  TempDir tmp;
  const fs::path data = tmp / "data";  // the tmpfs is mounted here, inside the namespace
  fs::create_directories(data);
  const fs::path cfg = tmp / "storegw.toml";
  WriteFile(cfg, "[uplink]\ntransport = \"none\"\n");
  const uint16_t port = FreePort();
  std::vector<std::string> argv = ns->unshare;
  argv.insert(
      argv.end(),
      {"/bin/sh", "-c", "mount -t tmpfs -o size=3m,mode=0700 tmpfs \"$1\" && shift && exec \"$@\"",
       "sh", data.string(), StoregwPath(), "run", "--data-dir", data.string(), "--listen",
       "127.0.0.1:" + std::to_string(port), "--config", cfg.string()});
  Process d = Process::Spawn(argv, tmp / "daemon.out", tmp / "daemon.err");
  REQUIRE_MESSAGE(
      WaitFor([&] { return !d.Running() || HttpGet(port, "/readyz", 1s).status == 200; }, 20s),
      "daemon not ready; stderr:\n"
          << d.Stderr());
  REQUIRE_MESSAGE(d.Running(), "daemon exited; stderr:\n" << d.Stderr());
  // The journal is on the tmpfs, seen only inside the daemon's mount
  // namespace: the CLI runs there too (nsenter).
  const fs::path seen = fs::path("/proc") / std::to_string(d.pid()) / "root" / data.relative_path();
  REQUIRE(fs::exists(seen / "journal.db"));
  REQUIRE_FALSE(fs::exists(data / "journal.db"));  // not on the real disk
  std::vector<std::string> inside = {"/usr/bin/nsenter", "--target", std::to_string(d.pid())};
  inside.insert(inside.end(), ns->nsenter.begin(), ns->nsenter.end());

  Acked acked;
  int next = 0;
  HttpResult refused;
  std::string refused_batch;
  const auto give_up = std::chrono::steady_clock::now() + 90s;
  while (std::chrono::steady_clock::now() < give_up) {
    const std::string body = Batch("fd-", next, 20);
    HttpResult r = HttpPost(port, "/v1/events", body);
    REQUIRE_MESSAGE((r.status == 200 || r.status == 503), r.status << " " << r.body << r.error);
    if (r.status == 503) {
      refused = r;
      refused_batch = body;
      break;
    }
    RecordAcks(r, acked);
    next += 20;
  }
  REQUIRE_MESSAGE(refused.status == 503, "the 3 MiB disk never filled up");
  MESSAGE("full disk: " << acked.size() << " events acknowledged before the disk was full");
  CHECK(acked.size() > 100);
  CHECK(Header(refused, "Retry-After") == "5");
  CHECK(refused.body.find("resource_exhausted") != std::string::npos);
  CHECK(refused.body.find("disk full") != std::string::npos);

  // The status says why: full, below max_bytes, so the disk.
  auto st = FromJson<v1::GatewayStatus>(HttpGet(port, "/v1/status").body);
  REQUIRE(st.has_value());
  CHECK(st->journal_full());
  CHECK(st->journal_bytes() < st->journal_max_bytes());
  CHECK(HttpGet(port, "/metrics").body.find("\nstoregw_journal_full 1\n") != std::string::npos);
  CHECK(WaitFor([&] { return d.Stderr().find("the disk is full") != std::string::npos; }, 5s));

  // Devices retry: still refused while the disk is full, nothing journaled.
  for (int i = 0; i < 3; ++i) {
    HttpResult r = HttpPost(port, "/v1/events", refused_batch);
    CHECK(r.status == 503);
  }
  CheckExport(data, acked, acked.size(), inside);

  // Space returns: the disk grows. Ingest resumes by itself.
  std::vector<std::string> grow = inside;
  // (-t tmpfs and a source name: without them util-linux's mount looks the
  // mount up and fails in a user namespace.)
  grow.insert(grow.end(),
              {"/bin/mount", "-t", "tmpfs", "-o", "remount,size=64m", "tmpfs", data.string()});
  RunResult g = Run(grow, 10s);
  REQUIRE_MESSAGE(g.exit.ok(), "remount: " << g.err);
  HttpResult ok;
  REQUIRE(WaitFor(
      [&] {
        ok = HttpPost(port, "/v1/events", refused_batch);
        return ok.status == 200;
      },
      10s, 100ms));
  RecordAcks(ok, acked);  // the refused batch was not journaled before: no duplicate
  next += 20;
  for (int i = 0; i < 20; ++i, next += 20) {
    HttpResult r = HttpPost(port, "/v1/events", Batch("fd-", next, 20));
    REQUIRE_MESSAGE(r.status == 200, r.status << " " << r.body);
    RecordAcks(r, acked);
  }
  CHECK(WaitFor([&] { return d.Stderr().find("ingest resumed") != std::string::npos; }, 5s));
  st = FromJson<v1::GatewayStatus>(HttpGet(port, "/v1/status").body);
  REQUIRE(st.has_value());
  CHECK_FALSE(st->journal_full());
  CheckExport(data, acked, acked.size(), inside);
  std::vector<std::string> verify = inside;
  verify.insert(verify.end(), {StoregwPath(), "journal", "verify", "--data-dir", data.string()});
  RunResult v = Run(verify);
  CHECK_MESSAGE(v.exit.ok(), v.err);

  d.Signal(SIGTERM);
  auto e = d.WaitExit(20s);
  REQUIRE(e.has_value());
  CHECK_MESSAGE(e->ok(), Describe(*e) << "; stderr:\n" << d.Stderr());
}

// ------------------------------------------------------------ corrupt journals

void InstallGolden(const std::string& name, const fs::path& data) {
  fs::create_directories(data);
  fs::copy_file(kGolden / name, data / "journal.db");
}

std::vector<fs::path> CorruptFiles(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().filename().string().rfind("journal.db.corrupt-", 0) == 0) out.push_back(e.path());
  }
  return out;
}

std::vector<std::string> GoldenConfig(const TempDir& tmp) {
  const fs::path cfg = tmp / "golden.toml";
  WriteFile(cfg,
            "[gateway]\nstore_id = \"store-golden\"\ngateway_id = \"gw-golden\"\n"
            "[uplink]\ntransport = \"none\"\n");
  return {"--config", cfg.string()};
}

TEST_CASE(
    "corrupt journal - daemon: a truncated file is moved aside byte for byte and the daemon "
    "starts a new epoch") {
  TempDir tmp;
  const fs::path data = tmp / "data";
  InstallGolden("journal-truncated.db", data);
  const std::string golden = ReadFile(kGolden / "journal-truncated.db");
  std::string why;
  auto d = StartDaemon(data, tmp / "logs", "trunc", &why, 0, GoldenConfig(tmp));
  REQUIRE_MESSAGE(d.has_value(), why);
  const std::string err = d->proc.Stderr();
  CHECK(err.find("failed its integrity check") != std::string::npos);
  CHECK(err.find("malformed") != std::string::npos);
  CHECK(err.find("a new journal with a new epoch was started") != std::string::npos);
  auto moved = CorruptFiles(data);
  REQUIRE(moved.size() == 1);
  CHECK(err.find(moved[0].string()) != std::string::npos);
  CHECK(ReadFile(moved[0]) == golden);
  HttpResult r = HttpPost(d->port, "/v1/events", Batch("after-", 0, 3));
  REQUIRE(r.status == 200);
  Acked acked;
  RecordAcks(r, acked);
  CHECK(acked["after-0"] == 1);
  CheckExport(data, acked, 3);
}

int64_t UserVersion(const fs::path& db_path) {
  sqlite3* db = nullptr;
  int64_t v = -1;
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, nullptr) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
      v = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
  }
  sqlite3_close(db);
  return v;
}

// The schema version the storegw binary writes: a journal it creates.
int64_t BuildSchemaVersion() {
  TempDir tmp;
  std::string why;
  {
    auto d = StartDaemon(tmp / "data", tmp / "logs", "schema", &why);
    REQUIRE_MESSAGE(d.has_value(), why);
  }
  return UserVersion(tmp / "data" / "journal.db");
}

TEST_CASE(
    "corrupt journal - daemon: random bytes in an events page: moved aside byte for byte - "
    "new epoch (at once when a migration is due - else after the background check)") {
  TempDir tmp;
  const fs::path data = tmp / "data";
  InstallGolden("journal-garbage.db", data);
  const std::string golden = ReadFile(kGolden / "journal-garbage.db");
  const bool migration_due = UserVersion(data / "journal.db") < BuildSchemaVersion();
  CAPTURE(migration_due);
  std::string why;
  if (!migration_due) {
    auto d = StartDaemon(data, tmp / "logs", "garbage1", &why, 0, GoldenConfig(tmp));
    REQUIRE_MESSAGE(d.has_value(), why);
    CHECK(CorruptFiles(data).empty());  // the quick start-up check cannot see it
    CHECK(WaitFor(
        [&] {
          return d->proc.Stderr().find("failed its background integrity check") !=
                 std::string::npos;
        },
        15s));
    CHECK(d->proc.Stderr().find("the next start moves it aside") != std::string::npos);
    d->proc.Signal(SIGTERM);
    auto e = d->proc.WaitExit(20s);
    REQUIRE(e.has_value());
    CHECK(e->ok());
    CHECK(ReadFile(data / "journal.db") == golden);  // nothing was written to it
  }
  auto d = StartDaemon(data, tmp / "logs", "garbage2", &why, 0, GoldenConfig(tmp));
  REQUIRE_MESSAGE(d.has_value(), why);
  const std::string err = d->proc.Stderr();
  CHECK(err.find("failed its integrity check") != std::string::npos);
  CHECK(err.find("a new journal with a new epoch was started") != std::string::npos);
  auto moved = CorruptFiles(data);
  REQUIRE(moved.size() == 1);
  CHECK(ReadFile(moved[0]) == golden);
  HttpResult r = HttpPost(d->port, "/v1/events", Batch("fresh-", 0, 2));
  REQUIRE(r.status == 200);
  Acked acked;
  RecordAcks(r, acked);
  CheckExport(data, acked, 2);
}

TEST_CASE(
    "corrupt journal - daemon: a journal of a future schema version: refuses to start - file "
    "untouched") {
  TempDir tmp;
  const fs::path data = tmp / "data";
  InstallGolden("journal-future.db", data);
  const std::string golden = ReadFile(kGolden / "journal-future.db");
  RunResult r = Run(StoregwArgs({"run", "--data-dir", data.string(), "--listen",
                                 "127.0.0.1:" + std::to_string(FreePort()), GoldenConfig(tmp)[0],
                                 GoldenConfig(tmp)[1]}),
                    30s);
  REQUIRE_FALSE(r.timed_out);
  CHECK(r.exit.exited);
  CHECK(r.exit.code == 1);
  CHECK(r.err.find("storegw: cannot start: journal:") != std::string::npos);
  CHECK(r.err.find("schema version 99") != std::string::npos);
  CHECK(r.err.find("upgrade storegw") != std::string::npos);
  CHECK(ReadFile(data / "journal.db") == golden);
  CHECK(CorruptFiles(data).empty());
  // journal verify refuses it too, without changing it.
  RunResult v = Run(StoregwArgs({"journal", "verify", "--data-dir", data.string()}));
  CHECK_FALSE(v.exit.ok());
  CHECK(ReadFile(data / "journal.db") == golden);
}

}  // namespace
}  // namespace storegw::test
