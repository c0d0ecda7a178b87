// The MQTT transport: Paho MQTT C++ 1.2 async_client over Paho C 1.3.
//
// What it relies on, and why (the library facts are also listed in
// sync/README.md):
//   * No Paho persistence (the iclient_persistence* constructor with
//     nullptr) and no offline buffer (send_while_disconnected off): the
//     journal is the only store; a publish while disconnected fails at once.
//   * The engine keeps at most max_pending_sends() publishes outstanding,
//     far below Paho's 100-command buffer, and refills as acknowledgements
//     arrive: handing Paho thousands of messages stalls its send thread.
//   * Each publish gets a per-message listener whose user context is the
//     engine's send id. Success still needs the v5 reason code checked: a
//     PUBACK with 0x80+ (e.g. 0x95 packet too large, 0x87 not authorized)
//     arrives as rc 0.
//   * One client per connection attempt, destroyed by the engine thread
//     (never inside a Paho callback): the known reconnect leaks, double
//     callbacks and connect deadlocks of these versions cannot poison the
//     next connection. Paho's automatic reconnect is off.
//   * Callbacks reach the engine through Shared. A callback takes the
//     listener pointer under Shared's mutex and counts itself busy, then
//     calls the listener without holding the mutex; Close() clears the
//     pointer and waits until no callback is busy. So after Close() returns
//     no callback touches the engine, even if Paho calls one late, and a
//     long callback (a downstream apply) never holds the mutex that other
//     callbacks and Close() need.
//   * Batches are zlib-compressed when the broker speaks MQTT 5 (marked
//     with content-type and a content-encoding user property).
//   * The TLS error_handler is not used: its context dangles in 1.2 (see
//     net_probe.h); failures are diagnosed with our own probes instead.
//   * The connect_options object lives as long as the client (the C++
//     library keeps pointers into it: eclipse/paho.mqtt.cpp#325), and
//     carries the persistent session of the downstream subscriptions:
//     clean_start false + Session Expiry Interval set with set_properties
//     on that very object (properties given to the builder are lost:
//     eclipse/paho.mqtt.cpp#445). The client id is stable
//     (storegw-{store}-{gateway}), so every fresh client the engine builds
//     resumes the same broker session.
//   * Downstream messages: MQTTAsync in Paho C 1.3.12 sends the PUBACK of
//     an incoming QoS 1 PUBLISH only after the message callback returned
//     (measured against mosquitto's protocol log: a callback that sleeps
//     4 s gets its PUBACK to the broker 4 s later; the old synchronous
//     client acked first, eclipse/paho.mqtt.cpp#353). The daemon's sink
//     (Downstream::Submit) applies the message inside the callback, so the
//     broker keeps and redelivers a message until its change is committed.
//     The receive thread is busy meanwhile (about 0.3 s for a 50,000-line
//     snapshot; uplink PUBACKs wait, the keep-alive is far away), and Paho
//     C holds its own lock, shared by every client in the process, for the
//     whole callback: no publish, disconnect or destroy of any client
//     proceeds until it returns. That is why Uplink::Stop() first asks the
//     sink to stop retrying (its stop token): the apply returns after the
//     attempt under way (a message it gives up on is counted as refused
//     and acknowledged, as after its last retry), and Close() then gets
//     through. Close() waits for the callback however long it takes (it
//     must: the client cannot be destroyed under a running callback, and
//     the sink uses objects the caller frees after Stop()), and says so in
//     the log while it waits.
#include "mqtt_transport.h"

#include <mqtt/async_client.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "columnar.h"
#include "compress.h"
#include "net_probe.h"
#include "storegw/v1/storegw.pb.h"

namespace storegw::sync {
namespace {

using SteadyClock = std::chrono::steady_clock;

std::string Hex2(int v) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "0x%02X", v & 0xff);
  return buf;
}

// "packet too large (0x95)"
std::string ReasonText(int reason) {
  const char* s = MQTTReasonCode_toString(static_cast<MQTTReasonCodes>(reason));
  std::string name = s ? s : "reason";
  for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return name + " (" + Hex2(reason) + ")";
}

