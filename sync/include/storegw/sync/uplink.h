// The upstream replay engine: sends the journal to head office, in seq
// order, over a flaky link, and advances the journal's ack watermark only
// over what is really delivered (docs/design.md, "The uplink engine").
//
// How it works (one engine thread per Uplink):
//   * On every (re)connect it starts at watermark + 1 and reads the journal
//     in seq order into EventBatch messages of at most `batch_events` events
//     and `max_message_bytes` payload bytes, always one contiguous seq range.
//   * At most `max_inflight` batches are unacknowledged at any time. Freed
//     window slots are refilled as soon as an acknowledgement comes in; new
//     journal events wake the engine (Journal::WaitForSeqAbove), so live
//     events go out through the same ordered path right behind the backlog.
//   * The watermark (Journal::Ack) advances only over a contiguous
//     acknowledged prefix. ack = "broker": the transport's acknowledgement
//     (MQTT PUBACK with a success reason code) counts; ack = "hq": only an
//     HqAck from head office does, and when no HqAck moves the watermark for
//     `hq_ack_timeout` while batches are outstanding, the engine resends from
//     the watermark (a broker that lost messages never stalls the store).
//   * A send unacknowledged for `ack_timeout`, a failed send, or a lost
//     connection tears the connection (and the transport client) down; the
//     engine waits a capped exponential back-off with full jitter and
//     starts again from the watermark. Duplicates upstream are possible and
//     allowed (HQ dedupes on gateway_id, epoch, seq); gaps never are.
//   * Nothing is buffered anywhere but the journal: the transport keeps no
//     persistence and no offline queue.
//
// Threads: Create/Start/Stop from one controlling thread; status() and
// FillStatus() from any thread. Stop() (or the destructor) must run before
// the Journal is closed.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <stop_token>
#include <string>

#include "storegw/status.h"
#include "storegw/sync/transport.h"
#include "storegw/v1/storegw.pb.h"

namespace storegw::storage {
class Journal;
}

