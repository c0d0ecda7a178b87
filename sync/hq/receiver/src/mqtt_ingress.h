// MQTT ingress of the receiver: Paho MQTT C++ async_client, MQTT 5, QoS 1.
//
//   * Subscriptions: `$share/{share_group}/{prefix}/+/+/events` (plain
//     `{prefix}/+/+/events` when share_group is empty): the broker hands
//     each batch to one replica of the group; `{prefix}/+/+/status` (not
//     shared: every replica records every retained GatewayStatus).
//   * Persistent session: clean_start = false with a Session Expiry
//     Interval (MqttIngressOptions::session_expiry_s) under the replica's
//     stable client_id, so batches the broker queued while a replica
//     restarted arrive after it is back.
//   * Batches: decoded and checked in the message callback (decode.h) and
//     queued to the transaction thread (ingest.h); refused ones are counted
//     and logged there, never acknowledged.
//   * HqAck: after the transaction committed, the applied prefix of each
//     (gateway, epoch) is published (QoS 1) to {prefix}/{store}/{gateway}/ack
//     by this ingress's own thread. Acks wait in a map (the newest prefix
//     per gateway and epoch) while the broker is unreachable.
//   * When the broker gets the PUBACK: Paho C++ 1.2 / C 1.3.12 has no
//     manual acknowledgement; the PUBACK of an incoming message goes out
//     when the message callback returns, i.e. once the batch is queued,
//     before it is committed. A replica killed between the two loses those
//     batches from the broker's point of view; the gateway still has them
//     (its watermark only moves on HqAck, `uplink.ack = "hq"`) and resends
//     from its watermark after `uplink.hq_ack_timeout`, to whichever replica
//     the broker picks. The callback blocks while the transaction queue is
//     full, which stops further deliveries (and their PUBACKs) until the
//     store catches up.
//   * Reconnects on its own: a lost connection or a failed attempt is
//     followed by a capped exponential back-off with full jitter (0.5 s ..
//     30 s) and a fresh client (as the gateway's transport does: Paho's
//     automatic reconnect is off).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "ingest.h"
#include "reporter.h"
#include "storegw/hq/receiver.h"

namespace mqtt {
class async_client;
class connect_options;
}  // namespace mqtt

namespace storegw::hq::internal {

class MqttIngress {
 public:
  // Checks `o` (kInvalidArgument naming the mqtt.* key). Does not connect.
  static Result<std::unique_ptr<MqttIngress>> Create(const MqttIngressOptions& o,
                                                     size_t max_batch_bytes, Ingest* ingest,
                                                     Reporter* reporter);
  ~MqttIngress();  // Stop()
  MqttIngress(const MqttIngress&) = delete;
  MqttIngress& operator=(const MqttIngress&) = delete;

  // Makes the first connection attempt (connect and subscribe) and starts
  // the thread that keeps the connection and publishes acks. A broker that
  // cannot be reached is not an error here (the thread keeps trying;
  // Stats().mqtt_connected and last_error say so); TLS files that cannot
  // be used are.
  Status Start();
  // Publishes the acks still waiting (up to about 2 s), disconnects, joins.
  // Idempotent.
  void Stop();

  // The ack sink of the Ingest (never blocks).
  void QueueAcks(std::vector<AckTarget> acks);

 private:
  class Callbacks;
  MqttIngress(MqttIngressOptions o, size_t max_batch_bytes, Ingest* ingest, Reporter* reporter);

  // One connection attempt with a fresh client: connect, subscribe.
  Status Connect();
  // Disconnects (when connected) and destroys the client.
  void Teardown();
  void Run(bool connected);
  // Publishes the waiting acks and waits (at most `timeout` each) for
  // their PUBACKs; false when the connection failed (what is left waits).
  bool PublishAcks(std::chrono::seconds timeout);
  void OnMessage(const std::string& topic, const std::string& payload,
                 const std::string& content_encoding, bool has_encoding);
  void OnLost(const std::string& cause);

  const MqttIngressOptions o_;
  const size_t max_bytes_;  // sent or inflated
  Ingest* const ingest_;
  Reporter* const reporter_;
  std::string events_filter_, status_filter_;
  std::string paho_uri_, host_port_, host_;
  uint16_t port_ = 0;
  bool tls_ = false;

  // Used by the ingress thread only (and Start before it runs).
  std::unique_ptr<Callbacks> cb_;  // outlives cli_
  std::unique_ptr<mqtt::connect_options> conn_opts_;  // lives as long as cli_
  std::unique_ptr<mqtt::async_client> cli_;

  std::mutex mu_;  // guards the members below
  std::condition_variable cv_;
  bool stop_ = false;
  bool lost_ = false;
  std::string lost_cause_;
  std::map<std::tuple<std::string, std::string, uint64_t>, uint64_t> acks_;  // -> seq

  std::thread thread_;
  bool started_ = false;
};

}  // namespace storegw::hq::internal