// MQTT 3.1.1 CONNACK return codes.
std::string V3ConnackText(int rc) {
  switch (rc) {
    case 1:
      return "unacceptable protocol version (1)";
    case 2:
      return "client identifier rejected (2)";
    case 3:
      return "server unavailable (3)";
    case 4:
      return "bad user name or password (4)";
    case 5:
      return "not authorized (5)";
    default:
      return "return code " + std::to_string(rc);
  }
}

std::string PahoText(int rc) {
  const char* s = MQTTAsync_strerror(rc);
  return std::string(s ? s : "error") + " (paho rc " + std::to_string(rc) + ")";
}

struct Shared {
  std::mutex mu;
  std::condition_variable idle;           // busy dropped to 0
  TransportListener* listener = nullptr;  // null: closed, drop callbacks
  int busy = 0;                           // callbacks calling the listener now
  std::string server_disconnect;          // v5 DISCONNECT reason from the broker
  // Set before the client exists, read-only afterwards.
  std::string ack_topic;
  std::string stock_topic;   // {prefix}/{store_id}/downstream/stock
  std::string prices_topic;  // {prefix}/{store_id}/downstream/prices
  std::string rules_topic;   // {prefix}/{store_id}/downstream/rules
  std::string url;
};

// The listener of an open transport, held for one callback without the
// mutex: Close() waits until every BusyListener is gone.
class BusyListener {
 public:
  explicit BusyListener(Shared& s) : s_(s) {
    std::lock_guard lk(s_.mu);
    l_ = s_.listener;
    if (l_) ++s_.busy;
  }
  ~BusyListener() {
    if (!l_) return;
    std::lock_guard lk(s_.mu);
    if (--s_.busy == 0) s_.idle.notify_all();
  }
  BusyListener(const BusyListener&) = delete;
  BusyListener& operator=(const BusyListener&) = delete;

  explicit operator bool() const { return l_ != nullptr; }
  TransportListener* operator->() const { return l_; }

 private:
  Shared& s_;
  TransportListener* l_;
};

class Callbacks final : public mqtt::callback, public mqtt::iaction_listener {
 public:
  explicit Callbacks(std::shared_ptr<Shared> s) : s_(std::move(s)) {}

  void connection_lost(const std::string& cause) override {
    std::string why = "connection to " + s_->url + " lost";
    {
      std::lock_guard lk(s_->mu);
      if (!s_->server_disconnect.empty()) {
        why += ": broker disconnected us: " + s_->server_disconnect;
      } else if (!cause.empty()) {
        why += ": " + cause;
      }
    }
    if (BusyListener l(*s_); l) l->OnLinkLost(Status::Unavailable(why));
  }

  void message_arrived(mqtt::const_message_ptr msg) override {
    if (!msg) return;
    const std::string& topic = msg->get_topic();
    if (topic == s_->stock_topic || topic == s_->prices_topic || topic == s_->rules_topic) {
      const DownstreamKind kind = topic == s_->stock_topic    ? DownstreamKind::kStock
                                  : topic == s_->prices_topic ? DownstreamKind::kPrices
                                                              : DownstreamKind::kRules;
      // Applied here, without our mutex (see the top of this file).
      if (BusyListener l(*s_); l) l->OnDownstream(kind, msg->get_payload_str());
      return;
    }
    if (topic != s_->ack_topic) return;
    const auto& p = msg->get_payload();
    v1::HqAck ack;
    if (!ack.ParseFromArray(p.data(), static_cast<int>(p.size()))) {
      spdlog::warn("uplink: ignoring an undecodable HqAck on {} ({} bytes)", s_->ack_topic,
                   p.size());
      return;
    }
    if (BusyListener l(*s_); l) l->OnHqAck(ack.epoch(), ack.seq(), ack.gateway_id());
  }