namespace storegw::sync {

using Millis = std::chrono::milliseconds;

struct TlsFiles {
  // PEM files. ca_file empty: the system trust store verifies the broker.
  // cert_file and key_file: the client certificate for mutual TLS (both or
  // neither). Each named file is checked (exists, readable, parses, the key
  // matches the certificate) before every connection attempt, so a missing
  // or broken file is reported by name instead of as a failed handshake.
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
};

// Limits of UplinkOptions' sizes, checked by Uplink::Create() and by the
// gateway's config loader (uplink.* keys) from these same constants.
struct UplinkLimits {
  static constexpr int kMinInflight = 1;
  static constexpr int kMaxInflight = 100;
  static constexpr int kMinBatchEvents = 1;
  static constexpr int kMaxBatchEvents = 100000;
  static constexpr size_t kMinMessageBytes = 1024;
  static constexpr size_t kMaxMessageBytes = size_t{256} << 20;
};

struct UplinkOptions {
  // "mqtt" (Paho MQTT C++, MQTT v5 with fallback to 3.1.1). "https"
  // (libcurl: one POST per batch, see MakeHttpsTransport); "none" is not
  // an uplink (the gateway does not create one).
  std::string transport = "mqtt";
  // tcp://HOST:PORT or mqtt:// (plain), ssl://HOST:PORT or mqtts:// (TLS,
  // hostname or IP checked against the broker's certificate); ws:// and
  // wss://HOST:PORT/PATH for MQTT over WebSockets. Plain TCP only when the
  // URL says so: TLS files with a plain URL are an error. transport =
  // "https": https://HOST[:PORT]/PATH (http:// is refused: batches are
  // sales data and the link crosses the internet).
  std::string url = "tcp://127.0.0.1:1883";
  // Topics: {topic_prefix}/{store_id}/{gateway_id}/events|status|ack.
  std::string topic_prefix = "retail/v1";
  // Empty: the journal's identity (the normal case; a mismatch is an error).
  std::string store_id;
  std::string gateway_id;
  // "broker": the broker's PUBACK advances the watermark (fast; a broker
  // that loses a message after PUBACK loses it for good). "hq": only an
  // HqAck on the ack topic does (nothing is pruned before HQ has it).
  std::string ack = "broker";
  // Batches sent and not yet acknowledged (1..100; the MQTT transport
  // never has more than 64 publishes outstanding in Paho). In "hq" mode a
  // batch stays in the window until HQ acknowledges it.
  int max_inflight = 8;
  int batch_events = 500;  // events per batch, at most (>= 1)
  // "adaptive": batches as large as the link carries in about 4 s (and at
  // most batch_events / max_message_bytes), and as many in flight as cover
  // the measured round trip at the measured rate (at least 2, at most
  // max_inflight); "fixed": always batch_events / max_message_bytes and
  // max_inflight. See sync/README.md, "Thin links".
  std::string batch_sizing = "adaptive";
  // "auto": while a backlog of more than 4 batches drains, events
  // journaled since it began go out on a live lane ahead of it (one live
  // batch in flight at a time; HQ stores them at once past the gap and
  // applies them in seq order when the gap fills). "off": strictly in
  // seq order.
  std::string live_lane = "auto";
  // Serialized EventBatch bytes per message, at most (before compression).
  uint64_t max_message_bytes = 256u << 10;
  // "deflate": batch payloads are zlib-compressed (4-6x smaller for till
  // traffic) and marked with the MQTT 5 properties content-type
  // "application/x-protobuf" and user property content-encoding=deflate;
  // with an MQTT 3.1.1 broker (no properties) they go uncompressed.
  // "zstd": zstd frames instead (marked content-encoding=zstd, HTTP
  // Content-Encoding: zstd; HQ must understand it). "none": always plain
  // protobuf.
  std::string compression = "deflate";
  // 0: the codec's default (deflate 1, zstd 3); deflate 1..9, zstd -7..19.
  int compression_level = 0;
  // "protobuf": each batch is a serialized EventBatch. "columnar": the same
  // batch rewritten so the compressor finds what repeats (sync/README.md,
  // "Thin links"); HQ must understand it (storegw-hq of this release or
  // later; an older one refuses such batches, it never misreads them).
  std::string batch_encoding = "protobuf";
  // Back-off between connection attempts: a random delay in
  // [backoff_initial, min(backoff_max, backoff_initial * 2^n)] after the
  // n-th consecutive failure (full jitter on a steady clock). Reset once a
  // connection has delivered something.
  Millis backoff_initial = std::chrono::seconds(1);
  Millis backoff_max = std::chrono::seconds(60);
  // ack = "hq": resend from the watermark when no HqAck has moved it for
  // this long while batches are outstanding.
  Millis hq_ack_timeout = std::chrono::seconds(30);
  // A batch the transport has not acknowledged (PUBACK) for this long means
  // the link is broken: the connection is torn down and rebuilt.
  Millis ack_timeout = std::chrono::seconds(30);
  // Bound of one connection attempt (TCP + TLS + CONNECT/CONNACK); whole
  // seconds for MQTT, at least 1 s.
  Millis connect_timeout = std::chrono::seconds(10);
  // MQTT keep-alive (whole seconds, at least 1 s): detects a dead idle link.
  Millis keep_alive = std::chrono::seconds(30);
  // HTTPS: one POST (connect, send, HQ's answer) at most; a request that
  // takes longer fails and the engine backs off and resends.
  Millis request_timeout = std::chrono::seconds(30);
  // HTTPS: proxy URL (http://HOST:PORT for an HTTP CONNECT proxy; https://
  // and socks5:// work too; credentials as http://USER:PASS@HOST:PORT are
  // a secret, never logged). Empty: libcurl's environment variables
  // https_proxy / HTTPS_PROXY / all_proxy and no_proxy apply.
  std::string proxy;
  // How often the retained status is republished while connected (it is
  // also published on every connect and replaced by the last-will on an
  // unclean disconnect).
  Millis status_interval = std::chrono::seconds(30);
  TlsFiles tls;
  // MQTT session expiry for the downstream subscriptions (Uplink::
  // SetDownstreamSink): the broker keeps the session (subscriptions and
  // the QoS 1 messages HQ publishes meanwhile) this long after the link
  // drops, so prices and snapshots sent while the store was offline arrive
  // after the reconnect. Whole seconds; MQTT 5 clean_start=false with this
  // Session Expiry Interval, MQTT 3.1.1 clean_session=false (the broker's
  // own expiry applies). 0: a fresh session per connection (messages sent
  // while offline are lost). Needs a stable client_id.
  Millis session_expiry = std::chrono::hours(24 * 7);
  // MQTT client id. Empty: "storegw-{store_id}-{gateway_id}".
  std::string client_id;
  std::string username;  // empty: none
  std::string password;  // secret: never logged, never in an error
};

struct UplinkStatus {
  // "up": connected. "connecting": the first attempt after Start() or
  // after an established link was lost is under way. "down": attempts are
  // failing (last_error says why); it stays "down" across retries.
  std::string link = "down";
  std::string last_error;          // most recent error, empty if none yet
  int64_t last_error_at_us = 0;    // when it happened (Unix us), 0 if none
  int64_t connected_since_us = 0;  // Unix us; 0 when the link is not up
  std::string endpoint;            // the URL in use
  int protocol_version = 0;        // MQTT 5 or 4 (3.1.1); 0 before a connect
  uint64_t connects = 0;           // successful connections since Start
  uint64_t reconnects = 0;         // successful connections after the first
  uint64_t connect_failures = 0;
  uint64_t batches_sent = 0;   // including resends
  uint64_t events_sent = 0;    // including resends
  uint64_t bytes_sent = 0;     // batch payload bytes, including resends
  uint64_t batches_acked = 0;  // acknowledged (by the broker or by HQ)
  uint64_t events_acked = 0;   // events the watermark moved over
  uint64_t hq_resends = 0;     // resends from the watermark after hq_ack_timeout
  uint64_t inflight_batches = 0;
  uint64_t watermark = 0;  // as far as this uplink has acknowledged
  double send_rate = 0;    // events/s acknowledged, over the last minute
  // Head office refused a batch for good (SendFailure::permanent): the
  // engine stopped and sends nothing until restarted; link is "down" and
  // last_error says which batch and why.
  bool halted = false;
};

// Applies one downstream message (HQ stock snapshot or price update; the
// payload as received). `stop` is requested when Uplink::Stop() begins: a
// sink that retries (Downstream::Submit) gives up its retries then, so that
// Stop() stays bounded.
using DownstreamSink = std::function<void(DownstreamKind, std::string, std::stop_token stop)>;

class Uplink {
 public:
  // Validates `options` (kInvalidArgument naming the "uplink.*" key) and
  // the journal's identity. Does not connect. `journal` must outlive it.
  static Result<std::unique_ptr<Uplink>> Create(UplinkOptions options, storage::Journal* journal);
  // Same, with another transport (tests use fakes). `factory` is called
  // for every connection attempt.
  static Result<std::unique_ptr<Uplink>> CreateWithTransport(UplinkOptions options,
                                                             storage::Journal* journal,
                                                             TransportFactory factory);

