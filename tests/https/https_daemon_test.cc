// The HTTPS uplink inside the real `storegw run` daemon: HQ answers 400 to
// one batch (a "poisoned" batch); the uplink stops with the reason on
// /v1/status, does not resend it in a loop, skips nothing (the watermark
// stays right below it, in the daemon and in the journal after SIGTERM),
// and after a restart with HQ fixed the journal drains completely. Also:
// the https_proxy environment variable is honoured when uplink.proxy is
// empty.
#include <doctest/doctest.h>

#include <fstream>
#include <string>
#include <thread>

#include "../gateway/test_util.h"
#include "https_test_util.h"
#include "sync_test_util.h"

namespace {

using namespace std::chrono_literals;
namespace v1 = storegw::v1;
namespace gt = storegw::test;
namespace st = storegw::sync_test;
using storegw::https_test::ConnectProxy;
using storegw::https_test::HqServer;

std::optional<v1::GatewayStatus> DaemonStatus(uint16_t port) {
  gt::HttpResult r = gt::HttpGet(port, "/v1/status");
  if (r.status != 200) return std::nullopt;
  return gt::FromJson<v1::GatewayStatus>(r.body);
}

// A journal with `n` sales (plus the oversell alerts they raise) under
// `data`, closed again; returns its last seq.
uint64_t PrefillJournal(const std::filesystem::path& data, uint64_t n) {
  auto j = storegw::storage::Journal::Open(st::TestJournalOptions(data));
  REQUIRE(j.ok());
  REQUIRE(st::AppendSales(**j, 1, n, 50) == "");
  const uint64_t last = (*j)->Stats().last_seq;
  (*j)->Close();
  return last;
}

uint64_t JournalWatermark(const std::filesystem::path& data) {
  auto j = storegw::storage::Journal::Open(st::TestJournalOptions(data));
  REQUIRE(j.ok());
  const uint64_t wm = (*j)->Stats().watermark;
  (*j)->Close();
  return wm;
}

std::string WriteConfig(const std::filesystem::path& path, const std::string& url,
                        const st::Pki& pki, const std::string& extra = "") {
  std::ofstream(path) << "[uplink]\ntransport = \"https\"\nurl = \"" << url
                      << "\"\nbatch_events = 10\nbackoff_initial = \"100ms\"\n"
                         "backoff_max = \"500ms\"\nconnect_timeout = \"2s\"\n"
                         "request_timeout = \"5s\"\n"
                      << extra << "[uplink.tls]\nca_file = \"" << pki.ca_crt.string() << "\"\n";
  return path.string();
}

}  // namespace

