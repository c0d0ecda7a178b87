// The journal: one writer thread with group commit, a pool of readers, a
// checkpointer. See storegw/storage/journal.h for the contract and
// journal_impl.h for how the work is divided between the files of this
// directory; this file holds the Journal object itself: shutdown, the
// accessors and Stats().
#include <algorithm>
#include <mutex>

#include "journal_impl.h"

namespace storegw::storage {

Journal::Journal(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Journal::~Journal() { Close(); }

// Idempotent and thread-safe: the first caller shuts the journal down; a
// caller that comes while it does waits until it is done (std::call_once),
// so whenever Close() returns the journal is closed and its lock released.
// Two callers must never both run Shutdown: each would join the same
// threads and close the same connection.
void Journal::Close() {
  if (!impl_) return;
  std::call_once(impl_->close_once, [this] { impl_->Shutdown(); });
}

// Stops the writer after committing what is pending, then the background
// threads; folds the WAL into the main file and releases the lock.
void Journal::Impl::Shutdown() {
  // The timer first: it submits to the writer, which still runs.
  {
    std::lock_guard lk(timer_mu);
    timer_stop = true;
  }
  timer_cv.notify_all();
  if (timer.joinable()) timer.join();
  {
    std::lock_guard lk(mu);
    stopping = true;
  }
  cv.notify_all();
  {
    std::lock_guard lk(ic_mu);
    ic_stop = true;
    if (ic_db) sqlite3_interrupt(ic_db);
  }
  if (ic_thread.joinable()) ic_thread.join();
  if (writer.joinable()) writer.join();
  {
    std::lock_guard lk(ck_mu);
    ck_stop = true;
  }
  ck_cv.notify_all();
  if (checkpointer.joinable()) checkpointer.join();
  {
    std::lock_guard lk(rmu);
    readers.clear();
  }
  // Fold the WAL back into the main file so the directory holds one file
  // at rest (what an operator copies for support).
  (void)wdb.Exec("PRAGMA wal_checkpoint(TRUNCATE)");
  sqlite3_wal_hook(wdb.get(), nullptr, nullptr);
  wdb.Close();
  if (lock_fd >= 0) {
    ::close(lock_fd);  // the journal may be opened again from now on
    lock_fd = -1;
  }
  {
    std::lock_guard lk(mu);
    closed = true;
  }
  { std::lock_guard lk(seq_mu); }
  seq_cv.notify_all();
}

uint64_t Journal::epoch() const { return impl_->epoch; }
const std::string& Journal::store_id() const { return impl_->store_id; }
const std::string& Journal::gateway_id() const { return impl_->gateway_id; }
const OpenReport& Journal::open_report() const { return impl_->report; }
std::filesystem::path Journal::path() const { return impl_->path; }

JournalStats Journal::Stats() const {
  JournalStats s;
  const Impl& i = *impl_;
  s.epoch = i.epoch;
  s.last_seq = i.a_last.load();
  s.first_seq = i.a_first.load();
  s.watermark = i.a_watermark.load();
  s.backlog_events = s.last_seq - std::min(s.watermark, s.last_seq);
  s.backlog_bytes = s.backlog_events ? i.a_backlog_bytes.load() : 0;
  s.oldest_undelivered_recorded_at = s.backlog_events ? i.a_oldest.load() : 0;
  s.journal_bytes = i.a_journal_bytes.load();
  s.max_bytes = i.opt.max_bytes;
  s.full = i.a_full.load();
  s.events_appended = i.a_appended.load();
  s.duplicates = i.a_dups.load();
  s.conflicts = i.a_conflicts.load();
  s.commits = i.a_commits.load();
  s.integrity_checked = i.ic_done.load();
  {
    std::lock_guard lk(impl_->ic_mu);
    s.integrity_error = i.ic_error;
  }
  s.wal_pages = static_cast<uint64_t>(std::max(0, i.wal_pages.load()));
  // A WAL frame is a 24-byte header and a page.
  s.wal_bytes = s.wal_pages * static_cast<uint64_t>(i.a_page_size.load() + 24);
  s.checkpoint_failures = i.ck_failures.load();
  {
    std::lock_guard lk(impl_->ck_err_mu);
    s.checkpoint_error = i.ck_error;
    s.checkpoint_error_at_us = i.ck_error_at;
  }
  return s;
}

}  // namespace storegw::storage
