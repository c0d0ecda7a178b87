// Black-box tests of `storegw run`: the real binary on a free loopback port.
// Readiness, /v1/status, the journal tools while it runs, SIGTERM (idle and
// under load), kill -9 under `storegw simulate`, and start-up failures.
// Every check is on bytes and seqs (HTTP answers, `journal export`), not on
// log lines, except where the log line is the contract (start-up failures).
#include <doctest/doctest.h>

#include <sys/socket.h>
#include <sys/un.h>

#include <atomic>
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

using Clock = std::chrono::steady_clock;

// Posts `events` as one batch; on 200 adds the results to `acked`.
HttpResult PostBatch(uint16_t port, const std::vector<std::string>& ids,
                     std::map<std::string, uint64_t>& acked, bool expect_duplicate = false) {
  std::vector<std::string> events;
  for (const auto& id : ids) events.push_back(ReceiptJson(id, "till-01", "SKU-" + id, 3));
  HttpResult r = HttpPost(port, "/v1/events", BatchJson(events));
  if (r.status != 200) return r;
  auto resp = FromJson<v1::IngestResponse>(r.body);
  REQUIRE_MESSAGE(resp, r.body);
  REQUIRE(resp->results_size() == static_cast<int>(ids.size()));
  for (size_t i = 0; i < ids.size(); ++i) {
    const auto& res = resp->results(static_cast<int>(i));
    CHECK(res.event_id() == ids[i]);
    CHECK(res.seq() > 0);
    CHECK(res.duplicate() == expect_duplicate);
    acked[res.event_id()] = res.seq();
  }
  return r;
}

std::optional<v1::GatewayStatus> Status(uint16_t port) {
  HttpResult r = HttpGet(port, "/v1/status");
  if (r.status != 200) return std::nullopt;
  return FromJson<v1::GatewayStatus>(r.body);
}

// Stops a daemon with `sig` and requires exit 0 within 5 s.
void StopWithin5s(Daemon& d, int sig = SIGTERM) {
  auto t0 = Clock::now();
  d.proc.Signal(sig);
  auto e = d.proc.WaitExit(5s);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  REQUIRE_MESSAGE(e, "still running 5 s after the signal; stderr:\n" << d.proc.Stderr());
  CHECK_MESSAGE(e->ok(), Describe(*e) << "; stderr:\n" << d.proc.Stderr());
  MESSAGE("stopped in " << ms << " ms");
}

uint64_t SummaryNumber(const std::string& out, const std::string& label) {
  auto pos = out.find(label + " ");
  if (pos == std::string::npos) return UINT64_MAX;
  return std::stoull(out.substr(pos + label.size() + 1));
}

}  // namespace

