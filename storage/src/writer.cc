// The writer thread: takes every pending request from the queue, runs them
// in one transaction (group commit), commits once, then answers each
// caller; on failure rolls the whole group back, counters included. After
// each change it publishes the counters Stats() reads.
#include <algorithm>
#include <chrono>
#include <mutex>
#include <string>
#include <vector>

#include "journal_impl.h"

namespace storegw::storage {

using internal::Request;

Status Journal::Impl::PersistWatermarkInTxn() {
  const uint64_t wm = acked.load();
  txn_watermark = wm;
  if (wm == persisted_watermark) return {};
  if (Status s = SetMeta("watermark", std::to_string(wm)); !s.ok()) return s;
  return {};
}

void Journal::Impl::Rollback(uint64_t seq0, uint64_t cum0) {
  (void)wdb.Exec("ROLLBACK");
  next_seq = seq0;
  last_cum = cum0;
  dirty.clear();
}

uint64_t Journal::Impl::UsedBytes() {
  int64_t v[3];
  sql::Stmt* stmts[3] = {&q_page_count, &q_freelist, &q_page_size};
  for (int i = 0; i < 3; ++i) {
    sql::ResetGuard g(*stmts[i]);
    if (stmts[i]->Step() != SQLITE_ROW) return a_journal_bytes.load();
    v[i] = stmts[i]->Int(0);
  }
  a_page_size.store(v[2], std::memory_order_relaxed);
  return static_cast<uint64_t>((v[0] - v[1]) * v[2]);
}

// Refreshes what Stats() shows; called by the writer after each change.
void Journal::Impl::Publish(bool sizes, bool pruned) {
  const uint64_t last = next_seq - 1;
  const uint64_t wm = std::min(acked.load(), last);
  if (wm != stats_watermark || a_oldest.load() == 0) {
    stats_watermark = wm;
    wm_base_cum = last_cum;
    int64_t oldest = 0;
    if (wm < last) {
      sql::ResetGuard g(cum_before);
      cum_before.Bind(1, static_cast<int64_t>(wm + 1));
      if (cum_before.Step() == SQLITE_ROW) {
        wm_base_cum = static_cast<uint64_t>(cum_before.Int(0));
        oldest = cum_before.Int(1);
      }
    }
    a_oldest = oldest;
  }
  a_watermark = wm;
  a_last = last;
  a_backlog_bytes = last_cum >= wm_base_cum ? last_cum - wm_base_cum : 0;
  if (sizes) a_journal_bytes = UsedBytes();
  if (pruned) {
    sql::ResetGuard g(q_first);
    if (q_first.Step() == SQLITE_ROW) a_first = static_cast<uint64_t>(q_first.Int(0));
  }
  a_full = disk_full || a_journal_bytes.load() >= opt.max_bytes;
}

void Journal::Impl::ProcessGroup(std::vector<Request*>& group) {
  const int64_t now = Now();
  const uint64_t seq0 = next_seq, cum0 = last_cum;
  const bool full = a_journal_bytes.load() >= opt.max_bytes ||
                    (disk_full && std::chrono::steady_clock::now() < next_disk_probe);
  bool tried_append = false;
  dirty.clear();
  Status st = wdb.Exec("BEGIN IMMEDIATE");
  uint64_t appended = 0, dups = 0, conflicts = 0;
  std::vector<Request*> live;
  for (Request* r : group) {
    if (!st.ok()) break;
    if (r->kind == Request::Kind::kAppend) {
      if (full) {
        r->status = Status::ResourceExhausted(
            "journal is full (" + std::to_string(a_journal_bytes.load()) + " bytes in use, " +
            "max_bytes " + std::to_string(opt.max_bytes) +
            (disk_full ? ", and the disk is full" : "") +
            "): undelivered events are kept; ingest resumes when delivery and retention "
            "free space");
        continue;
      }
      tried_append = true;
      st = DoAppend(*r, now);
      for (auto& res : r->results) {
        if (res.conflict) {
          ++conflicts;
        } else if (res.duplicate) {
          ++dups;
        } else if (res.seq != 0) {
          ++appended;
        }
      }
    } else if (r->kind == Request::Kind::kSnapshot) {
      st = DoSnapshot(*r, now);
    } else if (r->kind == Request::Kind::kPrice) {
      st = DoPrice(*r, now);
    } else if (r->kind == Request::Kind::kDevices) {
      st = DoDevices(*r);
    } else if (r->kind == Request::Kind::kAck) {
      st = DoAck(*r, now);
    } else if (r->kind == Request::Kind::kTimers) {
      st = DoTimers(*r, now);
    } else if (r->kind == Request::Kind::kRules) {
      st = DoRules(*r, now);
    }
    live.push_back(r);
  }
  if (st.ok()) st = FlushStock();
  if (st.ok()) st = PersistWatermarkInTxn();
  // Size while the write transaction is open: no extra read transaction
  // (and WAL read lock) per commit.
  const uint64_t used = st.ok() ? UsedBytes() : 0;
  if (st.ok()) st = wdb.Exec("COMMIT");
  if (st.ok()) a_journal_bytes = used;
  if (!st.ok()) {
    Rollback(seq0, cum0);
    if (st.code() == StatusCode::kResourceExhausted) {
      disk_full = true;
      next_disk_probe = std::chrono::steady_clock::now() + kDiskProbeInterval;
    }
    for (Request* r : live) {
      r->status = st;
      r->results.clear();
    }
  } else {
    // What this transaction wrote, not acked.load(): an Ack() racing the
    // commit must still be written by a later one (retention prunes up to
    // acked, and the watermark on disk must cover what was pruned).
    persisted_watermark = std::max(persisted_watermark, txn_watermark);
    if (tried_append) disk_full = false;
    if (a_first.load() == 0 && next_seq != seq0) a_first = seq0;
    a_appended += appended;
    a_dups += dups;
    a_conflicts += conflicts;
    ++a_commits;
  }
  dirty.clear();
  Publish(!st.ok());
  if (next_seq != seq0) {
    { std::lock_guard lk(seq_mu); }
    seq_cv.notify_all();
  }
  for (Request* r : group) r->done.set_value();
}

void Journal::Impl::WriterLoop() {
  auto next_maint = std::chrono::steady_clock::now() + opt.maintenance_interval;
  uint64_t last_ack_seen = acked.load();
  for (;;) {
    std::vector<Request*> group;
    std::vector<Request*> prunes;
    bool stop = false;
    {
      std::unique_lock lk(mu);
      cv.wait_until(lk, next_maint, [&] {
        return stopping || !queue.empty() || acked.load() != last_ack_seen;
      });
      size_t events = 0;
      while (!queue.empty()) {
        Request* r = queue.front();
        if (r->kind == Request::Kind::kPrune) {
          prunes.push_back(r);
          queue.pop_front();
          continue;
        }
        size_t n = r->kind == Request::Kind::kAppend ? r->events->size() : 1;
        if (!group.empty() && events + n > opt.max_group_events) break;
        events += n;
        group.push_back(r);
        queue.pop_front();
      }
      stop = stopping && queue.empty();
    }
    if (!group.empty()) ProcessGroup(group);
    if (acked.load() != last_ack_seen) {
      last_ack_seen = acked.load();
      Publish(false);
    }
    for (Request* r : prunes) {
      uint64_t total = 0;
      for (;;) {
        auto n = Maintain();
        if (!n.ok()) {
          r->status = n.status();
          break;
        }
        total += *n;
        if (*n < static_cast<uint64_t>(internal::kPruneBatch)) break;
      }
      r->pruned = total;
      r->done.set_value();
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= next_maint || stop) {
      // Small batches, and stop as soon as requests are waiting: retention
      // never holds ingest for more than one batch.
      for (int i = 0; i < 50; ++i) {
        auto n = Maintain();
        if (!n.ok() || *n < static_cast<uint64_t>(internal::kPruneBatch)) break;
        std::lock_guard lk(mu);
        if (!queue.empty()) break;
      }
      next_maint = std::chrono::steady_clock::now() + opt.maintenance_interval;
    }
    if (stop) break;
  }
}

Status Journal::Impl::Submit(Request& r) {
  auto fut = r.done.get_future();
  {
    std::lock_guard lk(mu);
    if (stopping || closed) return Status::Unavailable("journal is closed (shutting down)");
    queue.push_back(&r);
  }
  cv.notify_one();
  fut.wait();
  return r.status;
}

uint64_t Journal::WaitForSeqAbove(uint64_t seq, std::chrono::milliseconds timeout) {
  std::unique_lock lk(impl_->seq_mu);
  impl_->seq_cv.wait_for(lk, timeout, [&] {
    if (impl_->a_last.load() > seq) return true;
    std::lock_guard qlk(impl_->mu);
    return impl_->stopping || impl_->closed;
  });
  return impl_->a_last.load();
}

Result<std::vector<AppendResult>> Journal::Append(std::vector<v1::Event> events) {
  if (events.empty()) return std::vector<AppendResult>{};
  for (size_t i = 0; i < events.size(); ++i) {
    if (Status s = ValidateDeviceEvent(events[i]); !s.ok()) {
      return s.WithFieldPrefix("events[" + std::to_string(i) + "]");
    }
  }
  Request r;
  r.kind = Request::Kind::kAppend;
  r.events = &events;
  if (Status s = impl_->Submit(r); !s.ok()) return s;
  return std::move(r.results);
}

Status Journal::Ack(uint64_t seq) {
  const uint64_t last = impl_->a_last.load();
  if (seq > last) {
    return Status::InvalidArgument("seq", "ack of seq " + std::to_string(seq) +
                                              " is beyond the journal's last seq " +
                                              std::to_string(last));
  }
  uint64_t cur = impl_->acked.load();
  while (seq > cur && !impl_->acked.compare_exchange_weak(cur, seq)) {
  }
  if (seq > cur) {
    // Take the queue mutex so the wake-up cannot fall between the writer's
    // predicate check and its wait.
    { std::lock_guard lk(impl_->mu); }
    impl_->cv.notify_one();
  }
  return {};
}

}  // namespace storegw::storage
