// Black-box tests of `storegw journal backup`: the real binary copying the
// journal of a real `storegw run` under load (every event acknowledged
// before the copy started is in it, with its seq), the copy moved to a new
// data dir and served by a new daemon with the same epoch, and each refusal
// (exit 1, the problem named, nothing left behind).
#include <doctest/doctest.h>

#include <unistd.h>

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "test_util.h"
#include "till_load.h"

using namespace storegw::test;
namespace v1 = storegw::v1;

namespace {

std::set<std::string> BackupListing(const std::filesystem::path& dir) {
  std::set<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    out.insert(e.path().filename().string());
  }
  return out;
}

// The copy put in place as `dir`/journal.db, the way a technician restores
// it on a replacement box.
void BackupRestoreInto(const std::filesystem::path& copy, const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file(copy, dir / "journal.db");
}

std::optional<v1::GatewayStatus> BackupStatus(uint16_t port) {
  HttpResult r = HttpGet(port, "/v1/status");
  if (r.status != 200) return std::nullopt;
  return FromJson<v1::GatewayStatus>(r.body);
}

}  // namespace

TEST_CASE("journal backup: a running daemon's journal under load, moved to a new data dir") {
  TempDir dir;
  const auto data = dir / "data";
  std::string why;
  auto d = StartDaemon(data, dir / "logs", "backup", &why);
  REQUIRE_MESSAGE(d, why);

  TillLoad tills(d->port, 3, "bk", "SKU-B");
  WaitFor([&] { return tills.acked().size() >= 1000; }, 20s);

  // 1. A copy while the tills keep posting: everything acknowledged before
  // it started is in it.
  const auto before = tills.acked();
  const auto live_copy = dir / "out" / "live.db";
  std::filesystem::create_directories(dir / "out");
  RunResult live = Run(StoregwArgs(
      {"journal", "backup", "--data-dir", data.string(), "--output", live_copy.string()}));
  const size_t acked_after_copy = tills.acked().size();
  REQUIRE_MESSAGE(live.exit.ok(), Describe(live.exit) << ": " << live.err);
  CHECK(live.out.rfind("journal backup: ok: " + live_copy.string() + ": ", 0) == 0);
  CHECK(live.out.find(", verified\n") != std::string::npos);
  CHECK(BackupListing(dir / "out") == std::set<std::string>{"live.db"});
  BackupRestoreInto(live_copy, dir / "live-restored");
  auto live_events = ExportJournal(dir / "live-restored", &why);
  REQUIRE_MESSAGE(live_events, why);
  CheckAcknowledged(*live_events, before);
  MESSAGE(before.size() << " events acknowledged before the copy, " << live_events->size()
                        << " in it, " << acked_after_copy << " acknowledged when it ended");
  CHECK(live_events->size() >= before.size());

  // 2. The tills stop; a copy of the still running daemon holds every event
  // it ever acknowledged.
  tills.Stop();
  CHECK(tills.bad_answers() == 0);
  const auto all = tills.acked();
  REQUIRE(all.size() >= 1000);
  const auto final_copy = dir / "out" / "final.db";
  RunResult fin = Run(StoregwArgs(
      {"journal", "backup", "--data-dir", data.string(), "--output", final_copy.string()}));
  REQUIRE_MESSAGE(fin.exit.ok(), fin.err);
  BackupRestoreInto(final_copy, dir / "new-box");
  auto copied = ExportJournal(dir / "new-box", &why);
  REQUIRE_MESSAGE(copied, why);
  CheckAcknowledged(*copied, all);
  CHECK(copied->size() == all.size());

  // 3. The move: the old daemon stops (its journal ends where the copy
  // does), a new one starts on the copy with the same identity and goes on
  // with the same epoch from the next seq.
  auto old_status = BackupStatus(d->port);
  REQUIRE(old_status);
  d->proc.Signal(SIGTERM);
  auto e = d->proc.WaitExit(10s);
  REQUIRE_MESSAGE(e, "the old daemon did not stop; stderr:\n" << d->proc.Stderr());
  CHECK(e->ok());
  auto old_events = ExportJournal(data, &why);
  REQUIRE_MESSAGE(old_events, why);
  CHECK(old_events->size() == copied->size());

  RunResult verify =
      Run(StoregwArgs({"journal", "verify", "--data-dir", (dir / "new-box").string()}));
  CHECK_MESSAGE(verify.exit.ok(), verify.err);
  auto d2 = StartDaemon(dir / "new-box", dir / "logs", "new-box", &why);
  REQUIRE_MESSAGE(d2, why);
  auto st = BackupStatus(d2->port);
  REQUIRE(st);
  CHECK(st->epoch() == old_status->epoch());
  CHECK(st->store_id() == old_status->store_id());
  CHECK(st->gateway_id() == old_status->gateway_id());
  CHECK(st->last_seq() == all.size());
  HttpResult next =
      HttpPost(d2->port, "/v1/events", ReceiptJson("after-move", "till-01", "SKU-B0", 1));
  REQUIRE_MESSAGE(next.status == 200, next.body);
  auto resp = FromJson<v1::IngestResponse>(next.body);
  REQUIRE(resp);
  CHECK(resp->results(0).seq() == all.size() + 1);
  // A till's retry of an event the old box acknowledged is a duplicate
  // on the new one: its original seq, nothing new journaled.
  const v1::Event& original = (*copied)[copied->size() / 2].event();
  std::string retry_json;
  REQUIRE(google::protobuf::util::MessageToJsonString(original, &retry_json).ok());
  HttpResult retry = HttpPost(d2->port, "/v1/events", retry_json);
  REQUIRE_MESSAGE(retry.status == 200, retry.body);
  auto retried = FromJson<v1::IngestResponse>(retry.body);
  REQUIRE(retried);
  CHECK(retried->results(0).duplicate());
  CHECK(retried->results(0).seq() == all.at(original.event_id()));
  auto st2 = BackupStatus(d2->port);
  REQUIRE(st2);
  CHECK(st2->last_seq() == all.size() + 1);
  d2->proc.Signal(SIGTERM);
  CHECK(d2->proc.WaitExit(10s).has_value());
}

