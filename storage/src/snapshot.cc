// HQ stock snapshots: the deltas after as_of_seq are summed once on a
// reader, then the lines are applied in chunks, one writer transaction and
// one journaled stock_snapshot event each (see Journal::ApplySnapshot).
#include <algorithm>
#include <chrono>
#include <cstdint>

#include "journal_impl.h"

namespace storegw::storage {

using internal::Request;
using internal::SnapshotRun;
using internal::StockState;

// One chunk (lines [r.begin, r.end)) of an HQ snapshot, journaled as its
// own stock_snapshot event holding just those lines, in the transaction
// that rebases them: a crash between chunks leaves every sku either
// rebased or not, each correct on its own.
Status Journal::Impl::DoSnapshot(Request& r, int64_t now) {
  SnapshotRun& run = *r.run;
  const v1::StockSnapshot& snap = *run.snap;
  if (!run.checked) {
    const uint64_t last = next_seq - 1;
    std::string reject;
    if (snap.epoch() != epoch) {
      reject = "snapshot is for epoch " + std::to_string(snap.epoch()) +
               ", this journal is epoch " + std::to_string(epoch);
    } else if (snap.store_id() != store_id) {
      reject =
          "snapshot is for store '" + snap.store_id() + "', this is store '" + store_id + "'";
    } else if (snap.as_of_seq() > last) {
      reject = "snapshot as_of_seq " + std::to_string(snap.as_of_seq()) +
               " is beyond the journal's last seq " + std::to_string(last);
    }
    if (!reject.empty()) {
      r.snap.outcome = SnapshotResult::Outcome::kRejected;
      r.snap.reason = reject;
      auto seq = RaiseAlert(v1::Alert::SNAPSHOT_REJECTED, "", 0,
                            "HQ stock snapshot (hq_version " + std::to_string(snap.hq_version()) +
                                ") rejected: " + reject,
                            0, now);
      if (!seq.ok()) return seq.status();
      r.snap.seq = *seq;
      return {};
    }
    run.checked = true;
  }
  v1::Event e;
  auto* part = e.mutable_stock_snapshot();
  part->set_store_id(snap.store_id());
  part->set_epoch(snap.epoch());
  part->set_as_of_seq(snap.as_of_seq());
  part->set_hq_version(snap.hq_version());
  for (int i = r.begin; i < r.end; ++i) *part->add_lines() = snap.lines(i);
  auto seq = InsertGatewayEvent(std::move(e), now);
  if (!seq.ok()) return seq.status();
  r.snap.seq = *seq;

  // Only the events the caller's scan did not see: (scanned, this event).
  {
    const uint64_t from = std::max(run.scanned, snap.as_of_seq());
    sql::ResetGuard g(scan_deltas);
    scan_deltas.Bind(1, static_cast<int64_t>(from)).Bind(2, static_cast<int64_t>(*seq));
    int rc;
    v1::Event ev;
    while ((rc = scan_deltas.Step()) == SQLITE_ROW) {
      auto blob = scan_deltas.Blob(0);
      if (!ev.ParseFromArray(blob.data(), static_cast<int>(blob.size()))) {
        return Status::Corruption("journal: an event after seq " + std::to_string(from) +
                                  " does not decode");
      }
      internal::ForEachDelta(ev, scan_deltas.Int(1), [&](const std::string& sku, int64_t d) {
        if (auto it = run.after.find(sku); it != run.after.end()) it->second += d;
      });
    }
    if (rc != SQLITE_DONE) return wdb.Error(rc, "journal: scan deltas");
    run.scanned = *seq;  // the chunk's own event has no stock delta
  }
  for (int i = r.begin; i < r.end; ++i) {
    const auto& l = snap.lines(i);
    auto st = Stock(l.sku());
    if (!st.ok()) return st.status();
    StockState& s = **st;
    if (internal::SnapshotLineIsStale(s, snap.as_of_seq(), snap.hq_version())) {
      ++r.snap.skus_stale;
      continue;
    }
    internal::RebaseOnSnapshot(s, l.qty(), snap.as_of_seq(), snap.hq_version(),
                               run.after[l.sku()], *seq);
    ++r.snap.skus_applied;
    if (Status c = CheckStockAlerts(l.sku(), s, *seq, now); !c.ok()) return c;
  }
  return {};
}

// Sums, on a reader, the stock deltas of every committed event after the
// snapshot's as_of_seq for the skus in run.after, and records the newest
// seq it saw in run.scanned. Never blocks the writer.
Status Journal::Impl::ScanAfter(SnapshotRun& run) {
  auto r = AcquireReader();
  if (!r.ok()) return r.status();
  sql::Db& db = (*r)->db;
  Status st = db.Exec("BEGIN");
  uint64_t top = 0;
  if (st.ok()) {
    auto max = db.QueryInt("SELECT coalesce(max(seq), 0) FROM events");
    if (max.ok()) {
      top = static_cast<uint64_t>(*max);
    } else {
      st = max.status();
    }
  }
  const uint64_t from = run.snap->as_of_seq();
  if (st.ok() && top > from) {
    sql::Stmt scan;
    st = scan.Prepare(db.get(),
                      "SELECT body, count_delta FROM events WHERE seq > ? AND seq <= ? "
                      "ORDER BY seq");
    if (st.ok()) {
      scan.Bind(1, static_cast<int64_t>(from)).Bind(2, static_cast<int64_t>(top));
      int rc;
      v1::Event ev;
      while ((rc = scan.Step()) == SQLITE_ROW) {
        auto blob = scan.Blob(0);
        if (!ev.ParseFromArray(blob.data(), static_cast<int>(blob.size()))) {
          st = Status::Corruption("journal: an event after seq " + std::to_string(from) +
                                  " does not decode");
          break;
        }
        internal::ForEachDelta(ev, scan.Int(1), [&](const std::string& sku, int64_t d) {
          if (auto it = run.after.find(sku); it != run.after.end()) it->second += d;
        });
      }
      if (st.ok() && rc != SQLITE_DONE) st = db.Error(rc, "journal: scan deltas");
    }
  }
  (void)db.Exec("COMMIT");
  ReleaseReader(std::move(*r));
  if (!st.ok()) return st;
  run.scanned = std::max(top, from);
  return {};
}

Result<SnapshotResult> Journal::ApplySnapshot(const v1::StockSnapshot& snapshot) {
  if (Status s = ValidateSnapshot(snapshot); !s.ok()) return s;
  SnapshotRun run;
  run.snap = &snapshot;
  // Sum the deltas after as_of_seq once, on a reader (the writer keeps
  // committing meanwhile); each chunk then adds only what came after.
  if (snapshot.epoch() == impl_->epoch && snapshot.store_id() == impl_->store_id) {
    run.after.reserve(static_cast<size_t>(snapshot.lines_size()));
    for (const auto& l : snapshot.lines()) run.after.emplace(l.sku(), 0);
    if (Status s = impl_->ScanAfter(run); !s.ok()) return s;
  }
  const int n = snapshot.lines_size();
  const int chunk = static_cast<int>(
      std::clamp<size_t>(impl_->opt.snapshot_chunk_lines, 1, static_cast<size_t>(INT32_MAX)));
  SnapshotResult total;
  for (int begin = 0; begin < n; begin += chunk) {
    Request r;
    r.kind = Request::Kind::kSnapshot;
    r.run = &run;
    r.begin = begin;
    r.end = std::min(n, begin + chunk);
    const auto t0 = std::chrono::steady_clock::now();
    if (Status s = impl_->Submit(r); !s.ok()) return s;
    total.chunk_micros.push_back(
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0)
            .count());
    if (r.snap.outcome == SnapshotResult::Outcome::kRejected) {
      r.snap.chunk_micros = std::move(total.chunk_micros);
      return r.snap;
    }
    if (total.first_seq == 0) total.first_seq = r.snap.seq;
    total.seq = r.snap.seq;
    total.skus_applied += r.snap.skus_applied;
    total.skus_stale += r.snap.skus_stale;
    ++total.chunks;
  }
  if (total.skus_applied == 0 && total.skus_stale > 0) {
    total.outcome = SnapshotResult::Outcome::kStale;
    total.reason = "every line is older than the current base (as_of_seq " +
                   std::to_string(snapshot.as_of_seq()) + ", hq_version " +
                   std::to_string(snapshot.hq_version()) + ")";
  }
  return total;
}

}  // namespace storegw::storage
