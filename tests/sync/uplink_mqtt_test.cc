// Integration tests of the MQTT uplink against a real mosquitto (started
// per test on a free loopback port, killed by PID even on failure), with
// an HQ consumer that dedupes on (gateway_id, epoch, seq) and a TCP proxy
// that cuts and stalls the link. Each scenario ends with the three
// invariants: HQ applied every journaled event exactly once, in seq order,
// without a gap, and the journal's watermark never claimed more than was
// delivered.
#include <doctest/doctest.h>

#include <atomic>
#include <thread>

#include "failing_vfs.h"
#include "storegw/storage/journal.h"
#include "storegw/sync/downstream.h"
#include "storegw/sync/uplink.h"
#include "sync_test_util.h"
#include "shaping_proxy.h"
#include "tcp_proxy.h"

namespace storegw::sync {
namespace {

using namespace std::chrono_literals;
using sync_test::AppendSales;
using sync_test::BrokerOptions;
using sync_test::HqConsumer;
using sync_test::HqPublisher;
using sync_test::Mosquitto;
using sync_test::TcpProxy;
using sync_test::TempDir;
using sync_test::WaitUntil;

std::unique_ptr<storage::Journal> OpenJournal(const TempDir& dir) {
  auto j = storage::Journal::Open(sync_test::TestJournalOptions(dir / "data"));
  REQUIRE(j.ok());
  return std::move(*j);
}

// Fast-reacting options for tests on loopback.
UplinkOptions TestOptions(const std::string& url) {
  UplinkOptions o;
  o.url = url;
  o.max_inflight = 4;
  o.batch_events = 200;
  o.max_message_bytes = 16 << 10;
  o.backoff_initial = 50ms;
  o.backoff_max = 400ms;
  o.ack_timeout = 1500ms;
  o.hq_ack_timeout = 1s;
  // Paho C 1.3's receive thread polls with a 1 s timeout, so a connect
  // on loopback can take up to ~2 s to complete: do not go tighter.
  o.connect_timeout = 5s;
  o.keep_alive = 2s;
  o.status_interval = 500ms;
  o.client_id = "storegw-test-" + std::to_string(getpid());
  return o;
}

std::unique_ptr<Uplink> StartUplink(const UplinkOptions& o, storage::Journal* j) {
  auto u = Uplink::Create(o, j);
  REQUIRE_MESSAGE(u.ok(), u.status().ToString());
  REQUIRE((*u)->Start().ok());
  return std::move(*u);
}

HqConsumer::Options ConsumerOptions(const Mosquitto& broker, const UplinkOptions& o) {
  HqConsumer::Options c;
  c.url = broker.url();
  c.max_batch_events = static_cast<size_t>(o.batch_events);
  c.max_batch_bytes = o.max_message_bytes;
  return c;
}

// ack = "hq": the journal's watermark never runs ahead of what HQ applied
// (sampled while the scenario runs). With ack = "broker" the watermark
// follows PUBACKs and may briefly lead what the consumer has read, so
// those scenarios check the end state instead: everything arrived.
class WatermarkGuard {
 public:
  WatermarkGuard(storage::Journal* j, const HqConsumer* hq) : j_(j), hq_(hq) {
    t_ = std::thread([this] {
      while (!stop_) {
        const uint64_t applied = hq_->applied();  // read HQ first: it only grows
        const uint64_t wm = j_->Stats().watermark;
        if (wm > applied && violation_.empty()) {
          // HQ may have applied more between the two reads; re-check.
          const uint64_t applied2 = hq_->applied();
          if (wm > applied2) {
            violation_ = "watermark " + std::to_string(wm) + " ahead of HQ's applied " +
                         std::to_string(applied2);
          }
        }
        std::this_thread::sleep_for(2ms);
      }
    });
  }
  ~WatermarkGuard() { Stop(); }
  void Stop() {
    stop_ = true;
    if (t_.joinable()) t_.join();
  }
  const std::string& violation() const { return violation_; }

