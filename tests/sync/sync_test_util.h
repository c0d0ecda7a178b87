// Helpers for the uplink tests and benchmark: temp dirs, free ports, a
// mosquitto broker started per test (killed by PID in its destructor, even
// when the test fails), a test PKI made with the openssl CLI, journal
// fillers, and the HQ consumer that checks the three invariants (nothing
// acknowledged is lost, each event applied exactly once, seqs in order
// without gaps).
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <vector>

#include <mqtt/async_client.h>

#include "common/files.h"
#include "common/net.h"
#include "common/process.h"
#include "columnar.h"  // sync/src: DecodeColumnar, for the HQ consumer
#include "compress.h"  // sync/src: Inflate, for the HQ consumer
#include "storegw/storage/journal.h"
#include "storegw/v1/storegw.pb.h"

namespace storegw::sync_test {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

// ------------------------------------------------------------ shared helpers

// Temp dirs, files, ports, waiting and processes: tests/common.
using test::FreePort;
using test::PortAccepts;
using test::Process;
using test::ReadFile;
using test::WriteFile;

// TempDir named storegw-sync-* (what a failed run leaves is easy to find).
class TempDir : public test::TempDir {
 public:
  TempDir() : test::TempDir({}, "storegw-sync") {}
};

// Polls `done` until true or `timeout`.
inline bool WaitUntil(const std::function<bool()>& done, std::chrono::milliseconds timeout,
                      std::chrono::milliseconds poll = 10ms) {
  return test::WaitFor(done, timeout, poll);
}

// ------------------------------------------------------------ mosquitto

struct BrokerOptions {
  bool persistence = false;
  int max_inflight_messages = 100;
  int max_queued_messages = 1000000;
  uint64_t message_size_limit = 0;  // 0: mosquitto's default (no limit)
  // TLS listener (require_certificate) in addition to the plain one.
  bool tls = false;
  std::string cafile, certfile, keyfile;
  std::string extra;  // more config lines
};

// /usr/sbin/mosquitto on a free 127.0.0.1 port with a generated config.
// Restart() kills it (-9) and starts it again on the same port(s).
class Mosquitto {
 public:
  Mosquitto(const fs::path& dir, BrokerOptions o = {}, uint16_t port = 0)
      : dir_(dir), o_(std::move(o)), port_(port ? port : FreePort()) {
    if (o_.tls) tls_port_ = FreePort();
    fs::create_directories(dir_);
    chmod(dir_.c_str(), 0777);  // persistence file written as user mosquitto
    Start();
  }
  ~Mosquitto() { proc_.reset(); }

  uint16_t port() const { return port_; }
  uint16_t tls_port() const { return tls_port_; }
  std::string url() const { return "tcp://127.0.0.1:" + std::to_string(port_); }
  pid_t pid() const { return proc_ ? proc_->pid() : -1; }
  fs::path log() const { return dir_ / "mosquitto.log"; }

  void Kill9() { proc_.reset(); }
  void Start() {
    std::ostringstream c;
    c << "per_listener_settings false\n"
      << "allow_anonymous true\n"
      << "max_inflight_messages " << o_.max_inflight_messages << "\n"
      << "max_queued_messages " << o_.max_queued_messages << "\n"
      << "log_dest stderr\n"
      << "log_type error\nlog_type warning\nlog_type notice\n"
      << "connection_messages true\n";
    if (o_.message_size_limit) c << "message_size_limit " << o_.message_size_limit << "\n";
    if (o_.persistence) {
      c << "persistence true\npersistence_location " << dir_.string() << "/\n"
        << "autosave_interval 1\n";
    } else {
      c << "persistence false\n";
    }
    c << o_.extra << "\n";
    c << "listener " << port_ << " 127.0.0.1\n";
    if (o_.tls) {
      c << "listener " << tls_port_ << " 127.0.0.1\n"
        << "cafile " << o_.cafile << "\ncertfile " << o_.certfile << "\nkeyfile " << o_.keyfile
        << "\nrequire_certificate true\n";
    }
    WriteFile(dir_ / "mosquitto.conf", c.str());
    for (int attempt = 0; attempt < 3; ++attempt) {
      proc_ = std::make_unique<Process>(Process::SpawnCombined(
          std::vector<std::string>{"/usr/sbin/mosquitto", "-c", (dir_ / "mosquitto.conf").string()},
          log()));
      const bool up = WaitUntil(
          [&] {
            return !proc_->Running() ? true
                                     : PortAccepts(port_) && (!o_.tls || PortAccepts(tls_port_));
          },
          10s, 5ms);
      if (up && proc_->Running()) return;
      proc_.reset();
      std::this_thread::sleep_for(100ms);
    }
    throw std::runtime_error("mosquitto did not start; log:\n" + ReadFile(log()));
  }
  void Restart() {
    Kill9();
    Start();
  }

