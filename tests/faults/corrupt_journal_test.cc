// Corrupt golden journals (golden/README.md) through Journal::Open: each
// gives a clear message, and the file is moved aside byte for byte or left
// untouched, as README.md ("What happens to a damaged or foreign journal")
// documents. Every test works on a copy in a temporary directory.
#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <thread>

#include "test_util.h"

namespace storegw::storage {
namespace {

using namespace testing;  // NOLINT

const fs::path kGolden = fs::path(STOREGW_TEST_SOURCE_DIR) / "faults" / "golden";

// Copies golden/`name` to `dir`/journal.db and returns the golden bytes.
std::string Install(const std::string& name, const fs::path& dir) {
  const fs::path src = kGolden / name;
  REQUIRE_MESSAGE(fs::exists(src), src.string());
  fs::create_directories(dir);
  fs::copy_file(src, dir / "journal.db");
  return FileBytes(src);
}

JournalOptions GoldenOptions(const fs::path& dir) {
  auto o = Options(dir);
  o.store_id = "store-golden";
  o.gateway_id = "gw-golden";
  return o;
}

// The three invariants on a journal that holds exactly `events` device
// events: dense seqs from 1, each event once, verify passes.
void CheckFresh(Journal& j, size_t events) {
  auto all = ReadAll(j);
  REQUIRE(all.size() == events);
  for (size_t i = 0; i < all.size(); ++i) CHECK(all[i].seq() == i + 1);
}

TEST_CASE("corrupt golden: a truncated journal is moved aside byte for byte - a new epoch starts") {
  TempDir dir;
  const std::string golden = Install("journal-truncated.db", dir.path());
  auto o = GoldenOptions(dir.path());
  auto j = MustOpen(o);
  const OpenReport r = j->open_report();
  INFO(r.corrupt_reason);
  REQUIRE_FALSE(r.corrupt_moved_to.empty());
  CHECK(r.created);
  CHECK(r.corrupt_reason.find("malformed") != std::string::npos);
  CHECK(r.corrupt_reason.find((dir / "journal.db").string()) != std::string::npos);
  CHECK(fs::path(r.corrupt_moved_to).filename().string().rfind("journal.db.corrupt-", 0) == 0);
  CHECK(FileBytes(r.corrupt_moved_to) == golden);  // kept, untouched
  // The new journal works: nothing acknowledged lost, no gap, no duplicate.
  auto res = MustAppend(*j, {Receipt("after-1", {{"sku-1", 3}}), Sale("after-2", {{"sku-1", 1}})});
  CHECK(res[0].seq == 1);
  CHECK(res[1].seq == 2);
  CheckFresh(*j, 2);
  CHECK(OnHand(*j, "sku-1") == 2);
  j.reset();
  CHECK(VerifyJournal(dir.path()).ok());
  // Reopening finds the new journal healthy and the moved file still there.
  auto again = MustOpen(o);
  CHECK(again->open_report().corrupt_moved_to.empty());
  CHECK(FilesWithPrefix(dir.path(), "journal.db.corrupt-").size() == 1);
}

TEST_CASE("corrupt golden: with OnCorrupt::kMoveAsideAndFail a truncated journal fails to open") {
  TempDir dir;
  const std::string golden = Install("journal-truncated.db", dir.path());
  auto o = GoldenOptions(dir.path());
  o.on_corrupt = OnCorrupt::kMoveAsideAndFail;
  auto j = Journal::Open(o);
  REQUIRE_FALSE(j.ok());
  CHECK(j.status().code() == StatusCode::kCorruption);
  CHECK(j.status().message().find("moved to") != std::string::npos);
  auto moved = FilesWithPrefix(dir.path(), "journal.db.corrupt-");
  REQUIRE(moved.size() == 1);
  CHECK(FileBytes(moved[0]) == golden);
  CHECK_FALSE(fs::exists(dir / "journal.db"));
}

// The schema version this build writes.
int64_t BuildSchemaVersion() {
  TempDir dir;
  MustOpen(Options(dir.path()))->Close();
  return SqlInt(dir / "journal.db", "PRAGMA user_version");
}

TEST_CASE("corrupt golden: verify names the damage of truncated and garbage journals") {
  for (const char* name : {"journal-truncated.db", "journal-garbage.db"}) {
    CAPTURE(name);
    TempDir dir;
    Install(name, dir.path());
    // (A build of a newer schema answers an intact-looking old file with its
    // schema version first: verify the garbage file only at its own schema.)
    if (std::string(name) == "journal-garbage.db" &&
        SqlInt(dir / "journal.db", "PRAGMA user_version") < BuildSchemaVersion()) {
      continue;
    }
    auto v = VerifyJournal(dir.path());
    REQUIRE_FALSE(v.ok());
    INFO(v.status().message());
    CHECK(v.status().code() == StatusCode::kCorruption);
    // (the CLI puts the path in front: "journal verify: FAILED: <path>: ...")
    const std::string m = v.status().message();
    CHECK((m.find("malformed") != std::string::npos || m.find("integrity") != std::string::npos));
  }
}

TEST_CASE(
    "corrupt golden: random bytes in an events page: moved aside byte for byte - new epoch "
    "(at once when a migration is due - else after the background check found it)") {
  TempDir dir;
  const std::string golden = Install("journal-garbage.db", dir.path());
  auto o = GoldenOptions(dir.path());
  // A schema migration writes to the file, so start-up checks the whole
  // file first; otherwise it checks only the small tables (open time must
  // not grow with the journal) and the events table in the background.
  const bool migration_due =
      SqlInt(dir / "journal.db", "PRAGMA user_version") < BuildSchemaVersion();
  CAPTURE(migration_due);
  uint64_t old_epoch = 0;
  if (!migration_due) {
    auto j = MustOpen(o);
    CHECK(j->open_report().corrupt_moved_to.empty());
    old_epoch = j->epoch();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!j->Stats().integrity_checked && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    const JournalStats st = j->Stats();
    REQUIRE(st.integrity_checked);
    CHECK(st.integrity_error.find("failed its background integrity check") != std::string::npos);
    CHECK(st.integrity_error.find("out of order") != std::string::npos);
    j.reset();
    CHECK(fs::exists(dir / "journal.db.check-failed"));
    // Nothing was appended or pruned (the golden watermark is 0): the file
    // is still byte for byte the golden one.
    CHECK(FileBytes(dir / "journal.db") == golden);
  }

  auto j = MustOpen(o);
  const OpenReport r = j->open_report();
  INFO(r.corrupt_reason);
  REQUIRE_FALSE(r.corrupt_moved_to.empty());
  CHECK(r.created);
  if (old_epoch) CHECK(j->epoch() != old_epoch);
  CHECK(r.corrupt_reason.find("failed its integrity check") != std::string::npos);
  CHECK(r.corrupt_reason.find("out of order") != std::string::npos);
  CHECK(FileBytes(r.corrupt_moved_to) == golden);
  CHECK_FALSE(fs::exists(dir / "journal.db.check-failed"));
  auto res = MustAppend(*j, {Receipt("fresh-1", {{"sku-9", 1}})});
  CHECK(res[0].seq == 1);
  CheckFresh(*j, 1);
}

TEST_CASE("corrupt golden: a journal of a future schema version is refused and left untouched") {
  TempDir dir;
  const std::string golden = Install("journal-future.db", dir.path());
  REQUIRE(SqlInt(dir / "journal.db", "PRAGMA user_version") == 99);
  auto o = GoldenOptions(dir.path());
  for (auto mode : {OnCorrupt::kMoveAsideAndCreate, OnCorrupt::kMoveAsideAndFail}) {
    o.on_corrupt = mode;
    auto j = Journal::Open(o);
    REQUIRE_FALSE(j.ok());
    CHECK(j.status().code() == StatusCode::kFailedPrecondition);
    const std::string m = j.status().message();
    CHECK(m.find("schema version 99") != std::string::npos);
    CHECK(m.find("upgrade storegw") != std::string::npos);
    CHECK(m.find("left untouched") != std::string::npos);
    CHECK(FileBytes(dir / "journal.db") == golden);
    CHECK(FilesWithPrefix(dir.path(), "journal.db.corrupt-").empty());
  }
}

}  // namespace
}  // namespace storegw::storage