  ~Uplink();  // Stop()
  Uplink(const Uplink&) = delete;
  Uplink& operator=(const Uplink&) = delete;

  // What the retained status topic carries. Called on the engine thread
  // whenever the status is published (on connect, every status_interval,
  // and with online=false on Stop); must not call Stop(). The uplink then
  // overwrites the fields it owns: link, last_error, reconnects, send_rate,
  // online, updated_at, and identity/watermark fields left empty. Without a
  // source the uplink publishes what it knows (identity, journal stats,
  // link). Set before Start().
  void SetStatusSource(std::function<v1::GatewayStatus()> source);

  // Where downstream messages (HQ stock snapshots and price updates) go.
  // With a sink set, the MQTT transport subscribes to
  // {topic_prefix}/{store_id}/downstream/stock and .../prices (QoS 1,
  // persistent session, see session_expiry). The sink runs on the
  // transport's receive thread; the broker gets the message's PUBACK when
  // it returns, so it should return once the change is durable (e.g.
  // Downstream::Submit), and quickly: the uplink's acks wait meanwhile, and
  // so does every other use of Paho in the process. Once its stop token is
  // requested (Stop()), it should make no further retries and return:
  // Stop() waits for it. Set before Start().
  void SetDownstreamSink(DownstreamSink sink);
  // The same without a stop token: Stop() waits for such a sink however
  // long it takes (a Downstream::Submit in its journal retries: up to
  // DownstreamOptions::max_retry_time). Prefer the form above.
  void SetDownstreamSink(std::function<void(DownstreamKind, std::string)> sink);

  // Starts the engine thread; returns at once (the first connection attempt
  // runs in the background). kFailedPrecondition if already started.
  Status Start();
  // Publishes a final retained status (online=false) when connected,
  // disconnects and joins the threads. Bounded: a few seconds at most even
  // with a stalled link, and with a downstream message being applied (its
  // sink's stop token is requested first; the apply's attempt under way
  // finishes, its retries are given up). Idempotent.
  void Stop();

  UplinkStatus status() const;
  // Writes the uplink's fields (link, last_error and last_error_at,
  // reconnects, send_rate) into a status document.
  void FillStatus(v1::GatewayStatus* status) const;

 private:
  class Impl;
  explicit Uplink(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Checks the TLS files of `tls` the way Start() does before connecting:
// existence, readability, PEM parsing, key matching the certificate. The
// message names the option and the file ("uplink.tls.cert_file
// /etc/storegw/client.pem: cannot open: No such file or directory").
Status CheckTlsFiles(const TlsFiles& tls);

}  // namespace storegw::sync
