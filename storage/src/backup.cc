// journal backup: a consistent, verified copy of a journal that may be live
// (SQLite's online backup API inside one read transaction), written beside
// its destination and renamed into place only once it verifies.
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>

#include "internal.h"
#include "offline.h"
#include "sqlite_util.h"
#include "storegw/storage/journal.h"

namespace storegw::storage {

namespace fs = std::filesystem;

namespace {

// The temporary copy and SQLite's side files of it; removed when the
// backup does not reach its rename.
class BackupTempFile {
 public:
  BackupTempFile() = default;
  BackupTempFile(const BackupTempFile&) = delete;
  BackupTempFile& operator=(const BackupTempFile&) = delete;
  ~BackupTempFile() {
    if (path_.empty()) return;
    std::error_code ec;
    for (const char* suffix : {"", "-journal", "-wal", "-shm"}) {
      fs::remove(path_.string() + suffix, ec);
    }
  }
  // Creates "<output>.tmp-XXXXXX" (mode 0600) and keeps its name.
  Status Create(const fs::path& output) {
    std::string name = output.string() + ".tmp-XXXXXX";
    int fd = ::mkstemp(name.data());
    if (fd < 0) {
      const int err = errno;
      return err == EACCES || err == EPERM || err == EROFS
                 ? Status::PermissionDenied("journal: cannot write the backup in " +
                                            DirOf(output).string() + ": " + std::strerror(err))
                 : Status::IoError("journal: cannot create a file beside " + output.string() +
                                   ": " + std::strerror(err));
    }
    ::close(fd);
    path_ = name;
    return {};
  }
  const fs::path& path() const { return path_; }
  // The rename happened: nothing to remove any more.
  void Release() { path_.clear(); }

  static fs::path DirOf(const fs::path& output) {
    fs::path dir = output.parent_path();
    return dir.empty() ? fs::path(".") : dir;
  }

 private:
  fs::path path_;
};

Status SyncPath(const fs::path& path, bool directory) {
  int fd = ::open(path.c_str(), (directory ? O_DIRECTORY : 0) | O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return Status::IoError("journal: cannot open " + path.string() +
                           " to sync it: " + std::strerror(errno));
  }
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) {
    return Status::IoError("journal: cannot sync " + path.string() + ": " + std::strerror(err));
  }
  return {};
}

// What must hold before anything is written: the journal is there, the
// output is a new file (or may be replaced) in a writable directory, and
// it is not one of the journal's own files.
Status CheckBackupPaths(const fs::path& data_dir, const fs::path& journal, const fs::path& output,
                        bool overwrite) {
  std::error_code ec;
  if (!fs::exists(data_dir, ec)) {
    return Status::NotFound("journal: the data dir " + data_dir.string() + " does not exist");
  }
  if (!fs::is_directory(data_dir, ec)) {
    return Status::NotFound("journal: the data dir " + data_dir.string() + " is not a directory");
  }
  if (!fs::exists(journal, ec)) {
    return Status::NotFound("journal: no journal at " + journal.string());
  }
  if (output.empty()) return Status::InvalidArgument("output", "journal: no output file named");
  const fs::path dir = BackupTempFile::DirOf(output);
  if (!fs::exists(dir, ec)) {
    return Status::NotFound("journal: cannot write the backup: the directory " + dir.string() +
                            " does not exist");
  }
  if (!fs::is_directory(dir, ec)) {
    return Status::FailedPrecondition("journal: cannot write the backup: " + dir.string() +
                                      " is not a directory");
  }
  // The journal's own files (journal.db, its -wal and -shm, journal.lock)
  // are never a destination, --force or not.
  if (fs::equivalent(dir, data_dir, ec) && output.filename().string().rfind("journal.", 0) == 0) {
    return Status::FailedPrecondition("journal: " + output.string() +
                                      " is one of the journal's own files: write the backup "
                                      "elsewhere");
  }
  const auto st = fs::symlink_status(output, ec);
  if (fs::exists(st)) {
    if (fs::is_directory(fs::status(output, ec))) {
      return Status::FailedPrecondition("journal: " + output.string() +
                                        " is a directory: name the backup file in it");
    }
    if (fs::equivalent(output, journal, ec)) {
      return Status::FailedPrecondition("journal: " + output.string() + " is the journal itself");
    }
    if (!overwrite) {
      return Status::FailedPrecondition("journal: " + output.string() +
                                        " already exists; it is only replaced with --force");
    }
  }
  if (::access(dir.c_str(), W_OK | X_OK) != 0) {
    const int err = errno;
    return Status::PermissionDenied("journal: cannot write the backup: the directory " +
                                    dir.string() + " is not writable (" + std::strerror(err) + ")");
  }
  return {};
}

// Copies every page of `src` into `dest` in steps. The caller holds a read
// transaction on `src`: sqlite3_backup_step then reads that one snapshot
// (a step opens and closes a read transaction of its own only when none is
// open, and only a new transaction that finds the file changed makes the
// backup restart), so writers elsewhere do not restart the copy, and in
// WAL mode they do not wait for it either.
Status CopyPages(sql::Db& src, sql::Db& dest, const BackupOptions& options, BackupReport& report) {
  sqlite3_backup* b = sqlite3_backup_init(dest.get(), "main", src.get(), "main");
  if (!b) return dest.Error(sqlite3_errcode(dest.get()), "journal: start the backup");
  const int step = options.pages_per_step < 1 ? 1 : options.pages_per_step;
  int rc = SQLITE_OK;
  int busy = 0;
  while (rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED) {
    rc = sqlite3_backup_step(b, step);
    ++report.steps;
    if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) {
      // Only the destination can be busy (our own temporary file): a
      // bounded wait, not a loop forever.
      if (++busy > 1000) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    const auto total = static_cast<uint64_t>(sqlite3_backup_pagecount(b));
    const auto left = static_cast<uint64_t>(sqlite3_backup_remaining(b));
    report.pages = total;
    if (options.copy_progress && (rc == SQLITE_OK || rc == SQLITE_DONE)) {
      options.copy_progress(total - left, total);
    }
  }
  const int finish = sqlite3_backup_finish(b);
  if (rc != SQLITE_DONE) return dest.Error(rc, "journal: copy the journal's pages");
  if (finish != SQLITE_OK) return dest.Error(finish, "journal: finish the backup");
  return {};
}

}  // namespace

