// Unit tests of the replay engine against a fake Transport and a real
// in-process journal (in a temp dir): ordering, batching limits, the
// window, the contiguous-prefix watermark, reconnect from the watermark,
// the ack timeout, ack="hq" and its resend timeout, TLS file checks,
// back-off bounds and option validation. No broker, no network.
#include <doctest/doctest.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <set>

#include "backoff.h"
#include "batcher.h"
#include "mqtt_transport.h"
#include "storegw/storage/journal.h"
#include "storegw/sync/transport.h"
#include "storegw/sync/uplink.h"
#include "sync_test_util.h"

namespace storegw::sync {
namespace {

using namespace std::chrono_literals;
using sync_test::AppendSales;
using sync_test::TempDir;
using sync_test::WaitUntil;

// The network as the fake transports see it; shared by every connection.
struct FakeNet {
  std::mutex mu;
  // Controls.
  int fail_connects = 0;  // the next N Connect() calls fail
  std::string connect_error = "could not connect to fake:1883: Connection refused";
  bool auto_ack = false;  // acknowledge each send as it is made
  // Outcome of an auto-acked send (default ok).
  std::function<Status(const v1::EventBatch&, size_t bytes)> verdict;
  size_t max_pending = 64;
  // The window the engine must keep (Rig::Start sets them from the
  // options; 0: not checked): batches of the open connection not yet
  // acknowledged (by Ack, or with hq_window by an HqAck covering them)
  // never exceed it. Checked on every send, so a test needs no sleep to
  // see that the engine held back.
  size_t window_limit = 0;
  bool hq_window = false;
  // Records.
  int connect_attempts = 0, connects = 0, closes = 0;
  TransportListener* listener = nullptr;  // of the open connection
  struct Sent {
    uint64_t id, first, last;
    size_t events, bytes;
    int connection;
  };
  std::vector<Sent> sent;
  std::vector<uint64_t> outstanding;                       // ids of the open connection, not acked
  std::vector<std::pair<uint64_t, uint64_t>> awaiting_hq;  // (first, last) not covered by an HqAck
  std::condition_variable sent_cv;                         // notified on every send
  std::vector<std::string> statuses;                       // PublishStatus payloads
  std::vector<std::string> final_statuses;
  std::vector<std::string> errors;  // what the fake saw that is wrong

  size_t sent_count() {
    std::lock_guard lk(mu);
    return sent.size();
  }
  // Acknowledges the oldest outstanding send (or the one at `index`).
  bool Ack(size_t index = 0, Status st = {}) {
    std::lock_guard lk(mu);
    if (!listener || index >= outstanding.size()) return false;
    const uint64_t id = outstanding[index];
    outstanding.erase(outstanding.begin() + static_cast<long>(index));
    listener->OnSendDone(id, std::move(st));
    return true;
  }
  // Waits (up to `timeout`) for a send to acknowledge, acknowledges the
  // oldest, and returns the last seq of its batch; 0 on timeout.
  uint64_t AckNext(std::chrono::milliseconds timeout) {
    std::unique_lock lk(mu);
    if (!sent_cv.wait_for(lk, timeout, [&] { return listener && !outstanding.empty(); })) return 0;
    const uint64_t id = outstanding.front();
    outstanding.erase(outstanding.begin());
    listener->OnSendDone(id, {});
    for (auto it = sent.rbegin(); it != sent.rend(); ++it) {
      if (it->id == id) return it->last;
    }
    return 0;
  }
  bool HqAck(uint64_t epoch, uint64_t seq) {
    std::lock_guard lk(mu);
    if (!listener) return false;
    if (epoch == hq_epoch) {
      std::erase_if(awaiting_hq, [&](const auto& b) { return b.second <= seq; });
    }
    listener->OnHqAck(epoch, seq, "gw-01");
    return true;
  }
  uint64_t hq_epoch = 0;  // the journal's (an HqAck for another is ignored)
  bool LoseLink() {
    std::lock_guard lk(mu);
    if (!listener) return false;
    listener->OnLinkLost(Status::Unavailable("connection lost (fake)"));
    return true;
  }
};

class FakeTransport final : public Transport {
 public:
  explicit FakeTransport(std::shared_ptr<FakeNet> net) : net_(std::move(net)) {}
  ~FakeTransport() override { Close(std::nullopt); }

