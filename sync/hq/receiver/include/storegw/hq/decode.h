// What the receiver does to a payload before the store sees it, as pure
// functions (no I/O, no threads, never throw): inflate it per its content
// encoding, parse it as a storegw.v1.EventBatch and check it against the
// wire protocol (sync/README.md). A payload that fails gets a RefuseReason
// and a detail for the log and the HTTPS answer; it is never stored and
// never acknowledged.
//
// The rules, in the order they are checked:
//   * undecodable: larger than the limits, not a complete zlib stream when
//     deflated, not an EventBatch, or a batch whose store_id / gateway_id is
//     not an id (1 to 64 characters of A-Z a-z 0-9 . _ -, what the
//     gateway's config accepts);
//   * topic_mismatch: the MQTT topic's (or the HTTPS Idempotency-Key's)
//     store or gateway is not the batch's;
//   * not_contiguous: no events, first_seq 0, or the events' seqs are not
//     exactly first_seq..last_seq, one each, in order;
//   * invalid_event: an event without recorded_at; a nested epoch, store_id
//     or gateway_id that is set and differs from the batch's; an event that
//     fails storage::ValidateDeviceEvent, unless it is one the gateway
//     wrote itself (alert, stock_snapshot or price_update with event_id
//     "gw:{gateway_id}:{seq}" and device_id = gateway_id).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "storegw/hq/store.h"
#include "storegw/v1/storegw.pb.h"

namespace storegw::hq {

// How a payload says it is encoded.
enum class PayloadEncoding {
  // Nothing said (MQTT without the user property: a 3.1.1 hop, a bridge):
  // the first byte decides. A serialized EventBatch never starts with 0x78
  // (field 15, which it does not have) nor 0x28 (field 5, wire type 0,
  // which it does not have either); a zlib stream at the levels the gateway
  // uses starts with 0x78, a zstd frame with 0x28.
  kSniff,
  kIdentity,  // the serialized EventBatch itself
  kDeflate,   // a zlib stream (RFC 1950) of it: HTTP's "deflate"
  kZstd,      // a zstd frame (RFC 8878) of it: HTTP's "zstd"
};

// A Content-Encoding header or MQTT content-encoding user property:
// "deflate" (any case) is kDeflate, "zstd" kZstd; "" and "identity" are
// kIdentity; anything else (gzip, br, x-custom) is nullopt: not supported.
std::optional<PayloadEncoding> ParseContentEncoding(std::string_view value);

// 64 MiB (ReceiverOptions::max_batch_bytes): far above a gateway's largest
// batch (uplink.max_message_bytes, 256 KiB by default), far below what
// would hurt HQ.
inline constexpr size_t kMaxBatchBytes = size_t{64} << 20;

struct DecodeLimits {
  size_t max_payload_bytes = kMaxBatchBytes;  // as received
  size_t max_batch_bytes = kMaxBatchBytes;    // the serialized EventBatch, inflated
};

// The identity the transport attached to a payload (the MQTT topic's
// {store}/{gateway}); empty fields are not checked.
struct BatchOrigin {
  std::string_view store_id;
  std::string_view gateway_id;
  // Names the origin in a mismatch's detail: "topic", "Idempotency-Key".
  std::string_view what = "topic";
};

struct Decoded {
  std::optional<RefuseReason> refused;  // set: refused; `detail` says why
  std::string detail;
  IncomingBatch batch;  // the checked batch when not refused
  bool ok() const { return !refused.has_value(); }
};

// Inflates (per `encoding`), parses and checks one payload. wire_bytes of
// the result is payload.size().
Decoded DecodeBatch(std::string_view payload, PayloadEncoding encoding,
                    const BatchOrigin& origin = {}, const DecodeLimits& limits = {});

// The checks of DecodeBatch on a parsed batch (identity, origin,
// contiguity, events); nullopt when it passes.
struct Refusal {
  RefuseReason reason;
  std::string detail;
};
std::optional<Refusal> CheckBatch(const v1::EventBatch& batch, const BatchOrigin& origin = {});

// An id as the gateway's config accepts it: 1 to 64 characters of
// A-Z a-z 0-9 . _ -.
bool IsGatewayId(std::string_view id);

// "{prefix}/{store_id}/{gateway_id}/{leaf}" taken apart; nullopt when the
// topic is not under `prefix` or has another shape.
struct GatewayTopic {
  std::string store_id, gateway_id, leaf;
};
std::optional<GatewayTopic> ParseGatewayTopic(std::string_view topic, std::string_view prefix);

// The HTTPS Idempotency-Key the gateway sends for `batch`:
// "{gateway_id}-{epoch}-{first_seq}-{last_seq}" in decimal.
std::string BatchIdempotencyKey(const v1::EventBatch& batch);

}  // namespace storegw::hq
