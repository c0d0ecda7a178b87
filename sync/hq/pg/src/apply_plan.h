// The apply rules of PgStore::ApplyBatches as plain C++ (no SQL), run
// under the row locks of the transaction: given the locked state of every
// (store, gateway, epoch) the batches touch, decide per batch what is new,
// what is a duplicate, what is refused, and how far each contiguous prefix
// reaches. A gateway is (store_id, gateway_id): gateway ids are only unique
// within a store (every store's default is "gw-01"). docs/hq-schema.md
// "Apply rules" says the same in prose.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "storegw/hq/store.h"

namespace storegw::hq::pg {

struct Range {
  uint64_t first = 0, last = 0;  // inclusive
  bool operator==(const Range&) const = default;
};
// Sorted, disjoint and not adjacent (adjacent ranges are merged).
using Ranges = std::vector<Range>;

// Adds [r.first, r.last] (which must not overlap `set`) and merges.
void AddRange(Ranges* set, Range r);
// Moves `applied` over every range of `set` that starts at applied + 1,
// removing those ranges.
void AdvancePrefix(uint64_t* applied, Ranges* set);

// A gateway at HQ: its id is unique only within its store.
struct GatewayKey {
  std::string store_id;
  std::string gateway_id;
  auto operator<=>(const GatewayKey&) const = default;
};

// One journal (epoch) of a gateway.
struct EpochKey {
  std::string store_id;
  std::string gateway_id;
  uint64_t epoch = 0;
  GatewayKey gateway() const { return {store_id, gateway_id}; }
  auto operator<=>(const EpochKey&) const = default;
};

// A (store, gateway, epoch) row as the transaction locked it.
struct EpochState {
  bool exists = false;
  // Not empty: this (gateway_id, epoch) is already the journal of the
  // gateway of the same id in another store (this one; a journal copied
  // between stores): its batches are refused (kConflict). exists is false.
  std::string other_store;
  bool superseded = false;
  uint64_t superseded_by = 0;
  uint64_t applied_seq = 0;
  Ranges pending;  // stored past a gap
};

// A gateways row as the transaction locked it.
struct GatewayState {
  bool has_current = false;
  uint64_t current_epoch = 0;
};

// What an already stored event is compared on, when a batch repeats it.
struct StoredEvent {
  std::string event_id;
  int64_t recorded_at_us = 0;
};
using StoredEvents = std::map<EpochKey, std::unordered_map<uint64_t, StoredEvent>>;

// The seq ranges of each (store, gateway, epoch) that `batches` repeat from
// before the transaction: the rows to read for the conflict check.
std::vector<std::pair<EpochKey, Range>> RepeatedRanges(
    std::span<const IncomingBatch> batches, const std::map<EpochKey, EpochState>& epochs);

// Shape checks the store relies on (the receiver checks them first):
// gateway_id set, 1 <= first_seq <= last_seq < 2^63, one event per seq in
// order, recorded_at set, no NUL in the text columns.
std::optional<std::pair<RefuseReason, std::string>> CheckBatchShape(const v1::EventBatch& b);

struct Plan {
  std::vector<BatchOutcome> outcomes;  // one per batch
  // The events to write: (batch index, event index), in batch order.
  std::vector<std::pair<uint32_t, uint32_t>> rows;
  struct EpochWrite {
    EpochKey key;
    uint64_t applied_seq = 0;
    bool pending_changed = false;
    Ranges pending;
  };
  std::vector<EpochWrite> epochs;  // every (store, gateway, epoch) a stored batch touched
  struct GatewayWrite {
    GatewayKey key;
    uint64_t current_epoch = 0;  // changed: the gateway's other epochs become superseded
  };
  std::vector<GatewayWrite> gateways;  // gateways whose current epoch changes
};

// Decides every batch in order, as if they were applied one by one.
// `gateways` must hold every (store, gateway) of `batches`, `epochs` every
// (store, gateway, epoch) of them (exists = false for unknown ones); `stored` the
// rows RepeatedRanges asked for (a seq missing there counts as a duplicate:
// retention dropped it). `shape_errors[i]` (may be empty) refuses batch i.
Plan BuildPlan(std::span<const IncomingBatch> batches,
               const std::vector<std::optional<std::pair<RefuseReason, std::string>>>& shape_errors,
               std::map<GatewayKey, GatewayState> gateways, std::map<EpochKey, EpochState> epochs,
               const StoredEvents& stored);

// Which kind of body an event has: the name of the field set in its `body`
// oneof ("sale", "sale_return", "count", ...); "" when none.
const std::string& EventKind(const v1::Event& e);

// The epoch as it is stored (bigint: the fixed64's two's complement).
inline int64_t EpochToSql(uint64_t epoch) {
  return static_cast<int64_t>(epoch);
}
inline uint64_t EpochFromSql(int64_t v) {
  return static_cast<uint64_t>(v);
}

}  // namespace storegw::hq::pg
