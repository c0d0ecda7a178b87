// The columnar batch encoding (uplink.batch_encoding = "columnar"): an
// EventBatch rewritten so that a general-purpose compressor (zstd) finds
// what repeats. Both halves of the wire: the gateway encodes, storegw-hq
// decodes, and the decoded EventBatch is the original, field for field.
//
// What it changes, per event of a batch (seqs are contiguous, so implied):
//   * recorded_at: the delta to the previous event's;
//   * occurred_at: the difference to the event's recorded_at (a device
//     clock is close to the gateway's);
//   * device_id: an index into the batch's device table (each id once);
//   * event_id: when it is "<device_id>-<decimal counter>" (what tills
//     send), the counter's delta to that device's previous one; else the
//     id itself;
//   * every "sku" string anywhere in the event: an index into the batch's
//     sku table (each sku once);
//   * a SaleLine's unit_price and currency: dropped when they equal those
//     of the sku's previous line in the batch;
//   * a sale's or return's basket_id: dropped when it is the event_id;
//   * a sale's or return's lines: their number, and per line its sku index,
//     quantity, and price and currency (only when they changed for the
//     sku), each in a column (lines with fields unknown to this build stay
//     in the event);
//   * the rest of the event: its protobuf bytes, without the fields above.
// Each of these is a column of its own (varints), so like values sit
// together; the whole is then compressed (uplink.compression).
//
// Format (version 1): "SGC1" | store_id, gateway_id (varint length +
// bytes) | epoch (8 bytes, little endian) | first_seq, count (varints) |
// 14 columns, each a varint length + bytes. The magic makes it
// self-describing: it can never be read as an EventBatch (0x53 is field 10
// with a group wire type, which an EventBatch parse refuses), so a receiver
// that does not know it refuses the batch instead of misreading it; a
// later version gets another magic.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "storegw/status.h"
#include "storegw/v1/storegw.pb.h"

namespace storegw::sync {

inline constexpr std::string_view kColumnarMagic = "SGC1";

// kInvalidArgument for a batch this encoding cannot carry (seqs not
// contiguous from first_seq, nested epoch/store/gateway set, an event
// missing, fields unknown to this build outside the events, an empty
// batch): the caller sends the EventBatch as it is.
Result<std::string> EncodeColumnar(const v1::EventBatch& batch);

// What goes on the wire before compression: the serialized EventBatch
// `payload` itself, or with `columnar` its columnar form (the payload as it
// is when the batch cannot be carried so, or does not parse).
std::string WireBatch(std::string payload, bool columnar);

// True when `payload` (decompressed) starts with the magic.
inline bool IsColumnar(std::string_view payload) {
  return payload.substr(0, kColumnarMagic.size()) == kColumnarMagic;
}

// The EventBatch back. kInvalidArgument naming what is wrong for anything
// malformed (every length and index is checked; at most `max_events`
// events, and at most about `max_bytes` of decoded strings and bodies: a
// table entry named by many one-byte indexes cannot blow up memory).
Result<v1::EventBatch> DecodeColumnar(std::string_view payload, size_t max_events = 1u << 20,
                                      size_t max_bytes = size_t{64} << 20);

}  // namespace storegw::sync