TEST_CASE("gateway daemon: serves the API and status, tools work while it runs, SIGTERM exits 0") {
  TempDir dir;
  const auto data = dir / "data";
  std::string why;
  auto d = StartDaemon(data, dir / "logs", "first", &why);
  REQUIRE_MESSAGE(d, why);

  // The one line that says where everything is.
  REQUIRE(WaitFor([&] { return d->proc.Stdout().find('\n') != std::string::npos; }, 5s));
  const std::string line = d->proc.Stdout();
  CHECK_MESSAGE(line.rfind("storegw: listening on " + d->url() + " (status: " + d->url() +
                               "/v1/status), journal " + (data / "journal.db").string() + " epoch ",
                           0) == 0,
                line);

  CHECK(HttpGet(d->port, "/healthz").status == 200);
  CHECK(HttpGet(d->port, "/readyz").status == 200);
  // No broker listens where the uplink points: the link is not up and the
  // status says why (it may show "connecting" between attempts).
  std::optional<v1::GatewayStatus> st;
  CHECK(WaitFor([&] {
    st = Status(d->port);
    return st && st->link() != "up" && !st->last_error().empty();
  }, 10s));
  REQUIRE(st);
  CHECK(st->store_id() == "store-0001");
  CHECK(st->gateway_id() == "gw-01");
  CHECK(st->epoch() != 0);
  CHECK(line.find(" epoch " + std::to_string(st->epoch()) + "\n") != std::string::npos);
  CHECK(st->last_seq() == 0);
  CHECK(st->link() != "up");
  CHECK(!st->last_error().empty());
  CHECK(st->journal_max_bytes() == 1ull << 30);
  CHECK(st->journal_bytes() > 0);
  CHECK(st->version() == STOREGW_PROJECT_VERSION);
  CHECK(st->online());
  CHECK(!st->journal_full());
  // Zero values are printed too: a status reader sees every field.
  CHECK(HttpGet(d->port, "/v1/status").body.find("\"backlog_events\"") != std::string::npos);
  CHECK(HttpPost(d->port, "/v1/status", "{}").status == 405);

  // Events in, then visible in the status and the journal tools.
  std::map<std::string, uint64_t> acked;
  for (int b = 0; b < 4; ++b) {
    std::vector<std::string> ids;
    for (int i = 0; i < 5; ++i) ids.push_back("rcv-" + std::to_string(b) + "-" + std::to_string(i));
    HttpResult r = PostBatch(d->port, ids, acked);
    REQUIRE_MESSAGE(r.status == 200, r.status << " " << r.body << r.error);
  }
  REQUIRE(acked.size() == 20);
  {
    // A retried batch changes nothing and answers the original seqs.
    std::map<std::string, uint64_t> again;
    std::vector<std::string> ids = {"rcv-2-0", "rcv-2-1", "rcv-2-2", "rcv-2-3", "rcv-2-4"};
    REQUIRE(PostBatch(d->port, ids, again, /*expect_duplicate=*/true).status == 200);
    for (const auto& [id, seq] : again) CHECK(acked.at(id) == seq);
  }
  st = Status(d->port);
  REQUIRE(st);
  CHECK(st->last_seq() == 20);
  CHECK(st->backlog_events() == 20);  // no uplink: nothing delivered
  CHECK(st->watermark() == 0);

  // Selling what the store does not have raises an open oversell alert
  // (a count of 0 first gives the sku a baseline: an untracked sku would
  // raise nothing).
  HttpResult count = HttpPost(
      d->port, "/v1/events",
      R"({"event_id":"count-1","device_id":"till-01","occurred_at":1700000000000000,"count":{"sku":"SKU-NONE","qty":0}})");
  REQUIRE_MESSAGE(count.status == 200, count.body);
  acked["count-1"] = FromJson<v1::IngestResponse>(count.body)->results(0).seq();
  HttpResult sale = HttpPost(
      d->port, "/v1/events",
      R"({"event_id":"sale-1","device_id":"till-01","occurred_at":1700000000000000,"sale":{"lines":[{"sku":"SKU-NONE","qty":2,"unit_price":150,"currency":"EUR"}]}})");
  REQUIRE_MESSAGE(sale.status == 200, sale.body);
  st = Status(d->port);
  REQUIRE(st);
  bool alerted = false;
  for (const auto& a : st->alerts()) {
    alerted |= a.sku() == "SKU-NONE" && a.kind() == v1::Alert::OVERSELL && a.on_hand() == -2;
  }
  CHECK_MESSAGE(alerted, st->DebugString());
  acked["sale-1"] = FromJson<v1::IngestResponse>(sale.body)->results(0).seq();

  // journal export and verify while the daemon runs.
  auto live = ExportJournal(data, &why);
  REQUIRE_MESSAGE(live, why);
  CheckAcknowledged(*live, acked);
  CHECK(live->size() == st->last_seq());
  for (const auto& e : *live) {
    CHECK(e.epoch() == st->epoch());
    CHECK(e.store_id() == "store-0001");
  }
  RunResult to_file = Run(StoregwArgs(
      {"journal", "export", "--data-dir", data.string(), "--output", (dir / "x.jsonl").string()}));
  CHECK_MESSAGE(to_file.exit.ok(), to_file.err);
  CHECK(to_file.out.empty());
  const std::string jsonl = ReadFile(dir / "x.jsonl");
  CHECK(static_cast<size_t>(std::count(jsonl.begin(), jsonl.end(), '\n')) == live->size());
  CHECK(jsonl.find("\"event_id\":\"rcv-0-0\"") != std::string::npos);  // proto field names
  RunResult verify = Run(StoregwArgs({"journal", "verify", "--data-dir", data.string()}));
  CHECK_MESSAGE(verify.exit.ok(), verify.err);
  CHECK(verify.out.rfind("journal verify: ok: ", 0) == 0);

  // SIGTERM: exit 0 within 5 s, and everything acknowledged is there.
  StopWithin5s(*d);
  auto after = ExportJournal(data, &why);
  REQUIRE_MESSAGE(after, why);
  CheckAcknowledged(*after, acked);
  CHECK(after->size() == live->size());

  // Restart on the same journal: same epoch, same seqs; SIGINT stops it too.
  auto d2 = StartDaemon(data, dir / "logs", "second", &why);
  REQUIRE_MESSAGE(d2, why);
  auto st2 = Status(d2->port);
  REQUIRE(st2);
  CHECK(st2->epoch() == st->epoch());
  CHECK(st2->last_seq() == st->last_seq());
  StopWithin5s(*d2, SIGINT);
}

