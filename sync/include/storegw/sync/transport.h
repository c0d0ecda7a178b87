// The seam under the replay engine: one connection to head office that can
// send EventBatch payloads asynchronously and report their acknowledgement.
//
// The engine (uplink.h) owns ordering, batching, the window, the watermark,
// timeouts and back-off; a Transport only moves bytes. MQTT (Paho) is the
// first implementation; HTTPS (libcurl: POST the batch with an
// Idempotency-Key, 2xx = acknowledged) is the second.
//
// Lifecycle: the engine asks its TransportFactory for a fresh Transport for
// every connection attempt (a stuck client is thrown away, never reused),
// calls Connect() once, then Send()/PublishStatus() any number of times,
// and finally Close(). A Transport is used by the engine thread only; its
// listener callbacks may come from the transport's own threads, up to the
// moment Close() returns, never after.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "storegw/status.h"

namespace storegw::sync {

struct UplinkOptions;

// What HQ sends down: {prefix}/{store_id}/downstream/stock carries a
// StockSnapshot, .../downstream/prices a PriceUpdate, .../downstream/rules
// a StoreRules (hold times and sensor limits) (docs/design.md,
// "Downstream application"; sync/README.md, "Downstream").
enum class DownstreamKind { kStock, kPrices, kRules };

// How a failed send is to be treated, beyond its Status (see
// TransportListener::OnSendFailed).
struct SendFailure {
  // Retrying the same batch cannot succeed: head office refused it for
  // good (HTTPS: a 4xx answer other than 408 and 429). The engine stops
  // the uplink instead of resending it in a loop, never skips it, keeps
  // the watermark below it, and shows the reason on the status until the
  // gateway is restarted.
  bool permanent = false;
  // Head office asked for at least this long before the next attempt
  // (HTTP Retry-After on 429/503). 0: no hint; the engine's back-off
  // applies (the longer of the two wins, capped at uplink.backoff_max).
  std::chrono::milliseconds retry_after{0};
};

// Receives what a connected Transport reports. Implementations must be
// quick and must not call back into the Transport (the engine queues and
// acts on its own thread).
class TransportListener {
 public:
  // The send `id` is acknowledged (ok) or failed (not ok, with why: "broker
  // refused batch: packet too large (0x95)", "connection lost").
  virtual void OnSendDone(uint64_t id, Status status) = 0;
  // The send `id` failed (status not ok), with how to treat it: a
  // permanent refusal or a Retry-After hint. A transport with nothing to
  // add calls OnSendDone instead.
  virtual void OnSendFailed(uint64_t id, Status status, SendFailure how) = 0;
  // The connection is gone (the engine will Close() and reconnect).
  virtual void OnLinkLost(Status reason) = 0;
  // Head office says it stored every event of `epoch` up to `seq`.
  virtual void OnHqAck(uint64_t epoch, uint64_t seq, const std::string& gateway_id) = 0;
  // HQ published a downstream message (QoS 1, payload as received). Runs
  // on the transport's receive thread; the MQTT transport acknowledges it
  // to the broker when this returns, so an implementation may apply it
  // durably here, briefly (the uplink's acks wait meanwhile; stay far
  // below the keep-alive). The transport holds no lock of its own while it
  // runs (Paho C holds its own: see mqtt_transport.cc), and Close() waits
  // for it to return. Transports without a downlink never call it.
  virtual void OnDownstream(DownstreamKind kind, std::string payload) {
    (void)kind;
    (void)payload;
  }

 protected:
  ~TransportListener() = default;
};

// What the engine needs to connect.
struct ConnectRequest {
  // Retained status payload the broker publishes if the connection dies
  // uncleanly (a GatewayStatus with online=false). Empty: no will.
  std::string will_payload;
  // Subscribe to HQ acknowledgements (ack = "hq").
  bool want_hq_acks = false;
  // Subscribe (QoS 1) to the downstream topics, in a persistent session
  // when options.session_expiry > 0 (messages HQ publishes while the link
  // is down are kept by the broker and arrive after the reconnect).
  bool want_downstream = false;
  // Set by another thread to abandon a Connect() in progress (Stop()).
  const std::atomic<bool>* cancel = nullptr;
};

class Transport {
 public:
  virtual ~Transport() = default;

  // Connects, blocking at most the connect timeout of the options it was
  // made with. On success the listener may start receiving callbacks. On
  // failure a Status whose message says what to fix: "could not connect to
  // 127.0.0.1:1883: connection refused", "TLS handshake with 127.0.0.1:8883
  // failed: certificate verify failed", "broker refused the connection:
  // not authorized (0x87)".
  virtual Status Connect(TransportListener* listener, const ConnectRequest& request) = 0;

  // Hands one batch to the transport, asynchronously; its outcome comes
  // through OnSendDone(id, ...). A non-ok return means the send did not
  // start (and no OnSendDone follows).
  virtual Status Send(uint64_t id, std::string payload) = 0;

  // The seq range of a batch, for transports that put it on the wire
  // outside the payload (HTTPS: the Idempotency-Key header).
  struct BatchRange {
    uint64_t first_seq = 0;
    uint64_t last_seq = 0;
  };
  // What the engine calls: Send() plus the batch's seq range. The default
  // ignores the range.
  virtual Status SendBatch(uint64_t id, std::string payload, const BatchRange& range) {
    (void)range;
    return Send(id, std::move(payload));
  }

  // Publishes the retained status (best effort, no completion). HTTPS has
  // no status channel: a no-op there.
  virtual Status PublishStatus(std::string payload) = 0;

  // Ends the connection: publishes `final_status` first when given and
  // connected (bounded wait), disconnects, and stops every callback before
  // it returns. Idempotent.
  virtual void Close(const std::optional<std::string>& final_status) = 0;

  // How many Send()s may be outstanding at once (the engine never exceeds
  // it, whatever max_inflight says).
  virtual size_t max_pending_sends() const = 0;

  // Negotiated protocol ("MQTT 5", "MQTT 3.1.1") for logs and status; the
  // numeric MQTT level (5 or 4), 0 when not applicable.
  virtual std::string protocol() const = 0;
  virtual int protocol_version() const = 0;
};

// Identity the transport puts into topics / keys.
struct TransportIdentity {
  std::string store_id;
  std::string gateway_id;
  uint64_t epoch = 0;
};

using TransportFactory = std::function<Result<std::unique_ptr<Transport>>()>;

// The Paho MQTT transport (MQTT v5, falling back to 3.1.1 when the broker
// refuses v5; no Paho persistence, no offline buffer; TLS per the URL and
// options.tls). Validates the URL; does not connect.
Result<std::unique_ptr<Transport>> MakeMqttTransport(const UplinkOptions& options,
                                                     const TransportIdentity& identity);

// The libcurl HTTPS transport: POSTs each batch to options.url (https://
// only) with Content-Type application/x-protobuf and Idempotency-Key
// {gateway_id}-{epoch}-{first_seq}-{last_seq}; 2xx acknowledges it,
// 408/429/5xx and transport errors fail it (with Retry-After), any other
// 4xx refuses it for good. One request in flight at a time, on one
// keep-alive connection, so batches reach HQ in seq order
// (max_pending_sends() is 1 whatever max_inflight says); proxy per
// options.proxy or the environment. Validates the URL and proxy; does not
// connect. An option libcurl refuses fails Connect() with a message naming
// it. See sync/README.md.
Result<std::unique_ptr<Transport>> MakeHttpsTransport(const UplinkOptions& options,
                                                      const TransportIdentity& identity);

}  // namespace storegw::sync
