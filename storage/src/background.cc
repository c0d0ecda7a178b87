// The journal's background threads: the checkpointer, which copies WAL
// frames into the main file off the writer thread, and the integrity check
// of the whole file that runs once after Open.
#include <chrono>
#include <fstream>
#include <mutex>
#include <string>

#include "journal_impl.h"

namespace storegw::storage {

using internal::kCheckpointPages;
using internal::kForceCheckpointPages;

int Journal::Impl::WalHook(void* self, sqlite3*, const char*, int pages) {
  auto* impl = static_cast<Impl*>(self);
  impl->wal_pages = pages;
  if (pages >= kCheckpointPages) impl->ck_cv.notify_one();
  return SQLITE_OK;
}

// Copies WAL frames into the main file off the writer thread, so commit
// latency does not carry checkpoint I/O.
void Journal::Impl::CheckpointLoop() {
  sql::Db db;
  if (!db.Open(path.string(), SQLITE_OPEN_READWRITE).ok()) return;
  (void)db.Exec("PRAGMA busy_timeout=2000");
  std::unique_lock lk(ck_mu);
  while (!ck_stop) {
    ck_cv.wait_for(lk, std::chrono::seconds(1),
                   [&] { return ck_stop || wal_pages.load() >= kCheckpointPages; });
    if (ck_stop) break;
    if (wal_pages.load() < kCheckpointPages) continue;
    const int mode = wal_pages.load() >= kForceCheckpointPages ? SQLITE_CHECKPOINT_RESTART
                                                                : SQLITE_CHECKPOINT_PASSIVE;
    lk.unlock();
    int log = 0, done = 0;
    sqlite3_wal_checkpoint_v2(db.get(), nullptr, mode, &log, &done);
    lk.lock();
    if (log >= 0 && done >= log) wal_pages = 0;
    else wal_pages = log - done;
    // Avoid spinning when frames cannot be copied yet (a reader holds an
    // old snapshot): wait for the next notification or tick.
    if (wal_pages.load() >= kCheckpointPages) {
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
