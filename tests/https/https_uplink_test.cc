// The HTTPS uplink against a real HTTPS head office in the test process
// (cpp-httplib SSLServer, private CA made with the openssl CLI): a full
// drain through injected 503s with Retry-After, stalls longer than the
// request timeout and dropped connections, ending with every event once,
// in order, without a gap, and every request carrying the right
// Idempotency-Key; a wrong CA refused with nothing marked delivered;
// keep-alive connection reuse; mutual TLS; an HTTP CONNECT proxy.
#include <doctest/doctest.h>

#include <set>

#include "common/ids.h"
#include "https_test_util.h"
#include "https_transport.h"
#include "storegw/storage/journal.h"
#include "storegw/sync/transport.h"
#include "storegw/sync/uplink.h"
#include "sync_test_util.h"
#include "tcp_proxy.h"

namespace storegw::sync {
namespace {

using namespace std::chrono_literals;
using https_test::Clock;
using https_test::ConnectProxy;
using https_test::HqServer;
using sync_test::AppendSales;
using sync_test::Pki;
using sync_test::TcpProxy;
using sync_test::TempDir;
using sync_test::WaitUntil;

HqServer::Options HqOptions(const Pki& pki) {
  HqServer::Options o;
  o.cert_file = pki.server_crt.string();
  o.key_file = pki.server_key.string();
  return o;
}

UplinkOptions HttpsOptions(const std::string& url, const Pki& pki) {
  UplinkOptions o;
  o.transport = "https";
  o.url = url;
  o.tls.ca_file = pki.ca_crt.string();
  o.batch_events = 100;
  o.max_inflight = 8;
  o.backoff_initial = 50ms;
  o.backoff_max = 2s;
  o.connect_timeout = 5s;
  o.request_timeout = 10s;
  o.ack_timeout = 20s;
  return o;
}

// Collects what the transport reports, for tests that drive it directly.
struct Recorder final : TransportListener {
  std::mutex mu;
  std::map<uint64_t, Status> done;
  std::map<uint64_t, SendFailure> how;
  void OnSendDone(uint64_t id, Status s) override {
    std::lock_guard lk(mu);
    done[id] = std::move(s);
  }
  void OnSendFailed(uint64_t id, Status s, SendFailure h) override {
    std::lock_guard lk(mu);
    done[id] = std::move(s);
    how[id] = h;
  }
  void OnLinkLost(Status) override {}
  void OnHqAck(uint64_t, uint64_t, const std::string&) override {}
};

TEST_CASE("https uplink: drain through 503s, stalls and dropped connections, exactly once") {
  TempDir dir;
  Pki pki(dir / "pki");
  auto j = storage::Journal::Open(sync_test::TestJournalOptions(dir / "data"));
  REQUIRE(j.ok());
  REQUIRE(AppendSales(**j, 1, 6000) == "");
  const uint64_t last = (*j)->Stats().last_seq;
  REQUIRE(last >= 6000);

  // Faults by POST number: 503 + Retry-After (not stored), a stall longer
  // than the request timeout (stored after it: the gateway never hears the
  // 200 and resends), and a 500 without a hint. Declared before the server:
  // its threads read them until it is destroyed.
  const std::set<uint64_t> unavailable = {3, 15, 31};
  const std::set<uint64_t> stalls = {9, 40};
  HqServer hq(HqOptions(pki));
  hq.set_hook([&](uint64_t n, const v1::EventBatch&) {
    HqServer::Action a;
    if (unavailable.count(n)) {
      a.status = 503;
      a.retry_after = "1";
      a.store = false;
    } else if (stalls.count(n)) {
      a.delay = 3s;  // request_timeout is 2 s
    } else if (n == 22) {
      a.status = 500;
      a.store = false;
    }
    return a;
  });
  // Dropped connections: the TCP proxy in front of HQ cuts every
  // connection (RST) twice, mid-transfer; and once the link itself goes
  // silent for longer than the request timeout.
  TcpProxy net(hq.port());
  net.ArmFault(30000, TcpProxy::Fault::kCut);
  net.ArmFault(55000, TcpProxy::Fault::kStall, 3s);
  net.ArmFault(80000, TcpProxy::Fault::kCut);

  UplinkOptions o = HttpsOptions(hq.url(net.port()), pki);
  o.request_timeout = 2s;
  auto up = Uplink::Create(o, j->get());
  REQUIRE(up.ok());
  REQUIRE((*up)->Start().ok());
  const bool drained = WaitUntil([&] { return (*j)->Stats().watermark == last; }, 90s, 20ms);
  const UplinkStatus st = (*up)->status();
  (*up)->Stop();
  INFO("last_error: " << st.last_error);
  REQUIRE(drained);

  CHECK(hq.Verify(**j) == "");
  CHECK(hq.errors().empty());
  // Every POST carried the Idempotency-Key of its body.
  CHECK(hq.keys_ok() == hq.posts());
  CHECK(hq.deflated() == hq.posts());
  const auto answers = hq.answers();
  CHECK(answers.at(503) == unavailable.size());
  CHECK(answers.at(500) == 1);
  CHECK(net.cuts() == 2);
  CHECK(net.stalls() == 1);
  // The faults cost reconnects (and resends, deduped by HQ), no gap.
  CHECK(st.reconnects >= 3);
  CHECK(st.watermark == last);
  CHECK(st.link == "up");
  // Retry-After: 1 was honoured (the back-off alone starts at 50 ms).
  const auto gaps = hq.retry_gaps();
  REQUIRE(gaps.size() == unavailable.size());
  for (const auto& [answered, next] : gaps) {
    REQUIRE(next != Clock::time_point{});
    CHECK(next - answered >= 900ms);
  }
}

TEST_CASE("https uplink: keep-alive connections are reused across batches") {
  TempDir dir;
  Pki pki(dir / "pki");
  auto j = storage::Journal::Open(sync_test::TestJournalOptions(dir / "data"));
  REQUIRE(j.ok());
  REQUIRE(AppendSales(**j, 1, 5000) == "");
  const uint64_t last = (*j)->Stats().last_seq;
  HqServer hq(HqOptions(pki));
  auto up = Uplink::Create(HttpsOptions(hq.url(), pki), j->get());
  REQUIRE(up.ok());
  REQUIRE((*up)->Start().ok());
  REQUIRE(WaitUntil([&] { return (*j)->Stats().watermark == last; }, 60s));
  (*up)->Stop();
  CHECK(hq.Verify(**j) == "");
  CHECK(hq.duplicates() == 0);
  REQUIRE(hq.posts() >= 50);
  // One request at a time on one keep-alive connection for 50+ POSTs.
  CHECK(hq.remote_ports().size() == 1);
  CHECK(hq.other_requests() == 1);  // the one HEAD probe of the connection
}

TEST_CASE("https uplink: a wrong CA is refused and nothing is marked delivered") {
  TempDir dir;
  Pki pki(dir / "pki");
  auto j = storage::Journal::Open(sync_test::TestJournalOptions(dir / "data"));
  REQUIRE(j.ok());
  REQUIRE(AppendSales(**j, 1, 300) == "");
  HqServer hq(HqOptions(pki));

  UplinkOptions o = HttpsOptions(hq.url(), pki);
  o.tls.ca_file = pki.wrong_ca_crt.string();
  // The transport on its own: the reason in words.
  auto t = MakeHttpsTransport(o, {"store-0001", "gw-01", (*j)->epoch()});
  REQUIRE(t.ok());
  Recorder rec;
  const Status s = (*t)->Connect(&rec, {});
  (*t)->Close(std::nullopt);
  CHECK(s.message().find(test::Id("TLS handshake with 127.0.0.1:", hq.port()) +
                         " failed: certificate verify failed") != std::string::npos);

  auto up = Uplink::Create(o, j->get());
  REQUIRE(up.ok());
  REQUIRE((*up)->Start().ok());
  REQUIRE(WaitUntil([&] { return (*up)->status().connect_failures >= 3; }, 20s));
  const UplinkStatus st = (*up)->status();
  (*up)->Stop();
  CHECK(st.link == "down");
  CHECK(st.last_error.find("certificate verify failed") != std::string::npos);
  CHECK(st.watermark == 0);
  CHECK((*j)->Stats().watermark == 0);
  CHECK(hq.posts() == 0);
}

TEST_CASE("https uplink: mutual TLS with a client certificate") {
  TempDir dir;
  Pki pki(dir / "pki");
  auto j = storage::Journal::Open(sync_test::TestJournalOptions(dir / "data"));
  REQUIRE(j.ok());
  REQUIRE(AppendSales(**j, 1, 500) == "");
  const uint64_t last = (*j)->Stats().last_seq;
  HqServer::Options ho = HqOptions(pki);
  ho.client_ca_file = pki.ca_crt.string();
  HqServer hq(ho);

  UplinkOptions o = HttpsOptions(hq.url(), pki);
  SUBCASE("without a client certificate the handshake fails, with a clear error") {
    auto t = MakeHttpsTransport(o, {"store-0001", "gw-01", (*j)->epoch()});
    REQUIRE(t.ok());
    Recorder rec;
    const Status s = (*t)->Connect(&rec, {});
    (*t)->Close(std::nullopt);
    REQUIRE_FALSE(s.ok());
    MESSAGE("without a client certificate: " << s.message());
    CHECK(s.message().find(test::Id("TLS handshake with 127.0.0.1:", hq.port()) +
                           " failed") != std::string::npos);
    CHECK(hq.posts() == 0);
  }
  SUBCASE("with it the journal drains") {
    o.tls.cert_file = pki.client_crt.string();
    o.tls.key_file = pki.client_key.string();
    auto up = Uplink::Create(o, j->get());
    REQUIRE(up.ok());
    REQUIRE((*up)->Start().ok());
    REQUIRE(WaitUntil([&] { return (*j)->Stats().watermark == last; }, 30s));
    (*up)->Stop();
    CHECK(hq.Verify(**j) == "");
  }
}

TEST_CASE("https uplink: through an HTTP CONNECT proxy (uplink.proxy)") {
  TempDir dir;
  Pki pki(dir / "pki");
  auto j = storage::Journal::Open(sync_test::TestJournalOptions(dir / "data"));
  REQUIRE(j.ok());
  REQUIRE(AppendSales(**j, 1, 1000) == "");
  const uint64_t last = (*j)->Stats().last_seq;
  HqServer hq(HqOptions(pki));
  ConnectProxy proxy;

  UplinkOptions o = HttpsOptions(hq.url(), pki);
  o.proxy = test::Id("http://shop:pr0xy-s3cret@127.0.0.1:", proxy.port());
  auto up = Uplink::Create(o, j->get());
  REQUIRE(up.ok());
  REQUIRE((*up)->Start().ok());
  REQUIRE(WaitUntil([&] { return (*j)->Stats().watermark == last; }, 30s));
  (*up)->Stop();
  CHECK(hq.Verify(**j) == "");
  // The proxy was asked for HQ, with the credentials, and every POST HQ
  // got came out of one of the proxy's tunnels.
  const auto targets = proxy.targets();
  REQUIRE_FALSE(targets.empty());
  for (const auto& t : targets) CHECK(t == test::Id("127.0.0.1:", hq.port()));
  for (const auto& a : proxy.proxy_auth()) CHECK(a == "Basic c2hvcDpwcjB4eS1zM2NyZXQ=");
  const auto tunnels = proxy.upstream_ports();
  const auto hq_ports = hq.remote_ports();
  REQUIRE_FALSE(hq_ports.empty());
  for (int port : hq_ports) CHECK(tunnels.count(port) == 1);

  SUBCASE("a proxy that is not there: a clear error without the password") {
    const uint16_t nothing = sync_test::FreePort();
    o.proxy = test::Id("http://shop:pr0xy-s3cret@127.0.0.1:", nothing);
    auto t = MakeHttpsTransport(o, {"store-0001", "gw-01", (*j)->epoch()});
    REQUIRE(t.ok());
    Recorder rec;
    const Status s = (*t)->Connect(&rec, {});
    (*t)->Close(std::nullopt);
    REQUIRE_FALSE(s.ok());
    CHECK(s.message().find("pr0xy-s3cret") == std::string::npos);
    CHECK(s.message().find(test::Id("via proxy http://127.0.0.1:", nothing)) !=
          std::string::npos);
    CHECK((*t)->protocol().find("pr0xy-s3cret") == std::string::npos);
  }
}

TEST_CASE("https transport: answers map to delivered, retry with Retry-After, refused") {
  TempDir dir;
  Pki pki(dir / "pki");
  HqServer hq(HqOptions(pki));
  hq.set_hook([](uint64_t n, const v1::EventBatch&) {
    HqServer::Action a;
    if (n == 2) {
      a.status = 429;
      a.retry_after = "7";
      a.store = false;
    } else if (n == 3) {
      a.status = 422;
      a.body = "unknown sku 'x'";
      a.store = false;
    }
    return a;
  });
  UplinkOptions o = HttpsOptions(hq.url(), pki);
  o.compression = "none";
  auto t = MakeHttpsTransport(o, {"store-0001", "gw-01", 99});
  REQUIRE(t.ok());
  Recorder rec;
  REQUIRE((*t)->Connect(&rec, {}).ok());
  for (uint64_t i = 1; i <= 3; ++i) {
    v1::EventBatch b;
    b.set_store_id("store-0001");
    b.set_gateway_id("gw-01");
    b.set_epoch(99);
    b.set_first_seq(i);
    b.set_last_seq(i);
    auto* e = b.add_events();
    e->set_seq(i);
    e->mutable_event()->set_event_id(test::Id("e", i));
    std::string payload;
    b.SerializeToString(&payload);
    // Send() (no range given) reads the range from the payload itself.
    REQUIRE((*t)->Send(i, payload).ok());
    REQUIRE(WaitUntil(
        [&] {
          std::lock_guard lk(rec.mu);
          return rec.done.count(i) == 1;
        },
        10s));
  }
  (*t)->Close(std::nullopt);
  std::lock_guard lk(rec.mu);
  CHECK(rec.done[1].ok());
  CHECK_FALSE(rec.done[2].ok());
  CHECK(rec.done[2].message().find("answered 429 Too Many Requests") != std::string::npos);
  CHECK(rec.how[2].retry_after == 7s);
  CHECK_FALSE(rec.how[2].permanent);
  CHECK(rec.done[3].message().find("refused it: 422 Unprocessable Content: unknown sku 'x'") !=
        std::string::npos);
  CHECK(rec.how[3].permanent);
  CHECK(hq.keys_ok() == 3);
  CHECK(hq.deflated() == 0);
  CHECK(hq.errors().empty());
}

}  // namespace
}  // namespace storegw::sync
