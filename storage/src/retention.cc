// Retention: delivered events older than options.retention are pruned in
// batches, each in its own writer transaction that folds the pruned events'
// deltas into the skus' base (ledger_rules.h, FoldPruned).
#include <algorithm>
#include <chrono>
#include <string>
#include <unordered_set>

#include "journal_impl.h"

namespace storegw::storage {

using internal::Request;

// Folds pruned events' deltas into each sku's base so that
// on_hand == base_qty + sum(deltas with seq > as_of_seq) stays true.
Result<uint64_t> Journal::Impl::PruneBatch(int64_t now) {
  const uint64_t wm = acked.load();
  const int64_t cutoff = now - std::chrono::duration_cast<std::chrono::microseconds>(
                                   opt.retention).count();
  uint64_t upto = 0;
  {
    sql::ResetGuard g(prune_scan);
    prune_scan.Bind(1, static_cast<int64_t>(wm)).Bind(2, int64_t{internal::kPruneBatch});
    int rc;
    v1::Event ev;
    while ((rc = prune_scan.Step()) == SQLITE_ROW) {
      const uint64_t seq = static_cast<uint64_t>(prune_scan.Int(0));
      // Stop at the first event still inside retention: the retained range
      // stays contiguous even when the clock went backwards.
      if (prune_scan.Int(1) >= cutoff) break;
      auto blob = prune_scan.Blob(2);
      if (!ev.ParseFromArray(blob.data(), static_cast<int>(blob.size()))) {
        return Status::Corruption("journal: event " + std::to_string(seq) + " does not decode");
      }
      Status err;
      // A sku may appear on several lines of one event: every line is
      // folded, not only the first (after which as_of_seq == seq).
      std::unordered_set<std::string> folded_here;
      internal::ForEachDelta(ev, prune_scan.Int(3), [&](const std::string& sku, int64_t d) {
        if (!err.ok()) return;
        auto st = Stock(sku);
        if (!st.ok()) {
          err = st.status();
          return;
        }
        if (internal::FoldPruned(**st, seq, d, folded_here.count(sku) != 0)) {
          folded_here.insert(sku);
        }
      });
      if (!err.ok()) return err;
      upto = seq;
    }
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) return wdb.Error(rc, "journal: scan for pruning");
  }
  if (upto == 0) return uint64_t{0};
  {
    sql::ResetGuard g(prune_delete);
    prune_delete.Bind(1, static_cast<int64_t>(upto));
    int rc = prune_delete.Step();
    if (rc != SQLITE_DONE) return wdb.Error(rc, "journal: prune events");
  }
  const uint64_t n = static_cast<uint64_t>(sqlite3_changes(wdb.get()));
  {
    sql::ResetGuard g(prune_alerts);
    prune_alerts.Bind(1, static_cast<int64_t>(upto));
    int rc = prune_alerts.Step();
    if (rc != SQLITE_DONE) return wdb.Error(rc, "journal: prune alerts");
  }
  {
    // Batches used up by a pruned event (their alerts went above).
    sql::ResetGuard g(ps.prune_batches);
    ps.prune_batches.Bind(1, static_cast<int64_t>(upto));
    int rc = ps.prune_batches.Step();
    if (rc != SQLITE_DONE) return wdb.Error(rc, "journal: prune batches");
  }
  return n;
}

// One retention batch in its own transaction, plus a lazy watermark write.
Result<uint64_t> Journal::Impl::Maintain() {
  const uint64_t seq0 = next_seq, cum0 = last_cum;
  dirty.clear();
  if (Status s = wdb.Exec("BEGIN IMMEDIATE"); !s.ok()) return s;
  const uint64_t wm = acked.load();
  auto pruned = PruneBatch(Now());
  Status st = pruned.ok() ? Status() : pruned.status();
  if (st.ok()) st = FlushStock();
  if (st.ok()) st = PersistWatermarkInTxn();
  // Only pruning removes rows, so the high-water marks need to be on disk
  // only when it does (in the same transaction as the delete).
  if (st.ok() && *pruned > 0) st = PersistCountersInTxn();
  if (st.ok()) st = wdb.Exec("COMMIT");
  dirty.clear();
  if (!st.ok()) {
    Rollback(seq0, cum0);
    return st;
  }
  persisted_watermark = std::max(persisted_watermark, wm);
  if (*pruned > 0) disk_full = false;
  Publish(*pruned > 0, *pruned > 0);
  return *pruned;
}

// Records the high-water marks so that a seq is never reused, even when
// retention has pruned every event.
Status Journal::Impl::PersistCountersInTxn() {
  if (Status s = SetMeta("last_seq", std::to_string(next_seq - 1)); !s.ok()) return s;
  return SetMeta("last_cum", std::to_string(last_cum));
}

Result<uint64_t> Journal::PruneNow() {
  Request r;
  r.kind = Request::Kind::kPrune;
  if (Status s = impl_->Submit(r); !s.ok()) return s;
  return r.pruned;
}

}  // namespace storegw::storage