 private:
  fs::path dir_;
  BrokerOptions o_;
  uint16_t port_ = 0, tls_port_ = 0;
  std::unique_ptr<Process> proc_;
};

// ------------------------------------------------------------ PKI

// A private CA, a server certificate for 127.0.0.1 (subjectAltName
// IP:127.0.0.1), a client certificate, and an unrelated "wrong" CA; all
// made with the openssl CLI, EC P-256, valid for two days.
struct Pki {
  fs::path dir;
  fs::path ca_crt, ca_key, server_crt, server_key, client_crt, client_key, wrong_ca_crt;

  explicit Pki(const fs::path& d) : dir(d) {
    fs::create_directories(dir);
    chmod(dir.c_str(), 0755);
    ca_crt = dir / "ca.crt";
    ca_key = dir / "ca.key";
    server_crt = dir / "server.crt";
    server_key = dir / "server.key";
    client_crt = dir / "client.crt";
    client_key = dir / "client.key";
    wrong_ca_crt = dir / "wrong-ca.crt";
    const std::string d_ = dir.string();
    const std::string ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    Run("openssl req -x509 " + ec + " -keyout " + d_ + "/ca.key -out " + d_ +
        "/ca.crt -days 2 -subj '/CN=storegw test CA'");
    Run("openssl req -x509 " + ec + " -keyout " + d_ + "/wrong-ca.key -out " + d_ +
        "/wrong-ca.crt -days 2 -subj '/CN=storegw test CA'");
    WriteFile(dir / "server.ext", "subjectAltName=IP:127.0.0.1\n");
    WriteFile(dir / "client.ext", "extendedKeyUsage=clientAuth\n");
    for (const char* who : {"server", "client"}) {
      const std::string w = who;
      Run("openssl req " + ec + " -keyout " + d_ + "/" + w + ".key -out " + d_ + "/" + w +
          ".csr -subj '/CN=storegw-test-" + w + "'");
      Run("openssl x509 -req -in " + d_ + "/" + w + ".csr -CA " + d_ + "/ca.crt -CAkey " + d_ +
          "/ca.key -CAcreateserial -days 2 -out " + d_ + "/" + w + ".crt -extfile " + d_ + "/" + w +
          ".ext");
    }
    for (const auto& e : fs::directory_iterator(dir)) chmod(e.path().c_str(), 0644);
  }

  static void Run(const std::string& cmd) {
    if (std::system((cmd + " >/dev/null 2>&1").c_str()) != 0) {
      throw std::runtime_error("failed: " + cmd);
    }
  }
};

// ------------------------------------------------------------ journal

inline storage::JournalOptions TestJournalOptions(const fs::path& dir) {
  storage::JournalOptions o;
  o.data_dir = dir;
  o.store_id = "store-0001";
  o.gateway_id = "gw-01";
  return o;
}

inline std::string EventId(uint64_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "ev-%08llu", static_cast<unsigned long long>(i));
  return buf;
}

// A till sale of one or two lines, about 100 bytes stored.
inline v1::Event SaleEvent(uint64_t i) {
  v1::Event e;
  e.set_event_id(EventId(i));
  e.set_device_id("till-" + std::to_string(1 + i % 4));
  e.set_occurred_at(1767225600000000 + static_cast<int64_t>(i) * 1000);
  auto* sale = e.mutable_sale();
  sale->set_basket_id("b-" + std::to_string(i));
  sale->set_tender(i % 3 ? "card" : "cash");
  auto* l = sale->add_lines();
  l->set_sku("sku-" + std::to_string(1000 + i % 500));
  l->set_qty(1 + static_cast<int64_t>(i % 3));
  l->set_unit_price(199 + static_cast<int64_t>(i % 700));
  l->set_currency("EUR");
  if (i % 4 == 0) {
    auto* l2 = sale->add_lines();
    l2->set_sku("sku-" + std::to_string(2000 + i % 300));
    l2->set_qty(1);
    l2->set_unit_price(99);
    l2->set_currency("EUR");
  }
  return e;
}