  Status Connect(TransportListener* l, const ConnectRequest& req) override {
    std::lock_guard lk(net_->mu);
    ++net_->connect_attempts;
    if (req.will_payload.empty()) net_->errors.push_back("connect without a last will");
    if (net_->fail_connects > 0) {
      --net_->fail_connects;
      return Status::Unavailable(net_->connect_error);
    }
    connection_ = ++net_->connects;
    net_->listener = l;
    net_->outstanding.clear();
    net_->awaiting_hq.clear();
    open_ = true;
    return {};
  }

  Status Send(uint64_t id, std::string payload) override {
    std::lock_guard lk(net_->mu);
    if (!open_) return Status::Unavailable("not connected");
    v1::EventBatch b;
    if (!b.ParseFromString(payload)) net_->errors.push_back("undecodable batch");
    net_->sent.push_back({id, b.first_seq(), b.last_seq(), static_cast<size_t>(b.events_size()),
                          payload.size(), connection_});
    if (net_->outstanding.size() + 1 > net_->max_pending) net_->errors.push_back("too many sends");
    if (net_->window_limit > 0) {
      if (net_->hq_window) {
        // A batch at or below one already sent: the engine resends from
        // the watermark, its window starts over.
        if (!net_->awaiting_hq.empty() && b.first_seq() <= net_->awaiting_hq.back().second) {
          net_->awaiting_hq.clear();
        }
        net_->awaiting_hq.push_back({b.first_seq(), b.last_seq()});
        if (net_->awaiting_hq.size() > net_->window_limit) {
          net_->errors.push_back("more than max_inflight batches await HQ at seq " +
                                 std::to_string(b.first_seq()));
        }
      } else if (!net_->auto_ack && net_->outstanding.size() + 1 > net_->window_limit) {
        net_->errors.push_back("more than max_inflight batches unacknowledged at seq " +
                               std::to_string(b.first_seq()));
      }
    }
    if (net_->auto_ack) {
      Status st = net_->verdict ? net_->verdict(b, payload.size()) : Status();
      net_->listener->OnSendDone(id, std::move(st));
    } else {
      net_->outstanding.push_back(id);
      net_->sent_cv.notify_all();
    }
    return {};
  }

  Status PublishStatus(std::string payload) override {
    std::lock_guard lk(net_->mu);
    net_->statuses.push_back(std::move(payload));
    return {};
  }

  void Close(const std::optional<std::string>& final_status) override {
    std::lock_guard lk(net_->mu);
    if (!open_ && !connection_) return;
    if (open_) {
      ++net_->closes;
      if (final_status) net_->final_statuses.push_back(*final_status);
      if (net_->listener) net_->listener = nullptr;
      net_->outstanding.clear();
    }
    open_ = false;
    connection_ = 0;
  }

  size_t max_pending_sends() const override { return net_->max_pending; }
  std::string protocol() const override { return "fake"; }
  int protocol_version() const override { return 5; }

 private:
  std::shared_ptr<FakeNet> net_;
  int connection_ = 0;
  bool open_ = false;
};

struct Rig {
  TempDir dir;
  std::unique_ptr<storage::Journal> journal;
  std::shared_ptr<FakeNet> net = std::make_shared<FakeNet>();
  std::unique_ptr<Uplink> uplink;
  std::atomic<int> factory_calls{0};

  Rig() {
    auto j = storage::Journal::Open(sync_test::TestJournalOptions(dir / "data"));
    REQUIRE(j.ok());
    journal = std::move(*j);
  }
  ~Rig() {
    if (uplink) uplink->Stop();
    // What the fake saw the engine do wrong, in every test.
    std::lock_guard lk(net->mu);
    CHECK(net->errors.empty());
  }