Result<BackupReport> BackupJournal(const fs::path& data_dir, const fs::path& output,
                                   const BackupOptions& options) {
  const fs::path journal = data_dir / internal::kJournalFile;
  if (Status s = CheckBackupPaths(data_dir, journal, output, options.overwrite); !s.ok()) {
    return s;
  }
  BackupReport report;
  internal::OfflineMeta meta;
  sql::Db src;
  if (Status s = internal::OpenJournalReadOnly(journal, src, meta); !s.ok()) return s;

  BackupTempFile tmp;
  if (Status s = tmp.Create(output); !s.ok()) return s;
  {
    sql::Db dest;
    if (Status s = dest.Open(tmp.path().string(), SQLITE_OPEN_READWRITE); !s.ok()) return s;
    // One snapshot of the journal for the whole copy: the first read after
    // BEGIN starts the read transaction.
    if (Status s = src.Exec("BEGIN"); !s.ok()) return s;
    if (auto n = src.QueryInt("SELECT count(*) FROM meta"); !n.ok()) return n.status();
    Status copied = CopyPages(src, dest, options, report);
    (void)src.Exec("COMMIT");
    if (!copied.ok()) return copied;
  }
  src.Close();
  {
    // The copy carries the journal's WAL flag in its header. Made a single
    // self-contained file (rollback journal mode) it can be copied, moved
    // and read anywhere; Journal::Open puts it back into WAL mode.
    sql::Db dest;
    if (Status s = dest.Open(tmp.path().string(), SQLITE_OPEN_READWRITE); !s.ok()) return s;
    auto mode = dest.QueryText("PRAGMA journal_mode=DELETE");
    if (!mode.ok()) return mode.status();
    if (*mode != "delete") {
      return Status::IoError("journal: cannot take the copy " + tmp.path().string() +
                             " out of WAL mode (got " + *mode + ")");
    }
  }
  if (Status s = SyncPath(tmp.path(), false); !s.ok()) return s;

  auto verified = VerifyJournalFile(tmp.path(), options.verify_progress);
  if (!verified.ok()) {
    return Status(verified.status().code(), "journal: the copy of " + journal.string() +
                                                " failed verification, nothing was written to " +
                                                output.string() + ": " +
                                                verified.status().message());
  }
  if (verified->epoch != meta.epoch || verified->store_id != meta.store_id ||
      verified->gateway_id != meta.gateway_id) {
    return Status::Corruption("journal: the copy of " + journal.string() +
                              " does not carry the journal's identity");
  }
  report.verify = *verified;

  // Into place. Without overwrite the rename itself refuses an output that
  // appeared meanwhile (RENAME_NOREPLACE; a file system without it gets a
  // check just before a plain rename).
  int rc = 0;
  if (options.overwrite) {
    rc = ::rename(tmp.path().c_str(), output.c_str());
  } else {
    rc = ::renameat2(AT_FDCWD, tmp.path().c_str(), AT_FDCWD, output.c_str(), RENAME_NOREPLACE);
    if (rc != 0 && (errno == EINVAL || errno == ENOSYS)) {
      std::error_code ec;
      if (fs::exists(fs::symlink_status(output, ec))) {
        errno = EEXIST;
      } else {
        rc = ::rename(tmp.path().c_str(), output.c_str());
      }
    }
  }
  if (rc != 0) {
    const int err = errno;
    if (err == EEXIST) {
      return Status::FailedPrecondition("journal: " + output.string() +
                                        " appeared during the backup; it is only replaced with "
                                        "--force");
    }
    return Status::IoError("journal: cannot rename " + tmp.path().string() + " to " +
                           output.string() + ": " + std::strerror(err));
  }
  tmp.Release();
  if (Status s = SyncPath(BackupTempFile::DirOf(output), true); !s.ok()) return s;
  std::error_code ec;
  const auto size = fs::file_size(output, ec);
  report.bytes = ec ? 0 : static_cast<uint64_t>(size);
  return report;
}

}  // namespace storegw::storage