// Appends events number first..first+n-1 (event ids ev-NNNNNNNN) in
// device batches of `chunk`. Returns false (and the reason) on failure.
inline std::string AppendSales(storage::Journal& j, uint64_t first, uint64_t n,
                               size_t chunk = 500) {
  for (uint64_t i = 0; i < n;) {
    std::vector<v1::Event> evs;
    for (size_t k = 0; k < chunk && i < n; ++k, ++i) evs.push_back(SaleEvent(first + i));
    auto r = j.Append(std::move(evs));
    if (!r.ok()) return r.status().ToString();
  }
  return "";
}

// ------------------------------------------------------------ HQ publisher

// HQ's side of the downlink: publishes to {prefix}/{store_id}/downstream/
// stock|prices with QoS 1 and waits for the broker's PUBACK.
class HqPublisher {
 public:
  HqPublisher(const std::string& url, std::string prefix, std::string store_id)
      : base_(prefix + "/" + store_id + "/downstream/") {
    mqtt::create_options co(MQTTVERSION_5);
    cli_ = std::make_unique<mqtt::async_client>(url, "hq-publisher-" + std::to_string(getpid()), co,
                                                nullptr);
    opts_ =
        mqtt::connect_options_builder().mqtt_version(MQTTVERSION_5).clean_start(true).finalize();
    if (!cli_->connect(opts_)->wait_for(10s)) throw std::runtime_error("HQ publisher: connect");
  }
  ~HqPublisher() {
    try {
      cli_->disconnect(0)->wait_for(2s);
    } catch (...) {
    }
  }
  HqPublisher(const HqPublisher&) = delete;
  HqPublisher& operator=(const HqPublisher&) = delete;

  // "stock" or "prices". Throws when the broker does not acknowledge it.
  void Publish(const std::string& kind, const std::string& payload) {
    if (!PublishNoWait(kind, payload)->wait_for(20s)) {
      throw std::runtime_error("HQ publisher: no PUBACK for " + kind);
    }
  }
  // Without waiting for the PUBACK: for a test whose gateway holds Paho C's
  // receive thread (shared by every client of the process) while it
  // applies the message.
  mqtt::delivery_token_ptr PublishNoWait(const std::string& kind, const std::string& payload) {
    return cli_->publish(base_ + kind, payload.data(), payload.size(), 1, false);
  }
  void Stock(const v1::StockSnapshot& s) { Publish("stock", s.SerializeAsString()); }
  void Price(const v1::PriceUpdate& p) { Publish("prices", p.SerializeAsString()); }

 private:
  std::string base_;
  std::unique_ptr<mqtt::async_client> cli_;
  mqtt::connect_options opts_;
};

// ------------------------------------------------------------ HQ consumer

// What head office does with the events topic: dedupe on (gateway_id,
// epoch, seq), apply each event once and in order, never apply past a gap
// (an arrival beyond applied+1 is stored and counted in gaps(), and
// applied when the gap fills, as storegw-hq does: the live lane sends new
// events ahead of a backlog), check every batch's framing, and in ack mode
// publish HqAck (the contiguous prefix) after applying. Connects directly to the broker (never through the proxy) and
// re-subscribes after every reconnect.
class HqConsumer {
 public:
  struct Options {
    std::string url;  // tcp://127.0.0.1:PORT
    std::string prefix = "retail/v1";
    std::string store_id = "store-0001";
    std::string gateway_id = "gw-01";
    bool send_acks = false;       // publish HqAck after each applied batch
    size_t max_batch_events = 0;  // 0: not checked
    size_t max_batch_bytes = 0;   // 0: not checked
  };

  struct Stream {
    uint64_t applied = 0;                // every seq <= applied is applied, exactly once
    std::vector<std::string> event_ids;  // index seq-1
    std::map<uint64_t, std::string> ahead;  // stored past a gap: seq -> event_id
  };