TEST_CASE("gateway daemon: start failures exit 1 with a one-line reason") {
  TempDir dir;
  auto check_fails = [&](const std::vector<std::string>& args, const std::string& says) {
    INFO("storegw run " << [&] {
      std::string s;
      for (const auto& a : args) s += a + " ";
      return s;
    }());
    RunResult r = Run(StoregwArgs(args), 20s);
    REQUIRE(!r.timed_out);
    CHECK(r.exit.exited);
    CHECK(r.exit.code == 1);
    // The reason is the last line of stderr, and it is one line.
    std::string err = r.err;
    while (!err.empty() && err.back() == '\n') err.pop_back();
    std::string last = err.substr(err.rfind('\n') == std::string::npos ? 0 : err.rfind('\n') + 1);
    CHECK_MESSAGE(last.rfind("storegw: cannot start: ", 0) == 0, r.err);
    CHECK_MESSAGE(last.find(says) != std::string::npos, r.err);
  };

  // Port in use: hold a listening socket on it.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(listen(fd, 1) == 0);
  REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  const std::string busy = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  check_fails({"run", "--data-dir", (dir / "d1").string(), "--listen", busy}, "in use");
  close(fd);

  // A non-loopback address without device tokens (192.0.2.1 is TEST-NET-1,
  // not an address of this machine: nothing could listen there anyway).
  check_fails({"run", "--data-dir", (dir / "d2").string(), "--listen", "192.0.2.1:8080"},
              "http.device_tokens_file must be set");

  // A data dir that is a file: the journal cannot be opened.
  WriteFile(dir / "not-a-dir", "x");
  check_fails({"run", "--data-dir", (dir / "not-a-dir").string(), "--listen", "127.0.0.1:0"},
              "journal: ");

  // A bad config file names the file, line and key; a missing one, the file.
  WriteFile(dir / "bad.toml", "[http]\nlisten = \"127.0.0.1:0\"\nmax_body_bytes = \"lots\"\n");
  check_fails({"run", "--config", (dir / "bad.toml").string()},
              (dir / "bad.toml").string() + ":3: http.max_body_bytes: ");
  check_fails({"run", "--config", (dir / "none.toml").string()}, "no such config file");
  check_fails({"run", "--data-dir", (dir / "d3").string(), "--listen", "127.0.0.1"},
              "--listen: http.listen: listen address \"127.0.0.1\" has no port");
  // A tokens file that is not there.
  WriteFile(dir / "tok.toml", "[http]\ndevice_tokens_file = \"" + (dir / "none").string() + "\"\n");
  check_fails({"run", "--config", (dir / "tok.toml").string(), "--data-dir", (dir / "d4").string(),
               "--listen", "127.0.0.1:0"},
              "http.device_tokens_file: ");
}

TEST_CASE("gateway daemon: a corrupt journal is moved aside, reported, and a new one started") {
  TempDir dir;
  const auto data = dir / "data";
  std::filesystem::create_directories(data);
  const std::string garbage(16384, 'g');
  WriteFile(data / "journal.db", garbage);
  std::string why;
  auto d = StartDaemon(data, dir / "logs", "corrupt", &why);
  REQUIRE_MESSAGE(d, why);
  CHECK(d->proc.Stderr().find("moved to") != std::string::npos);
  bool kept = false;
  for (const auto& entry : std::filesystem::directory_iterator(data)) {
    if (entry.path().filename().string().rfind("journal.db.corrupt-", 0) == 0) {
      kept = ReadFile(entry.path()) == garbage;
    }
  }
  CHECK_MESSAGE(kept, "the corrupt file was not kept byte for byte");
  auto st = Status(d->port);
  REQUIRE(st);
  CHECK(st->last_seq() == 0);
  StopWithin5s(*d);
}

