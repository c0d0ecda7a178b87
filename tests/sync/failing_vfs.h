// A journal whose disk refuses writes on demand, for tests of what happens
// while the journal keeps failing (the downstream apply's retries).
//
// InstallFailingVfs() registers, once per process, an SQLite VFS as the
// default that passes everything through to the one it replaces, except
// that while FailWrites(dir) is in force every write to a file under `dir`
// fails with SQLITE_FULL (the journal answers kResourceExhausted, as on a
// full disk). Each refused write is counted, so a test can wait until the
// journal has actually been refused instead of sleeping.
#pragma once

#include <sqlite3.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>

namespace storegw::sync_test {

namespace failing_vfs_detail {

struct State {
  sqlite3_vfs vfs{};
  sqlite3_vfs* real = nullptr;
  std::mutex mu;
  std::string failing_dir;  // guarded by mu; empty: nothing fails
  std::atomic<bool> failing{false};
  std::atomic<uint64_t> refused{0};
  // One copy of each real method table, with xWrite replaced (kept for the
  // life of the process: open files point at them).
  std::map<const sqlite3_io_methods*, sqlite3_io_methods> tables;
};

inline State& S() {
  static State* s = new State();  // never destroyed: SQLite may outlive statics
  return *s;
}

// Our file = the real file's bytes, then a pointer to its real method table
// (so the real methods work on it unchanged), then whether it may fail.
struct Tail {
  const sqlite3_io_methods* real_methods;
  bool tracked;
};

inline Tail* TailOf(sqlite3_file* f) {
  return reinterpret_cast<Tail*>(reinterpret_cast<char*>(f) + S().real->szOsFile);
}

inline int Write(sqlite3_file* f, const void* p, int n, sqlite3_int64 off) {
  Tail* t = TailOf(f);
  if (t->tracked && S().failing.load()) {
    ++S().refused;
    return SQLITE_FULL;
  }
  return t->real_methods->xWrite(f, p, n, off);
}

inline int Open(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* f, int flags, int* out_flags) {
  State& s = S();
  Tail* t = TailOf(f);
  t->real_methods = nullptr;
  t->tracked = false;
  const int rc = s.real->xOpen(s.real, name, f, flags, out_flags);
  if (rc != SQLITE_OK || !f->pMethods) return rc;
  t->real_methods = f->pMethods;
  std::lock_guard lk(s.mu);
  if (name && !s.failing_dir.empty()) {
    t->tracked = std::string_view(name).substr(0, s.failing_dir.size()) == s.failing_dir;
  }
  auto [it, fresh] = s.tables.try_emplace(f->pMethods, *f->pMethods);
  if (fresh) it->second.xWrite = Write;
  f->pMethods = &it->second;
  return rc;
}

}  // namespace failing_vfs_detail

// Registers the VFS as the process default (idempotent). Call before the
// journal under test is opened.
inline void InstallFailingVfs() {
  static std::once_flag once;
  std::call_once(once, [] {
    auto& s = failing_vfs_detail::S();
    s.real = sqlite3_vfs_find(nullptr);
    if (!s.real) throw std::runtime_error("failing VFS: no default SQLite VFS");
    s.vfs = *s.real;
    s.vfs.zName = "storegw-failing";
    s.vfs.szOsFile = s.real->szOsFile + static_cast<int>(sizeof(failing_vfs_detail::Tail));
    s.vfs.xOpen = failing_vfs_detail::Open;
    s.vfs.pNext = nullptr;
    if (sqlite3_vfs_register(&s.vfs, /*makeDflt=*/1) != SQLITE_OK) {
      throw std::runtime_error("failing VFS: sqlite3_vfs_register failed");
    }
  });
}

// Files under `dir` opened from now on are tracked (open the journal after
// calling this); Fail(true) makes their writes fail until Fail(false).
inline void TrackDir(const std::filesystem::path& dir) {
  auto& s = failing_vfs_detail::S();
  std::lock_guard lk(s.mu);
  // As SQLite names it: the full path, symbolic links resolved.
  s.failing_dir = std::filesystem::weakly_canonical(std::filesystem::absolute(dir)).string();
}
inline void FailWrites(bool fail) {
  failing_vfs_detail::S().failing = fail;
}
// Writes refused so far (all tests of the process).
inline uint64_t RefusedWrites() {
  return failing_vfs_detail::S().refused.load();
}

}  // namespace storegw::sync_test