  explicit HqConsumer(Options o) : o_(std::move(o)) {
    base_ = o_.prefix + "/" + o_.store_id + "/" + o_.gateway_id;
    mqtt::create_options co(MQTTVERSION_5);
    cli_ = std::make_unique<mqtt::async_client>(
        o_.url, "hq-consumer-" + std::to_string(getpid()) + "-" + std::to_string(++Counter()), co,
        nullptr);
    cli_->set_message_callback([this](mqtt::const_message_ptr m) { OnMessage(m); });
    cli_->set_connected_handler([this](const std::string&) {
      // Also after automatic reconnects (fresh session): subscribe again.
      try {
        cli_->subscribe(base_ + "/events", 1);
        cli_->subscribe(base_ + "/status", 1);
      } catch (...) {
      }
      ++connected_count_;
    });
    auto opts =
        mqtt::connect_options_builder()
            .mqtt_version(MQTTVERSION_5)
            .clean_start(true)
            .automatic_reconnect(std::chrono::milliseconds(50), std::chrono::milliseconds(200))
            .keep_alive_interval(std::chrono::seconds(5))
            .finalize();
    conn_opts_ = opts;
    if (!cli_->connect(conn_opts_)->wait_for(10s)) {
      throw std::runtime_error("HQ consumer: connect to " + o_.url + " timed out");
    }
    // Subscribed once the SUBACKs are in.
    auto t = cli_->subscribe(base_ + "/events", 1);
    t->wait_for(10s);
    auto t2 = cli_->subscribe(base_ + "/status", 1);
    t2->wait_for(10s);
  }

  ~HqConsumer() {
    try {
      cli_->disconnect(0)->wait_for(2s);
    } catch (...) {
    }
  }

  void PauseAcks(bool paused) { acks_paused_ = paused; }
  // Called (on Paho's thread) after each applied batch with the new applied seq.
  void set_on_applied(std::function<void(uint64_t)> cb) {
    std::lock_guard lk(mu_);
    on_applied_ = std::move(cb);
  }

  uint64_t applied() const {
    std::lock_guard lk(mu_);
    for (const auto& [k, s] : streams_) return s.applied;
    return 0;
  }
  uint64_t duplicates() const { return duplicates_.load(); }
  uint64_t gaps() const { return gaps_.load(); }  // batches that arrived past a gap
  uint64_t columnar_batches() const { return columnar_.load(); }
  // Called (on Paho's thread) with every decoded batch, after it was applied.
  void set_on_batch(std::function<void(const v1::EventBatch&)> cb) {
    std::lock_guard lk(mu_);
    on_batch_ = std::move(cb);
  }
  // Events that arrived past a gap, with HQ's applied seq when they came.
  std::vector<std::pair<uint64_t, uint64_t>> ahead_arrivals() const {
    std::lock_guard lk(mu_);
    return ahead_arrivals_;
  }
  uint64_t batches() const { return batches_.load(); }
  uint64_t events_received() const { return events_received_.load(); }
  uint64_t bytes_received() const { return bytes_received_.load(); }
  uint64_t compressed_batches() const { return compressed_.load(); }
  uint64_t zstd_batches() const { return zstd_.load(); }
  size_t streams() const {
    std::lock_guard lk(mu_);
    return streams_.size();
  }
  std::vector<std::string> errors() const {
    std::lock_guard lk(mu_);
    return errors_;
  }
  std::vector<v1::GatewayStatus> statuses() const {
    std::lock_guard lk(mu_);
    return statuses_;
  }
  // The applied stream of the only (gateway, epoch) seen.
  Stream stream() const {
    std::lock_guard lk(mu_);
    return streams_.empty() ? Stream{} : streams_.begin()->second;
  }