  // Per-publish listener (user context = the engine's send id).
  void on_success(const mqtt::token& tok) override {
    const uint64_t id = reinterpret_cast<uintptr_t>(tok.get_user_context());
    const int reason = tok.get_reason_code();
    Status st;
    if (reason >= 0x80 && reason != mqtt::ReasonCode::MQTTPP_V3_CODE) st = Refused(reason);
    if (BusyListener l(*s_); l) l->OnSendDone(id, std::move(st));
  }

  void on_failure(const mqtt::token& tok) override {
    const uint64_t id = reinterpret_cast<uintptr_t>(tok.get_user_context());
    const int rc = tok.get_return_code();
    const int reason = tok.get_reason_code();
    Status st;
    if (reason >= 0x80 && reason != mqtt::ReasonCode::MQTTPP_V3_CODE) {
      st = Refused(reason);
    } else if (rc == MQTTASYNC_OPERATION_INCOMPLETE || rc == MQTTASYNC_DISCONNECTED) {
      st = Status::Unavailable("connection lost before the broker acknowledged it");
    } else {
      st = Status::Unavailable("publish failed: " + PahoText(rc));
    }
    if (BusyListener l(*s_); l) l->OnSendDone(id, std::move(st));
  }

 private:
  // A PUBACK with a failure reason. "Packet too large" / "quota exceeded"
  // are kResourceExhausted: the engine makes its batches smaller.
  static Status Refused(int reason) {
    const std::string why = "broker refused it: " + ReasonText(reason);
    if (reason == 0x95 || reason == 0x97) return Status::ResourceExhausted(why);
    return Status::Unavailable(why);
  }

  std::shared_ptr<Shared> s_;
};

class MqttTransport final : public Transport {
 public:
  MqttTransport(const UplinkOptions& o, const TransportIdentity& id, BrokerUrl url,
                std::shared_ptr<std::atomic<int>> version_hint)
      : opt_(o),
        url_(std::move(url)),
        hint_(std::move(version_hint)),
        shared_(std::make_shared<Shared>()),
        cb_(std::make_unique<Callbacks>(shared_)) {
    const std::string base = o.topic_prefix + "/" + id.store_id + "/" + id.gateway_id;
    events_topic_ = mqtt::string_ref(base + "/events");
    status_topic_ = mqtt::string_ref(base + "/status");
    shared_->ack_topic = base + "/ack";
    shared_->stock_topic = o.topic_prefix + "/" + id.store_id + "/downstream/stock";
    shared_->prices_topic = o.topic_prefix + "/" + id.store_id + "/downstream/prices";
    shared_->rules_topic = o.topic_prefix + "/" + id.store_id + "/downstream/rules";
    shared_->url = o.url;
    codec_ = ParseCompression(o.compression).value_or(Compression::kNone);
    level_ = DefaultLevel(codec_, o.compression_level);
    columnar_ = o.batch_encoding == "columnar";
  }

  ~MqttTransport() override { Close(std::nullopt); }

  Status Connect(TransportListener* listener, const ConnectRequest& req) override {
    {
      std::lock_guard lk(shared_->mu);
      shared_->listener = listener;
    }
    const int first = hint_->load() == 4 ? 4 : 5;
    bool fallback = false;
    Status s = TryConnect(first, req, &fallback);
    if (!s.ok() && first == 5 && fallback) {
      spdlog::info("uplink: {} refused MQTT 5 ({}); trying MQTT 3.1.1", url_.host_port(),
                   s.message());
      s = TryConnect(4, req, nullptr);
      if (s.ok()) hint_->store(4);
    }
    if (!s.ok()) return s;
    if (req.want_hq_acks) {
      if (Status sub = Subscribe(shared_->ack_topic, req); !sub.ok()) return sub;
    }
    if (req.want_downstream) {
      // A broker that refuses them (ACL) must not stop the uplink: say so
      // loudly and keep sending.
      for (const std::string* topic :
           {&shared_->stock_topic, &shared_->prices_topic, &shared_->rules_topic}) {
        if (Status sub = Subscribe(*topic, req); !sub.ok()) {
          if (sub.code() != StatusCode::kPermissionDenied) return sub;
          const char* what = topic == &shared_->stock_topic    ? "stock snapshots"
                             : topic == &shared_->prices_topic ? "prices"
                                                               : "hold times and sensor limits";
          spdlog::error("downstream: {}: HQ's {} will not reach this store", sub.message(), what);
        }
      }
    }
    return {};
  }

