// The ledger and alert rules as plain functions (storage/src/ledger_rules.h),
// without a journal: how one sku's state moves with a delta, a count, a
// snapshot line or a pruned event, and what each alert rule decides.
#include <doctest/doctest.h>

#include <map>
#include <string>

#include "ledger_rules.h"

namespace storegw::storage {
namespace {

using internal::AlertAction;
using internal::AlertDecision;
using internal::AlertThresholds;
using internal::StockState;

StockState RulesState(int64_t on_hand, bool tracked = true) {
  StockState st;
  st.exists = true;
  st.on_hand = on_hand;
  st.tracked = tracked;
  return st;
}

AlertThresholds RulesThresholds(int64_t mismatch, int64_t low_default,
                                const std::map<std::string, int64_t>* per_sku = nullptr) {
  AlertThresholds t;
  t.count_mismatch = mismatch;
  t.low_stock_default = low_default;
  t.low_stock = per_sku;
  return t;
}

TEST_CASE("rules: a delta moves on_hand and marks the sku changed at its seq") {
  StockState st = RulesState(5);
  internal::ApplyDelta(st, -7, 12);
  CHECK(st.on_hand == -2);
  CHECK(st.dirty);
  CHECK(st.updated_seq == 12);
  CHECK(st.base_qty == 0);  // the base moves only with snapshots and pruning
  internal::ApplyDelta(st, 3, 13);
  CHECK(st.on_hand == 1);
  CHECK(st.updated_seq == 13);
}

TEST_CASE("rules: a count's delta is what sets on_hand to the counted quantity") {
  CHECK(internal::CountDelta(RulesState(10), 4) == -6);
  CHECK(internal::CountDelta(RulesState(-3), 0) == 3);
  CHECK(internal::CountDelta(RulesState(7), 7) == 0);
  StockState st = RulesState(10);
  internal::ApplyDelta(st, internal::CountDelta(st, 4), 2);
  CHECK(st.on_hand == 4);
}

TEST_CASE("rules: a snapshot line rebases unless it is older than the current base") {
  StockState fresh;  // never seen: nothing is stale
  CHECK_FALSE(internal::SnapshotLineIsStale(fresh, 0, 0));

  StockState st = RulesState(9);
  st.as_of_seq = 10;
  st.hq_version = 4;
  CHECK(internal::SnapshotLineIsStale(st, 9, 99));   // older as_of_seq
  CHECK(internal::SnapshotLineIsStale(st, 10, 3));   // same as_of_seq, older version
  CHECK_FALSE(internal::SnapshotLineIsStale(st, 10, 4));  // the same: applies again
  CHECK_FALSE(internal::SnapshotLineIsStale(st, 11, 1));  // newer as_of_seq wins

  // A sku created in this transaction (dirty, no row yet) has a base too.
  StockState pending;
  pending.dirty = true;
  pending.as_of_seq = 10;
  CHECK(internal::SnapshotLineIsStale(pending, 9, 1));

  internal::RebaseOnSnapshot(st, 20, 11, 5, -3, 30);
  CHECK(st.base_qty == 20);
  CHECK(st.as_of_seq == 11);
  CHECK(st.hq_version == 5);
  CHECK(st.on_hand == 17);  // base + the deltas after as_of_seq
  CHECK(st.updated_seq == 30);
  CHECK(st.dirty);
}

TEST_CASE("rules: pruning folds deltas after the base, every line of one event") {
  StockState st = RulesState(12);
  st.base_qty = 10;
  st.as_of_seq = 5;
  // An event at or before the base is already in it.
  CHECK_FALSE(internal::FoldPruned(st, 5, 4, false));
  CHECK_FALSE(internal::FoldPruned(st, 3, 4, false));
  CHECK(st.base_qty == 10);
  CHECK_FALSE(st.dirty);
  // Seq 6 has two lines of the sku: both are folded.
  CHECK(internal::FoldPruned(st, 6, 3, false));
  CHECK(st.base_qty == 13);
  CHECK(st.as_of_seq == 6);
  CHECK(internal::FoldPruned(st, 6, -1, true));
  CHECK(st.base_qty == 12);
  CHECK(st.as_of_seq == 6);
  CHECK(st.dirty);
  CHECK(st.on_hand == 12);  // pruning never changes on_hand
}

TEST_CASE("rules: oversell is raised once below zero and cleared at or above zero") {
  StockState st = RulesState(0);
  AlertDecision d = internal::OversellRule(st, "milk", 3);
  CHECK(d.action == AlertAction::kNone);

  st.on_hand = -2;
  d = internal::OversellRule(st, "milk", 4);
  REQUIRE(d.action == AlertAction::kRaise);
  CHECK(d.kind == v1::Alert::OVERSELL);
  CHECK(d.on_hand == -2);
  CHECK(d.message.find("milk") != std::string::npos);
  CHECK(d.message.find("seq 4") != std::string::npos);
  internal::RecordDecision(st, d);
  CHECK(st.oversold);
  CHECK(st.dirty);

  st.on_hand = -5;  // still below: already open, not raised again
  CHECK(internal::OversellRule(st, "milk", 5).action == AlertAction::kNone);

  st.on_hand = 0;
  d = internal::OversellRule(st, "milk", 6);
  CHECK(d.action == AlertAction::kClear);
  CHECK(d.kind == v1::Alert::OVERSELL);
  internal::RecordDecision(st, d);
  CHECK_FALSE(st.oversold);
  CHECK(internal::OversellRule(st, "milk", 7).action == AlertAction::kNone);
}

TEST_CASE("rules: low stock around the sku's threshold, per-sku map first") {
  const std::map<std::string, int64_t> per_sku = {{"eggs", 6}, {"apple", -1}};
  const AlertThresholds t = RulesThresholds(0, 2, &per_sku);
  CHECK(internal::LowStockThreshold(t, "eggs") == 6);
  CHECK(internal::LowStockThreshold(t, "apple") == -1);  // off for apple
  CHECK(internal::LowStockThreshold(t, "bread") == 2);   // the default
  CHECK(internal::LowStockThreshold(RulesThresholds(0, -1), "bread") == -1);

  StockState eggs = RulesState(6);
  CHECK(internal::LowStockRule(eggs, "eggs", 1, t).action == AlertAction::kNone);
  eggs.on_hand = 5;
  AlertDecision d = internal::LowStockRule(eggs, "eggs", 2, t);
  REQUIRE(d.action == AlertAction::kRaise);
  CHECK(d.kind == v1::Alert::LOW_STOCK);
  CHECK(d.on_hand == 5);
  CHECK(d.message.find("threshold 6") != std::string::npos);
  internal::RecordDecision(eggs, d);
  CHECK(eggs.low);
  CHECK_FALSE(eggs.oversold);  // a low-stock decision touches only its own flag
  eggs.on_hand = 1;
  CHECK(internal::LowStockRule(eggs, "eggs", 3, t).action == AlertAction::kNone);
  eggs.on_hand = 6;  // at the threshold: cleared
  d = internal::LowStockRule(eggs, "eggs", 4, t);
  CHECK(d.action == AlertAction::kClear);
  internal::RecordDecision(eggs, d);
  CHECK_FALSE(eggs.low);

  StockState apple = RulesState(-100);
  CHECK(internal::LowStockRule(apple, "apple", 1, t).action == AlertAction::kNone);
  // A threshold turned off while an alert is open clears it.
  apple.low = true;
  CHECK(internal::LowStockRule(apple, "apple", 2, t).action == AlertAction::kClear);
}

TEST_CASE("rules: count mismatch is raised when the difference exceeds the threshold") {
  const AlertThresholds t = RulesThresholds(4, -1);
  const StockState tea = RulesState(0);
  CHECK(internal::CountMismatchRule(tea, "tea", 10, 4, 7, t).action == AlertAction::kNone);
  CHECK(internal::CountMismatchRule(tea, "tea", 10, -4, 7, t).action == AlertAction::kNone);
  AlertDecision d = internal::CountMismatchRule(tea, "tea", 10, -5, 7, t);
  REQUIRE(d.action == AlertAction::kRaise);
  CHECK(d.kind == v1::Alert::COUNT_MISMATCH);
  CHECK(d.on_hand == 10);  // the counted quantity
  CHECK(d.message.find("found 10") != std::string::npos);
  CHECK(d.message.find("the ledger held 15") != std::string::npos);
  CHECK(internal::CountMismatchRule(tea, "tea", 10, 5, 7, t).action == AlertAction::kRaise);
  // Threshold 0: any difference; a negative threshold: never.
  CHECK(internal::CountMismatchRule(tea, "tea", 1, 1, 7, RulesThresholds(0, -1)).action ==
        AlertAction::kRaise);
  CHECK(internal::CountMismatchRule(tea, "tea", 1, 0, 7, RulesThresholds(0, -1)).action ==
        AlertAction::kNone);
  CHECK(internal::CountMismatchRule(tea, "tea", 1, 1000, 7, RulesThresholds(-1, -1)).action ==
        AlertAction::kNone);
  // Count mismatch keeps no flag in the stock state.
  StockState st = RulesState(1);
  internal::RecordDecision(st, d);
  CHECK_FALSE(st.dirty);
  CHECK_FALSE(st.oversold);
  CHECK_FALSE(st.low);
}

TEST_CASE("rules: the thresholds come from the journal options") {
  JournalOptions o;
  o.count_mismatch_threshold = 3;
  o.low_stock_default = 7;
  o.low_stock_thresholds = {{"x", 1}};
  const AlertThresholds t = AlertThresholds::From(o);
  CHECK(t.count_mismatch == 3);
  CHECK(t.low_stock_default == 7);
  CHECK(internal::LowStockThreshold(t, "x") == 1);
  CHECK(internal::LowStockThreshold(t, "y") == 7);
}

TEST_CASE("rules: an untracked sku raises no stock alert until it has a baseline") {
  const AlertThresholds t = RulesThresholds(0, 5);
  StockState st = RulesState(-3, /*tracked=*/false);
  // Sold before any snapshot, count or receipt: no oversell, no low stock.
  CHECK(internal::OversellRule(st, "pear", 2).action == AlertAction::kNone);
  CHECK(internal::LowStockRule(st, "pear", 2, t).action == AlertAction::kNone);
  // Its first count is the baseline, whatever the difference.
  CHECK(internal::CountMismatchRule(st, "pear", 40, 43, 3, t).action == AlertAction::kNone);
  CHECK_FALSE(st.dirty);
  internal::MarkTracked(st);
  CHECK(st.tracked);
  CHECK(st.dirty);
  // Tracked: the same state alerts, and the next count is compared.
  CHECK(internal::OversellRule(st, "pear", 4).action == AlertAction::kRaise);
  CHECK(internal::LowStockRule(st, "pear", 4, t).action == AlertAction::kRaise);
  CHECK(internal::CountMismatchRule(st, "pear", 40, 43, 5, t).action == AlertAction::kRaise);
  // A snapshot line is a baseline too.
  StockState snap = RulesState(0, /*tracked=*/false);
  internal::RebaseOnSnapshot(snap, 7, 1, 1, 0, 6);
  CHECK(snap.tracked);
  // An alert open on a sku that is untracked (cannot happen from the rules,
  // only from an edited file) still clears.
  StockState odd = RulesState(3, /*tracked=*/false);
  odd.oversold = true;
  CHECK(internal::OversellRule(odd, "pear", 7).action == AlertAction::kClear);
}

}  // namespace
}  // namespace storegw::storage