TEST_CASE("journal backup: refusals exit 1, name the problem and leave nothing behind") {
  TempDir dir;
  const auto data = dir / "data";
  std::string why;
  {
    auto d = StartDaemon(data, dir / "logs", "refusals", &why);
    REQUIRE_MESSAGE(d, why);
    REQUIRE(HttpPost(d->port, "/v1/events", ReceiptJson("r-1", "till-01", "SKU-R", 1)).status ==
            200);
    d->proc.Signal(SIGTERM);
    REQUIRE(d->proc.WaitExit(10s));
  }
  const auto out = dir / "out";
  std::filesystem::create_directories(out);
  WriteFile(out / "exists.db", "an older backup");
  const auto out_before = BackupListing(out);
  const auto data_before = BackupListing(data);

  auto refused = [&](const std::vector<std::string>& args, const std::string& says,
                     const std::vector<std::string>& prefix = {}) {
    std::vector<std::string> argv = prefix;
    for (const auto& a : StoregwArgs(args)) argv.push_back(a);
    std::string joined;
    for (const auto& a : argv) joined += a + " ";
    INFO(joined);
    RunResult r = Run(argv);
    CHECK(r.exit.exited);
    CHECK(r.exit.code == 1);
    CHECK(r.out.empty());
    CHECK_MESSAGE(r.err == "journal backup: FAILED: " + says + "\n", r.err);
    CHECK(BackupListing(out) == out_before);
    CHECK(BackupListing(data) == data_before);
    CHECK(ReadFile(out / "exists.db") == "an older backup");
  };
  const std::string exists = (out / "exists.db").string();
  refused({"journal", "backup", "--data-dir", data.string(), "--output", exists},
          exists + " already exists; it is only replaced with --force");
  refused({"journal", "backup", "--data-dir", (dir / "absent").string(), "--output",
           (out / "b.db").string()},
          "the data dir " + (dir / "absent").string() + " does not exist");
  refused({"journal", "backup", "--data-dir", out.string(), "--output", (out / "b.db").string()},
          "no journal at " + (out / "journal.db").string());
  refused(
      {"journal", "backup", "--data-dir", data.string(), "--output",
       (dir / "nowhere" / "b.db").string()},
      "cannot write the backup: the directory " + (dir / "nowhere").string() + " does not exist");

  // An output directory the user may not write to: as an unprivileged user
  // (root writes anyway). The journal is made readable to that user.
  std::vector<std::string> as_user;
  if (::geteuid() == 0) {
    as_user = {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"};
    std::filesystem::permissions(data, std::filesystem::perms::all);
    std::filesystem::permissions(data / "journal.db", std::filesystem::perms::owner_read |
                                                          std::filesystem::perms::owner_write |
                                                          std::filesystem::perms::group_read |
                                                          std::filesystem::perms::others_read);
  } else {
    std::filesystem::permissions(
        out, std::filesystem::perms::owner_read | std::filesystem::perms::owner_exec);
  }
  refused({"journal", "backup", "--data-dir", data.string(), "--output", (out / "b.db").string()},
          "cannot write the backup: the directory " + out.string() +
              " is not writable (Permission denied)",
          as_user);
  std::filesystem::permissions(
      out, std::filesystem::perms::owner_all | std::filesystem::perms::group_read |
               std::filesystem::perms::group_exec | std::filesystem::perms::others_read |
               std::filesystem::perms::others_exec);

  // --output is required: a usage error (2), like every missing flag.
  RunResult usage = Run(StoregwArgs({"journal", "backup", "--data-dir", data.string()}));
  CHECK(usage.exit.code == 2);
  CHECK(usage.err.find("--output") != std::string::npos);

  // With --force the existing file is replaced by a verified copy.
  RunResult forced = Run(StoregwArgs(
      {"journal", "backup", "--data-dir", data.string(), "--output", exists, "--force"}));
  CHECK_MESSAGE(forced.exit.ok(), forced.err);
  CHECK(forced.out.find(" 1 events (seq 1..1, watermark 0)") != std::string::npos);
  CHECK(BackupListing(out) == out_before);
  CHECK(ReadFile(out / "exists.db").rfind("SQLite format 3", 0) == 0);
}