  // Checks what HQ applied against a journal export (`storegw journal
  // export`, seq order): the same events, every seq exactly once, in order.
  std::string Verify(const std::vector<v1::JournaledEvent>& exported) const {
    std::lock_guard lk(mu_);
    if (!errors_.empty()) return "consumer error: " + errors_.front();
    if (streams_.size() != 1) return "expected one stream, got " + std::to_string(streams_.size());
    const Stream& s = streams_.begin()->second;
    if (s.applied != exported.size()) {
      return "applied " + std::to_string(s.applied) + " of " + std::to_string(exported.size());
    }
    for (size_t i = 0; i < exported.size(); ++i) {
      if (exported[i].seq() != i + 1) return "export gap at index " + std::to_string(i);
      if (s.event_ids[i] != exported[i].event().event_id()) {
        return "seq " + std::to_string(i + 1) + " carries " + s.event_ids[i] +
               ", the journal has " + exported[i].event().event_id();
      }
    }
    return "";
  }

  // Checks what HQ applied against the journal itself: the same epoch,
  // every seq 1..last_seq exactly once and in order, each carrying the
  // journal's event (device events and the gateway's own alerts alike).
  // Returns "" or what is wrong.
  std::string Verify(storage::Journal& j) const {
    std::lock_guard lk(mu_);
    if (!errors_.empty()) return "consumer error: " + errors_.front();
    if (streams_.size() != 1) return "expected one stream, got " + std::to_string(streams_.size());
    if (streams_.begin()->first.second != j.epoch()) return "wrong epoch";
    const Stream& s = streams_.begin()->second;
    const uint64_t n = j.Stats().last_seq;
    if (s.applied != n) return "applied " + std::to_string(s.applied) + " of " + std::to_string(n);
    for (uint64_t seq = 1; seq <= n;) {
      auto r = j.ReadEvents(seq, 5000, 64u << 20);
      if (!r.ok() || r->empty()) return "journal read failed at " + std::to_string(seq);
      for (const auto& je : *r) {
        if (je.seq() != seq) return "journal gap at " + std::to_string(seq);
        if (s.event_ids[seq - 1] != je.event().event_id()) {
          return "seq " + std::to_string(seq) + " carries " + s.event_ids[seq - 1] +
                 ", the journal has " + je.event().event_id();
        }
        ++seq;
      }
    }
    return "";
  }

 private:
  static int& Counter() {
    static int c = 0;
    return c;
  }