  // Subscribes to `topic` with QoS 1 and waits for the SUBACK.
  Status Subscribe(const std::string& topic, const ConnectRequest& req) {
    try {
      auto tok = cli_->subscribe(topic, 1);
      if (!WaitToken(*tok, req)) {
        return Status::Unavailable("subscribing to " + topic + " timed out");
      }
      if (version_ == 5) {
        const mqtt::subscribe_response rsp = tok->get_subscribe_response();
        const std::vector<mqtt::ReasonCode> codes = rsp.get_reason_codes();
        for (auto rc : codes) {
          if (rc >= 0x80) {
            return Status::PermissionDenied("broker refused the subscription to " + topic + ": " +
                                            ReasonText(rc));
          }
        }
      }
    } catch (const mqtt::exception& e) {
      return Status::Unavailable("subscribing to " + topic + " failed: " + std::string(e.what()));
    }
    return {};
  }

  Status Send(uint64_t id, std::string payload) override {
    if (!cli_) return Status::Unavailable("not connected");
    try {
      mqtt::message_ptr msg;
      payload = WireBatch(std::move(payload), columnar_);
      if (codec_ != Compression::kNone && version_ == 5) {
        // Only MQTT 5 can say the payload is compressed (properties).
        auto z = Compress(codec_, payload, level_);
        if (!z.ok()) return z.status();
        msg = mqtt::make_message(events_topic_, mqtt::binary_ref(std::move(*z)), 1, false);
        msg->set_properties(codec_props_);
      } else {
        msg = mqtt::make_message(events_topic_, mqtt::binary_ref(std::move(payload)), 1, false);
      }
      cli_->publish(msg, reinterpret_cast<void*>(static_cast<uintptr_t>(id)), *cb_);
    } catch (const mqtt::exception& e) {
      return Status::Unavailable("publish to " + std::string(events_topic_.str()) +
                                 " failed: " + PahoText(e.get_return_code()));
    }
    return {};
  }

  Status PublishStatus(std::string payload) override {
    if (!cli_) return Status::Unavailable("not connected");
    try {
      cli_->publish(
          mqtt::make_message(status_topic_, mqtt::binary_ref(std::move(payload)), 1, true));
    } catch (const mqtt::exception& e) {
      return Status::Unavailable("status publish failed: " + PahoText(e.get_return_code()));
    }
    return {};
  }

  void Close(const std::optional<std::string>& final_status) override {
    if (!cli_) {
      Detach();
      return;
    }
    // The listener stays attached until the DISCONNECT is out: a downstream
    // message that arrives meanwhile is still applied.
    try {
      if (cli_->is_connected()) {
        if (final_status) {
          auto tok = cli_->publish(
              mqtt::make_message(status_topic_, mqtt::binary_ref(*final_status), 1, true));
          tok->wait_for(std::chrono::seconds(1));
        }
        // No quiesce: unacknowledged batches are resent from the journal.
        auto tok = cli_->disconnect(0);
        tok->wait_for(std::chrono::seconds(1));
      }
    } catch (const std::exception& e) {
      spdlog::debug("uplink: disconnect: {}", e.what());
    }
    Detach();
    cli_.reset();
  }

  size_t max_pending_sends() const override { return 64; }

  std::string protocol() const override {
    return std::string(version_ == 5 ? "MQTT 5" : "MQTT 3.1.1") + (url_.tls() ? " over TLS" : "");
  }
  int protocol_version() const override { return version_; }