TEST_CASE("gateway daemon: SIGTERM under load loses nothing acknowledged") {
  TempDir dir;
  const auto data = dir / "data";
  std::string why;
  auto d = StartDaemon(data, dir / "logs", "load", &why);
  REQUIRE_MESSAGE(d, why);

  TillLoad tills(d->port, 4, "load", "SKU-L");
  // Let the load build up, then stop the daemon in the middle of it.
  WaitFor([&] { return tills.acked().size() >= 500; }, 10s);
  StopWithin5s(*d);
  tills.Stop();
  const auto acked = tills.acked();
  MESSAGE(acked.size() << " events acknowledged, " << tills.refused() << " refused (503), "
                       << tills.no_answer() << " requests without an answer");
  CHECK(tills.bad_answers() == 0);
  CHECK(acked.size() >= 500);

  auto events = ExportJournal(data, &why);
  REQUIRE_MESSAGE(events, why);
  CheckAcknowledged(*events, acked);
  RunResult verify = Run(StoregwArgs({"journal", "verify", "--data-dir", data.string()}));
  CHECK_MESSAGE(verify.exit.ok(), verify.err);
}

TEST_CASE("gateway daemon: kill -9 under storegw simulate loses nothing the simulator counted") {
  TempDir dir;
  const auto data = dir / "data";
  const auto logs = dir / "logs";
  std::string why;
  auto d = StartDaemon(data, logs, "kill-0", &why);
  REQUIRE_MESSAGE(d, why);
  const uint16_t port = d->port;
  const auto accepted_log = dir / "accepted.log";
  Process sim =
      Process::Spawn(StoregwArgs({"simulate", "--url", d->url(), "--lanes", "4", "--rate", "400",
                                  "--batch", "5", "--duration", "10s", "--grace", "20s", "--seed",
                                  "11", "--accepted-log", accepted_log.string()}),
                     logs / "sim.out", logs / "sim.err");
  auto first_epoch = Status(port);
  REQUIRE(first_epoch);

  // Two kill -9 / restart cycles while the simulator sends.
  for (int round = 1; round <= 2; ++round) {
    std::this_thread::sleep_for(1500ms);
    REQUIRE_MESSAGE(sim.Running(), "simulate ended early:\n" << sim.Stdout() << sim.Stderr());
    d->proc.Signal(SIGKILL);
    auto e = d->proc.WaitExit(5s);
    REQUIRE(e);
    CHECK(e->signal == SIGKILL);
    std::this_thread::sleep_for(300ms);
    d = StartDaemon(data, logs, "kill-" + std::to_string(round), &why, port);
    REQUIRE_MESSAGE(d, why);
  }
  auto sim_exit = sim.WaitExit(60s);
  REQUIRE_MESSAGE(sim_exit, "simulate still running after 60 s");
  const std::string summary = sim.Stdout();
  CHECK_MESSAGE(sim_exit->ok(), Describe(*sim_exit) << "\n" << summary << sim.Stderr());
  MESSAGE(summary);
  StopWithin5s(*d);

  // What the simulator counted as accepted...
  std::map<std::string, uint64_t> acked;
  std::istringstream in(ReadFile(accepted_log));
  std::string id;
  uint64_t seq = 0;
  size_t lines = 0;
  while (in >> id >> seq) {
    ++lines;
    acked[id] = seq;
  }
  CHECK(lines == acked.size());  // each event_id once in the log
  CHECK(acked.size() == SummaryNumber(summary, "accepted"));
  CHECK(acked.size() > 500);
  CHECK(SummaryNumber(summary, "retries") > 0);  // the kills really hit requests

  // ... is in the journal exactly once with that seq, and the journal holds
  // no device event the simulator did not count.
  auto events = ExportJournal(data, &why);
  REQUIRE_MESSAGE(events, why);
  CheckAcknowledged(*events, acked);
  size_t device_events = 0;
  for (const auto& e : *events) {
    CHECK(e.epoch() == first_epoch->epoch());  // a kill -9 never starts a new journal
    if (e.event().has_alert()) continue;
    ++device_events;
    CHECK_MESSAGE(acked.count(e.event().event_id()) == 1, e.event().event_id());
  }
  CHECK(device_events == acked.size());
  RunResult verify = Run(StoregwArgs({"journal", "verify", "--data-dir", data.string()}));
  CHECK_MESSAGE(verify.exit.ok(), verify.err);
}