  void OnMessage(mqtt::const_message_ptr m) {
    const std::string& topic = m->get_topic();
    const auto& p = m->get_payload();
    if (topic == base_ + "/status") {
      v1::GatewayStatus st;
      std::lock_guard lk(mu_);
      if (!st.ParseFromArray(p.data(), static_cast<int>(p.size()))) {
        errors_.push_back("undecodable status");
      } else {
        statuses_.push_back(st);
      }
      return;
    }
    if (topic != base_ + "/events") return;
    bytes_received_ += p.size();
    // A compressed batch says so in its MQTT 5 properties.
    std::string inflated;
    std::string_view body(p.data(), p.size());
    const auto& props = m->get_properties();
    bool deflated = false, zstd = false;
    for (size_t i = 0; i < props.count(mqtt::property::USER_PROPERTY); ++i) {
      auto kv = mqtt::get<mqtt::string_pair>(props, mqtt::property::USER_PROPERTY, i);
      if (std::get<0>(kv) == "content-encoding" && std::get<1>(kv) == "deflate") deflated = true;
      if (std::get<0>(kv) == "content-encoding" && std::get<1>(kv) == "zstd") zstd = true;
    }
    if (deflated || zstd) {
      auto r = zstd ? sync::ZstdDecompress(body) : sync::Inflate(body);
      if (!r.ok()) {
        std::lock_guard lk(mu_);
        errors_.push_back("undecodable compressed batch: " + r.status().ToString());
        return;
      }
      inflated = std::move(*r);
      body = inflated;
      ++compressed_;
      if (zstd) ++zstd_;
    } else if (!body.empty() && static_cast<uint8_t>(body[0]) == 0x78) {
      std::lock_guard lk(mu_);
      errors_.push_back("a zlib payload without content-encoding");
      return;
    }
    v1::EventBatch b;
    uint64_t applied_now = 0;
    uint64_t epoch = 0;
    std::function<void(uint64_t)> cb;
    std::function<void(const v1::EventBatch&)> on_batch;
    {
      std::lock_guard lk(mu_);
      if (sync::IsColumnar(body)) {
        auto d = sync::DecodeColumnar(body);
        if (!d.ok()) {
          errors_.push_back("undecodable columnar batch: " + d.status().ToString());
          return;
        }
        b = std::move(*d);
        ++columnar_;
      } else if (!b.ParseFromArray(body.data(), static_cast<int>(body.size()))) {
        errors_.push_back("undecodable batch");
        return;
      }
      on_batch = on_batch_;
      ++batches_;
      events_received_ += static_cast<uint64_t>(b.events_size());
      if (b.events_size() == 0) errors_.push_back("empty batch");
      if (b.store_id() != o_.store_id || b.gateway_id() != o_.gateway_id) {
        errors_.push_back("batch for " + b.store_id() + "/" + b.gateway_id());
      }
      if (o_.max_batch_events && static_cast<size_t>(b.events_size()) > o_.max_batch_events) {
        errors_.push_back("batch of " + std::to_string(b.events_size()) + " events");
      }
      if (o_.max_batch_bytes && body.size() > o_.max_batch_bytes && b.events_size() > 1) {
        errors_.push_back("batch of " + std::to_string(body.size()) + " bytes");
      }
      if (b.events_size() > 0 &&
          (b.events(0).seq() != b.first_seq() ||
           b.events(b.events_size() - 1).seq() != b.last_seq() ||
           b.last_seq() - b.first_seq() + 1 != static_cast<uint64_t>(b.events_size()))) {
        errors_.push_back("batch " + std::to_string(b.first_seq()) + ".." +
                          std::to_string(b.last_seq()) + " is not one contiguous range");
      }
      auto& s = streams_[{b.gateway_id(), b.epoch()}];
      bool past_gap = false;
      for (int i = 0; i < b.events_size(); ++i) {
        const auto& je = b.events(i);
        if (i > 0 && je.seq() != b.events(i - 1).seq() + 1) {
          errors_.push_back("seqs out of order inside a batch at " + std::to_string(je.seq()));
        }
        if (je.seq() <= s.applied || s.ahead.count(je.seq())) {
          ++duplicates_;  // dedupe on (gateway_id, epoch, seq)
        } else if (je.seq() == s.applied + 1) {
          s.applied = je.seq();
          s.event_ids.push_back(je.event().event_id());
        } else {
          // Stored past a gap; applied once the gap fills.
          past_gap = true;
          s.ahead.emplace(je.seq(), je.event().event_id());
          ahead_arrivals_.push_back({je.seq(), s.applied});
        }
        while (!s.ahead.empty() && s.ahead.begin()->first == s.applied + 1) {
          s.applied += 1;
          s.event_ids.push_back(std::move(s.ahead.begin()->second));
          s.ahead.erase(s.ahead.begin());
        }
      }
      if (past_gap) ++gaps_;
      applied_now = s.applied;
      epoch = b.epoch();
      cb = on_applied_;
    }
    if (o_.send_acks && !acks_paused_) {
      v1::HqAck ack;
      ack.set_epoch(epoch);
      ack.set_seq(applied_now);
      ack.set_gateway_id(o_.gateway_id);
      std::string out;
      ack.SerializeToString(&out);
      try {
        cli_->publish(base_ + "/ack", out.data(), out.size(), 1, false);
      } catch (...) {
      }
    }
    if (cb) cb(applied_now);
    if (on_batch) on_batch(b);
  }

  Options o_;
  std::string base_;
  std::unique_ptr<mqtt::async_client> cli_;
  mqtt::connect_options conn_opts_;
  mutable std::mutex mu_;
  std::map<std::pair<std::string, uint64_t>, Stream> streams_;
  std::vector<std::string> errors_;
  std::vector<v1::GatewayStatus> statuses_;
  std::function<void(uint64_t)> on_applied_;
  std::function<void(const v1::EventBatch&)> on_batch_;
  std::vector<std::pair<uint64_t, uint64_t>> ahead_arrivals_;
  std::atomic<uint64_t> columnar_{0};
  std::atomic<uint64_t> duplicates_{0}, gaps_{0}, batches_{0}, events_received_{0},
      bytes_received_{0}, compressed_{0}, zstd_{0};
  std::atomic<int> connected_count_{0};
  std::atomic<bool> acks_paused_{false};
};

}  // namespace storegw::sync_test
