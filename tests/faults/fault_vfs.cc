// See fault_vfs.h. Log format: a sequence of records, each
//   u32 magic 'FVR1', u32 type (1 write, 2 truncate, 3 sync), u32 path_len,
//   u64 off, u64 len, u64 old_size, u64 old_len, path bytes, old bytes,
//   u32 end magic 'FVE1'
// all little-endian host order (the log never leaves the machine).
//   write:    off/len of the write; old_size = file size before it; old
//             bytes = the file's bytes in [off, min(off+len, old_size)).
//   truncate: off = new size; old_size = size before; old bytes = the bytes
//             in [new size, old_size) that the truncate drops.
//   sync:     all earlier records of this path are durable.
//   delete:   the file was deleted (taken as durable): its earlier records
//             belong to a file that no longer exists.
#include "fault_vfs.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <string>
#include <vector>

namespace storegw::faults {
namespace {

constexpr uint32_t kMagic = 0x31525646;     // "FVR1"
constexpr uint32_t kEndMagic = 0x31455646;  // "FVE1"
enum RecType : uint32_t { kWrite = 1, kTruncate = 2, kSync = 3, kDelete = 4 };

struct RecHeader {
  uint32_t magic, type, path_len, pad;
  uint64_t off, len, old_size, old_len;
};

// ------------------------------------------------------------ child side

struct State {
  std::mutex mu;
  int log_fd = -1;
  std::string tracked_prefix;
  int sync_delay_us = 0;
  sqlite3_vfs* real = nullptr;
  sqlite3_vfs vfs{};
  sqlite3_io_methods methods{};
  std::map<std::string, uint64_t> unsynced;  // guarded by mu: path -> records since sync
  std::atomic<uint64_t> writes{0}, truncates{0}, syncs{0}, resets{0};
};

State* g = nullptr;

struct FaultFile {
  sqlite3_file base;
  sqlite3_file* real;
  std::string* path;  // null: not tracked
};

bool WriteAllFd(int fd, const void* p, size_t n) {
  auto* c = static_cast<const char*>(p);
  while (n > 0) {
    ssize_t w = ::write(fd, c, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    c += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// Appends one record with a single write(2). Caller holds g->mu.
bool AppendRecord(uint32_t type, const std::string& path, uint64_t off, uint64_t len,
                  uint64_t old_size, const std::string& old) {
  RecHeader h{kMagic, type, static_cast<uint32_t>(path.size()), 0, off, len, old_size, old.size()};
  std::string rec(reinterpret_cast<const char*>(&h), sizeof h);
  rec += path;
  rec += old;
  rec.append(reinterpret_cast<const char*>(&kEndMagic), sizeof kEndMagic);
  return WriteAllFd(g->log_fd, rec.data(), rec.size());
}

// The real file's size and bytes [off, off+len) clipped to its size.
int ReadOld(sqlite3_file* real, uint64_t off, uint64_t len, uint64_t& size, std::string& old) {
  sqlite3_int64 sz = 0;
  int rc = real->pMethods->xFileSize(real, &sz);
  if (rc != SQLITE_OK) return rc;
  size = static_cast<uint64_t>(sz);
  old.clear();
  if (off < size) {
    const uint64_t n = std::min(len, size - off);
    old.resize(n);
    rc = real->pMethods->xRead(real, old.data(), static_cast<int>(n),
                               static_cast<sqlite3_int64>(off));
    if (rc != SQLITE_OK && rc != SQLITE_IOERR_SHORT_READ) return rc;
  }
  return SQLITE_OK;
}

FaultFile* F(sqlite3_file* f) {
  return reinterpret_cast<FaultFile*>(f);
}

int xClose(sqlite3_file* f) {
  int rc = F(f)->real->pMethods ? F(f)->real->pMethods->xClose(F(f)->real) : SQLITE_OK;
  delete F(f)->path;
  F(f)->path = nullptr;
  return rc;
}
int xRead(sqlite3_file* f, void* p, int n, sqlite3_int64 off) {
  return F(f)->real->pMethods->xRead(F(f)->real, p, n, off);
}
int xWrite(sqlite3_file* f, const void* p, int n, sqlite3_int64 off) {
  FaultFile* ff = F(f);
  if (!ff->path) return ff->real->pMethods->xWrite(ff->real, p, n, off);
  std::lock_guard lk(g->mu);
  uint64_t size = 0;
  std::string old;
  int rc = ReadOld(ff->real, static_cast<uint64_t>(off), static_cast<uint64_t>(n), size, old);
  if (rc != SQLITE_OK) return rc;
  if (!AppendRecord(kWrite, *ff->path, static_cast<uint64_t>(off), static_cast<uint64_t>(n), size,
                    old)) {
    return SQLITE_IOERR_WRITE;
  }
  ++g->unsynced[*ff->path];
  ++g->writes;
  return ff->real->pMethods->xWrite(ff->real, p, n, off);
}
int xTruncate(sqlite3_file* f, sqlite3_int64 size) {
  FaultFile* ff = F(f);
  if (!ff->path) return ff->real->pMethods->xTruncate(ff->real, size);
  std::lock_guard lk(g->mu);
  uint64_t old_size = 0;
  std::string old;
  int rc = ReadOld(ff->real, static_cast<uint64_t>(size), UINT64_MAX / 2, old_size, old);
  if (rc != SQLITE_OK) return rc;
  if (!AppendRecord(kTruncate, *ff->path, static_cast<uint64_t>(size), 0, old_size, old)) {
    return SQLITE_IOERR_TRUNCATE;
  }
  ++g->unsynced[*ff->path];
  ++g->truncates;
  return ff->real->pMethods->xTruncate(ff->real, size);
}
int xSync(sqlite3_file* f, int) {
  FaultFile* ff = F(f);
  if (!ff->path) return SQLITE_OK;
  if (g->sync_delay_us > 0) ::usleep(static_cast<useconds_t>(g->sync_delay_us));
  std::lock_guard lk(g->mu);
  ++g->syncs;
  auto it = g->unsynced.find(*ff->path);
  if (it == g->unsynced.end() || it->second == 0) return SQLITE_OK;
  it->second = 0;
  if (std::all_of(g->unsynced.begin(), g->unsynced.end(),
                  [](const auto& kv) { return kv.second == 0; })) {
    // Nothing unsynced anywhere: every record is obsolete. ftruncate is
    // atomic with respect to SIGKILL; the log fd is O_APPEND.
    if (::ftruncate(g->log_fd, 0) != 0) return SQLITE_IOERR_FSYNC;
    ++g->resets;
    return SQLITE_OK;
  }
  if (!AppendRecord(kSync, *ff->path, 0, 0, 0, {})) return SQLITE_IOERR_FSYNC;
  return SQLITE_OK;
}
int xFileSize(sqlite3_file* f, sqlite3_int64* s) {
  return F(f)->real->pMethods->xFileSize(F(f)->real, s);
}
int xLock(sqlite3_file* f, int l) {
  return F(f)->real->pMethods->xLock(F(f)->real, l);
}
int xUnlock(sqlite3_file* f, int l) {
  return F(f)->real->pMethods->xUnlock(F(f)->real, l);
}
int xCheckReservedLock(sqlite3_file* f, int* r) {
  return F(f)->real->pMethods->xCheckReservedLock(F(f)->real, r);
}
int xFileControl(sqlite3_file* f, int op, void* arg) {
  return F(f)->real->pMethods->xFileControl(F(f)->real, op, arg);
}
int xSectorSize(sqlite3_file* f) {
  return F(f)->real->pMethods->xSectorSize(F(f)->real);
}
int xDeviceCharacteristics(sqlite3_file* f) {
  return F(f)->real->pMethods->xDeviceCharacteristics(F(f)->real);
}
int xShmMap(sqlite3_file* f, int i, int sz, int w, void volatile** pp) {
  return F(f)->real->pMethods->xShmMap(F(f)->real, i, sz, w, pp);
}
int xShmLock(sqlite3_file* f, int off, int n, int flags) {
  return F(f)->real->pMethods->xShmLock(F(f)->real, off, n, flags);
}
void xShmBarrier(sqlite3_file* f) {
  F(f)->real->pMethods->xShmBarrier(F(f)->real);
}
int xShmUnmap(sqlite3_file* f, int del) {
  return F(f)->real->pMethods->xShmUnmap(F(f)->real, del);
}
int xFetch(sqlite3_file* f, sqlite3_int64 off, int n, void** pp) {
  return F(f)->real->pMethods->xFetch(F(f)->real, off, n, pp);
}
int xUnfetch(sqlite3_file* f, sqlite3_int64 off, void* p) {
  return F(f)->real->pMethods->xUnfetch(F(f)->real, off, p);
}

int xOpen(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* f, int flags, int* out_flags) {
  FaultFile* ff = F(f);
  ff->real = reinterpret_cast<sqlite3_file*>(ff + 1);
  ff->path = nullptr;
  int rc = g->real->xOpen(g->real, name, ff->real, flags, out_flags);
  if (rc != SQLITE_OK) {
    ff->base.pMethods = nullptr;  // SQLite does not call xClose then
    return rc;
  }
  if (name && std::string(name).rfind(g->tracked_prefix, 0) == 0) {
    ff->path = new (std::nothrow) std::string(name);
  }
  ff->base.pMethods = &g->methods;
  return SQLITE_OK;
}
int xDelete(sqlite3_vfs*, const char* name, int sync_dir) {
  std::lock_guard lk(g->mu);
  // A deleted file has no durable image to restore: its records must not be
  // applied to a later file of the same name.
  if (g->unsynced.erase(name) > 0 && !AppendRecord(kDelete, name, 0, 0, 0, {})) {
    return SQLITE_IOERR_DELETE;
  }
  return g->real->xDelete(g->real, name, sync_dir);
}
int xAccess(sqlite3_vfs*, const char* name, int flags, int* out) {
  return g->real->xAccess(g->real, name, flags, out);
}
int xFullPathname(sqlite3_vfs*, const char* name, int n, char* out) {
  return g->real->xFullPathname(g->real, name, n, out);
}
void* xDlOpen(sqlite3_vfs*, const char* p) {
  return g->real->xDlOpen(g->real, p);
}
void xDlError(sqlite3_vfs*, int n, char* m) {
  g->real->xDlError(g->real, n, m);
}
void (*xDlSym(sqlite3_vfs*, void* h, const char* s))(void) {
  return g->real->xDlSym(g->real, h, s);
}
void xDlClose(sqlite3_vfs*, void* h) {
  g->real->xDlClose(g->real, h);
}
int xRandomness(sqlite3_vfs*, int n, char* out) {
  return g->real->xRandomness(g->real, n, out);
}
int xSleep(sqlite3_vfs*, int us) {
  return g->real->xSleep(g->real, us);
}
int xCurrentTime(sqlite3_vfs*, double* t) {
  return g->real->xCurrentTime(g->real, t);
}
int xGetLastError(sqlite3_vfs*, int n, char* m) {
  return g->real->xGetLastError(g->real, n, m);
}
int xCurrentTimeInt64(sqlite3_vfs*, sqlite3_int64* t) {
  return g->real->xCurrentTimeInt64(g->real, t);
}

// ------------------------------------------------------------ parent side

struct Record {
  RecHeader h;
  std::string path;
  std::string old;
};

Status Errno(const std::string& what) {
  return Status::IoError("faultfs: " + what + ": " + std::strerror(errno));
}

Status PwriteAll(int fd, const std::string& bytes, uint64_t off) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t w =
        ::pwrite(fd, bytes.data() + done, bytes.size() - done, static_cast<off_t>(off + done));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return Errno("pwrite");
    done += static_cast<size_t>(w);
  }
  return {};
}

// Rolls one record back on `fd`.
Status Undo(int fd, const Record& r) {
  // A write's old bytes start at its offset; a truncate's at the new size.
  if (Status s = PwriteAll(fd, r.old, r.h.off); !s.ok()) return s;
  struct stat st {};
  if (::fstat(fd, &st) != 0) return Errno("fstat");
  if (static_cast<uint64_t>(st.st_size) != r.h.old_size &&
      ::ftruncate(fd, static_cast<off_t>(r.h.old_size)) != 0) {
    return Errno("ftruncate");
  }
  return {};
}

}  // namespace

Status InstallFaultVfs(const std::filesystem::path& log_path,
                       const std::filesystem::path& tracked_dir, int sync_delay_us) {
  if (g) return Status::FailedPrecondition("faultfs: already installed");
  auto* s = new State();
  s->sync_delay_us = sync_delay_us;
  s->real = sqlite3_vfs_find("unix");
  if (!s->real) return Status::IoError("faultfs: no \"unix\" VFS in this SQLite");
  s->log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
  if (s->log_fd < 0) return Errno("open " + log_path.string());
  std::error_code ec;
  s->tracked_prefix = std::filesystem::weakly_canonical(tracked_dir, ec).string();
  if (ec) s->tracked_prefix = tracked_dir.string();
  if (s->tracked_prefix.empty() || s->tracked_prefix.back() != '/') s->tracked_prefix += '/';

  sqlite3_io_methods& m = s->methods;
  m.iVersion = 3;
  m.xClose = xClose;
  m.xRead = xRead;
  m.xWrite = xWrite;
  m.xTruncate = xTruncate;
  m.xSync = xSync;
  m.xFileSize = xFileSize;
  m.xLock = xLock;
  m.xUnlock = xUnlock;
  m.xCheckReservedLock = xCheckReservedLock;
  m.xFileControl = xFileControl;
  m.xSectorSize = xSectorSize;
  m.xDeviceCharacteristics = xDeviceCharacteristics;
  m.xShmMap = xShmMap;
  m.xShmLock = xShmLock;
  m.xShmBarrier = xShmBarrier;
  m.xShmUnmap = xShmUnmap;
  m.xFetch = xFetch;
  m.xUnfetch = xUnfetch;

  sqlite3_vfs& v = s->vfs;
  v.iVersion = 2;
  v.szOsFile = static_cast<int>(sizeof(FaultFile)) + s->real->szOsFile;
  v.mxPathname = s->real->mxPathname;
  v.zName = "faultfs";
  v.xOpen = xOpen;
  v.xDelete = xDelete;
  v.xAccess = xAccess;
  v.xFullPathname = xFullPathname;
  v.xDlOpen = xDlOpen;
  v.xDlError = xDlError;
  v.xDlSym = xDlSym;
  v.xDlClose = xDlClose;
  v.xRandomness = xRandomness;
  v.xSleep = xSleep;
  v.xCurrentTime = xCurrentTime;
  v.xGetLastError = xGetLastError;
  v.xCurrentTimeInt64 = xCurrentTimeInt64;
  g = s;
  if (int rc = sqlite3_vfs_register(&s->vfs, /*makeDflt=*/1); rc != SQLITE_OK) {
    return Status::IoError("faultfs: sqlite3_vfs_register failed: " + std::to_string(rc));
  }
  return {};
}

VfsCounters FaultVfsCounters() {
  VfsCounters c;
  if (!g) return c;
  c.writes = g->writes;
  c.truncates = g->truncates;
  c.syncs = g->syncs;
  c.log_resets = g->resets;
  return c;
}

Result<CutReport> ApplyPowerCut(const std::filesystem::path& log_path, CutMode mode) {
  CutReport rep;
  std::string log;
  {
    int fd = ::open(log_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) return rep;  // the VFS never ran: nothing was written
    if (fd < 0) return Errno("open " + log_path.string());
    char buf[1 << 16];
    for (;;) {
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        ::close(fd);
        return Errno("read " + log_path.string());
      }
      if (n == 0) break;
      log.append(buf, static_cast<size_t>(n));
    }
    ::close(fd);
  }
  // Parse; per path, the records after its last SYNC.
  std::map<std::string, std::vector<Record>> pending;
  size_t pos = 0;
  while (pos < log.size()) {
    if (log.size() - pos < sizeof(RecHeader)) {
      rep.partial_tail = true;
      break;
    }
    Record r;
    std::memcpy(&r.h, log.data() + pos, sizeof r.h);
    if (r.h.magic != kMagic) return Status::Corruption("faultfs: bad record magic in the log");
    const size_t need = sizeof(RecHeader) + r.h.path_len + r.h.old_len + sizeof(kEndMagic);
    if (log.size() - pos < need) {
      rep.partial_tail = true;  // killed inside write(2): the real write never began
      break;
    }
    uint32_t end = 0;
    std::memcpy(&end, log.data() + pos + need - sizeof end, sizeof end);
    if (end != kEndMagic) return Status::Corruption("faultfs: bad record end in the log");
    r.path.assign(log.data() + pos + sizeof(RecHeader), r.h.path_len);
    r.old.assign(log.data() + pos + sizeof(RecHeader) + r.h.path_len, r.h.old_len);
    pos += need;
    ++rep.records;
    if (r.h.type == kSync || r.h.type == kDelete) {
      pending.erase(r.path);
    } else {
      pending[r.path].push_back(std::move(r));
    }
  }
  for (auto& [path, recs] : pending) {
    if (recs.empty()) continue;
    int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) continue;  // deleted after its writes: nothing to restore
      return Errno("open " + path);
    }
    ++rep.files_touched;
    // kTornPage: remember the first half of the last page-sized write as it
    // is now, roll everything back, then put that half-page back.
    std::string half;
    uint64_t half_off = 0;
    if (mode == CutMode::kTornPage) {
      for (auto it = recs.rbegin(); it != recs.rend(); ++it) {
        if (it->h.type == kWrite && it->h.len >= 1024) {
          half.resize(it->h.len / 2);
          half_off = it->h.off;
          ssize_t n = ::pread(fd, half.data(), half.size(), static_cast<off_t>(half_off));
          if (n < 0) {
            ::close(fd);
            return Errno("pread " + path);
          }
          half.resize(static_cast<size_t>(n));
          break;
        }
      }
    }
    for (auto it = recs.rbegin(); it != recs.rend(); ++it) {
      if (Status s = Undo(fd, *it); !s.ok()) {
        ::close(fd);
        return s;
      }
      ++(it->h.type == kWrite ? rep.undone_writes : rep.undone_truncates);
    }
    if (!half.empty()) {
      if (Status s = PwriteAll(fd, half, half_off); !s.ok()) {
        ::close(fd);
        return s;
      }
      ++rep.torn_pages;
    }
    ::close(fd);
  }
  if (::truncate(log_path.c_str(), 0) != 0) return Errno("truncate " + log_path.string());
  return rep;
}

}  // namespace storegw::faults
