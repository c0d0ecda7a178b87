#include "mqtt_ingress.h"

#include <mqtt/async_client.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <random>

#include "backoff.h"
#include "compress.h"
#include "mqtt_transport.h"  // ParseBrokerUrl: the gateway's URL rules
#include "net_probe.h"
#include "storegw/hq/decode.h"
#include "storegw/sync/uplink.h"  // CheckTlsFiles

namespace storegw::hq::internal {
namespace {

using SteadyClock = std::chrono::steady_clock;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr seconds kConnectTimeout{10};
constexpr seconds kKeepAlive{20};
// An HqAck without PUBACK for this long: the connection is broken.
constexpr seconds kAckTimeout{30};
constexpr seconds kStopAckTimeout{2};  // the same while stopping

int64_t NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// "not authorized (0x87)"
std::string ReasonText(int reason) {
  const char* s = MQTTReasonCode_toString(static_cast<MQTTReasonCodes>(reason));
  std::string name = s ? s : "reason";
  for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  char hex[8];
  std::snprintf(hex, sizeof hex, "0x%02X", reason & 0xff);
  return name + " (" + hex + ")";
}

std::string PahoText(int rc) {
  const char* s = MQTTAsync_strerror(rc);
  return std::string(s ? s : "error") + " (paho rc " + std::to_string(rc) + ")";
}

// The gateway's TLS file check, its messages naming our keys.
Status CheckMqttTlsFiles(const MqttIngressOptions& o) {
  Status s = sync::CheckTlsFiles(sync::TlsFiles{o.ca_file, o.cert_file, o.key_file});
  if (s.ok()) return s;
  std::string msg = s.message();
  for (size_t at; (at = msg.find("uplink.tls.")) != std::string::npos;) {
    msg.replace(at, 11, "mqtt.tls.");
  }
  std::string field = s.field();
  if (field.rfind("uplink.tls.", 0) == 0) field = "mqtt.tls." + field.substr(11);
  return Status(s.code(), msg, field);
}

bool HasWildcardOrSlash(const std::string& s) {
  return s.find_first_of("+#/") != std::string::npos;
}

}  // namespace

class MqttIngress::Callbacks final : public mqtt::callback {
 public:
  explicit Callbacks(MqttIngress* owner) : owner_(owner) {}
  void connection_lost(const std::string& cause) override { owner_->OnLost(cause); }
  void message_arrived(mqtt::const_message_ptr m) override {
    if (!m) return;
    std::string encoding;
    bool has_encoding = false;
    const mqtt::properties& props = m->get_properties();
    for (size_t i = 0; i < props.count(mqtt::property::USER_PROPERTY); ++i) {
      auto kv = mqtt::get<mqtt::string_pair>(props, mqtt::property::USER_PROPERTY, i);
      std::string key = std::get<0>(kv);
      for (auto& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (key == sync::kContentEncodingKey) {
        encoding = std::get<1>(kv);
        has_encoding = true;
      }
    }
    try {
      owner_->OnMessage(m->get_topic(), m->get_payload_str(), encoding, has_encoding);
    } catch (const std::exception& e) {
      // Nothing may leave a Paho callback. Not stored, not acknowledged.
      spdlog::error("hq: mqtt: a message on {} was dropped: {}", m->get_topic(), e.what());
    }
  }
  void delivery_complete(mqtt::delivery_token_ptr) override {}

 private:
  MqttIngress* const owner_;
};

Result<std::unique_ptr<MqttIngress>> MqttIngress::Create(const MqttIngressOptions& in,
                                                         size_t max_batch_bytes, Ingest* ingest,
                                                         Reporter* reporter) {
  MqttIngressOptions o = in;
  auto url = sync::ParseBrokerUrl(o.url);
  if (!url.ok()) {
    std::string msg = url.status().message();
    for (size_t at; (at = msg.find("uplink.")) != std::string::npos;) msg.replace(at, 7, "mqtt.");
    return Status::InvalidArgument("mqtt.url", msg);
  }
  const bool any_tls_file = !o.ca_file.empty() || !o.cert_file.empty() || !o.key_file.empty();
  if (!url->tls() && any_tls_file) {
    return Status::InvalidArgument(
        "mqtt.url", "\"" + o.url +
                        "\" is not a TLS URL but [mqtt.tls] files are set: use ssl://HOST:PORT "
                        "(or mqtts://, wss://) for TLS, or remove the files");
  }
  if (url->tls()) {
    if (Status s = CheckMqttTlsFiles(o); !s.ok()) return s;
  }
  const std::string& p = o.topic_prefix;
  if (p.empty() || p.find_first_of("+#") != std::string::npos || p.front() == '/' ||
      p.back() == '/' || p.front() == '$') {
    return Status::InvalidArgument(
        "mqtt.topic_prefix",
        "\"" + p + "\" must be a topic without wildcards (+ #) that neither starts with / or $ "
                   "nor ends with /, e.g. \"retail/v1\"");
  }
  if (HasWildcardOrSlash(o.share_group)) {
    return Status::InvalidArgument("mqtt.share_group",
                                   "\"" + o.share_group + "\" must not contain / + or #");
  }
  if (o.client_id.empty()) {
    char host[256] = {};
    if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') {
      return Status::InvalidArgument(
          "mqtt.client_id", "is required (unique per replica: its broker session is kept under it)");
    }
    o.client_id = std::string("storegw-hq-") + host;
  }
  if (o.client_id.size() > 128 || HasWildcardOrSlash(o.client_id)) {
    return Status::InvalidArgument("mqtt.client_id",
                                   "must be at most 128 characters without / + or #");
  }
  auto m = std::unique_ptr<MqttIngress>(
      new MqttIngress(std::move(o), max_batch_bytes, ingest, reporter));
  m->paho_uri_ = url->paho_uri();
  m->host_port_ = url->host_port();
  m->host_ = url->host;
  m->port_ = url->port;
  m->tls_ = url->tls();
  return m;
}

MqttIngress::MqttIngress(MqttIngressOptions o, size_t max_batch_bytes, Ingest* ingest,
                         Reporter* reporter)
    : o_(std::move(o)),
      max_bytes_(max_batch_bytes),
      ingest_(ingest),
      reporter_(reporter),
      cb_(std::make_unique<Callbacks>(this)) {
  const std::string events = o_.topic_prefix + "/+/+/events";
  events_filter_ = o_.share_group.empty() ? events : "$share/" + o_.share_group + "/" + events;
  status_filter_ = o_.topic_prefix + "/+/+/status";
}

MqttIngress::~MqttIngress() { Stop(); }

Status MqttIngress::Start() {
  if (started_) return Status::FailedPrecondition("MQTT ingress already started");
  started_ = true;
  Status s = Connect();
  if (!s.ok()) {
    Teardown();
    if (s.code() == StatusCode::kInvalidArgument) return s;
    spdlog::warn("hq: mqtt: {}; retrying in the background", s.message());
    reporter_->SetLastError("mqtt: " + s.message());
  }
  const bool connected = s.ok();
  thread_ = std::thread([this, connected] { Run(connected); });
  return {};
}

void MqttIngress::Stop() {
  {
    std::lock_guard lk(mu_);
    if (stop_) return;
    stop_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
  Teardown();
}

void MqttIngress::QueueAcks(std::vector<AckTarget> acks) {
  std::lock_guard lk(mu_);
  for (auto& a : acks) {
    uint64_t& seq = acks_[{std::move(a.store_id), std::move(a.gateway_id), a.epoch}];
    seq = std::max(seq, a.seq);
  }
  cv_.notify_all();
}

void MqttIngress::OnLost(const std::string& cause) {
  reporter_->Update([](ReceiverStats& s) { s.mqtt_connected = false; });
  std::lock_guard lk(mu_);
  lost_ = true;
  lost_cause_ = cause;
  cv_.notify_all();
}

void MqttIngress::OnMessage(const std::string& topic, const std::string& payload,
                            const std::string& content_encoding, bool has_encoding) {
  auto t = ParseGatewayTopic(topic, o_.topic_prefix);
  if (!t) return;  // not a topic of ours
  const std::string source = "topic " + topic;
  if (t->leaf == "events") {
    reporter_->Update([](ReceiverStats& s) { ++s.batches_received; });
    PayloadEncoding enc = PayloadEncoding::kSniff;
    if (has_encoding) {
      auto e = ParseContentEncoding(content_encoding);
      if (!e) {
        reporter_->Refused(RefuseReason::kUndecodable, source,
                           "unsupported content-encoding \"" + content_encoding.substr(0, 32) +
                               "\" (expected deflate or zstd)");
        return;
      }
      enc = *e;
    }
    Decoded d = DecodeBatch(payload, enc, BatchOrigin{t->store_id, t->gateway_id, "topic"},
                            DecodeLimits{max_bytes_, max_bytes_});
    if (!d.ok()) {
      reporter_->Refused(*d.refused, source, d.detail);
      return;
    }
    ingest_->SubmitMqtt(std::move(d.batch), source);
    return;
  }
  if (t->leaf != "status" || payload.empty()) return;  // empty: a retained status cleared
  v1::GatewayStatus st;
  if (!st.ParseFromString(payload)) {
    reporter_->BadStatus(source, "not a storegw.v1.GatewayStatus (" +
                                     std::to_string(payload.size()) + " bytes)");
    return;
  }
  if (st.store_id().empty()) st.set_store_id(t->store_id);
  if (st.gateway_id().empty()) st.set_gateway_id(t->gateway_id);
  if (st.store_id() != t->store_id || st.gateway_id() != t->gateway_id) {
    reporter_->BadStatus(source, "status of store \"" + st.store_id().substr(0, 64) +
                                     "\", gateway \"" + st.gateway_id().substr(0, 64) +
                                     "\" under another gateway's topic");
    return;
  }
  reporter_->Update([](ReceiverStats& s) { ++s.statuses_received; });
  ingest_->SubmitStatus(std::move(st), NowUs());
}

Status MqttIngress::Connect() {
  {
    std::lock_guard lk(mu_);
    lost_ = false;
    lost_cause_.clear();
  }
  if (tls_) {
    // Before every attempt: a file replaced or expired since is named.
    if (Status s = CheckMqttTlsFiles(o_); !s.ok()) return s;
  }
  try {
    mqtt::create_options create(MQTTVERSION_5);
    cli_ = std::make_unique<mqtt::async_client>(paho_uri_, o_.client_id, create, nullptr);
    cli_->set_callback(*cb_);
    mqtt::connect_options_builder b;
    b.mqtt_version(MQTTVERSION_5)
        .clean_start(false)
        .keep_alive_interval(kKeepAlive)
        .connect_timeout(kConnectTimeout)
        .automatic_reconnect(false);
    if (!o_.username.empty()) b.user_name(o_.username);
    if (!o_.password.empty()) b.password(o_.password);
    conn_opts_ = std::make_unique<mqtt::connect_options>(b.finalize());
    // Set on the options object itself, which outlives the connect:
    // properties given to the builder are lost (Paho C++ 1.2).
    mqtt::properties props;
    props.add({mqtt::property::SESSION_EXPIRY_INTERVAL,
               static_cast<int32_t>(std::min<uint32_t>(o_.session_expiry_s, 0xFFFFFFFE))});
    conn_opts_->set_properties(props);
    if (tls_) {
      mqtt::ssl_options ssl;
      if (!o_.ca_file.empty()) ssl.set_trust_store(o_.ca_file);
      if (!o_.cert_file.empty()) ssl.set_key_store(o_.cert_file);
      if (!o_.key_file.empty()) ssl.set_private_key(o_.key_file);
      ssl.set_enable_server_cert_auth(true);
      ssl.set_verify(true);  // host name / IP check
      conn_opts_->set_ssl(std::move(ssl));
    }
    auto tok = cli_->connect(*conn_opts_);
    const auto deadline = SteadyClock::now() + kConnectTimeout + seconds(1);
    while (!tok->wait_for(milliseconds(50))) {
      {
        std::lock_guard lk(mu_);
        if (stop_) return Status::Unavailable("stopping");
      }
      if (SteadyClock::now() >= deadline) {
        return Status::Unavailable("connecting to " + host_port_ + " timed out");
      }
    }
    // Both filters in one SUBSCRIBE: one round trip (each costs up to a
    // second of Paho's polling).
    auto sub = cli_->subscribe(mqtt::string_collection::create({events_filter_, status_filter_}),
                               mqtt::iasync_client::qos_collection{1, 1});
    if (!sub->wait_for(kConnectTimeout)) {
      return Status::Unavailable("subscribing to " + events_filter_ + " and " + status_filter_ +
                                 " at " + host_port_ + " timed out");
    }
    const mqtt::subscribe_response rsp = sub->get_subscribe_response();
    const std::vector<mqtt::ReasonCode> codes = rsp.get_reason_codes();
    for (size_t i = 0; i < codes.size() && i < 2; ++i) {
      if (codes[i] >= 0x80) {
        return Status::Unavailable("broker at " + host_port_ + " refused the subscription to " +
                                   (i == 0 ? events_filter_ : status_filter_) + ": " +
                                   ReasonText(codes[i]));
      }
    }
  } catch (const mqtt::exception& e) {
    const int reason = e.get_reason_code();
    if (reason >= 0x80 && reason != mqtt::ReasonCode::MQTTPP_V3_CODE) {
      return Status::Unavailable("broker at " + host_port_ +
                                 " refused the connection: " + ReasonText(reason));
    }
    // Paho says little ("TCP/TLS connect failure"): find the broken layer.
    if (std::string tcp = sync::TcpProbe(host_, port_, milliseconds(1000)); !tcp.empty()) {
      return Status::Unavailable("could not connect to " + host_port_ + ": " + tcp);
    }
    if (tls_) {
      const std::string t = sync::TlsProbe(
          host_, port_, sync::TlsFiles{o_.ca_file, o_.cert_file, o_.key_file}, seconds(2));
      if (!t.empty()) return Status::Unavailable("TLS handshake with " + host_port_ + " failed: " + t);
    }
    return Status::Unavailable("MQTT connection to " + host_port_ + " failed: " +
                               PahoText(e.get_return_code()));
  } catch (const std::exception& e) {
    return Status::Unavailable("MQTT connection to " + host_port_ + " failed: " + e.what());
  }
  reporter_->Update([](ReceiverStats& s) { s.mqtt_connected = true; });
  spdlog::info("hq: mqtt: connected to {} as {}, subscribed to {} and {}", host_port_,
               o_.client_id, events_filter_, status_filter_);
  return {};
}

void MqttIngress::Teardown() {
  reporter_->Update([](ReceiverStats& s) { s.mqtt_connected = false; });
  if (!cli_) return;
  try {
    if (cli_->is_connected()) cli_->disconnect(0)->wait_for(seconds(2));
  } catch (const std::exception& e) {
    spdlog::debug("hq: mqtt: disconnect: {}", e.what());
  }
  cli_.reset();
  conn_opts_.reset();
}

bool MqttIngress::PublishAcks(std::chrono::seconds timeout) {
  decltype(acks_) todo;
  {
    std::lock_guard lk(mu_);
    todo.swap(acks_);
  }
  // In rounds of at most kAckRound outstanding publishes (Paho C buffers
  // 100 commands), each round waiting for its PUBACKs.
  constexpr size_t kAckRound = 50;
  bool ok = true;
  while (ok && !todo.empty()) {
    std::vector<std::pair<decltype(todo)::iterator, mqtt::delivery_token_ptr>> round;
    for (auto it = todo.begin(); it != todo.end() && round.size() < kAckRound; ++it) {
      const auto& [store, gateway, epoch] = it->first;
      v1::HqAck ack;
      ack.set_epoch(epoch);
      ack.set_seq(it->second);
      ack.set_gateway_id(gateway);
      try {
        round.emplace_back(it, cli_->publish(o_.topic_prefix + "/" + store + "/" + gateway +
                                                 "/ack",
                                             ack.SerializeAsString(), 1, false));
      } catch (const mqtt::exception& e) {
        spdlog::debug("hq: mqtt: ack publish failed: {}", PahoText(e.get_return_code()));
        ok = false;
        break;
      }
    }
    size_t published = 0;
    for (auto& [it, tok] : round) {
      bool done = false;
      try {
        done = ok && tok->wait_for(timeout) && tok->get_return_code() == MQTTASYNC_SUCCESS;
      } catch (const mqtt::exception&) {
        done = false;
      }
      if (!done) {
        ok = false;
        continue;  // stays in `todo`
      }
      ++published;
      todo.erase(it);
    }
    reporter_->Update([published](ReceiverStats& s) { s.acks_published += published; });
  }
  if (todo.empty()) return true;
  // Not delivered: back into the map for the next connection (newer
  // prefixes win); an ack that did arrive and comes again is harmless.
  std::lock_guard lk(mu_);
  for (auto& [k, seq] : todo) {
    uint64_t& cur = acks_[k];
    cur = std::max(cur, seq);
  }
  return false;
}

void MqttIngress::Run(bool connected) {
  sync::Backoff backoff(milliseconds(500), seconds(30), std::random_device{}());
  for (;;) {
    if (connected) {
      std::unique_lock lk(mu_);
      cv_.wait(lk, [&] { return stop_ || lost_ || !acks_.empty(); });
      if (!acks_.empty() && !lost_) {
        lk.unlock();
        if (PublishAcks(kAckTimeout)) continue;
        lk.lock();
        if (!lost_) lost_cause_ = "publishing an HqAck failed";
        lost_ = true;
      }
      if (stop_) {
        lk.unlock();
        PublishAcks(kStopAckTimeout);
        return;  // Stop() tears the client down
      }
      const std::string why = "mqtt: connection to " + host_port_ + " lost" +
                              (lost_cause_.empty() ? "" : ": " + lost_cause_);
      lk.unlock();
      spdlog::warn("hq: {}; reconnecting", why);
      reporter_->SetLastError(why);
      Teardown();
      connected = false;
    }
    {
      std::unique_lock lk(mu_);
      const auto wait = backoff.Next();
      cv_.wait_for(lk, wait, [&] { return stop_; });
      if (stop_) return;
    }
    Status s = Connect();
    if (s.ok()) {
      backoff.Reset();
      connected = true;
      continue;
    }
    Teardown();
    reporter_->SetLastError("mqtt: " + s.message());
    if (backoff.failures() <= 1 || backoff.failures() % 10 == 0) {
      spdlog::warn("hq: mqtt: {} (attempt {}; retrying)", s.message(), backoff.failures());
    }
  }
}

}  // namespace storegw::hq::internal
