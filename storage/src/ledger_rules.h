// The stock ledger's rules as plain functions of (state, change, thresholds):
// how one sku's state moves with an event's delta, a cycle count, a snapshot
// line or a pruned event, and which alerts (oversell, count mismatch, low
// stock) are raised or cleared. No SQLite here: the writer loads and stores
// the state and journals the alerts these functions decide, and the unit
// tests call them directly.
//
// The rules:
//   * on_hand moves by each event's delta (StockDeltas); a count sets it to
//     the counted quantity, recorded as the delta that achieves that.
//   * A snapshot line rebases a sku: base_qty := qty as of the snapshot's
//     as_of_seq, on_hand := qty + the deltas after as_of_seq. A line older
//     than the sku's current base (smaller as_of_seq, or the same as_of_seq
//     with a smaller hq_version) is stale and ignored.
//   * Pruning folds a removed event's delta into base_qty, so that
//     on_hand == base_qty + sum(deltas with seq > as_of_seq) stays true.
//   * OVERSELL is raised once when on_hand goes below zero and cleared when
//     it is back at or above zero; LOW_STOCK likewise around the sku's
//     threshold (per-sku map first, else the default; < 0: off).
//     COUNT_MISMATCH is raised when a count differs from the ledger by more
//     than its threshold (< 0: off) and is never cleared.
//   * A sku is untracked until it has a baseline: a snapshot line, a count
//     or a receipt. Its on_hand still moves with every delta, but an
//     untracked sku raises no OVERSELL or LOW_STOCK, and its first count
//     sets the baseline without COUNT_MISMATCH: a sku the gateway never
//     saw stock of starts at 0, and selling it is not an oversell.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "storegw/storage/journal.h"

namespace storegw::storage::internal {

// One sku of the ledger, as the writer holds it during a transaction.
struct StockState {
  bool exists = false;  // has a row in the stock table
  bool dirty = false;   // changed in this transaction
  int64_t on_hand = 0;
  int64_t base_qty = 0;
  uint64_t as_of_seq = 0;
  uint64_t hq_version = 0;
  bool oversold = false;  // an OVERSELL alert is open
  bool low = false;       // a LOW_STOCK alert is open
  uint64_t updated_seq = 0;
  bool tracked = false;   // has a baseline (snapshot line, count or receipt)
};

// The alert thresholds of JournalOptions.
struct AlertThresholds {
  int64_t count_mismatch = 0;      // < 0: off
  int64_t low_stock_default = -1;  // < 0: off unless the sku is in the map
  const std::map<std::string, int64_t>* low_stock = nullptr;  // per sku; may be null

  // Refers to options.low_stock_thresholds: `options` must outlive it.
  static AlertThresholds From(const JournalOptions& options);
};

enum class AlertAction : uint8_t { kNone, kRaise, kClear };

// What a rule decided for one sku.
struct AlertDecision {
  AlertAction action = AlertAction::kNone;
  v1::Alert::Kind kind = v1::Alert::KIND_UNSPECIFIED;
  int64_t on_hand = 0;  // kRaise: the alert's on_hand
  std::string message;  // kRaise: for people, what happened and what to check
};

// An event's delta of this sku at `seq` (a count passes its CountDelta).
// Inline: the writer runs it for every line of every event.
inline void ApplyDelta(StockState& st, int64_t delta, uint64_t seq) {
  st.on_hand += delta;
  st.dirty = true;
  st.updated_seq = seq;
}

// The delta that sets on_hand to the counted quantity.
inline int64_t CountDelta(const StockState& st, int64_t counted) { return counted - st.on_hand; }

// True when a snapshot line (as_of_seq, hq_version) is older than the sku's
// current base and must be ignored.
bool SnapshotLineIsStale(const StockState& st, uint64_t as_of_seq, uint64_t hq_version);

// Rebases the sku on a snapshot line journaled at `seq`: `deltas_after` is
// the sum of the sku's deltas after as_of_seq. Call only for a line that is
// not stale.
void RebaseOnSnapshot(StockState& st, int64_t qty, uint64_t as_of_seq, uint64_t hq_version,
                      int64_t deltas_after, uint64_t seq);

// Folds the delta of pruned event `seq` into the base. A sku on several
// lines of one event has every line folded, not only the first (after which
// as_of_seq == seq): `folded_earlier` says an earlier line of the same event
// was folded. Returns whether this one was.
bool FoldPruned(StockState& st, uint64_t seq, int64_t delta, bool folded_earlier);

// The oversell rule after a change of `sku` at `seq`.
AlertDecision OversellRule(const StockState& st, const std::string& sku, uint64_t seq);

// The sku's low-stock threshold (per-sku map first, else the default);
// < 0: no low-stock alert for it.
int64_t LowStockThreshold(const AlertThresholds& t, const std::string& sku);

// The low-stock rule after a change of `sku` at `seq`.
AlertDecision LowStockRule(const StockState& st, const std::string& sku, uint64_t seq,
                           const AlertThresholds& t);

// The count-mismatch rule for a count of `counted` at `seq` whose delta to
// the ledger was `delta` (`st`: the sku before the count is marked tracked).
AlertDecision CountMismatchRule(const StockState& st, const std::string& sku, int64_t counted,
                                int64_t delta, uint64_t seq, const AlertThresholds& t);

// The sku has a baseline from now on (a count, a receipt; a snapshot line
// marks it in RebaseOnSnapshot).
inline void MarkTracked(StockState& st) {
  if (!st.tracked) {
    st.tracked = true;
    st.dirty = true;
  }
}

// Records an oversell or low-stock decision in the state (the flag that
// keeps an open alert from being raised twice). kNone changes nothing.
void RecordDecision(StockState& st, const AlertDecision& d);

}  // namespace storegw::storage::internal