TEST_CASE("https daemon: a 400 from HQ stops the uplink with the reason on /v1/status") {
  gt::TempDir dir;
  st::Pki pki(dir / "pki");
  const auto data = dir / "data";
  const uint64_t last = PrefillJournal(data, 200);
  REQUIRE(last >= 200);

  HqServer::Options ho;
  ho.cert_file = pki.server_crt.string();
  ho.key_file = pki.server_key.string();
  HqServer hq(ho);
  std::atomic<bool> poisoned{true};
  std::atomic<int> poisoned_posts{0};
  hq.set_hook([&](uint64_t, const v1::EventBatch& b) {
    HqServer::Action a;
    if (poisoned && b.first_seq() <= 51 && 51 <= b.last_seq()) {
      ++poisoned_posts;
      a.status = 400;
      a.store = false;
      a.body = "{\"error\":\"event seq 51: unknown sku\"}";
    }
    return a;
  });
  const std::string cfg = WriteConfig(dir / "storegw.toml", hq.url(), pki);

  {
    std::string why;
    auto d = gt::StartDaemon(data, dir / "logs", "poisoned", &why, 0, {"--config", cfg});
    REQUIRE_MESSAGE(d, why);
    std::optional<v1::GatewayStatus> s;
    REQUIRE(gt::WaitFor(
        [&] {
          s = DaemonStatus(d->port);
          return s && s->last_error().find("uplink stopped") != std::string::npos;
        },
        20s));
    MESSAGE("/v1/status last_error: " << s->last_error());
    CHECK(s->link() == "down");
    CHECK(s->last_error().find("batch seq 51..60") != std::string::npos);
    CHECK(s->last_error().find("400 Bad Request") != std::string::npos);
    CHECK(s->last_error().find("unknown sku") != std::string::npos);
    CHECK(s->watermark() == 50);
    // No hot loop: longer than several back-offs later, HQ has still seen
    // the poisoned batch once, and nothing else arrives.
    const uint64_t posts = hq.posts();
    std::this_thread::sleep_for(1500ms);
    CHECK(poisoned_posts.load() == 1);
    CHECK(hq.posts() == posts);
    s = DaemonStatus(d->port);
    REQUIRE(s);
    CHECK(s->watermark() == 50);
    CHECK(s->link() == "down");
    // The process reports degraded health, not a crash.
    CHECK(d->proc.Running());
    d->proc.Signal(SIGTERM);
    auto exit = d->proc.WaitExit(15s);
    REQUIRE(exit);
    CHECK(exit->ok());
  }
  // Nothing skipped: the journal's watermark is right below the batch.
  CHECK(JournalWatermark(data) == 50);
  CHECK(hq.applied() == 50);

  // HQ fixed, storegw restarted: it resumes at seq 51 and drains.
  poisoned = false;
  {
    std::string why;
    auto d = gt::StartDaemon(data, dir / "logs", "fixed", &why, 0, {"--config", cfg});
    REQUIRE_MESSAGE(d, why);
    std::optional<v1::GatewayStatus> s;
    REQUIRE(gt::WaitFor(
        [&] {
          s = DaemonStatus(d->port);
          return s && s->watermark() == last;
        },
        30s));
    CHECK(s->link() == "up");
    CHECK(s->last_error().find("uplink stopped") == std::string::npos);
    d->proc.Signal(SIGTERM);
    REQUIRE(d->proc.WaitExit(15s));
  }
  auto j = storegw::storage::Journal::Open(st::TestJournalOptions(data));
  REQUIRE(j.ok());
  CHECK(hq.Verify(**j) == "");
  CHECK(hq.keys_ok() == hq.posts());
}

TEST_CASE("https daemon: the https_proxy environment variable is used when uplink.proxy is empty") {
  gt::TempDir dir;
  st::Pki pki(dir / "pki");
  const auto data = dir / "data";
  const uint64_t last = PrefillJournal(data, 300);
  HqServer::Options ho;
  ho.cert_file = pki.server_crt.string();
  ho.key_file = pki.server_key.string();
  HqServer hq(ho);
  ConnectProxy proxy;
  const std::string cfg = WriteConfig(dir / "storegw.toml", hq.url(), pki);
  std::string why;
  auto d = gt::StartDaemon(
      data, dir / "logs", "envproxy", &why, 0, {"--config", cfg},
      {"https_proxy=http://127.0.0.1:" + std::to_string(proxy.port()), "no_proxy="});
  REQUIRE_MESSAGE(d, why);
  REQUIRE(gt::WaitFor(
      [&] {
        auto s = DaemonStatus(d->port);
        return s && s->watermark() == last;
      },
      30s));
  d->proc.Signal(SIGTERM);
  REQUIRE(d->proc.WaitExit(15s));
  const auto targets = proxy.targets();
  REQUIRE_FALSE(targets.empty());
  CHECK(targets.front() == "127.0.0.1:" + std::to_string(hq.port()));
  const auto tunnels = proxy.upstream_ports();
  const auto hq_ports = hq.remote_ports();
  REQUIRE_FALSE(hq_ports.empty());
  for (int port : hq_ports) CHECK(tunnels.count(port) == 1);
  CHECK(hq.applied() == last);
}