  static UplinkOptions Options() {
    UplinkOptions o;
    o.max_inflight = 3;
    o.batch_events = 10;
    o.backoff_initial = 5ms;
    o.backoff_max = 20ms;
    o.ack_timeout = 60s;
    o.hq_ack_timeout = 60s;
    o.status_interval = 60s;
    return o;
  }

  void Start(UplinkOptions o = Options(), const std::function<void(Uplink&)>& before_start = {}) {
    {
      std::lock_guard lk(net->mu);
      net->window_limit = static_cast<size_t>(o.max_inflight);
      net->hq_window = o.ack == "hq";
      net->hq_epoch = journal->epoch();
    }
    auto u = Uplink::CreateWithTransport(
        o, journal.get(), [this]() -> Result<std::unique_ptr<Transport>> {
          ++factory_calls;
          return std::unique_ptr<Transport>(new FakeTransport(net));
        });
    REQUIRE(u.ok());
    uplink = std::move(*u);
    if (before_start) before_start(*uplink);
    REQUIRE(uplink->Start().ok());
  }

  uint64_t watermark() { return uplink->status().watermark; }
};

// Every seq 1..n appears, in order, in the sends of the last connection
// plus what was acknowledged before: checks sends are contiguous ranges.
void CheckContiguous(const std::vector<FakeNet::Sent>& sent) {
  for (const auto& s : sent) {
    CHECK(s.last >= s.first);
    CHECK(s.events == s.last - s.first + 1);
  }
}

}  // namespace

TEST_CASE("sync backoff: full jitter between initial and the capped doubling ceiling and reset") {
  Backoff b(100ms, 1000ms, 42);
  CHECK(b.Ceiling(0) == 100ms);
  CHECK(b.Ceiling(1) == 200ms);
  CHECK(b.Ceiling(3) == 800ms);
  CHECK(b.Ceiling(4) == 1000ms);
  CHECK(b.Ceiling(60) == 1000ms);
  std::set<int64_t> seen;
  for (int i = 0; i < 50; ++i) {
    const int n = b.failures();
    const auto d = b.Next();
    CHECK(d >= 100ms);
    CHECK(d <= b.Ceiling(n));
    seen.insert(d.count());
  }
  CHECK(seen.size() > 10);  // jittered, not a fixed schedule
  b.Reset();
  CHECK(b.failures() == 0);
  CHECK(b.Next() <= 100ms);
}

TEST_CASE("sync batcher: contiguous ranges within the event and exact byte limits") {
  TempDir dir;
  auto j = storage::Journal::Open(sync_test::TestJournalOptions(dir / "data"));
  REQUIRE(j.ok());
  REQUIRE(AppendSales(**j, 1, 1000) == "");
  const uint64_t last_seq = (*j)->Stats().last_seq;  // sales plus oversell alerts
  REQUIRE(last_seq >= 1000);
  Batcher b(j->get(), "store-0001", "gw-01", (*j)->epoch(), 50, 2000);
  uint64_t next = 1;
  size_t batches = 0;
  for (;;) {
    auto r = b.Build(next);
    REQUIRE(r.ok());
    if (!r->has_value()) break;
    const Batch& batch = **r;
    CHECK(batch.payload.size() <= 2000);
    CHECK(batch.events <= 50);
    v1::EventBatch eb;
    REQUIRE(eb.ParseFromString(batch.payload));
    CHECK(eb.first_seq() == next);
    CHECK(eb.last_seq() == batch.last_seq);
    CHECK(eb.epoch() == (*j)->epoch());
    CHECK(eb.store_id() == "store-0001");
    CHECK(eb.gateway_id() == "gw-01");
    for (int i = 0; i < eb.events_size(); ++i) {
      CHECK(eb.events(i).seq() == next + static_cast<uint64_t>(i));
      CHECK(eb.events(i).store_id().empty());  // the batch's fields apply
    }
    // The byte limit binds: one more event would not have fitted.
    if (batch.events < 50 && batch.last_seq < last_seq) {
      v1::EventBatch bigger = eb;
      auto more = (*j)->ReadEvents(batch.last_seq + 1, 1, 1 << 20);
      REQUIRE(more.ok());
      auto je = (*more)[0];
      je.clear_store_id();
      je.clear_gateway_id();
      je.clear_epoch();
      *bigger.add_events() = je;
      bigger.set_last_seq(je.seq());
      CHECK(bigger.ByteSizeLong() > 2000);
    }
    next = batch.last_seq + 1;
    ++batches;
  }
  CHECK(next == last_seq + 1);
  CHECK(batches >= last_seq / 50);

  SUBCASE("an event larger than the limit goes alone") {
    Batcher tiny(j->get(), "store-0001", "gw-01", (*j)->epoch(), 50, 64);
    auto r = tiny.Build(7);
    REQUIRE(r.ok());
    REQUIRE(r->has_value());
    CHECK((**r).events == 1);
    CHECK((**r).first_seq == 7);
  }
  SUBCASE("nothing at from_seq yet: no batch") {
    auto r = b.Build(last_seq + 1);
    REQUIRE(r.ok());
    CHECK(!r->has_value());
  }
}

TEST_CASE(
    "sync uplink: window of max_inflight and watermark over the contiguous acked prefix only") {
  Rig rig;
  REQUIRE(AppendSales(*rig.journal, 1, 200) == "");
  const uint64_t last = rig.journal->Stats().last_seq;
  rig.Start();
  // The fake flags a 4th batch sent while three are unacknowledged
  // (net->errors, checked at the end).
  REQUIRE(WaitUntil([&] { return rig.net->sent_count() == 3; }, 5s));
  CHECK(rig.uplink->status().link == "up");
  CHECK(WaitUntil([&] { return rig.uplink->status().inflight_batches == 3; }, 5s));

  // Ack the second batch first: the watermark cannot move past the first,
  // but only two batches are unacknowledged now, so a fourth goes out.
  REQUIRE(rig.net->Ack(1));
  REQUIRE(WaitUntil([&] { return rig.net->sent_count() == 4; }, 5s));
  CHECK(rig.watermark() == 0);
  CHECK(rig.journal->Stats().watermark == 0);
  // Now the first: the watermark jumps over both.
  REQUIRE(rig.net->Ack(0));
  REQUIRE(WaitUntil([&] { return rig.watermark() == 20; }, 5s));
  // Drain the rest in order.
  for (uint64_t acked = 0; acked < last;) {
    acked = rig.net->AckNext(5s);
    REQUIRE(acked > 0);
  }
  REQUIRE(WaitUntil([&] { return rig.journal->Stats().watermark == last; }, 5s));
  std::lock_guard lk(rig.net->mu);
  CheckContiguous(rig.net->sent);
  for (size_t i = 0; i < rig.net->sent.size(); ++i) {
    // One connection: strictly in order, each range right after the last.
    CHECK(rig.net->sent[i].first == (i == 0 ? 1 : rig.net->sent[i - 1].last + 1));
    if (i + 1 < rig.net->sent.size()) CHECK(rig.net->sent[i].events == 10);
  }
  CHECK(rig.net->sent.back().last == last);
  CHECK(rig.net->sent.size() == (last + 9) / 10);
  CHECK(rig.net->errors.empty());
}

TEST_CASE("sync uplink: a failed send tears the connection down and replays from the watermark") {
  Rig rig;
  REQUIRE(AppendSales(*rig.journal, 1, 100) == "");
  const uint64_t last = rig.journal->Stats().last_seq;
  rig.Start();
  REQUIRE(WaitUntil([&] { return rig.net->sent_count() == 3; }, 5s));
  REQUIRE(rig.net->Ack(0));  // 1..10 delivered
  REQUIRE(WaitUntil([&] { return rig.watermark() == 10; }, 5s));
  REQUIRE(WaitUntil([&] { return rig.net->sent_count() == 4; }, 5s));
  // 21..30 is acked, 11..20 fails: nothing past 10 may count as delivered.
  REQUIRE(rig.net->Ack(1));
  REQUIRE(
      rig.net->Ack(0, Status::Unavailable("connection lost before the broker acknowledged it")));
  REQUIRE(WaitUntil(
      [&] {
        std::lock_guard lk(rig.net->mu);
        return rig.net->connects == 2 && !rig.net->sent.empty() &&
               rig.net->sent.back().connection == 2;
      },
      5s));
  CHECK(rig.watermark() == 10);
  {
    std::lock_guard lk(rig.net->mu);
    auto first_of_2 = std::find_if(rig.net->sent.begin(), rig.net->sent.end(),
                                   [](const auto& s) { return s.connection == 2; });
    REQUIRE(first_of_2 != rig.net->sent.end());
    CHECK(first_of_2->first == 11);  // restart at watermark + 1
    CHECK(rig.net->closes >= 1);
  }
  const auto st = rig.uplink->status();
  CHECK(st.reconnects == 1);
  CHECK(st.last_error.find("11..20") != std::string::npos);
  CHECK(st.last_error.find("connection lost") != std::string::npos);
  {
    std::lock_guard lk(rig.net->mu);
    rig.net->auto_ack = true;
  }
  while (rig.net->Ack(0)) {
  }
  REQUIRE(WaitUntil([&] { return rig.journal->Stats().watermark == last; }, 5s));
}

TEST_CASE("sync uplink: a lost link reconnects with back-off and resumes and live events follow") {
  Rig rig;
  {
    std::lock_guard lk(rig.net->mu);
    rig.net->auto_ack = true;
    rig.net->fail_connects = 3;
  }
  REQUIRE(AppendSales(*rig.journal, 1, 50) == "");
  rig.Start();
  REQUIRE(WaitUntil([&] { return rig.journal->Stats().watermark == rig.journal->Stats().last_seq; },
                    5s));
  auto st = rig.uplink->status();
  CHECK(st.connect_failures == 3);
  CHECK(st.last_error.find("Connection refused") != std::string::npos);
  CHECK(st.last_error_at_us > 0);
  REQUIRE(rig.net->LoseLink());
  REQUIRE(WaitUntil([&] { return rig.uplink->status().reconnects == 1; }, 5s));
  CHECK(rig.uplink->status().last_error.find("connection lost (fake)") != std::string::npos);
  // Live events: sent without anyone polling.
  for (int i = 0; i < 5; ++i) {
    REQUIRE(AppendSales(*rig.journal, 51 + 3 * static_cast<uint64_t>(i), 3) == "");
    const uint64_t now_last = rig.journal->Stats().last_seq;
    REQUIRE(WaitUntil([&] { return rig.watermark() == now_last; }, 5s));
  }
  CHECK(rig.uplink->status().events_acked == rig.journal->Stats().last_seq);
}

TEST_CASE("sync uplink: a send unacknowledged past ack_timeout means a broken link") {
  Rig rig;
  REQUIRE(AppendSales(*rig.journal, 1, 30) == "");
  auto o = Rig::Options();
  o.ack_timeout = 100ms;
  rig.Start(o);
  REQUIRE(WaitUntil(
      [&] {
        std::lock_guard lk(rig.net->mu);
        return rig.net->connects >= 2;
      },
      10s));
  CHECK(rig.uplink->status().last_error.find("no acknowledgement for batch seq 1..10") !=
        std::string::npos);
  CHECK(rig.watermark() == 0);
  std::lock_guard lk(rig.net->mu);
  CHECK(rig.net->closes >= 1);
}

TEST_CASE(
    "sync uplink: ack=hq lets only a matching HqAck advance and silence past hq_ack_timeout "
    "resends") {
  Rig rig;
  REQUIRE(AppendSales(*rig.journal, 1, 100) == "");
  rig.net->auto_ack = true;  // the broker PUBACKs everything
  auto o = Rig::Options();
  o.ack = "hq";
  o.hq_ack_timeout = 300ms;
  rig.Start(o);
  // The window waits for HQ: the fake flags a 4th batch sent before an
  // HqAck covers one (net->errors, checked below).
  REQUIRE(WaitUntil([&] { return rig.net->sent_count() >= 3; }, 5s));
  const uint64_t epoch = rig.journal->epoch();
  REQUIRE(rig.net->HqAck(epoch + 1, 30));  // another journal's ack: ignored
  REQUIRE(rig.net->HqAck(epoch, 15));      // partway into the second batch
  // The engine handles events in order: had the PUBACKs of the first three
  // batches or the other journal's ack moved the watermark, it would be at
  // 30 already and stay there.
  REQUIRE(WaitUntil([&] { return rig.watermark() >= 15; }, 5s));
  CHECK(rig.watermark() == 15);
  REQUIRE(WaitUntil([&] { return rig.net->sent_count() >= 4; }, 5s));
  // No more acks: after hq_ack_timeout the uplink resends from seq 16.
  REQUIRE(WaitUntil([&] { return rig.uplink->status().hq_resends >= 1; }, 5s));
  REQUIRE(WaitUntil(
      [&] {
        std::lock_guard lk(rig.net->mu);
        return std::any_of(rig.net->sent.begin() + 4, rig.net->sent.end(),
                           [](const auto& s) { return s.first == 16; });
      },
      5s));
  CHECK(rig.watermark() == 15);
  // HQ says it has everything (it got them earlier): the uplink skips ahead.
  const uint64_t last = rig.journal->Stats().last_seq;
  REQUIRE(rig.net->HqAck(epoch, last));
  REQUIRE(WaitUntil([&] { return rig.journal->Stats().watermark == last; }, 5s));
  CHECK(rig.uplink->status().reconnects == 0);  // resends need no reconnect
  std::lock_guard lk(rig.net->mu);
  CHECK(rig.net->errors.empty());
}

TEST_CASE(
    "sync uplink: a broker refusing big batches (0x95) makes them smaller and nothing is skipped") {
  Rig rig;
  REQUIRE(AppendSales(*rig.journal, 1, 300) == "");
  rig.net->auto_ack = true;
  rig.net->verdict = [](const v1::EventBatch&, size_t bytes) {
    return bytes > 1500 ? Status::ResourceExhausted("broker refused it: packet too large (0x95)")
                        : Status();
  };
  auto o = Rig::Options();
  o.batch_events = 100;
  o.max_message_bytes = 64 << 10;
  rig.Start(o);
  REQUIRE(WaitUntil([&] { return rig.journal->Stats().watermark == rig.journal->Stats().last_seq; },
                    10s));
  CHECK(rig.uplink->status().last_error.find("0x95") != std::string::npos);
  std::lock_guard lk(rig.net->mu);
  // Once the limit was learned, batches stayed under it.
  CHECK(rig.net->sent.back().bytes <= 1500);
}

TEST_CASE("sync uplink: missing or wrong TLS files are named before any connection attempt") {
  TempDir dir;
  Rig rig;
  auto o = Rig::Options();
  o.url = "ssl://127.0.0.1:8883";

  SUBCASE("missing client certificate") {
    o.tls.cert_file = (dir / "nope.crt").string();
    o.tls.key_file = (dir / "nope.key").string();
    rig.Start(o);
    REQUIRE(WaitUntil([&] { return rig.uplink->status().connect_failures >= 2; }, 5s));
    const auto st = rig.uplink->status();
    CHECK(st.last_error.find("uplink.tls.cert_file") != std::string::npos);
    CHECK(st.last_error.find("nope.crt") != std::string::npos);
    CHECK(st.last_error.find("No such file or directory") != std::string::npos);
  }
  SUBCASE("a CA file that is not a certificate") {
    sync_test::WriteFile(dir / "ca.pem", "hello\n");
    o.tls.ca_file = (dir / "ca.pem").string();
    rig.Start(o);
    REQUIRE(WaitUntil([&] { return rig.uplink->status().connect_failures >= 1; }, 5s));
    CHECK(rig.uplink->status().last_error.find("no PEM certificate") != std::string::npos);
  }
  CHECK(rig.factory_calls == 0);  // never got as far as a transport
  CHECK(rig.uplink->status().link != "up");
  CHECK(rig.journal->Stats().watermark == 0);
}

TEST_CASE("sync tls check: a key that does not match the certificate is named") {
  TempDir dir;
  sync_test::Pki pki(dir / "pki");
  TlsFiles ok{pki.ca_crt.string(), pki.client_crt.string(), pki.client_key.string()};
  CHECK(CheckTlsFiles(ok).ok());
  TlsFiles mismatch{pki.ca_crt.string(), pki.client_crt.string(), pki.server_key.string()};
  Status s = CheckTlsFiles(mismatch);
  CHECK(s.field() == "uplink.tls.key_file");
  CHECK(s.message().find("does not match") != std::string::npos);
  TlsFiles half{"", pki.client_crt.string(), ""};
  CHECK(CheckTlsFiles(half).field() == "uplink.tls.key_file");
}

TEST_CASE("sync uplink: Stop publishes a final offline status and every connect carries a will") {
  Rig rig;
  rig.net->auto_ack = true;
  auto o = Rig::Options();
  o.status_interval = 20ms;
  rig.Start(o, [](Uplink& u) {
    u.SetStatusSource([] {
      v1::GatewayStatus s;
      s.set_version("test");
      return s;
    });
  });
  REQUIRE(WaitUntil(
      [&] {
        std::lock_guard lk(rig.net->mu);
        return rig.net->statuses.size() >= 3;
      },
      5s));
  rig.uplink->Stop();
  std::lock_guard lk(rig.net->mu);
  CHECK(rig.net->errors.empty());
  v1::GatewayStatus live;
  REQUIRE(live.ParseFromString(rig.net->statuses.back()));
  CHECK(live.online());
  CHECK(live.link() == "up");
  CHECK(live.store_id() == "store-0001");
  CHECK(live.version() == "test");  // the gateway's fields are kept
  CHECK(live.epoch() == rig.journal->epoch());
  REQUIRE(rig.net->final_statuses.size() == 1);
  v1::GatewayStatus last;
  REQUIRE(last.ParseFromString(rig.net->final_statuses[0]));
  CHECK(!last.online());
  CHECK(last.link() == "down");
}

TEST_CASE("sync uplink options: bad values are rejected naming the key") {
  TempDir dir;
  auto j = storage::Journal::Open(sync_test::TestJournalOptions(dir / "data"));
  REQUIRE(j.ok());
  auto check = [&](const std::function<void(UplinkOptions&)>& f, const std::string& field) {
    UplinkOptions o;
    f(o);
    auto u = Uplink::Create(o, j->get());
    REQUIRE(!u.ok());
    CHECK(u.status().field() == field);
  };
  check([](auto& o) { o.ack = "maybe"; }, "uplink.ack");
  check([](auto& o) { o.max_inflight = 0; }, "uplink.max_inflight");
  check([](auto& o) { o.batch_events = 0; }, "uplink.batch_events");
  check([](auto& o) { o.max_message_bytes = 10; }, "uplink.max_message_bytes");
  check(
      [](auto& o) {
        o.backoff_initial = 5s;
        o.backoff_max = 1s;
      },
      "uplink.backoff_initial");
  check([](auto& o) { o.url = "http://x:1"; }, "uplink.url");
  check([](auto& o) { o.url = "tcp://host:99999"; }, "uplink.url");
  check([](auto& o) { o.transport = "carrier-pigeon"; }, "uplink.transport");
  check([](auto& o) { o.topic_prefix = "a/#"; }, "uplink.topic_prefix");
  check([](auto& o) { o.compression = "gzip"; }, "uplink.compression");
  check(
      [](auto& o) {
        o.compression = "deflate";
        o.compression_level = 12;
      },
      "uplink.compression_level");
  check(
      [](auto& o) {
        o.compression = "zstd";
        o.compression_level = 22;
      },
      "uplink.compression_level");
  check(
      [](auto& o) {
        o.compression = "none";
        o.compression_level = 3;
      },
      "uplink.compression_level");
  // TLS files with a plain URL would silently send in the clear.
  check([](auto& o) { o.tls.ca_file = "/etc/ssl/ca.pem"; }, "uplink.url");
  UplinkOptions other;
  other.store_id = "store-9999";
  auto u = Uplink::Create(other, j->get());
  CHECK(u.status().code() == StatusCode::kFailedPrecondition);
  UplinkOptions good;
  CHECK(Uplink::Create(good, j->get()).ok());
}

TEST_CASE("sync broker URL parsing") {
  auto u = ParseBrokerUrl("mqtts://broker.example:8884");
  REQUIRE(u.ok());
  CHECK(u->tls());
  CHECK(u->paho_uri() == "ssl://broker.example:8884");
  auto v6 = ParseBrokerUrl("tcp://[::1]:1883");
  REQUIRE(v6.ok());
  CHECK(v6->host == "::1");
  CHECK(v6->paho_uri() == "tcp://[::1]:1883");
  CHECK(ParseBrokerUrl("ssl://h")->port == 8883);
  CHECK(!ParseBrokerUrl("tcp://user:pw@h:1883").ok());
}

}  // namespace storegw::sync

