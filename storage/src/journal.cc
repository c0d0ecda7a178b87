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

void Journal::Close() {
  if (!impl_) return;
  {
    std::lock_guard lk(impl_->mu);
    if (impl_->closed) return;
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  {
    std::lock_guard lk(impl_->ic_mu);
    impl_->ic_stop = true;
    if (impl_->ic_db) sqlite3_interrupt(impl_->ic_db);
  }
  if (impl_->ic_thread.joinable()) impl_->ic_thread.join();
  if (impl_->writer.joinable()) impl_->writer.join();
  {
    std::lock_guard lk(impl_->ck_mu);
    impl_->ck_stop = true;
  }
  impl_->ck_cv.notify_all();
  if (impl_->checkpointer.joinable()) impl_->checkpointer.join();
  {
    std::lock_guard lk(impl_->rmu);
    impl_->readers.clear();
  }
  // Fold the WAL back into the main file so the directory holds one file
  // at rest (what an operator copies for support).
  (void)impl_->wdb.Exec("PRAGMA wal_checkpoint(TRUNCATE)");
  sqlite3_wal_hook(impl_->wdb.get(), nullptr, nullptr);
  impl_->wdb.Close();
  if (impl_->lock_fd >= 0) {
    ::close(impl_->lock_fd);  // the journal may be opened again from now on
    impl_->lock_fd = -1;
  }
  {
    std::lock_guard lk(impl_->mu);
    impl_->closed = true;
  }
  { std::lock_guard lk(impl_->seq_mu); }
  impl_->seq_cv.notify_all();
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
  s.commits = i.a_commits.load();
  s.integrity_checked = i.ic_done.load();
  {
    std::lock_guard lk(impl_->ic_mu);
    s.integrity_error = i.ic_error;
  }
  return s;
}

}  // namespace storegw::storage
