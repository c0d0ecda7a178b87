// RunSimulation against an in-process DeviceApi: what the simulator reports
// as accepted is exactly what the journal holds, once each, with the
// reported seq.
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <algorithm>
#include <set>
#include <sstream>
#include <thread>

#include "devices_test_util.h"
#include "storegw/devices/simulator.h"

namespace storegw::devices {
namespace {

using namespace testing;
using std::chrono::milliseconds;

// Every accepted event is journaled once with the reported seq, and the
// journal holds no other device event.
void CheckReportMatchesJournal(const SimReport& report, const fs::path& data_dir) {
  const auto journaled = JournaledDeviceEvents(data_dir);
  std::set<std::string> ids;
  for (const auto& kv : report.accepted_events) {
    const auto& id = kv.first;
    const auto& seq = kv.second;
    CAPTURE(id);
    CHECK(ids.insert(id).second);  // reported once
    REQUIRE(journaled.count(id) == 1);
    CHECK(journaled.at(id) == std::vector<uint64_t>{seq});
  }
  CHECK(journaled.size() == ids.size());
  CHECK(report.accepted == report.accepted_events.size());
}

TEST_CASE("simulator: accepted events are in the journal exactly once, nothing else is") {
  TestGateway gw;
  const fs::path log = gw.dir() / "accepted.log";
  SimOptions o;
  o.url = gw.url();
  o.lanes = 4;
  o.rate = 150;
  o.duration = milliseconds(2000);
  o.seed = 7;
  o.accepted_log = log.string();
  auto r = RunSimulation(o);
  REQUIRE_MESSAGE(r.ok(), r.status().ToString());
  const SimReport& rep = *r;
  MESSAGE("sent " << rep.sent << " accepted " << rep.accepted << " requests " << rep.requests
                  << " p50 " << rep.latency_p50_ms << " ms p99 " << rep.latency_p99_ms << " ms");
  CHECK(rep.sent > 0);
  CHECK(rep.accepted == rep.sent);
  CHECK(rep.rejected == 0);
  CHECK(rep.failed == 0);
  CHECK(rep.unsent == 0);
  CHECK(rep.protocol_errors == 0);
  CheckReportMatchesJournal(rep, gw.data_dir());

  // The accepted log says the same.
  std::ifstream in(log);
  std::set<std::pair<std::string, uint64_t>> logged;
  std::string id;
  uint64_t seq = 0;
  while (in >> id >> seq) logged.emplace(id, seq);
  const std::set<std::pair<std::string, uint64_t>> reported(rep.accepted_events.begin(),
                                                            rep.accepted_events.end());
  CHECK(logged == reported);

  // Realistic traffic: the four tills, several event kinds, many skus.
  std::set<std::string> devices;
  std::set<std::string> skus;
  std::set<int> kinds;
  size_t lines = 0, sales = 0;
  Status st = storage::ExportJournal(gw.data_dir(), [&](const v1::JournaledEvent& je) {
    const v1::Event& e = je.event();
    if (e.body_case() == v1::Event::kAlert) return Status::Ok();
    devices.insert(e.device_id());
    kinds.insert(e.body_case());
    if (e.has_sale()) {
      ++sales;
      lines += static_cast<size_t>(e.sale().lines_size());
      for (const auto& l : e.sale().lines()) {
        skus.insert(l.sku());
        CHECK(l.currency() == "EUR");
        CHECK(l.sku().size() == 10);  // "SKU-000123"
      }
      CHECK(e.sale().lines_size() >= 1);
      CHECK(e.sale().lines_size() <= 30);
    }
    return Status::Ok();
  });
  REQUIRE(st.ok());
  CHECK(devices == std::set<std::string>{"till-01", "till-02", "till-03", "till-04"});
  CHECK(sales > 0);
  CHECK(kinds.count(v1::Event::kSale) == 1);
  // Many skus, as many as the machine's speed gave lines for (under TSan with
  // other tests running, 2 s may carry only a few dozen lines).
  CHECK(skus.size() > std::min<size_t>(10, lines / 4));
  MESSAGE(sales << " sales, " << lines << " lines, " << skus.size() << " skus, " << kinds.size()
                << " kinds of event");
}

TEST_CASE("simulator: protobuf batches") {
  TestGateway gw;
  SimOptions o;
  o.url = gw.url();
  o.lanes = 2;
  o.rate = 200;
  o.batch = 5;
  o.protobuf = true;
  o.duration = milliseconds(1000);
  auto r = RunSimulation(o);
  REQUIRE_MESSAGE(r.ok(), r.status().ToString());
  CHECK(r->accepted == r->sent);
  CHECK(r->requests * 5 >= r->sent);
  CHECK(r->failed == 0);
  CheckReportMatchesJournal(*r, gw.data_dir());
}

// A loopback port with nothing listening on it (the kernel's pick).
uint16_t FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  socklen_t len = sizeof a;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  ::close(fd);
  return ntohs(a.sin_port);
}

TEST_CASE("simulator: retries the same events while the gateway is down, then they land once") {
  const uint16_t port = FreePort();
  ApiOptions api;
  api.listen = "127.0.0.1:" + std::to_string(port);
  SimOptions o;
  o.url = "http://127.0.0.1:" + std::to_string(port);
  o.lanes = 2;
  o.rate = 40;
  o.duration = milliseconds(2500);
  o.grace = milliseconds(10000);

  std::atomic<bool> started{false};
  Result<SimReport> result = Status::Unavailable("not run");
  std::thread sim([&] {
    started = true;
    result = RunSimulation(o);
  });
  // The gateway comes up while the tills already have events queued and
  // are retrying.
  while (!started.load()) std::this_thread::sleep_for(milliseconds(1));
  std::this_thread::sleep_for(milliseconds(600));
  TestGateway gw(api);
  sim.join();
  REQUIRE_MESSAGE(result.ok(), result.status().ToString());
  const SimReport& rep = *result;
  MESSAGE("sent " << rep.sent << " retries " << rep.retries << " connection errors "
                  << rep.connection_errors);
  CHECK(rep.connection_errors > 0);
  CHECK(rep.retries > 0);
  CHECK(rep.accepted == rep.sent);
  CHECK(rep.failed == 0);
  CheckReportMatchesJournal(rep, gw.data_dir());
}

TEST_CASE("simulator: 4xx answers are rejections, not retried") {
  TempDir dir;
  const auto gw_tokens = dir.path() / "gw-tokens";
  const auto sim_tokens = dir.path() / "sim-tokens";
  WriteFile(gw_tokens, "till-01 right-token-1\n");
  WriteFile(sim_tokens, "till-01 wrong-token-1\n");
  ApiOptions api;
  api.device_tokens_file = gw_tokens;
  TestGateway gw(api);
  SimOptions o;
  o.url = gw.url();
  o.lanes = 1;
  o.rate = 50;
  o.duration = milliseconds(500);
  o.token_file = sim_tokens;
  auto r = RunSimulation(o);
  REQUIRE_MESSAGE(r.ok(), r.status().ToString());
  CHECK(r->sent > 0);
  CHECK(r->rejected == r->sent);
  CHECK(r->accepted == 0);
  CHECK(r->retries == 0);
  CHECK(r->requests == r->sent);
  CHECK(r->last_error.find("401") != std::string::npos);
  CHECK(r->last_error.find("wrong-token") == std::string::npos);
  CHECK(gw.journal().Stats().last_seq == 0);
}

TEST_CASE("simulator: with the right tokens, lanes use the token file's devices") {
  TempDir dir;
  const auto tokens = dir.path() / "tokens";
  WriteFile(tokens, "# lanes\npos-A tA-1234567\npos-B tB-1234567\n");
  ApiOptions api;
  api.device_tokens_file = tokens;
  TestGateway gw(api);
  SimOptions o;
  o.url = gw.url();
  o.lanes = 2;
  o.rate = 60;
  o.duration = milliseconds(700);
  o.token_file = tokens;
  auto r = RunSimulation(o);
  REQUIRE_MESSAGE(r.ok(), r.status().ToString());
  CHECK(r->rejected == 0);
  CHECK(r->accepted == r->sent);
  CheckReportMatchesJournal(*r, gw.data_dir());
  std::set<std::string> devices;
  for (const auto& kv : r->accepted_events) {
    devices.insert(kv.first.find("pos-A") != std::string::npos ? "pos-A" : "pos-B");
  }
  CHECK(devices.size() == 2);
}

TEST_CASE("simulator: 503 journal full is retried until the run ends, then reported failed") {
  TestGateway gw({}, [](storage::JournalOptions& jo) { jo.max_bytes = 1; });
  SimOptions o;
  o.url = gw.url();
  o.lanes = 1;
  o.rate = 20;
  o.duration = milliseconds(400);
  o.grace = milliseconds(300);
  auto r = RunSimulation(o);
  REQUIRE_MESSAGE(r.ok(), r.status().ToString());
  CHECK(r->unavailable > 0);
  CHECK(r->accepted == 0);
  CHECK(r->failed + r->unsent > 0);
  CHECK(r->failed == r->sent);
  CHECK(gw.journal().Stats().last_seq == 0);
}

TEST_CASE("simulator: bad options are refused with the option named") {
  SimOptions o;
  o.lanes = 0;
  CHECK(RunSimulation(o).status().field() == "lanes");
  o = {};
  o.rate = 0;
  CHECK(RunSimulation(o).status().field() == "rate");
  o = {};
  o.url = "127.0.0.1:8080";
  CHECK(RunSimulation(o).status().field() == "url");
  o = {};
  o.lanes = 3;
  TempDir dir;
  WriteFile(dir.path() / "t", "till-01 x-1\n");
  o.token_file = dir.path() / "t";
  auto r = RunSimulation(o);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message().find("3 lanes") != std::string::npos);
}

}  // namespace
}  // namespace storegw::devices