 private:
  // No callback reaches the listener after this returns: clears it, then
  // waits for the callbacks still calling it (a downstream apply may take
  // a while: its sink was asked to stop retrying by Uplink::Stop(), or
  // this is a reconnect and it finishes on its own).
  void Detach() {
    std::unique_lock lk(shared_->mu);
    shared_->listener = nullptr;
    const auto since = SteadyClock::now();
    while (
        !shared_->idle.wait_for(lk, std::chrono::seconds(2), [&] { return shared_->busy == 0; })) {
      spdlog::warn(
          "uplink: closing the connection to {}: waiting for a downstream message being "
          "applied ({} ms so far)",
          shared_->url,
          std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - since)
              .count());
    }
  }

  // Waits for `tok` in short slices so Stop() can abandon it; false on
  // timeout or cancel; throws mqtt::exception when it failed.
  bool WaitToken(mqtt::token& tok, const ConnectRequest& req) {
    const auto deadline = SteadyClock::now() + opt_.connect_timeout + std::chrono::seconds(1);
    while (!tok.wait_for(std::chrono::milliseconds(50))) {
      if (req.cancel && req.cancel->load()) return false;
      if (SteadyClock::now() >= deadline) return false;
    }
    return true;
  }

  Status TryConnect(int version, const ConnectRequest& req, bool* fallback) {
    cli_.reset();
    {
      std::lock_guard lk(shared_->mu);
      shared_->server_disconnect.clear();
    }
    version_ = version;
    const int paho_version = version == 5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1;
    try {
      // No persistence (nullptr), no offline buffering (the default of
      // create_options: send_while_disconnected off).
      mqtt::create_options create(paho_version);
      cli_ = std::make_unique<mqtt::async_client>(url_.paho_uri(), opt_.client_id, create, nullptr);
      cli_->set_callback(*cb_);
      // Built only once a client exists: Paho C's allocation tracking
      // (initialized with the first client) otherwise reports the
      // property copies as leaks under ASan.
      if (codec_ != Compression::kNone && codec_props_.empty()) {
        codec_props_.add({mqtt::property::CONTENT_TYPE, std::string(kBatchContentType)});
        codec_props_.add({mqtt::property::USER_PROPERTY, std::string(kContentEncodingKey),
                          std::string(CompressionName(codec_))});
      }
      std::weak_ptr<Shared> weak = shared_;
      cli_->set_disconnected_handler([weak](const mqtt::properties&, mqtt::ReasonCode rc) {
        if (auto s = weak.lock()) {
          std::lock_guard lk(s->mu);
          s->server_disconnect = ReasonText(rc);
        }
      });

      mqtt::connect_options_builder b;
      b.mqtt_version(paho_version)
          .keep_alive_interval(std::chrono::duration_cast<std::chrono::seconds>(opt_.keep_alive))
          .connect_timeout(std::chrono::duration_cast<std::chrono::seconds>(opt_.connect_timeout))
          .automatic_reconnect(false);
      // Downstream subscriptions want a persistent session (what HQ sends
      // while the link is down waits at the broker); otherwise a fresh
      // session per connection.
      const bool persistent = req.want_downstream && opt_.session_expiry.count() > 0;
      if (version == 5) {
        b.clean_start(!persistent);
      } else {
        b.clean_session(!persistent);
      }
      if (!opt_.username.empty()) b.user_name(opt_.username);
      if (!opt_.password.empty()) b.password(opt_.password);
      if (!req.will_payload.empty()) {
        b.will(mqtt::will_options(status_topic_, mqtt::binary_ref(req.will_payload), 1, true));
      }
      conn_opts_ = b.finalize();
      if (persistent && version == 5) {
        // On conn_opts_ itself, which outlives the connect (see the top).
        const auto secs = std::chrono::duration_cast<std::chrono::seconds>(opt_.session_expiry);
        mqtt::properties props;
        // A four-byte integer property; Paho C++ takes it as int32_t (the
        // bits are what go on the wire: modular conversion, C++20).
        const auto expiry = static_cast<uint32_t>(std::min<int64_t>(secs.count(), 0xFFFFFFFE));
        props.add({mqtt::property::SESSION_EXPIRY_INTERVAL, static_cast<int32_t>(expiry)});
        conn_opts_.set_properties(props);
      }
      if (url_.tls()) {
        // No error_handler: with Paho C++ 1.2 its context dangles (see
        // net_probe.h); a failed handshake is diagnosed by TlsProbe.
        mqtt::ssl_options ssl;
        if (!opt_.tls.ca_file.empty()) ssl.set_trust_store(opt_.tls.ca_file);
        if (!opt_.tls.cert_file.empty()) ssl.set_key_store(opt_.tls.cert_file);
        if (!opt_.tls.key_file.empty()) ssl.set_private_key(opt_.tls.key_file);
        ssl.set_enable_server_cert_auth(true);
        ssl.set_verify(true);  // host name / IP check: off by default in Paho
        conn_opts_.set_ssl(std::move(ssl));
      }

      auto tok = cli_->connect(conn_opts_);
      if (!WaitToken(*tok, req)) {
        if (req.cancel && req.cancel->load()) return Status::Unavailable("uplink stopping");
        return Status::Unavailable(
            "connecting to " + opt_.url + " timed out after " +
            std::to_string(opt_.connect_timeout.count()) + " ms" +
            (url_.tls() ? " (TCP, TLS handshake or CONNACK)" : " (TCP or CONNACK)"));
      }
      return {};
    } catch (const mqtt::exception& e) {
      return ConnectError(e.get_return_code(), e.get_reason_code(), e.get_message(), version,
                          fallback);
    } catch (const std::exception& e) {
      return Status::Unavailable("connecting to " + opt_.url + " failed: " + e.what());
    }
  }

  Status ConnectError(int rc, int reason, const std::string& msg, int version, bool* fallback) {
    const std::string where = url_.host_port();
    const bool v5_reason = reason >= 0x80 && reason != mqtt::ReasonCode::MQTTPP_V3_CODE;
    if (v5_reason) {
      if (reason == 0x84 && fallback) *fallback = true;  // unsupported protocol version
      return Status::Unavailable("broker at " + where +
                                 " refused the connection: " + ReasonText(reason));
    }
    if (rc >= 1 && rc <= 5) {
      if (rc == 1 && fallback) *fallback = true;
      return Status::Unavailable("broker at " + where +
                                 " refused the connection: " + V3ConnackText(rc));
    }
    if (rc == MQTTASYNC_BAD_PROTOCOL || rc == MQTTASYNC_WRONG_MQTT_VERSION) {
      if (fallback) *fallback = true;
      return Status::Unavailable("broker at " + where + " does not speak MQTT " +
                                 (version == 5 ? "5" : "3.1.1") + ": " + PahoText(rc));
    }
    // Paho says little ("TCP/TLS connect failure"): find the broken layer.
    const std::string tcp = TcpProbe(url_.host, url_.port, std::chrono::milliseconds(1000));
    if (!tcp.empty()) {
      return Status::Unavailable("could not connect to " + where + ": " + tcp);
    }
    std::string detail = msg.empty() ? PahoText(rc) : msg + " (paho rc " + std::to_string(rc) + ")";
    if (url_.tls()) {
      const std::string tls = TlsProbe(url_.host, url_.port, opt_.tls, std::chrono::seconds(2));
      if (!tls.empty()) {
        return Status::Unavailable("TLS handshake with " + where + " failed: " + tls);
      }
    }
    if (url_.tls()) {
      return Status::Unavailable("MQTT handshake over TLS with " + where + " failed: " + detail);
    }
    return Status::Unavailable("MQTT handshake with " + where +
                               " failed (the broker closed the "
                               "connection): " +
                               detail);
  }

  const UplinkOptions opt_;
  const BrokerUrl url_;
  std::shared_ptr<std::atomic<int>> hint_;
  std::shared_ptr<Shared> shared_;
  std::unique_ptr<Callbacks> cb_;  // outlives cli_ (declared before it)
  mqtt::string_ref events_topic_, status_topic_;
  Compression codec_ = Compression::kNone;
  int level_ = 1;
  bool columnar_ = false;
  mqtt::properties codec_props_;
  mqtt::connect_options conn_opts_;  // lives as long as the client
  std::unique_ptr<mqtt::async_client> cli_;
  int version_ = 5;
};

}  // namespace

