// The fault VFS itself (fault_vfs.h): what ApplyPowerCut leaves behind, at
// the file level and through SQLite. If these fail, the power-loss test
// proves nothing.
#include <doctest/doctest.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "fault_vfs.h"
#include "test_util.h"

namespace storegw::faults {
namespace {

using namespace storegw::storage::testing;  // NOLINT

// One process-wide install: the VFS becomes SQLite's default here.
struct Env {
  TempDir root;
  fs::path tracked = root / "tracked";
  fs::path log = root / "vfs.log";
  Env() {
    fs::create_directories(tracked);
    auto s = InstallFaultVfs(log, tracked);
    REQUIRE_MESSAGE(s.ok(), s.ToString());
  }
};
Env& TheEnv() {
  static Env env;
  return env;
}

class File {
 public:
  explicit File(const fs::path& p) {
    vfs_ = sqlite3_vfs_find("faultfs");
    REQUIRE(vfs_ != nullptr);
    f_ = static_cast<sqlite3_file*>(sqlite3_malloc(vfs_->szOsFile));
    int out = 0;
    REQUIRE(vfs_->xOpen(vfs_, p.c_str(), f_,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_MAIN_DB,
                        &out) == SQLITE_OK);
  }
  ~File() {
    f_->pMethods->xClose(f_);
    sqlite3_free(f_);
  }
  void Write(char c, int n, int64_t off) {
    std::string b(static_cast<size_t>(n), c);
    REQUIRE(f_->pMethods->xWrite(f_, b.data(), n, off) == SQLITE_OK);
  }
  void Sync() { REQUIRE(f_->pMethods->xSync(f_, SQLITE_SYNC_FULL) == SQLITE_OK); }
  void Truncate(int64_t n) { REQUIRE(f_->pMethods->xTruncate(f_, n) == SQLITE_OK); }

 private:
  sqlite3_vfs* vfs_ = nullptr;
  sqlite3_file* f_ = nullptr;
};

TEST_CASE("faultfs: a cut discards every write and truncate since the file's last sync") {
  Env& env = TheEnv();
  const fs::path p = env.tracked / "a.bin";
  {
    File f(p);
    f.Write('a', 8192, 0);
    f.Sync();
    f.Write('b', 4096, 4096);  // overwrite
    f.Write('c', 2048, 8192);  // extend
    f.Truncate(100);
  }
  REQUIRE(FileBytes(p).size() == 100);
  auto cut = ApplyPowerCut(env.log, CutMode::kDiscardUnsynced);
  REQUIRE_MESSAGE(cut.ok(), cut.status().ToString());
  CHECK(cut->undone_writes == 2);
  CHECK(cut->undone_truncates == 1);
  CHECK(FileBytes(p) == std::string(8192, 'a'));
  fs::remove(p);
}

TEST_CASE("faultfs: torn mode keeps the first half of the last unsynced page") {
  Env& env = TheEnv();
  const fs::path p = env.tracked / "b.bin";
  {
    File f(p);
    f.Write('a', 8192, 0);
    f.Sync();
    f.Write('b', 4096, 0);
    f.Write('c', 4096, 4096);
    f.Write('h', 24, 8192);  // a small (frame header) write after it is not a page
  }
  auto cut = ApplyPowerCut(env.log, CutMode::kTornPage);
  REQUIRE_MESSAGE(cut.ok(), cut.status().ToString());
  CHECK(cut->torn_pages == 1);
  CHECK(FileBytes(p) == std::string(4096, 'a') + std::string(2048, 'c') + std::string(2048, 'a'));
  fs::remove(p);
}

TEST_CASE("faultfs: synced writes survive - a file never synced comes back empty") {
  Env& env = TheEnv();
  const fs::path p = env.tracked / "c.bin", q = env.tracked / "d.bin";
  {
    File f(p), g(q);
    f.Write('x', 1000, 0);
    g.Write('y', 1000, 0);
    f.Sync();
  }
  auto cut = ApplyPowerCut(env.log, CutMode::kDiscardUnsynced);
  REQUIRE(cut.ok());
  CHECK(FileBytes(p) == std::string(1000, 'x'));
  CHECK(FileBytes(q).empty());
  fs::remove(p);
  fs::remove(q);
}

TEST_CASE("faultfs: files outside the tracked directory are not touched by a cut") {
  Env& env = TheEnv();
  const fs::path p = env.root / "untracked.bin";
  {
    File f(p);
    f.Write('u', 5000, 0);
  }
  auto cut = ApplyPowerCut(env.log, CutMode::kDiscardUnsynced);
  REQUIRE(cut.ok());
  CHECK(cut->records == 0);
  CHECK(FileBytes(p) == std::string(5000, 'u'));
}

// Through SQLite: with synchronous=OFF a commit is not durable and the cut
// takes it away; with synchronous=FULL it stays. This is what makes the
// power-loss test able to fail.
int64_t RowsAfterCut(const fs::path& db_path, const char* sync_pragma) {
  Env& env = TheEnv();
  Sql(db_path, "PRAGMA journal_mode=WAL; CREATE TABLE t(x); INSERT INTO t VALUES(1);", true);
  const std::string sql = std::string(sync_pragma) +
                          "; PRAGMA wal_autocheckpoint=0; INSERT INTO t VALUES(2); "
                          "INSERT INTO t VALUES(3);";
  // The "crash": a forked child commits two rows and dies without closing
  // (closing would checkpoint and sync).
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK)
      _exit(1);
    _exit(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr) == SQLITE_OK ? 0 : 2);
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  REQUIRE((WIFEXITED(status) && WEXITSTATUS(status) == 0));
  auto cut = ApplyPowerCut(env.log, CutMode::kDiscardUnsynced);
  REQUIRE_MESSAGE(cut.ok(), cut.status().ToString());
  return SqlInt(db_path, "SELECT count(*) FROM t");
}

TEST_CASE("faultfs: SQLite commits survive a cut with synchronous=FULL - not with OFF") {
  Env& env = TheEnv();
  CHECK(RowsAfterCut(env.tracked / "full.db", "PRAGMA synchronous=FULL") == 3);
  CHECK(RowsAfterCut(env.tracked / "off.db", "PRAGMA synchronous=OFF") == 1);
  const VfsCounters c = FaultVfsCounters();  // this process: Sql() went through it too
  CHECK(c.writes > 0);
  CHECK(c.syncs > 0);
}

}  // namespace
}  // namespace storegw::faults
