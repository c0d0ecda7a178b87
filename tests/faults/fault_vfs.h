// A fault-injecting SQLite VFS for power-loss tests (tests/faults/).
//
// "faultfs" wraps the default "unix" VFS. Every write and truncate of a
// named file (database, WAL, rollback journal) goes to the real file as
// usual, but first the VFS appends an *undo record* to a side log: the
// bytes and the file size the operation is about to replace. xSync of a
// file appends a SYNC record for it and does NOT call the real fsync (the
// durability is simulated; the real page cache survives a SIGKILL, so the
// test stays fast and deterministic).
//
// So, at any moment, the durable image of a file = the real file with every
// undo record written after that file's last SYNC rolled back. A test runs
// the journal in a child process, kills it with SIGKILL ("the power goes"),
// then calls ApplyPowerCut() in the parent to rewrite each file to that
// image:
//   * kDiscardUnsynced: everything written since the last sync is lost;
//   * kTornPage: the same, except that the first half of the last unsynced
//     page-sized write (>= 1 KiB) of each file did reach the disk: a torn
//     page.
//
// Why an undo log and not a copy of the durable image: the record is
// appended (one write(2), under one mutex with the real write) BEFORE the
// real write, so whatever instant the child dies at, the log covers every
// byte that differs from the durable image; a half-written final record
// (killed inside write(2)) means the real write never started and is
// ignored. When no file has unsynced records left, the log is truncated, so
// it stays small (a commit's worth of WAL frames, or one checkpoint).
//
// Threads: the VFS is safe to use from every SQLite connection of the
// process at once (one mutex around "log record + real write").
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "storegw/status.h"

namespace storegw::faults {

// Registers "faultfs" as the process's default SQLite VFS (so every
// connection the journal opens uses it), logging to `log_path` (created,
// truncated). Only files under `tracked_dir` are tracked; others pass
// through. `sync_delay_us` makes each xSync take that long before it counts
// (a real fsync is not instant; the writes it covers stay unsynced for that
// time, which is where real power cuts land). Call once, before any
// connection is opened.
Status InstallFaultVfs(const std::filesystem::path& log_path,
                       const std::filesystem::path& tracked_dir, int sync_delay_us = 0);

// Counters of the VFS in this process (child side).
struct VfsCounters {
  uint64_t writes = 0, truncates = 0, syncs = 0, log_resets = 0;
};
VfsCounters FaultVfsCounters();

enum class CutMode { kDiscardUnsynced, kTornPage };

struct CutReport {
  uint64_t records = 0;           // undo records read from the log
  uint64_t undone_writes = 0;     // unsynced writes rolled back
  uint64_t undone_truncates = 0;  // unsynced truncates rolled back
  uint64_t files_touched = 0;     // files that had unsynced changes
  uint64_t torn_pages = 0;        // kTornPage: half-pages left behind
  bool partial_tail = false;      // the log ended inside a record
};

// Parent side, after the child is dead: rewrites every file named in the
// log to its durable image (see above), then empties the log.
Result<CutReport> ApplyPowerCut(const std::filesystem::path& log_path, CutMode mode);

}  // namespace storegw::faults