std::string BrokerUrl::paho_uri() const {
  const bool v6 = host.find(':') != std::string::npos;
  return scheme + "://" + (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port) + path;
}

std::string BrokerUrl::host_port() const {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

Result<BrokerUrl> ParseBrokerUrl(const std::string& url) {
  const auto bad = [&](const std::string& why) {
    return Status::InvalidArgument("uplink.url", "\"" + url + "\": " + why);
  };
  const auto sep = url.find("://");
  if (sep == std::string::npos) return bad("expected tcp://HOST:PORT or ssl://HOST:PORT");
  BrokerUrl u;
  const std::string scheme = url.substr(0, sep);
  if (scheme == "tcp" || scheme == "mqtt") {
    u.scheme = "tcp";
  } else if (scheme == "ssl" || scheme == "mqtts") {
    u.scheme = "ssl";
  } else if (scheme == "ws" || scheme == "wss") {
    u.scheme = scheme;
  } else {
    return bad(
        "scheme must be tcp://, mqtt:// (plain), ssl://, mqtts:// (TLS), or ws://, "
        "wss:// (WebSockets)");
  }
  std::string rest = url.substr(sep + 3);
  if (u.scheme == "ws" || u.scheme == "wss") {
    if (const auto slash = rest.find('/'); slash != std::string::npos) {
      u.path = rest.substr(slash);
      rest = rest.substr(0, slash);
    }
  }
  if (!rest.empty() && rest.back() == '/') rest.pop_back();
  if (rest.find('/') != std::string::npos || rest.find('@') != std::string::npos) {
    return bad(
        "expected only HOST:PORT after the scheme (credentials go in uplink.username/"
        "uplink.password)");
  }
  std::string port;
  if (!rest.empty() && rest.front() == '[') {
    const auto close = rest.find(']');
    if (close == std::string::npos) return bad("unclosed '['");
    u.host = rest.substr(1, close - 1);
    if (close + 1 < rest.size() && rest[close + 1] == ':') port = rest.substr(close + 2);
  } else {
    const auto colon = rest.rfind(':');
    u.host = rest.substr(0, colon);
    if (colon != std::string::npos) port = rest.substr(colon + 1);
  }
  if (u.host.empty()) return bad("missing host");
  if (port.empty()) {
    u.port = u.scheme == "ws" ? 80 : u.scheme == "wss" ? 443 : u.tls() ? 8883 : 1883;
  } else {
    unsigned long p = 0;
    for (char c : port) {
      if (c < '0' || c > '9') return bad("port must be a number");
      p = p * 10 + static_cast<unsigned long>(c - '0');
      if (p > 65535) return bad("port must be 1..65535");
    }
    if (p == 0) return bad("port must be 1..65535");
    u.port = static_cast<uint16_t>(p);
  }
  return u;
}

Result<std::unique_ptr<Transport>> MakeMqttTransportWithHint(
    const UplinkOptions& options, const TransportIdentity& identity,
    std::shared_ptr<std::atomic<int>> version_hint) {
  auto url = ParseBrokerUrl(options.url);
  if (!url.ok()) return url.status();
  const bool any_tls_file = !options.tls.ca_file.empty() || !options.tls.cert_file.empty() ||
                            !options.tls.key_file.empty();
  if (!url->tls() && any_tls_file) {
    return Status::InvalidArgument(
        "uplink.url", "\"" + options.url +
                          "\" is not a TLS URL but uplink.tls files are set: use ssl://HOST:PORT "
                          "(or wss://) for TLS, or remove the [uplink.tls] files to send in the "
                          "clear");
  }
  if (!version_hint) version_hint = std::make_shared<std::atomic<int>>(5);
  return std::unique_ptr<Transport>(
      new MqttTransport(options, identity, std::move(*url), std::move(version_hint)));
}

Result<std::unique_ptr<Transport>> MakeMqttTransport(const UplinkOptions& options,
                                                     const TransportIdentity& identity) {
  return MakeMqttTransportWithHint(options, identity, nullptr);
}

}  // namespace storegw::sync
