// The offline tools: VerifyJournal (integrity, seq density, the ledger
// against a replay) and ExportJournal (every event, in seq order, while a
// writer keeps going).
#include <doctest/doctest.h>
#include <google/protobuf/util/message_differencer.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "common/ids.h"
#include "test_util.h"

namespace storegw::storage {
namespace {

using namespace testing;  // NOLINT
using google::protobuf::util::MessageDifferencer;

// A closed journal with every kind of stock change in it.
void Populate(const fs::path& dir) {
  auto j = MustOpen(Options(dir));
  MustAppend(*j, {Receipt("r1", {{"a", 10}, {"b", 5}, {"c", 1}})});
  MustAppend(*j, {Sale("s1", {{"a", 2}}), Sale("s2", {{"b", 6}})});  // b oversold
  MustAppend(*j, {Return("x1", {{"a", 1}}), Adjust("j1", {{"c", -1}}),
                  Transfer("t1", v1::Transfer::IN, {{"c", 4}}), Reservation("o1", {{"a", 1}}),
                  Pickup("p1", {{"a", 1}}), Sensor("f1")});
  MustAppend(*j, {Count("k1", "a", 3)});
  auto snap = j->ApplySnapshot(Snapshot(j->epoch(), 2, 1, {{"b", 9}}));
  REQUIRE(snap.ok());
  for (int i = 0; i < 20; ++i) MustAppend(*j, {Sale(test::Id("m", i), {{"c", 1}})});
}

TEST_CASE("verify: a healthy journal passes, read-only") {
  TempDir dir;
  Populate(dir.path());
  const std::string before = FileBytes(dir / "journal.db");
  uint64_t calls = 0, last_done = 0, last_total = 0;
  auto v = VerifyJournal(dir.path(), [&](uint64_t done, uint64_t total) {
    ++calls;
    CHECK(done >= last_done);
    CHECK(done <= total);
    last_done = done;
    last_total = total;
  });
  REQUIRE_MESSAGE(v.ok(), v.status().ToString());
  auto j = MustOpen(Options(dir.path()));
  const auto st = j->Stats();
  j.reset();
  CHECK(v->events == st.last_seq);
  CHECK(v->first_seq == 1);
  CHECK(v->last_seq == st.last_seq);
  CHECK(v->watermark == 0);
  CHECK(v->skus == 3);
  CHECK(v->full_replay);
  if (calls > 0) CHECK(last_done == last_total);
  CHECK(FileBytes(dir / "journal.db") == before);
}

TEST_CASE("verify: works while the journal is open and being written") {
  TempDir dir;
  Populate(dir.path());
  auto j = MustOpen(Options(dir.path()));
  std::atomic<bool> stop{false};
  std::string err;
  std::thread writer([&] {
    for (int i = 0; !stop.load() && i < 2000; ++i) {
      auto r = j->Append({Sale(test::Id("w", i), {{"a", 1}}),
                          Receipt(test::Id("v", i), {{"a", 1}})});
      if (!r.ok()) {
        err = r.status().ToString();
        return;
      }
    }
  });
  for (int k = 0; k < 3; ++k) {
    auto v = VerifyJournal(dir.path());
    CHECK_MESSAGE(v.ok(), v.status().ToString());
  }
  stop = true;
  writer.join();
  CHECK_MESSAGE(err.empty(), err);
}

TEST_CASE("verify: fails with corruption when the file was tampered with") {
  TempDir dir;
  Populate(dir.path());
  const fs::path db = dir / "journal.db";
  REQUIRE(VerifyJournal(dir.path()).ok());

  auto expect_corrupt = [&](const std::string& what) {
    auto v = VerifyJournal(dir.path());
    REQUIRE_MESSAGE(!v.ok(), what << ": verify passed");
    CHECK(v.status().code() == StatusCode::kCorruption);
    // The reason says which file and what is wrong.
    CHECK(v.status().message().find("journal.db") != std::string::npos);
  };

  SUBCASE("a row deleted in the middle: a seq gap") {
    Sql(db, "DELETE FROM events WHERE seq = 5");
    expect_corrupt("seq gap");
  }
  SUBCASE("the newest row deleted: the ledger no longer matches") {
    Sql(db, "DELETE FROM events WHERE seq = (SELECT max(seq) FROM events)");
    expect_corrupt("last event missing");
  }
  SUBCASE("a stock row changed") {
    Sql(db, "UPDATE stock SET on_hand = on_hand + 1 WHERE sku = 'c'");
    expect_corrupt("stock on_hand");
  }
  SUBCASE("a stock base changed consistently with on_hand") {
    Sql(db, "UPDATE stock SET on_hand = on_hand + 3, base_qty = base_qty + 3 WHERE sku = 'c'");
    expect_corrupt("stock base");
  }
  SUBCASE("a stock row deleted") {
    Sql(db, "DELETE FROM stock WHERE sku = 'a'");
    expect_corrupt("stock row missing");
  }
  SUBCASE("an event body that does not decode") {
    Sql(db, "UPDATE events SET body = x'ffffffffffffffff' WHERE seq = 3");
    expect_corrupt("body");
  }
  SUBCASE("an event body changed to another valid event") {
    // A sale of 2 becomes a sale of 7: the stored ledger no longer matches.
    v1::Event e = Sale("s1", {{"a", 7}});
    std::string bytes;
    REQUIRE(e.SerializeToString(&bytes));
    std::string hex;
    for (unsigned char c : bytes) {
      static const char* d = "0123456789abcdef";
      hex += d[c >> 4];
      hex += d[c & 15];
    }
    Sql(db, "UPDATE events SET body = x'" + hex + "' WHERE event_id = 's1'");
    expect_corrupt("body changed");
  }
  SUBCASE("a count's recorded delta changed") {
    Sql(db, "UPDATE events SET count_delta = count_delta + 1 WHERE event_id = 'k1'");
    expect_corrupt("count delta");
  }
  SUBCASE("garbage instead of a database") {
    WriteFile(db, std::string(10000, 'x'));
    fs::remove(dir / "journal.db-wal");
    expect_corrupt("garbage");
  }
}

TEST_CASE("verify: a damaged number in the meta table is corruption naming key and value") {
  struct Damage {
    const char* key;
    const char* value;
  };
  const Damage cases[] = {{"epoch", "x12"},
                          {"epoch", "18446744073709551616"},  // 2^64
                          {"watermark", "seven"},
                          {"watermark", "12x"},
                          {"last_seq", "-5"}};
  for (const Damage& d : cases) {
    CAPTURE(d.key);
    CAPTURE(d.value);
    TempDir dir;
    Populate(dir.path());
    Sql(dir / "journal.db", std::string("INSERT INTO meta(key, value) VALUES('") + d.key +
                                "', '" + d.value +
                                "') ON CONFLICT(key) DO UPDATE SET value = excluded.value");
    auto v = VerifyJournal(dir.path());
    REQUIRE_FALSE(v.ok());
    CHECK(v.status().code() == StatusCode::kCorruption);
    CHECK(v.status().message().find("journal.db") != std::string::npos);
    CHECK(v.status().message().find(std::string("'") + d.key + "'") != std::string::npos);
    CHECK(v.status().message().find(std::string("'") + d.value + "'") != std::string::npos);
    if (std::string(d.key) != "last_seq") {
      // Export needs epoch and watermark too, and reports the same.
      Status e = ExportJournal(dir.path(), [](const v1::JournaledEvent&) { return Status(); });
      CHECK(e.code() == StatusCode::kCorruption);
    }
  }
}

TEST_CASE("verify: a missing journal is an error, not a pass") {
  TempDir dir;
  auto v = VerifyJournal(dir / "nothing-here");
  CHECK_FALSE(v.ok());
  CHECK_FALSE(fs::exists(dir / "nothing-here" / "journal.db"));
}

TEST_CASE("export: every event in seq order while another instance keeps appending") {
  TempDir dir;
  auto j = MustOpen(Options(dir.path()));
  AppendHistory(*j);
  const uint64_t before = j->Stats().last_seq;
  REQUIRE(before >= 2000);

  BackgroundAppender writer(*j);

  std::vector<v1::JournaledEvent> got;
  Status s = ExportJournal(dir.path(), [&](const v1::JournaledEvent& e) {
    got.push_back(e);
    // Halfway through, let the writer commit a good number of events while
    // the export's read transaction is open (bounded wait).
    if (got.size() == 1000) writer.WaitForMore(200);
    return Status::Ok();
  });
  writer.Stop();
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  CHECK_MESSAGE(writer.error().empty(), writer.error());

  REQUIRE(got.size() >= before);
  CHECK(writer.appended() >= 200);
  for (size_t i = 0; i < got.size(); ++i) {
    REQUIRE_MESSAGE(got[i].seq() == i + 1, "export out of order or with a gap at " << i);
    CHECK(got[i].epoch() == j->epoch());
    CHECK(got[i].store_id() == "store-0042");
    CHECK(got[i].gateway_id() == "gw-test");
    CHECK(got[i].recorded_at() > 0);
  }
  // What was exported is exactly what the journal holds at those seqs.
  auto all = ReadAll(*j);
  REQUIRE(all.size() >= got.size());
  for (size_t i = 0; i < got.size(); ++i) {
    CHECK_MESSAGE(MessageDifferencer::Equals(got[i], all[i]),
                  got[i].ShortDebugString() << " != " << all[i].ShortDebugString());
  }
  MESSAGE("exported " << got.size() << " events while " << writer.appended()
                      << " more were appended");

  // At rest, the export is the whole journal.
  j.reset();
  std::vector<v1::JournaledEvent> again;
  REQUIRE(ExportJournal(dir.path(), [&](const v1::JournaledEvent& e) {
            again.push_back(e);
            return Status::Ok();
          }).ok());
  CHECK(again.size() == all.size());
}

TEST_CASE("export: the sink's error stops it and is returned") {
  TempDir dir;
  {
    auto j = MustOpen(Options(dir.path()));
    for (int i = 0; i < 30; ++i) MustAppend(*j, {Receipt(test::Id("r", i), {{"a", 1}})});
  }
  int calls = 0;
  Status s = ExportJournal(dir.path(), [&](const v1::JournaledEvent&) {
    return ++calls == 10 ? Status::IoError("stdout closed") : Status::Ok();
  });
  CHECK(s.code() == StatusCode::kIoError);
  CHECK(s.message() == "stdout closed");
  CHECK(calls == 10);
}

}  // namespace
}  // namespace storegw::storage