namespace storegw::sync {

TEST_CASE("sync compress: zstd and deflate round trips, bounded and refusing bad input") {
  std::string batch;
  for (int i = 0; i < 2000; ++i) batch += "till-03-" + std::to_string(i) + " SKU-000123 EUR ";
  for (auto c : {Compression::kNone, Compression::kDeflate, Compression::kZstd}) {
    CAPTURE(static_cast<int>(c));
    auto z = Compress(c, batch, DefaultLevel(c, 0));
    REQUIRE(z.ok());
    if (c == Compression::kNone) {
      CHECK(*z == batch);
      continue;
    }
    CHECK(z->size() < batch.size() / 4);
    CHECK(static_cast<uint8_t>((*z)[0]) == (c == Compression::kZstd ? kZstdFirstByte : 0x78));
    auto back = c == Compression::kZstd ? ZstdDecompress(*z) : Inflate(*z);
    REQUIRE(back.ok());
    CHECK(*back == batch);
    // Bounded: a limit below the size is refused, not allocated.
    auto small = c == Compression::kZstd ? ZstdDecompress(*z, 1000) : Inflate(*z, 1000);
    CHECK_FALSE(small.ok());
    // Cut short, or garbage: refused with a reason.
    auto cut = c == Compression::kZstd ? ZstdDecompress(z->substr(0, z->size() / 2))
                                       : Inflate(z->substr(0, z->size() / 2));
    CHECK_FALSE(cut.ok());
  }
  auto junk = ZstdDecompress("\x28\xb5\x2f\xfd garbage that is not a frame");
  REQUIRE_FALSE(junk.ok());
  CHECK(junk.status().message().find("zstd") != std::string::npos);
  // Every level gives a frame that decodes to the input; names and defaults.
  for (int level : {-7, 1, 9, 19}) {
    auto z = ZstdCompress(batch, level);
    REQUIRE(z.ok());
    auto back = ZstdDecompress(*z);
    REQUIRE(back.ok());
    CHECK(*back == batch);
  }
  CHECK(ParseCompression("zstd") == Compression::kZstd);
  CHECK(ParseCompression("deflate") == Compression::kDeflate);
  CHECK(ParseCompression("none") == Compression::kNone);
  CHECK_FALSE(ParseCompression("gzip"));
  CHECK(CompressionName(Compression::kZstd) == "zstd");
  CHECK(DefaultLevel(Compression::kZstd, 0) == 3);
  CHECK(DefaultLevel(Compression::kDeflate, 0) == 1);
  CHECK(DefaultLevel(Compression::kZstd, 7) == 7);
}

}  // namespace storegw::sync