TEST_CASE("gateway daemon: tells systemd READY, feeds the watchdog, says STOPPING") {
  TempDir dir;
  // Stand in for systemd: a datagram socket at NOTIFY_SOCKET.
  const std::string sock_path = (dir / "notify.sock").string();
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  REQUIRE(sock_path.size() < sizeof sun.sun_path);
  std::memcpy(sun.sun_path, sock_path.c_str(), sock_path.size() + 1);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&sun), sizeof sun) == 0);
  timeval tv{0, 100000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  auto receive_for = [&](std::chrono::milliseconds how_long) {
    std::vector<std::string> got;
    auto until = Clock::now() + how_long;
    char buf[4096];
    while (Clock::now() < until) {
      ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n > 0) got.emplace_back(buf, static_cast<size_t>(n));
    }
    return got;
  };
  auto count = [](const std::vector<std::string>& msgs, const std::string& what) {
    size_t n = 0;
    for (const auto& m : msgs) n += m.find(what) != std::string::npos;
    return n;
  };

  std::string why;
  auto d = StartDaemon(dir / "data", dir / "logs", "notify", &why, 0, {},
                       {"NOTIFY_SOCKET=" + sock_path, "WATCHDOG_USEC=300000"});
  REQUIRE_MESSAGE(d, why);
  std::vector<std::string> msgs = receive_for(1500ms);
  CHECK(count(msgs, "READY=1") == 1);
  CHECK(count(msgs, "STATUS=listening on " + d->url()) == 1);
  // Fed at half of the 300 ms interval: several times in 1.5 s.
  CHECK(count(msgs, "WATCHDOG=1") >= 3);
  d->proc.Signal(SIGTERM);
  auto e = d->proc.WaitExit(5s);
  REQUIRE(e);
  CHECK(e->ok());
  msgs = receive_for(200ms);
  CHECK(count(msgs, "STOPPING=1") == 1);
  close(fd);
}

// ------------------------------------------------------------ perishables

namespace {

int64_t WallUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string ProductionJson(const std::string& id, const std::string& sku, int64_t qty,
                           const std::string& location, int64_t occurred_at) {
  return R"({"event_id":")" + id + R"(","device_id":"kitchen-1","occurred_at":)" +
         std::to_string(occurred_at) + R"(,"production":{"sku":")" + sku + R"(","qty":)" +
         std::to_string(qty) + R"(,"location":")" + location + R"("}})";
}

std::vector<v1::StatusAlert> AlertsOf(const v1::GatewayStatus& st, v1::Alert::Kind kind) {
  std::vector<v1::StatusAlert> out;
  for (const auto& a : st.alerts()) {
    if (a.kind() == kind) out.push_back(a);
  }
  return out;
}

}  // namespace

