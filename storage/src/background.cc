// The journal's background threads: the checkpointer, which copies WAL
// frames into the main file off the writer thread (with the writer as its
// fallback), and the integrity check of the whole file that runs once after
// Open.
#include <algorithm>
#include <chrono>
#include <fstream>
#include <mutex>
#include <string>

#include "journal_impl.h"

namespace storegw::storage {

// Called by SQLite on the writer thread after each commit, with the WAL's
// size in pages. Installing it turns SQLite's auto-checkpoint off: the
// checkpointer thread does that work, so that commits do not carry
// checkpoint I/O.
int Journal::Impl::WalHook(void* self, sqlite3* db, const char*, int pages) {
  auto* impl = static_cast<Impl*>(self);
  impl->wal_pages = pages;
  if (pages >= impl->ck_pages) {
    impl->ck_cv.notify_one();
    if (pages >= impl->writer_ck_due && !impl->ck_healthy.load()) {
      impl->WriterCheckpoint(db, pages);
    }
  }
  return SQLITE_OK;
}

// The fallback while the checkpointer is down (it cannot open its
// connection, or its checkpoints fail): without it nothing would copy the
// WAL into the main file and the WAL would grow without bound. Retrying the
// checkpointer alone is not enough (it may never recover), so the writer,
// right after a commit that left ck_force_pages or more in the WAL (where
// SQLite's own auto-checkpoint would run), runs a PASSIVE checkpoint on its
// connection. PASSIVE never waits for readers nor calls the busy handler:
// the commit is delayed by the copy only, and only in this degraded state.
// Once every frame is copied the next write transaction starts the WAL from
// its beginning, so the WAL stays within ck_force_pages + one group commit.
// When readers hold back part of it, the writer tries again after the WAL
// grew by ck_pages more, not at every commit.
void Journal::Impl::WriterCheckpoint(sqlite3* db, int pages) {
  int log = -1, done = -1;
  const int rc = sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
  if (rc != SQLITE_OK && rc != SQLITE_BUSY) {
    CheckpointFailed("journal: checkpoint of " + path.string() +
                     " by the writer (the checkpointer is down) failed: " + sqlite3_errstr(rc) +
                     " (SQLite result code " + std::to_string(rc) + ")");
  }
  if (rc == SQLITE_OK && log >= 0) {
    wal_pages = log - std::min(done, log);
    if (done >= log) {
      writer_ck_due = ck_force_pages;
      return;
    }
  }
  // BUSY: another checkpoint was running; try again at the next commit.
  writer_ck_due = rc == SQLITE_BUSY ? ck_force_pages : pages + ck_pages;
}

Status Journal::Impl::OpenCheckpointer(sql::Db& db) {
  if (opt.test_hooks.fail_checkpointer_open && opt.test_hooks.fail_checkpointer_open()) {
    return Status::IoError("cannot open " + path.string() + " (failure injected by a test)");
  }
  if (Status s = db.Open(path.string(), SQLITE_OPEN_READWRITE); !s.ok()) return s;
  (void)db.Exec("PRAGMA busy_timeout=2000");
  return {};
}

void Journal::Impl::CheckpointFailed(std::string error) {
  ck_healthy = false;
  {
    std::lock_guard lk(ck_err_mu);
    ck_error = std::move(error);
    ck_error_at = Now();
  }
  ++ck_failures;  // after the error: whoever sees the count sees the error
}

void Journal::Impl::CheckpointWorked() {
  ck_healthy = true;
  std::lock_guard lk(ck_err_mu);
  ck_error.clear();
}

// Copies WAL frames into the main file off the writer thread, so commit
// latency does not carry checkpoint I/O. Nothing else checkpoints (the WAL
// hook turned SQLite's auto-checkpoint off), so a failure here must not be
// silent: every failed attempt is published (Stats().checkpoint_*), a
// connection that cannot be opened is tried again every tick, and while
// this thread is down the writer checkpoints itself (WriterCheckpoint).
void Journal::Impl::CheckpointLoop() {
  sql::Db db;
  std::unique_lock lk(ck_mu);
  while (!ck_stop) {
    if (!db.get()) {
      lk.unlock();
      Status s = OpenCheckpointer(db);
      lk.lock();
      if (!s.ok()) {
        CheckpointFailed("journal: the checkpointer cannot open its connection to " +
                         path.string() + ": " + s.message() +
                         "; it tries again every second, meanwhile the writer checkpoints "
                         "when the WAL exceeds " + std::to_string(ck_force_pages) + " pages");
        ck_cv.wait_for(lk, std::chrono::seconds(1), [&] { return ck_stop; });
        continue;
      }
      CheckpointWorked();
    }
    ck_cv.wait_for(lk, std::chrono::seconds(1),
                   [&] { return ck_stop || wal_pages.load() >= ck_pages; });
    if (ck_stop) break;
    if (wal_pages.load() < ck_pages) continue;
    const int mode = wal_pages.load() >= ck_force_pages ? SQLITE_CHECKPOINT_RESTART
                                                        : SQLITE_CHECKPOINT_PASSIVE;
    lk.unlock();
    int log = -1, done = -1;
    int rc = sqlite3_wal_checkpoint_v2(db.get(), nullptr, mode, &log, &done);
    if (opt.test_hooks.checkpoint_result) rc = opt.test_hooks.checkpoint_result(rc);
    lk.lock();
    // BUSY: readers or the writer held it off (RESTART could not finish);
    // it ran, and tries again. Anything else but OK is a failure.
    if (rc == SQLITE_OK || rc == SQLITE_BUSY) {
      CheckpointWorked();
    } else {
      CheckpointFailed("journal: checkpoint of " + path.string() + " failed: " +
                       sqlite3_errstr(rc) + " (SQLite result code " + std::to_string(rc) + ")");
    }
    if (log >= 0) wal_pages = done >= log ? 0 : log - done;
    // Avoid spinning when frames cannot be copied yet (a reader holds an
    // old snapshot) or checkpoints fail: wait for the next notification or
    // tick.
    if (wal_pages.load() >= ck_pages || rc != SQLITE_OK) {
      ck_cv.wait_for(lk, std::chrono::milliseconds(100), [&] { return ck_stop; });
    }
  }
}

// Background quick_check of the whole file on its own read-only
// connection. A failure is published in Stats() and leaves a marker so the
// next Open checks (and if need be moves aside) the whole file.
void Journal::Impl::IntegrityLoop() {
  sql::Db db;
  Status st = db.Open(path.string(), SQLITE_OPEN_READONLY);
  if (st.ok()) {
    std::lock_guard lk(ic_mu);
    if (ic_stop) return;
    ic_db = db.get();
  }
  std::string error;
  if (!st.ok()) {
    error = st.message();
  } else {
    (void)db.Exec("PRAGMA busy_timeout=10000");
    auto qc = db.QueryText("PRAGMA quick_check");
    if (!qc.ok()) {
      if ((sqlite3_errcode(db.get()) & 0xff) == SQLITE_INTERRUPT) {
        std::lock_guard lk(ic_mu);
        ic_db = nullptr;
        return;  // Close() interrupted us: not a verdict
      }
      error = qc.status().message();
    } else if (*qc != "ok") {
      error = "journal: " + path.string() + " failed its background integrity check: " + *qc;
    }
  }
  {
    std::lock_guard lk(ic_mu);
    ic_db = nullptr;
    ic_error = error;
  }
  if (!error.empty()) {
    std::ofstream marker(CheckFailedMarker());
    marker << error << "\n";
  }
  ic_done = true;
}

}  // namespace storegw::storage
