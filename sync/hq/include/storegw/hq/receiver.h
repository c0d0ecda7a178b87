// The receiving half of the wire protocol (sync/README.md), as storegw-hq
// runs it: MQTT ingress (QoS 1, persistent session, MQTT 5 shared
// subscription `$share/{group}/{prefix}/+/+/events` and the retained
// `{prefix}/+/+/status`), HTTPS ingress (`POST /v1/batches`, the gateway's
// `https` transport), both feeding one EventStore; HqAck published on
// `{prefix}/{store}/{gateway}/ack` only after the commit, naming the
// contiguous prefix.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "storegw/hq/store.h"
#include "storegw/status.h"

namespace storegw::hq {

struct MqttIngressOptions {
  std::string url;            // tcp://host:port, ssl://host:port, mqtt(s)://...
  std::string topic_prefix = "retail/v1";
  std::string share_group = "storegw-hq";  // "" = plain (non-shared) subscription
  std::string client_id;      // unique per replica; persistent session
  std::string username, password;
  std::string ca_file, cert_file, key_file;  // [mqtt.tls]
  // The broker keeps this replica's session (its subscriptions and the
  // batches queued for it) this long after it disconnects: a restart
  // within it resumes where it stopped. Keep it short: a broker may keep
  // queueing a shared subscription's messages for a member that is gone
  // (mosquitto does), and those reach HQ only by the gateways' resend.
  uint32_t session_expiry_s = 600;
};

struct HttpsIngressOptions {
  std::string listen;         // "" = no HTTPS ingress; "127.0.0.1:9443"
  std::string cert_file, key_file;
  std::string client_ca_file;  // non-empty: client certificates required (mTLS)
};

struct ReceiverOptions {
  MqttIngressOptions mqtt;    // mqtt.url empty: no MQTT ingress
  HttpsIngressOptions https;
  // Batches collected into one store transaction: at most this many, and
  // for at most this long after the first one arrived.
  uint32_t max_batches_per_txn = 64;
  uint32_t max_txn_delay_ms = 5;
  // A batch larger than this, as received or inflated, is refused
  // (undecodable; HTTPS 413). Far above a gateway's largest batch
  // (uplink.max_message_bytes, 256 KiB by default). 1 KiB .. 1 GiB.
  uint64_t max_batch_bytes = uint64_t{64} << 20;
};

// Counters for /metrics and the log (monotonic since start).
struct ReceiverStats {
  uint64_t batches_received = 0;
  uint64_t batches_stored = 0;
  uint64_t events_stored = 0;
  uint64_t events_duplicate = 0;
  uint64_t acks_published = 0;
  uint64_t statuses_received = 0;
  uint64_t store_errors = 0;       // transactions that failed (retried)
  std::map<std::string, uint64_t> refused;  // by RefuseReasonName
  bool mqtt_connected = false;
  std::string last_error;          // never holds a secret
};

class Receiver {
 public:
  static Result<std::unique_ptr<Receiver>> Create(ReceiverOptions options, EventStore* store);
  virtual ~Receiver() = default;
  virtual Status Start() = 0;   // connects and subscribes / binds the listener
  virtual void Stop() = 0;      // bounded; idempotent
  virtual ReceiverStats Stats() const = 0;
};

}  // namespace storegw::hq