TEST_CASE("gateway daemon: a tray due while the uplink is down is called off the shelf on time, "
          "across a restart, until its waste is recorded, and a fridge out of limits alerts") {
  TempDir dir;
  const auto data = dir / "data";
  const auto sensors = dir / "sensors.txt";
  std::ofstream(sensors) << "fridge-2 0 5000 grace=0s dairy fridge 2\n";
  const auto cfg = dir / "storegw.toml";
  // The uplink points where nothing listens: the store is offline.
  std::ofstream(cfg) << "[uplink]\nurl = \"tcp://127.0.0.1:" << FreePort()
                     << "\"\nbackoff_initial = \"100ms\"\nbackoff_max = \"1s\"\n"
                     << "[perishables]\ndefault_hold = \"1m\"\n"
                     << "[cold_chain]\nsensors_file = \"" << sensors.string() << "\"\n";
  std::string why;
  auto d = StartDaemon(data, dir / "logs", "perish", &why, 0, {"--config", cfg.string()});
  REQUIRE_MESSAGE(d, why);

  // Put out 58 s ago with a 1-minute hold: due in 2 s. Another one later.
  const int64_t put_out = WallUs() - 58'000'000;
  const int64_t due = put_out + 60'000'000;
  HttpResult r = HttpPost(
      d->port, "/v1/events",
      BatchJson({ProductionJson("prod-1", "chicken-roast", 6, "hot counter 1", put_out),
                 ProductionJson("prod-2", "chicken-roast", 6, "hot counter 1", WallUs())}));
  REQUIRE_MESSAGE(r.status == 200, r.body);
  r = HttpPost(d->port, "/v1/events",
               BatchJson({R"({"event_id":"temp-1","device_id":"fridge-2",)"
                          R"("occurred_at":1700000000000000,"sensor":{"sensor_id":"fridge-2",)"
                          R"("metric":"temp_mc","value":9100}})"}));
  REQUIRE_MESSAGE(r.status == 200, r.body);
  std::optional<v1::GatewayStatus> st;
  REQUIRE(WaitFor([&] {
    st = Status(d->port);
    return st && !AlertsOf(*st, v1::Alert::REMOVE_FROM_SHELF).empty() &&
           !AlertsOf(*st, v1::Alert::TEMPERATURE_EXCURSION).empty();
  }, 20s));
  CHECK(st->link() != "up");  // still offline
  auto rfs = AlertsOf(*st, v1::Alert::REMOVE_FROM_SHELF);
  REQUIRE(rfs.size() == 1);
  CHECK(rfs[0].sku() == "chicken-roast");
  CHECK(rfs[0].location() == "hot counter 1");
  CHECK(rfs[0].qty() == 6);
  CHECK(rfs[0].since() == due);
  CHECK(rfs[0].raised_at() >= due);
  auto exc = AlertsOf(*st, v1::Alert::TEMPERATURE_EXCURSION);
  REQUIRE(exc.size() == 1);
  CHECK(exc[0].sensor_id() == "fridge-2");
  CHECK(exc[0].location() == "dairy fridge 2");
  CHECK(exc[0].max_seen() == 9100);

  // A restart neither loses nor repeats the alert.
  StopWithin5s(*d);
  d = StartDaemon(data, dir / "logs", "perish2", &why, 0, {"--config", cfg.string()});
  REQUIRE_MESSAGE(d, why);
  st = Status(d->port);
  REQUIRE(st);
  REQUIRE(AlertsOf(*st, v1::Alert::REMOVE_FROM_SHELF).size() == 1);
  CHECK(AlertsOf(*st, v1::Alert::REMOVE_FROM_SHELF)[0].seq() == rfs[0].seq());

  // The tray is thrown away: the waste clears the alert (the oldest batch
  // first: the second tray stays out, not due).
  r = HttpPost(d->port, "/v1/events",
               BatchJson({R"({"event_id":"waste-1","device_id":"kitchen-1",)"
                          R"("occurred_at":1700000000000000,"adjustment":)"
                          R"({"lines":[{"sku":"chicken-roast","qty":-6,"reason":"waste"}]}})"}));
  REQUIRE_MESSAGE(r.status == 200, r.body);
  st = Status(d->port);
  REQUIRE(st);
  CHECK(AlertsOf(*st, v1::Alert::REMOVE_FROM_SHELF).empty());
  StopWithin5s(*d);

  // Everything the store did is in the journal, to go upstream: one alert
  // per condition, the clear, and nothing twice.
  auto events = ExportJournal(data, &why);
  REQUIRE_MESSAGE(events, why);
  int rfs_alerts = 0, excursions = 0, cleared = 0;
  for (const auto& je : *events) {
    if (je.event().has_alert()) {
      rfs_alerts += je.event().alert().kind() == v1::Alert::REMOVE_FROM_SHELF;
      excursions += je.event().alert().kind() == v1::Alert::TEMPERATURE_EXCURSION;
    }
    if (je.event().has_alert_cleared()) {
      ++cleared;
      CHECK(je.event().alert_cleared().alert_seq() == rfs[0].seq());
      CHECK(je.event().alert_cleared().reason() == "wasted");
    }
  }
  CHECK(rfs_alerts == 1);
  CHECK(excursions == 1);
  CHECK(cleared == 1);
}
