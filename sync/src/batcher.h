// Builds EventBatch payloads from the journal: one contiguous seq range of
// at most max_events events and max_bytes serialized bytes per batch.
//
// Sizes are exact: each event's contribution to the batch (tag + length +
// JournaledEvent) and the batch header are computed before the event is
// added, so a batch never exceeds max_bytes unless a single event alone
// does (it is then sent alone: events are never dropped or split).
//
// Nested events carry only seq, recorded_at and the device event; the
// batch's store_id, gateway_id and epoch apply to all of them (the schema
// allows it, and it saves ~30 bytes per event on the wire).
//
// Not thread-safe: owned by the engine thread.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>

#include "storegw/status.h"
#include "storegw/v1/storegw.pb.h"

namespace storegw::storage {
class Journal;
}

namespace storegw::sync {

struct Batch {
  uint64_t first_seq = 0;
  uint64_t last_seq = 0;
  size_t events = 0;
  std::string payload;  // serialized v1::EventBatch
};

class Batcher {
 public:
  Batcher(storage::Journal* journal, std::string store_id, std::string gateway_id, uint64_t epoch,
          size_t max_events, size_t max_bytes);

  // The batch that starts at `from_seq`, or nullopt when the journal has no
  // event at `from_seq` yet. Events read beyond the batch are kept for the
  // next call (a call with another from_seq drops them).
  Result<std::optional<Batch>> Build(uint64_t from_seq);

  // Drops the read-ahead (after a reconnect the engine restarts anywhere).
  void Reset() { buf_.clear(); }

  size_t max_events() const { return max_events_; }
  size_t max_bytes() const { return max_bytes_; }
  void set_limits(size_t max_events, size_t max_bytes) {
    max_events_ = max_events;
    max_bytes_ = max_bytes;
  }

 private:
  size_t HeaderBytes(uint64_t first, uint64_t last) const;
  Status Refill(uint64_t from_seq, size_t want_events);

  storage::Journal* journal_;
  std::string store_id_, gateway_id_;
  uint64_t epoch_;
  size_t max_events_, max_bytes_;
  std::deque<v1::JournaledEvent> buf_;  // contiguous read-ahead
};

// Bytes of a protobuf varint holding `v`.
size_t VarintBytes(uint64_t v);

}  // namespace storegw::sync
