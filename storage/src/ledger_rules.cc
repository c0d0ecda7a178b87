// The ledger and alert rules (see ledger_rules.h).
#include "ledger_rules.h"

#include "internal.h"

namespace storegw::storage::internal {

AlertThresholds AlertThresholds::From(const JournalOptions& options) {
  AlertThresholds t;
  t.count_mismatch = options.count_mismatch_threshold;
  t.low_stock_default = options.low_stock_default;
  t.low_stock = &options.low_stock_thresholds;
  return t;
}

bool SnapshotLineIsStale(const StockState& st, uint64_t as_of_seq, uint64_t hq_version) {
  return SnapshotIsStale(st.exists || st.dirty, st.as_of_seq, st.hq_version, as_of_seq,
                         hq_version);
}

void RebaseOnSnapshot(StockState& st, int64_t qty, uint64_t as_of_seq, uint64_t hq_version,
                      int64_t deltas_after, uint64_t seq) {
  st.base_qty = qty;
  st.as_of_seq = as_of_seq;
  st.hq_version = hq_version;
  st.on_hand = qty + deltas_after;
  st.updated_seq = seq;
  st.dirty = true;
  st.tracked = true;
}

bool FoldPruned(StockState& st, uint64_t seq, int64_t delta, bool folded_earlier) {
  if (seq <= st.as_of_seq && !folded_earlier) return false;
  st.base_qty += delta;
  st.as_of_seq = seq;
  st.dirty = true;
  return true;
}

AlertDecision OversellRule(const StockState& st, const std::string& sku, uint64_t seq) {
  AlertDecision d;
  d.kind = v1::Alert::OVERSELL;
  if (st.on_hand < 0 && !st.oversold && st.tracked) {
    d.action = AlertAction::kRaise;
    d.on_hand = st.on_hand;
    d.message = "on_hand of " + sku + " went below zero (" + std::to_string(st.on_hand) +
                ") at seq " + std::to_string(seq) +
                ": sold more than the ledger holds; check for a missed receipt or a miscount";
  } else if (st.on_hand >= 0 && st.oversold) {
    d.action = AlertAction::kClear;
  }
  return d;
}

int64_t LowStockThreshold(const AlertThresholds& t, const std::string& sku) {
  if (t.low_stock) {
    auto it = t.low_stock->find(sku);
    if (it != t.low_stock->end()) return it->second;
  }
  return t.low_stock_default;
}

AlertDecision LowStockRule(const StockState& st, const std::string& sku, uint64_t seq,
                           const AlertThresholds& t) {
  AlertDecision d;
  d.kind = v1::Alert::LOW_STOCK;
  const int64_t threshold = LowStockThreshold(t, sku);
  const bool below = threshold >= 0 && st.on_hand < threshold;
  if (below && !st.low && st.tracked) {
    d.action = AlertAction::kRaise;
    d.on_hand = st.on_hand;
    d.message = "on_hand of " + sku + " fell to " + std::to_string(st.on_hand) +
                ", below its low-stock threshold " + std::to_string(threshold) + " at seq " +
                std::to_string(seq) + ": reorder or restock the shelf";
  } else if (!below && st.low) {
    d.action = AlertAction::kClear;
  }
  return d;
}

AlertDecision CountMismatchRule(const StockState& st, const std::string& sku, int64_t counted,
                                int64_t delta, uint64_t seq, const AlertThresholds& t) {
  AlertDecision d;
  d.kind = v1::Alert::COUNT_MISMATCH;
  if (!st.tracked) return d;  // the first count is the baseline
  const int64_t diff = delta < 0 ? -delta : delta;
  if (t.count_mismatch < 0 || diff <= t.count_mismatch) return d;
  d.action = AlertAction::kRaise;
  d.on_hand = counted;
  d.message = "cycle count of " + sku + " at seq " + std::to_string(seq) + " found " +
              std::to_string(counted) + ", the ledger held " + std::to_string(counted - delta) +
              " (difference " + std::to_string(delta) + ", threshold " +
              std::to_string(t.count_mismatch) +
              "): check for unrecorded receipts, shrink or a miscount";
  return d;
}

void RecordDecision(StockState& st, const AlertDecision& d) {
  if (d.action == AlertAction::kNone) return;
  const bool open = d.action == AlertAction::kRaise;
  if (d.kind == v1::Alert::OVERSELL) {
    st.oversold = open;
  } else if (d.kind == v1::Alert::LOW_STOCK) {
    st.low = open;
  } else {
    return;  // COUNT_MISMATCH is not kept in the stock state
  }
  st.dirty = true;
}

}  // namespace storegw::storage::internal
