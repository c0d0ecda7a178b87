// BackupJournal: a verified copy of a journal that another thread keeps
// appending to (one snapshot: a dense prefix of the seqs, each event as the
// journal holds it), the copy opened as a journal, and every refusal
// leaving nothing behind.
#include <doctest/doctest.h>
#include <google/protobuf/util/message_differencer.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/ids.h"
#include "test_util.h"

namespace storegw::storage {
namespace {

using namespace testing;  // NOLINT
using google::protobuf::util::MessageDifferencer;

// Names of the files in `dir`.
std::set<std::string> BackupDirListing(const fs::path& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.insert(e.path().filename().string());
  return out;
}

// Every event of the journal file `file`, read the way `journal export`
// reads a data dir (the file is copied into a fresh one as journal.db).
std::vector<v1::JournaledEvent> EventsOfCopy(const fs::path& file, const fs::path& scratch) {
  fs::create_directories(scratch);
  fs::copy_file(file, scratch / "journal.db", fs::copy_options::overwrite_existing);
  std::vector<v1::JournaledEvent> out;
  Status s = ExportJournal(scratch, [&](const v1::JournaledEvent& e) {
    out.push_back(e);
    return Status::Ok();
  });
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  return out;
}

TEST_CASE("backup: a copy taken while another thread appends verifies and holds a dense prefix") {
  TempDir dir, out;
  const fs::path data = dir / "data";
  auto j = MustOpen(Options(data));
  AppendHistory(*j);
  REQUIRE(j->Ack(1500).ok());
  const uint64_t before = j->Stats().last_seq;
  REQUIRE(before == 2000);

  BackgroundAppender writer(*j);
  // Let the writer get going before the copy starts.
  writer.WaitForMore(100, 5000);

  const fs::path copy = out / "store-0042.db";
  BackupOptions opts;
  opts.pages_per_step = 2;  // many steps: the writer commits between them
  uint64_t calls = 0, last_done = 0, waited_for = 0;
  opts.copy_progress = [&](uint64_t done, uint64_t total) {
    CHECK(done >= last_done);
    CHECK(done <= total);
    last_done = done;
    // A few steps in, let the writer commit a good number of events while
    // the copy's read transaction is open (bounded wait).
    if (++calls == 3) {
      writer.WaitForMore(200);
      waited_for = writer.appended();
    }
  };
  uint64_t verify_calls = 0;
  opts.verify_progress = [&](uint64_t, uint64_t) { ++verify_calls; };
  auto r = BackupJournal(data, copy, opts);
  writer.Stop();
  REQUIRE_MESSAGE(r.ok(), r.status().ToString());
  CHECK_MESSAGE(writer.error().empty(), writer.error());
  CHECK(r->steps >= 3);
  CHECK(calls >= 3);
  CHECK(last_done == r->pages);
  CHECK(verify_calls > 0);
  CHECK(r->bytes == fs::file_size(copy));
  CHECK(r->bytes > 0);

  // The copy verified, carries the journal's identity, and is a prefix.
  const auto& v = r->verify;
  CHECK(v.epoch == j->epoch());
  CHECK(v.store_id == "store-0042");
  CHECK(v.gateway_id == "gw-test");
  CHECK(v.first_seq == 1);
  CHECK(v.full_replay);
  CHECK(v.watermark == 1500);
  REQUIRE(v.last_seq >= before);
  CHECK(v.events == v.last_seq);
  const uint64_t final_last = j->Stats().last_seq;
  MESSAGE("copied seq 1.." << v.last_seq << " in " << r->steps << " steps of 2 pages while "
                           << writer.appended() << " events were appended (journal at seq "
                           << final_last << ")");
  // What the writer committed while the copy was under way is not in it.
  CHECK(writer.appended() >= 200);
  CHECK(v.last_seq < final_last);
  CHECK(v.last_seq < before + waited_for);

  // A single self-contained file, mode 0600, nothing else left beside it.
  CHECK(BackupDirListing(out.path()) == std::set<std::string>{"store-0042.db"});
  struct stat st {};
  REQUIRE(::stat(copy.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  CHECK(VerifyJournalFile(copy).ok());

  // Every event of the copy is the journal's event at that seq, dense from 1.
  auto got = EventsOfCopy(copy, dir / "scratch");
  REQUIRE(got.size() == v.last_seq);
  auto all = ReadAll(*j);
  REQUIRE(all.size() >= got.size());
  for (size_t i = 0; i < got.size(); ++i) {
    REQUIRE_MESSAGE(got[i].seq() == i + 1, "gap or disorder at index " << i);
    CHECK_MESSAGE(MessageDifferencer::Equals(got[i], all[i]),
                  got[i].ShortDebugString() << " != " << all[i].ShortDebugString());
  }

  // The copy is a journal: opened in a new data dir with the same identity
  // it goes on from its last seq with the same epoch.
  j.reset();
  const fs::path moved = dir / "moved";
  fs::create_directories(moved);
  fs::copy_file(copy, moved / "journal.db");
  auto j2 = MustOpen(Options(moved));
  CHECK(j2->epoch() == v.epoch);
  CHECK(j2->Stats().last_seq == v.last_seq);
  CHECK(j2->Stats().watermark == 1500);
  auto next = MustAppend(*j2, {Receipt("after-move", {{"sku-1", 1}})});
  CHECK(next[0].seq == v.last_seq + 1);
  j2.reset();
  CHECK(VerifyJournal(moved).ok());
}

TEST_CASE("backup: of a closed journal - an existing output is replaced only with overwrite") {
  TempDir dir;
  {
    auto j = MustOpen(Options(dir / "data"));
    for (int i = 0; i < 30; ++i) MustAppend(*j, {Receipt(test::Id("r", i), {{"a", 1}})});
  }
  const fs::path copy = dir / "copy.db";
  auto r = BackupJournal(dir / "data", copy);
  REQUIRE_MESSAGE(r.ok(), r.status().ToString());
  CHECK(r->verify.last_seq == 30);
  // The journal itself is unchanged by the copy.
  CHECK(VerifyJournal(dir / "data").ok());

  WriteFile(copy, "an older backup");
  auto again = BackupJournal(dir / "data", copy);
  REQUIRE(!again.ok());
  CHECK(FileBytes(copy) == "an older backup");
  BackupOptions force;
  force.overwrite = true;
  auto replaced = BackupJournal(dir / "data", copy, force);
  REQUIRE_MESSAGE(replaced.ok(), replaced.status().ToString());
  CHECK(VerifyJournalFile(copy).ok());
  CHECK(BackupDirListing(dir.path()) == std::set<std::string>{"copy.db", "data"});
}

TEST_CASE("backup: each refusal names the problem and leaves no file behind") {
  TempDir dir;
  const fs::path data = dir / "data";
  {
    auto j = MustOpen(Options(data));
    MustAppend(*j, {Receipt("r1", {{"a", 1}})});
  }
  fs::create_directories(dir / "out");
  WriteFile(dir / "out" / "exists.db", "keep me");
  const auto out_before = BackupDirListing(dir / "out");
  const auto data_before = BackupDirListing(data);
  const std::string journal_before = FileBytes(data / "journal.db");

  auto refused = [&](const fs::path& d, const fs::path& o, StatusCode code, const std::string& says,
                     bool overwrite = false) {
    INFO("backup of " << d.string() << " to " << o.string());
    BackupOptions opts;
    opts.overwrite = overwrite;
    auto r = BackupJournal(d, o, opts);
    REQUIRE(!r.ok());
    CHECK(r.status().code() == code);
    CHECK_MESSAGE(r.status().message().find(says) != std::string::npos, r.status().message());
    CHECK(BackupDirListing(dir / "out") == out_before);
    CHECK(BackupDirListing(data) == data_before);
    CHECK(FileBytes(dir / "out" / "exists.db") == "keep me");
  };
  refused(dir / "absent", dir / "out" / "b.db", StatusCode::kNotFound,
          "the data dir " + (dir / "absent").string() + " does not exist");
  refused(dir / "out", dir / "out" / "b.db", StatusCode::kNotFound,
          "no journal at " + (dir / "out" / "journal.db").string());
  refused(data, dir / "out" / "exists.db", StatusCode::kFailedPrecondition,
          (dir / "out" / "exists.db").string() + " already exists");
  refused(data, dir / "out", StatusCode::kFailedPrecondition, "is a directory");
  refused(data, dir / "nowhere" / "b.db", StatusCode::kNotFound,
          "the directory " + (dir / "nowhere").string() + " does not exist");
  refused(data, data / "journal.db", StatusCode::kFailedPrecondition, "journal's own files",
          /*overwrite=*/true);
  refused(data, data / "journal.db-wal", StatusCode::kFailedPrecondition, "journal's own files",
          /*overwrite=*/true);
  CHECK(!fs::exists(dir / "nowhere"));
  if (::geteuid() != 0) {
    // Root writes anyway; the binary test covers it as an unprivileged user.
    fs::permissions(dir / "out", fs::perms::owner_read | fs::perms::owner_exec);
    refused(data, dir / "out" / "b.db", StatusCode::kPermissionDenied, "is not writable");
    fs::permissions(dir / "out", fs::perms::owner_all);
  }
  CHECK(FileBytes(data / "journal.db") == journal_before);
}

TEST_CASE("backup: a journal that fails verification is refused, nothing written") {
  TempDir dir;
  const fs::path data = dir / "data";
  {
    auto j = MustOpen(Options(data));
    for (int i = 0; i < 20; ++i) MustAppend(*j, {Receipt(test::Id("r", i), {{"a", 1}})});
  }
  Sql(data / "journal.db", "DELETE FROM events WHERE seq = 7");
  fs::create_directories(dir / "out");
  auto r = BackupJournal(data, dir / "out" / "b.db");
  REQUIRE(!r.ok());
  CHECK(r.status().code() == StatusCode::kCorruption);
  const std::string& m = r.status().message();
  CHECK_MESSAGE(m.find("failed verification") != std::string::npos, m);
  CHECK_MESSAGE(m.find("seq") != std::string::npos, m);
  CHECK_MESSAGE(m.find((data / "journal.db").string()) != std::string::npos, m);
  CHECK(BackupDirListing(dir / "out").empty());
}

}  // namespace
}  // namespace storegw::storage
