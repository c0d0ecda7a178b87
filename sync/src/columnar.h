// The columnar batch encoding (uplink.batch_encoding = "columnar"): an
// EventBatch rewritten so that a general-purpose compressor (zstd) finds
// what repeats. Both halves of the wire: the gateway encodes, storegw-hq
// decodes, and the decoded EventBatch is the original, field for field.
//
// What it changes, per event of a batch (seqs are contiguous, so implied):
//   * recorded_at: the delta to the previous event's;
//   * occurred_at: the delta to the previous event's (the first event's:
//     to its recorded_at);
//   * device_id: an index into the batch's device table (each id once);
//   * event_id: when it is "<device_id>-<decimal counter>" (what tills
//     send), the counter's delta to that device's previous one; else the
//     id itself;
//   * skus (the sku fields of the lines, counts, alerts and snapshots):
//     the sku's rank in the batch's sku table, which lists each sku once,
//     the most referenced first (so popular skus have one-byte numbers);
//   * a sale's or return's basket_id: dropped when it is the event_id;
//   * a sale's or return's lines: their number, and per line its sku, its
//     quantity, and a price and currency only when they differ from the
//     sku's previous line in the batch (a flag says which, from the sku's
//     second line on);
//   * tender, delivery id, adjustment reason, sensor id and metric, alert
//     message: an index into the batch's string table (each string once);
//   * the quantities of stock lines, adjustment lines, counts and
//     snapshot lines: zigzag numbers in a column;
//   * the rest of the event: its protobuf bytes, without the fields above.
// The fields moved are fixed by the format, by name (a field the schema
// gains later stays in the body until a new format version names it), so
// both ends agree whichever schema they were built with. Each kind of value
// is a column of its own (varints), so like values sit together; the whole
// is then compressed (uplink.compression).
//
// Format (version 1): "SGC1" | store_id, gateway_id (varint length +
// bytes) | epoch (8 bytes, little endian) | first_seq, count (varints) |
// 18 columns, each a varint length + bytes. The magic makes it
// self-describing: it can never be read as an EventBatch (0x53 is field 10
// with a group wire type, which an EventBatch parse refuses), so a receiver
// that does not know it refuses the batch instead of misreading it; a
// later version gets another magic.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

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
// A columnar batch's header: whose it is and which seqs, without decoding
// the events (the columns are checked to be all there).
struct ColumnarHeader {
  std::string_view store_id, gateway_id;
  uint64_t epoch = 0;
  uint64_t first_seq = 0;
  uint64_t count = 0;  // events: seqs first_seq .. first_seq + count - 1
};
// kInvalidArgument naming what is wrong.
Result<ColumnarHeader> ReadColumnarHeader(std::string_view payload);

// The columns of a columnar batch by name, for measuring where its bytes
// go (empty when `payload` is not a well-formed columnar batch).
std::vector<std::pair<std::string, std::string_view>> ColumnarColumns(std::string_view payload);

Result<v1::EventBatch> DecodeColumnar(std::string_view payload, size_t max_events = 1u << 20,
                                      size_t max_bytes = size_t{64} << 20);

}  // namespace storegw::sync
