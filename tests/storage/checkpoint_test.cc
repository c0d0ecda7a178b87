// The checkpointer. The journal turns SQLite's auto-checkpoint off (its WAL
// hook replaces it) and copies the WAL into the main file on its own
// thread, so when that thread cannot work nothing else would: its failures
// must show in Stats(), and the WAL must stay bounded all the same (the
// writer then checkpoints itself past the force threshold).
//
// The failures are injected through JournalOptions::test_hooks, with small
// WAL thresholds so that a few hundred commits cross them many times.
#include <doctest/doctest.h>
#include <sqlite3.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "common/ids.h"
#include "test_util.h"

namespace storegw::storage {
namespace {

using namespace testing;  // NOLINT

constexpr int kCkPages = 20;
constexpr int kCkForcePages = 100;
// Pages one group commit of CkBatch() may add to the WAL (a few event,
// index, stock and meta pages; generous).
constexpr int kCkCommitPages = 100;

JournalOptions CkOptions(const fs::path& dir, const FakeClock& clock) {
  JournalOptions o = Options(dir);
  o.now_us = clock.fn();
  o.test_hooks.checkpoint_pages = kCkPages;
  o.test_hooks.force_checkpoint_pages = kCkForcePages;
  return o;
}

// 20 events of ~300 bytes on 20 skus: a commit dirties a handful of pages.
std::vector<v1::Event> CkBatch(int n) {
  std::vector<v1::Event> batch;
  for (int i = 0; i < 20; ++i) {
    const std::string id = test::Id("e", n) + test::Id("-", i);
    v1::Event e = Receipt(id, {{test::Id("sku-", i), 1}});
    e.mutable_receipt()->set_delivery_id(std::string(300, 'd'));
    batch.push_back(std::move(e));
  }
  return batch;
}

// Polls `done` every 10 ms for at most 15 s (not a timing assertion).
bool CkWaitFor(const std::function<bool()>& done) {
  for (int i = 0; i < 1500; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return done();
}

// Bytes of a WAL that held `frames` pages at most (4 KiB pages).
uint64_t CkWalBytes(int frames) { return 32 + static_cast<uint64_t>(frames) * (4096 + 24); }

TEST_CASE("checkpoint: a checkpointer that cannot open its connection is reported, WAL bounded") {
  TempDir dir(RamDirOrDefault());
  FakeClock clock;
  std::atomic<bool> fail_open{true};
  auto o = CkOptions(dir.path(), clock);
  o.test_hooks.fail_checkpointer_open = [&fail_open] { return fail_open.load(); };
  auto j = MustOpen(o);

  // The first attempt fails at once; it is published, not swallowed.
  CHECK(CkWaitFor([&] { return j->Stats().checkpoint_failures > 0; }));
  JournalStats st = j->Stats();
  CHECK(st.checkpoint_error.find("checkpointer") != std::string::npos);
  CHECK(st.checkpoint_error.find("journal.db") != std::string::npos);
  CHECK(st.checkpoint_error_at_us == clock.now());

  // A reader that holds an old snapshot keeps any checkpoint from copying
  // the frames after it; the background integrity check is one such reader
  // right after Open. Let it finish so that the bound below is the
  // checkpoints' doing alone.
  REQUIRE(CkWaitFor([&] { return j->Stats().integrity_checked; }));

  // Without any checkpoint these commits would put thousands of pages in
  // the WAL; the writer's own checkpoints keep it near the force threshold.
  int max_pages = 0;
  for (int n = 0; n < 400; ++n) {
    MustAppend(*j, CkBatch(n));
    max_pages = std::max<int>(max_pages, static_cast<int>(j->Stats().wal_pages));
  }
  CHECK(max_pages <= kCkForcePages + kCkCommitPages);
  const uint64_t wal_bytes = fs::file_size(dir / "journal.db-wal");
  CHECK(wal_bytes <= CkWalBytes(kCkForcePages + kCkCommitPages));
  CHECK(j->Stats().checkpoint_failures >= 1);
  CHECK_FALSE(j->Stats().checkpoint_error.empty());

  // The checkpointer tries again (every second): once it can open its
  // connection the error clears; the count of failures stays.
  const uint64_t failures = j->Stats().checkpoint_failures;
  fail_open = false;
  REQUIRE(CkWaitFor([&] { return j->Stats().checkpoint_error.empty(); }));
  CHECK(j->Stats().checkpoint_failures >= failures);
  for (int n = 400; n < 450; ++n) MustAppend(*j, CkBatch(n));
  CHECK(j->Stats().checkpoint_error.empty());

  j.reset();
  auto v = VerifyJournal(dir.path());
  CHECK_MESSAGE(v.ok(), v.status().ToString());
  CHECK(v->events == 450 * 20);
}

TEST_CASE("checkpoint: a failing checkpoint is counted and reported until one succeeds") {
  TempDir dir(RamDirOrDefault());
  FakeClock clock;
  std::atomic<int> inject{SQLITE_IOERR};
  auto o = CkOptions(dir.path(), clock);
  o.test_hooks.checkpoint_result = [&inject](int rc) {
    const int v = inject.load();
    return v != 0 ? v : rc;
  };
  auto j = MustOpen(o);
  CHECK(j->Stats().checkpoint_failures == 0);
  CHECK(j->Stats().checkpoint_error.empty());

  int n = 0;
  for (; n < 400 && j->Stats().checkpoint_failures == 0; ++n) {
    MustAppend(*j, CkBatch(n));
    clock.Advance(std::chrono::milliseconds(1));
  }
  REQUIRE(CkWaitFor([&] { return j->Stats().checkpoint_failures > 0; }));
  JournalStats st = j->Stats();
  CHECK(st.checkpoint_error.find("checkpoint") != std::string::npos);
  CHECK(st.checkpoint_error.find(sqlite3_errstr(SQLITE_IOERR)) != std::string::npos);
  CHECK(st.checkpoint_error_at_us > 0);
  CHECK(st.checkpoint_error_at_us <= clock.now());

  for (int k = 0; k < 50; ++k) MustAppend(*j, CkBatch(n++));
  CHECK_FALSE(j->Stats().checkpoint_error.empty());

  // BUSY (readers held it off) is not a failure; a checkpoint that works
  // clears the error.
  const uint64_t failures = j->Stats().checkpoint_failures;
  inject = SQLITE_BUSY;
  REQUIRE(CkWaitFor([&] {
    MustAppend(*j, CkBatch(n++));
    return j->Stats().checkpoint_error.empty();
  }));
  inject = 0;
  for (int k = 0; k < 50; ++k) MustAppend(*j, CkBatch(n++));
  st = j->Stats();
  CHECK(st.checkpoint_error.empty());
  CHECK(st.checkpoint_failures >= failures);
  // Checkpoints that work are not counted as failures.
  const uint64_t settled = st.checkpoint_failures;
  for (int k = 0; k < 50; ++k) MustAppend(*j, CkBatch(n++));
  CHECK(j->Stats().checkpoint_failures == settled);
}

TEST_CASE("checkpoint: a healthy journal reports no checkpoint error and keeps its WAL small") {
  TempDir dir(RamDirOrDefault());
  FakeClock clock;
  auto j = MustOpen(CkOptions(dir.path(), clock));
  for (int n = 0; n < 200; ++n) MustAppend(*j, CkBatch(n));
  const JournalStats st = j->Stats();
  CHECK(st.checkpoint_error.empty());
  CHECK(st.checkpoint_failures == 0);
  CHECK(st.checkpoint_error_at_us == 0);
}

}  // namespace
}  // namespace storegw::storage