 private:
  storage::Journal* j_;
  const HqConsumer* hq_;
  std::atomic<bool> stop_{false};
  std::string violation_;
  std::thread t_;
};

}  // namespace

TEST_CASE(
    "sync integration: a 20000-event backlog built while HQ is unreachable drains in "
    "order and live events follow right behind") {
  TempDir dir;
  auto journal = OpenJournal(dir);
  // The uplink points at a port nobody listens on yet: connection refused.
  const uint16_t link_port = sync_test::FreePort();
  UplinkOptions o = TestOptions("tcp://127.0.0.1:" + std::to_string(link_port));
  auto uplink = StartUplink(o, journal.get());

  REQUIRE(AppendSales(*journal, 1, 20000) == "");
  const uint64_t total = journal->Stats().last_seq;  // sales plus the gateway's alerts
  REQUIRE(total >= 20000);
  REQUIRE(WaitUntil([&] { return uplink->status().connect_failures >= 2; }, 10s));
  {
    const auto st = uplink->status();
    CHECK(st.link != "up");
    INFO(st.last_error);
    CHECK(st.last_error.find("could not connect to 127.0.0.1:" + std::to_string(link_port)) !=
          std::string::npos);
    CHECK(st.last_error.find("Connection refused") != std::string::npos);
    CHECK(st.events_sent == 0);
    CHECK(journal->Stats().watermark == 0);
    CHECK(journal->Stats().backlog_events == total);
  }

  // HQ comes up: broker, consumer, then the link.
  Mosquitto broker(dir / "broker");
  HqConsumer hq(ConsumerOptions(broker, o));
  TcpProxy link(broker.port(), link_port);

  REQUIRE(WaitUntil([&] { return hq.applied() == total; }, 60s));
  REQUIRE(WaitUntil([&] { return journal->Stats().watermark == total; }, 10s));

  // Live traffic while connected goes through the same ordered path.
  for (uint64_t i = 0; i < 20; ++i) {
    REQUIRE(AppendSales(*journal, 20001 + 50 * i, 50, 10) == "");
  }
  const uint64_t total2 = journal->Stats().last_seq;
  REQUIRE(total2 >= total + 1000);
  REQUIRE(WaitUntil([&] { return hq.applied() == total2; }, 30s));
  REQUIRE(WaitUntil([&] { return journal->Stats().watermark == total2; }, 10s));
  CHECK(hq.Verify(*journal) == "");
  CHECK(hq.gaps() == 0);
  const auto st = uplink->status();
  CHECK(st.link == "up");
  CHECK(st.protocol_version == 5);
  CHECK(st.connected_since_us > 0);
  CHECK(st.events_acked == total2);
  CHECK(st.batches_sent >= total2 / 200);
  CHECK(st.send_rate > 0);
  CHECK(hq.compressed_batches() == hq.batches());  // MQTT 5: deflate by default
  MESSAGE("batches " << hq.batches() << ", duplicates " << hq.duplicates() << ", wire bytes up "
                     << link.up_bytes() << " down " << link.down_bytes());
  uplink->Stop();
}

TEST_CASE(
    "sync integration: the proxy cuts and stalls the link several times mid-drain and HQ "
    "still gets every event exactly once in order") {
  TempDir dir;
  auto journal = OpenJournal(dir);
  REQUIRE(AppendSales(*journal, 1, 20000) == "");
  const uint64_t total = journal->Stats().last_seq;
  Mosquitto broker(dir / "broker");
  UplinkOptions o = TestOptions("");
  o.batch_events = 50;
  o.max_inflight = 8;
  HqConsumer hq(ConsumerOptions(broker, o));
  TcpProxy link(broker.port());

  // Six faults, each armed 40 KB of client->broker bytes after the one
  // before fired. The backlog is ~500 KB on the wire compressed (~2 MB
  // plain) and a reconnect resends at most one window (~10 KB), so each
  // fault lands mid-drain; the test checks that it did.
  const std::vector<std::pair<TcpProxy::Fault, std::chrono::milliseconds>> plan = {
      {TcpProxy::Fault::kCut, 0ms},      {TcpProxy::Fault::kStall, 2500ms},
      {TcpProxy::Fault::kCut, 0ms},      {TcpProxy::Fault::kCut, 0ms},
      {TcpProxy::Fault::kStall, 2500ms}, {TcpProxy::Fault::kCut, 0ms}};
  constexpr uint64_t kStep = 40'000;
  std::mutex mu;
  std::vector<std::pair<int, uint64_t>> fired;  // (fault, HQ applied at that moment)
  link.set_on_fault([&](TcpProxy::Fault f) {
    std::lock_guard lk(mu);
    fired.push_back({static_cast<int>(f), hq.applied()});
    if (fired.size() < plan.size()) {
      const auto& next = plan[fired.size()];
      link.ArmFault(link.up_bytes() + kStep, next.first, next.second);
    }
  });
  link.ArmFault(kStep, plan[0].first, plan[0].second);

  o.url = "tcp://127.0.0.1:" + std::to_string(link.port());
  auto uplink = StartUplink(o, journal.get());
  REQUIRE(WaitUntil([&] { return hq.applied() == total; }, 90s));
  REQUIRE(WaitUntil([&] { return journal->Stats().watermark == total; }, 10s));
  CHECK(hq.Verify(*journal) == "");
  CHECK(hq.gaps() == 0);  // the consumer is on the broker directly: a gap would be a loss
  {
    std::lock_guard lk(mu);
    REQUIRE(fired.size() == 6);
    for (const auto& [fault, applied] : fired) {
      INFO("fault " << fault);
      CHECK(applied < total);  // mid-drain
    }
  }
  CHECK(link.cuts() == 4);
  CHECK(link.stalls() == 2);
  const auto st = uplink->status();
  CHECK(st.reconnects >= 6);  // every cut and every stall broke the connection
  CHECK(st.link == "up");
  MESSAGE("reconnects " << st.reconnects << ", duplicates at HQ " << hq.duplicates()
                        << ", last error: " << st.last_error);
  uplink->Stop();
}

TEST_CASE(
    "sync integration: over a thin link, sales made while a backlog drains reach HQ ahead of "
    "it on the live lane, and HQ still applies every event once in seq order") {
  std::string ack = "broker";
  SUBCASE("ack = broker") {}
  SUBCASE("ack = hq") { ack = "hq"; }
  TempDir dir;
  auto journal = OpenJournal(dir);
  REQUIRE(AppendSales(*journal, 1, 8000) == "");
  const uint64_t backlog = journal->Stats().last_seq;
  Mosquitto broker(dir / "broker");
  UplinkOptions o = TestOptions("");
  o.ack = ack;
  o.hq_ack_timeout = 10s;
  HqConsumer::Options co = ConsumerOptions(broker, o);
  co.send_acks = ack == "hq";
  HqConsumer hq(co);
  sync_test::LinkShape shape;  // 1 Mbit/s
  shape.one_way = 50ms;
  sync_test::ShapingProxy link(broker.port(), shape);
  o.url = "tcp://127.0.0.1:" + std::to_string(link.port());
  auto uplink = StartUplink(o, journal.get());

  REQUIRE(WaitUntil([&] { return hq.applied() >= 400; }, 30s));
  REQUIRE(hq.applied() < backlog / 2);  // the backlog takes seconds more at 1 Mbit/s
  const uint64_t live_first = journal->Stats().last_seq + 1;
  REQUIRE(AppendSales(*journal, 900001, 10, 1) == "");
  const uint64_t total = journal->Stats().last_seq;
  // Every live event arrives while HQ's applied seq is still below it.
  REQUIRE(WaitUntil(
      [&] {
        uint64_t seen = 0;
        for (const auto& [seq, applied] : hq.ahead_arrivals()) seen += seq >= live_first ? 1 : 0;
        return seen >= total - live_first + 1;
      },
      20s));
  const uint64_t applied_then = hq.applied();
  CHECK(applied_then < live_first);
  for (const auto& [seq, applied] : hq.ahead_arrivals()) {
    INFO("seq " << seq);
    CHECK(seq >= live_first);  // only the live lane runs ahead
    CHECK(applied < seq);
  }
  // The journal keeps them until the backlog before them is delivered.
  CHECK(journal->Stats().watermark < live_first);

  REQUIRE(WaitUntil([&] { return hq.applied() == total; }, 90s));
  REQUIRE(WaitUntil([&] { return journal->Stats().watermark == total; }, 10s));
  CHECK(hq.Verify(*journal) == "");
  CHECK(hq.errors().empty());
  CHECK(hq.duplicates() == 0);  // nothing had to be resent
  MESSAGE("ack " << ack << ": live events stored at HQ with applied " << applied_then << " of "
                 << total << "; duplicates " << hq.duplicates() << ", batches past a gap "
                 << hq.gaps());
  // Live traffic after the drain goes in order again.
  REQUIRE(AppendSales(*journal, 900101, 20, 5) == "");
  const uint64_t total2 = journal->Stats().last_seq;
  REQUIRE(WaitUntil([&] { return hq.applied() == total2; }, 20s));
  CHECK(hq.Verify(*journal) == "");
  uplink->Stop();
}

TEST_CASE("sync integration: ack=hq with the broker killed and restarted mid-drain") {
  TempDir dir;
  auto journal = OpenJournal(dir);
  REQUIRE(AppendSales(*journal, 1, 20000) == "");
  const uint64_t total = journal->Stats().last_seq;
  Mosquitto broker(dir / "broker");  // no persistence: the restart loses what it held
  UplinkOptions o = TestOptions(broker.url());
  o.ack = "hq";
  o.batch_events = 100;
  o.max_inflight = 8;
  HqConsumer::Options co = ConsumerOptions(broker, o);
  co.send_acks = true;
  HqConsumer hq(co);
  hq.PauseAcks(true);
  WatermarkGuard guard(journal.get(), &hq);
  auto uplink = StartUplink(o, journal.get());

  // Broker PUBACKs alone move nothing: HQ has not said it stored anything.
  REQUIRE(WaitUntil([&] { return hq.applied() >= 500; }, 20s));
  REQUIRE(WaitUntil([&] { return uplink->status().hq_resends >= 1; }, 10s));
  // The resend from the watermark arrives again (deduped at HQ).
  CHECK(WaitUntil([&] { return hq.duplicates() > 0; }, 10s));
  CHECK(journal->Stats().watermark == 0);
  CHECK(uplink->status().watermark == 0);

  // Acks flow; at 8,000 applied, acks stop again (so the drain cannot
  // finish) and the broker is killed -9 and restarted on the same port.
  std::atomic<bool> kill_now{false};
  hq.set_on_applied([&](uint64_t applied) {
    if (applied >= 8000 && !kill_now.exchange(true)) hq.PauseAcks(true);
  });
  hq.PauseAcks(false);
  REQUIRE(WaitUntil([&] { return kill_now.load(); }, 30s));
  const uint64_t applied_at_kill = hq.applied();
  CHECK(applied_at_kill < total);
  broker.Restart();
  hq.PauseAcks(false);

  REQUIRE(WaitUntil([&] { return hq.applied() == total; }, 90s));
  REQUIRE(WaitUntil([&] { return journal->Stats().watermark == total; }, 20s));
  guard.Stop();
  CHECK(guard.violation() == "");
  CHECK(hq.Verify(*journal) == "");
  const auto st = uplink->status();
  CHECK(st.reconnects >= 1);
  CHECK(st.hq_resends >= 1);
  MESSAGE("applied at kill " << applied_at_kill << ", HQ saw " << hq.gaps()
                             << " arrivals past a gap (resent), " << hq.duplicates()
                             << " duplicates; hq_resends " << st.hq_resends);
  uplink->Stop();
}

TEST_CASE("sync integration: mutual TLS against mosquitto with require_certificate") {
  TempDir dir;
  sync_test::Pki pki(dir / "pki");
  BrokerOptions bo;
  bo.tls = true;
  bo.cafile = pki.ca_crt.string();
  bo.certfile = pki.server_crt.string();
  bo.keyfile = pki.server_key.string();
  Mosquitto broker(dir / "broker", bo);
  auto journal = OpenJournal(dir);
  REQUIRE(AppendSales(*journal, 1, 3000) == "");
  const uint64_t total = journal->Stats().last_seq;
  UplinkOptions o = TestOptions("ssl://127.0.0.1:" + std::to_string(broker.tls_port()));
  HqConsumer hq(ConsumerOptions(broker, o));  // on the plain listener

  SUBCASE("the right CA and a client certificate: drained") {
    o.tls = {pki.ca_crt.string(), pki.client_crt.string(), pki.client_key.string()};
    auto uplink = StartUplink(o, journal.get());
    REQUIRE(WaitUntil([&] { return hq.applied() == total; }, 30s));
    REQUIRE(WaitUntil([&] { return journal->Stats().watermark == total; }, 10s));
    CHECK(hq.Verify(*journal) == "");
    const auto st = uplink->status();
    CHECK(st.link == "up");
    CHECK(st.connect_failures == 0);
    uplink->Stop();
  }

  SUBCASE("a wrong CA: refused with a clear error, nothing marked delivered") {
    o.tls = {pki.wrong_ca_crt.string(), pki.client_crt.string(), pki.client_key.string()};
    auto uplink = StartUplink(o, journal.get());
    REQUIRE(WaitUntil([&] { return uplink->status().connect_failures >= 2; }, 20s));
    const auto st = uplink->status();
    INFO(st.last_error);
    CHECK(st.link != "up");
    CHECK(st.last_error.find("TLS handshake with 127.0.0.1:" + std::to_string(broker.tls_port()) +
                             " failed") != std::string::npos);
    CHECK(st.last_error.find("certificate verify failed") != std::string::npos);
    CHECK(st.connects == 0);
    CHECK(st.events_sent == 0);
    CHECK(journal->Stats().watermark == 0);
    CHECK(hq.applied() == 0);
    uplink->Stop();
  }

  SUBCASE("the host name is verified: the certificate is for 127.0.0.1, not localhost") {
    o.url = "ssl://localhost:" + std::to_string(broker.tls_port());
    o.tls = {pki.ca_crt.string(), pki.client_crt.string(), pki.client_key.string()};
    auto uplink = StartUplink(o, journal.get());
    REQUIRE(WaitUntil([&] { return uplink->status().connect_failures >= 1; }, 20s));
    const auto st = uplink->status();
    INFO(st.last_error);
    CHECK(st.connects == 0);
    CHECK(st.last_error.find("TLS handshake with localhost:") != std::string::npos);
    CHECK(journal->Stats().watermark == 0);
    uplink->Stop();
  }

  SUBCASE("no client certificate: the broker refuses the handshake") {
    o.tls = {pki.ca_crt.string(), "", ""};
    auto uplink = StartUplink(o, journal.get());
    REQUIRE(WaitUntil([&] { return uplink->status().connect_failures >= 1; }, 20s));
    const auto st = uplink->status();
    INFO(st.last_error);
    CHECK(st.connects == 0);
    CHECK(st.last_error.find("127.0.0.1:" + std::to_string(broker.tls_port())) !=
          std::string::npos);
    CHECK(journal->Stats().watermark == 0);
    uplink->Stop();
  }
}

TEST_CASE("sync integration: retained status and last will on a dropped link and offline on Stop") {
  TempDir dir;
  auto journal = OpenJournal(dir);
  Mosquitto broker(dir / "broker");
  UplinkOptions o = TestOptions("");
  o.status_interval = 60s;  // only the connect-time publish, the will, and Stop
  HqConsumer hq(ConsumerOptions(broker, o));
  TcpProxy link(broker.port());
  o.url = "tcp://127.0.0.1:" + std::to_string(link.port());
  auto u = Uplink::Create(o, journal.get());
  REQUIRE(u.ok());
  auto uplink = std::move(*u);
  uplink->SetStatusSource([] {
    v1::GatewayStatus s;
    s.set_version("9.9.9-test");
    return s;
  });
  REQUIRE(uplink->Start().ok());
  auto last_status = [&]() -> std::optional<v1::GatewayStatus> {
    auto all = hq.statuses();
    if (all.empty()) return std::nullopt;
    return all.back();
  };
  REQUIRE(WaitUntil(
      [&] {
        auto s = last_status();
        return s && s->online();
      },
      10s));
  CHECK(last_status()->version() == "9.9.9-test");
  CHECK(last_status()->link() == "up");
  CHECK(last_status()->epoch() == journal->epoch());

  link.CutAll();  // unclean: the broker publishes the will
  REQUIRE(WaitUntil(
      [&] {
        auto s = last_status();
        return s && !s->online();
      },
      10s));
  CHECK(last_status()->link() == "down");
  CHECK(last_status()->store_id() == "store-0001");
  REQUIRE(WaitUntil(
      [&] {
        auto s = last_status();
        return s && s->online();
      },
      10s));
  CHECK(uplink->status().reconnects == 1);

  uplink->Stop();
  REQUIRE(WaitUntil(
      [&] {
        auto s = last_status();
        return s && !s->online();
      },
      10s));
  // Retained: a subscriber arriving later still learns the gateway is offline.
  HqConsumer late(ConsumerOptions(broker, o));
  REQUIRE(WaitUntil([&] { return !late.statuses().empty(); }, 10s));
  CHECK(!late.statuses().back().online());
}

TEST_CASE("sync integration: uplink.compression = zstd marks and sends zstd frames") {
  TempDir dir;
  auto journal = OpenJournal(dir);
  REQUIRE(AppendSales(*journal, 1, 2000) == "");
  const uint64_t total = journal->Stats().last_seq;
  Mosquitto broker(dir / "broker");
  UplinkOptions o = TestOptions(broker.url());
  o.compression = "zstd";
  HqConsumer hq(ConsumerOptions(broker, o));
  TcpProxy link(broker.port());
  o.url = "tcp://127.0.0.1:" + std::to_string(link.port());
  auto uplink = StartUplink(o, journal.get());
  REQUIRE(WaitUntil([&] { return hq.applied() == total; }, 30s));
  CHECK(hq.Verify(*journal) == "");
  CHECK(hq.gaps() == 0);
  CHECK(hq.batches() > 0);
  CHECK(hq.zstd_batches() == hq.batches());  // every batch, marked content-encoding=zstd
  const auto st = uplink->status();
  // Compressed on the wire: fewer bytes through the link than the batches.
  CHECK(link.up_bytes() < st.bytes_sent);
  uplink->Stop();
}

TEST_CASE("sync integration: a broker that refuses MQTT 5 gets MQTT 3.1.1") {
  TempDir dir;
  auto journal = OpenJournal(dir);
  REQUIRE(AppendSales(*journal, 1, 2000) == "");
  const uint64_t total = journal->Stats().last_seq;
  Mosquitto broker(dir / "broker");
  UplinkOptions o = TestOptions("");
  HqConsumer hq(ConsumerOptions(broker, o));
  TcpProxy link(broker.port());
  link.SetRejectMqtt5(true);
  o.url = "tcp://127.0.0.1:" + std::to_string(link.port());
  auto uplink = StartUplink(o, journal.get());
  REQUIRE(WaitUntil([&] { return hq.applied() == total; }, 30s));
  CHECK(hq.Verify(*journal) == "");
  CHECK(link.rejected_v5() >= 1);
  const auto st = uplink->status();
  CHECK(st.protocol_version == 4);
  CHECK(st.link == "up");
  CHECK(hq.compressed_batches() == 0);  // 3.1.1 cannot mark a compressed payload
  // Reconnects remember: no further MQTT 5 attempts.
  const uint64_t rejected = link.rejected_v5();
  link.CutAll();
  REQUIRE(WaitUntil([&] { return uplink->status().reconnects == 1; }, 10s));
  CHECK(link.rejected_v5() == rejected);
  uplink->Stop();
}

TEST_CASE(
    "sync integration: PUBACK reason codes are checked and a too-large batch is not delivered") {
  TempDir dir;
  auto journal = OpenJournal(dir);
  REQUIRE(AppendSales(*journal, 1, 3000) == "");
  const uint64_t total = journal->Stats().last_seq;
  BrokerOptions bo;
  bo.message_size_limit = 4000;  // below the uplink's 16 KiB batches
  Mosquitto broker(dir / "broker", bo);
  UplinkOptions o = TestOptions(broker.url());
  o.compression = "none";  // batch sizes on the wire = the uplink's limits
  HqConsumer::Options co = ConsumerOptions(broker, o);
  co.max_batch_bytes = 0;
  HqConsumer hq(co);
  auto uplink = StartUplink(o, journal.get());
  // The broker drops the big batches with PUBACK 0x95; the uplink must not
  // count them as delivered, and shrinks its batches until they fit.
  REQUIRE(WaitUntil([&] { return hq.applied() == total; }, 30s));
  REQUIRE(WaitUntil([&] { return journal->Stats().watermark == total; }, 10s));
  // HQ may have seen later batches arrive before a refused one was resent
  // (hq.gaps() > 0): it never applied past the hole, and had the watermark
  // claimed the refused batch, it would never have been resent and HQ
  // would be missing it here.
  CHECK(hq.Verify(*journal) == "");
  CHECK(uplink->status().last_error.find("packet too large (0x95)") != std::string::npos);
  uplink->Stop();
}

TEST_CASE(
    "sync integration: Stop stays bounded while a downstream message is retried against a "
    "journal that keeps refusing it") {
  // The journal's disk refuses every write while the price update is
  // applied: Downstream::Submit retries (0.5 s, 1 s, 2 s, 4 s: about 7.5 s)
  // on Paho's receive thread. Stop() must not wait for all of that.
  sync_test::InstallFailingVfs();
  TempDir dir;
  sync_test::TrackDir(dir / "data");
  auto journal = OpenJournal(dir);
  Mosquitto broker(dir / "broker");
  Downstream downstream(journal.get());  // default retries: from 500 ms, 8 s in all
  UplinkOptions o = TestOptions(broker.url());
  o.keep_alive = 30s;  // as in production: the blocked receive thread does not cost the link
  auto u = Uplink::Create(o, journal.get());
  REQUIRE_MESSAGE(u.ok(), u.status().ToString());
  auto uplink = std::move(*u);
  std::atomic<int> applying{0};
  // Wired as the daemon should: the sink passes its stop token on.
  uplink->SetDownstreamSink([&](DownstreamKind kind, std::string payload, std::stop_token stop) {
    ++applying;
    (void)downstream.Submit(kind, payload, stop);
    --applying;
  });
  REQUIRE(uplink->Start().ok());
  REQUIRE(WaitUntil([&] { return uplink->status().link == "up"; }, 10s));
  // Made (and destroyed) outside the apply: Paho C's threads and lock are
  // shared by every client of the process, and the apply holds them.
  HqPublisher hq(broker.url(), o.topic_prefix, "store-0001");

  const uint64_t refused_before = sync_test::RefusedWrites();
  sync_test::FailWrites(true);
  v1::PriceUpdate price;
  price.set_store_id("store-0001");
  price.set_sku("SKU-1");
  price.set_price(249);
  price.set_currency("EUR");
  price.set_effective_from(1767225600000000);
  auto published = hq.PublishNoWait("prices", price.SerializeAsString());
  // The message is being applied and the journal has refused a write.
  REQUIRE(WaitUntil(
      [&] { return applying.load() == 1 && sync_test::RefusedWrites() > refused_before; }, 10s));

  const auto t0 = std::chrono::steady_clock::now();
  uplink->Stop();
  const auto took = std::chrono::steady_clock::now() - t0;
  sync_test::FailWrites(false);
  MESSAGE("Stop() took " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                         << " ms");
  // The final status and the DISCONNECT take a few ms on loopback (1 s
  // each at most); the retries would take 7.5 s.
  CHECK(took < 3s);
  CHECK(applying.load() == 0);
  CHECK(published->wait_for(10s));
  // Given up, not applied: counted as a journal failure.
  auto refused = downstream.counters().refused;
  CHECK(refused["journal_error"] == 1);
  CHECK(journal->PriceAt("SKU-1", 1767225600000001).status().code() == StatusCode::kNotFound);
}

}  // namespace storegw::sync
