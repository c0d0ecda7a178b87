// Downstream from HQ, the storage half: snapshot reconciliation by
// hand, chunked snapshots, prices, COUNT_MISMATCH and LOW_STOCK alerts, and
// the validation of HQ input.
#include <doctest/doctest.h>

#include <atomic>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/ids.h"
#include "test_util.h"

namespace storegw::storage {
namespace {

using namespace testing;  // NOLINT

struct DownstreamFixture : LedgerFixture {
  using LedgerFixture::LedgerFixture;
  std::vector<v1::StatusAlert> Open(v1::Alert::Kind kind) {
    auto r = j->OpenAlerts(1000);
    REQUIRE_MESSAGE(r.ok(), r.status().ToString());
    std::vector<v1::StatusAlert> out;
    for (const auto& a : *r) {
      if (a.kind() == kind) out.push_back(a);
    }
    return out;
  }
  void Verify() {
    j.reset();
    auto v = VerifyJournal(dir.path());
    REQUIRE_MESSAGE(v.ok(), v.status().ToString());
    CHECK(v->full_replay);
    j = MustOpen(opt);
  }
};

v1::PriceUpdate Price(const std::string& sku, int64_t price, int64_t from,
                      const std::string& currency = "EUR",
                      const std::string& store = "store-0042") {
  v1::PriceUpdate p;
  p.set_store_id(store);
  p.set_sku(sku);
  p.set_price(price);
  p.set_currency(currency);
  p.set_effective_from(from);
  return p;
}

// ------------------------------------------------------------ reconciliation

TEST_CASE("reconcile: a snapshot before, between and after the local sales") {
  // The same story three times: HQ knows of a delivery the store did not
  // record (the snapshot says 20 as of the receipt of 10), and the store
  // sells 2 then 3. Wherever the snapshot lands among the sales, the result
  // is HQ's 20 plus the local deltas after as_of_seq.
  for (int when = 0; when < 3; ++when) {
    CAPTURE(when);
    DownstreamFixture f;
    const uint64_t r1 = f.Append1(Receipt("r1", {{"a", 10}}));
    const auto snap = Snapshot(f.j->epoch(), r1, 1, {{"a", 20}});
    if (when == 0) {
      CHECK(f.Snap(snap).outcome == SnapshotResult::Outcome::kApplied);
      CHECK(OnHand(*f.j, "a") == 20);
    }
    f.Append1(Sale("s1", {{"a", 2}}));
    if (when == 1) {
      CHECK(f.Snap(snap).outcome == SnapshotResult::Outcome::kApplied);
      CHECK(OnHand(*f.j, "a") == 18);
    }
    f.Append1(Sale("s2", {{"a", 3}}));
    if (when == 2) {
      CHECK(f.Snap(snap).outcome == SnapshotResult::Outcome::kApplied);
    }
    CHECK(OnHand(*f.j, "a") == 15);
    const StockRow row = f.Row("a");
    CHECK(row.base_qty == 20);
    CHECK(row.as_of_seq == r1);
    CHECK(row.hq_version == 1);
    f.Verify();
    CHECK(OnHand(*f.j, "a") == 15);
  }
}

TEST_CASE("reconcile: a snapshot as of a seq between the sales counts only the later ones") {
  DownstreamFixture f;
  f.Append1(Receipt("r1", {{"a", 10}}));
  const uint64_t s1 = f.Append1(Sale("s1", {{"a", 2}}));
  f.Append1(Sale("s2", {{"a", 3}}));
  // HQ has seen r1 and s1 (and knows of 4 more units): 12 as of s1.
  auto res = f.Snap(Snapshot(f.j->epoch(), s1, 5, {{"a", 12}}));
  CHECK(res.outcome == SnapshotResult::Outcome::kApplied);
  CHECK(res.skus_applied == 1);
  CHECK(OnHand(*f.j, "a") == 9);
  f.Append1(Sale("s3", {{"a", 1}}));
  CHECK(OnHand(*f.j, "a") == 8);
}

TEST_CASE("reconcile: stale snapshots (older hq_version, older as_of_seq) are ignored") {
  DownstreamFixture f;
  f.Append1(Receipt("r1", {{"a", 10}, {"b", 5}}));
  const uint64_t s1 = f.Append1(Sale("s1", {{"a", 2}}));
  f.Append1(Sale("s2", {{"a", 3}}));
  const uint64_t epoch = f.j->epoch();
  REQUIRE(f.Snap(Snapshot(epoch, s1, 7, {{"a", 30}})).outcome == SnapshotResult::Outcome::kApplied);
  REQUIRE(OnHand(*f.j, "a") == 27);
  const uint64_t before = f.last();

  SUBCASE("same as_of_seq, older hq_version") {
    auto res = f.Snap(Snapshot(epoch, s1, 6, {{"a", 99}}));
    CHECK(res.outcome == SnapshotResult::Outcome::kStale);
    CHECK(res.skus_stale == 1);
    CHECK(res.skus_applied == 0);
    CHECK_FALSE(res.reason.empty());
  }
  SUBCASE("older as_of_seq, even with a newer hq_version") {
    auto res = f.Snap(Snapshot(epoch, s1 - 1, 9, {{"a", 99}}));
    CHECK(res.outcome == SnapshotResult::Outcome::kStale);
    CHECK(res.skus_stale == 1);
  }
  SUBCASE("mixed: stale for a, fresh for b (never rebased)") {
    auto res = f.Snap(Snapshot(epoch, s1 - 1, 9, {{"a", 99}, {"b", 1}}));
    CHECK(res.outcome == SnapshotResult::Outcome::kApplied);
    CHECK(res.skus_stale == 1);
    CHECK(res.skus_applied == 1);
    CHECK(OnHand(*f.j, "b") == 1);
  }
  // The ignored snapshot is still journaled (HQ sees what arrived).
  CHECK(f.last() == before + 1);
  CHECK(f.At(before + 1).event().has_stock_snapshot());
  const StockRow row = f.Row("a");
  CHECK(row.on_hand == 27);
  CHECK(row.base_qty == 30);
  CHECK(row.hq_version == 7);
  f.Verify();
}

TEST_CASE("reconcile: a snapshot for another epoch or store is rejected with an alert") {
  DownstreamFixture f;
  f.Append1(Receipt("r1", {{"a", 10}}));
  const uint64_t epoch = f.j->epoch();
  struct Case {
    v1::StockSnapshot snap;
    std::string words;
  };
  const Case cases[] = {
      {Snapshot(epoch ^ 0x10, 1, 3, {{"a", 50}}), "epoch"},
      {Snapshot(epoch, 1, 3, {{"a", 50}}, "store-0001"), "store"},
      {Snapshot(epoch, 5, 3, {{"a", 50}}), "beyond"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.words);
    const uint64_t before = f.last();
    auto res = f.Snap(c.snap);
    CHECK(res.outcome == SnapshotResult::Outcome::kRejected);
    CHECK(res.reason.find(c.words) != std::string::npos);
    CHECK(res.seq == before + 1);
    CHECK(f.last() == before + 1);  // only the alert
    auto e = f.At(res.seq);
    REQUIRE(e.event().has_alert());
    CHECK(e.event().alert().kind() == v1::Alert::SNAPSHOT_REJECTED);
    CHECK(e.event().alert().message().find(c.words) != std::string::npos);
    CHECK(OnHand(*f.j, "a") == 10);
  }
  auto open = f.Open(v1::Alert::SNAPSHOT_REJECTED);
  CHECK(open.size() == 3);
  for (const auto& a : open) CHECK(a.raised_at() == f.clock.now());
  f.Verify();
}

TEST_CASE("reconcile: a count after a snapshot sets the value, later sales move it") {
  DownstreamFixture f([](JournalOptions& o) { o.count_mismatch_threshold = -1; });
  const uint64_t r1 = f.Append1(Receipt("r1", {{"a", 10}}));
  f.Append1(Sale("s1", {{"a", 4}}));
  f.Snap(Snapshot(f.j->epoch(), r1, 1, {{"a", 20}}));
  REQUIRE(OnHand(*f.j, "a") == 16);
  const uint64_t k = f.Append1(Count("k1", "a", 11));
  CHECK(OnHand(*f.j, "a") == 11);
  CHECK(f.last() == k);  // threshold -1: no COUNT_MISMATCH alert
  f.Append1(Sale("s2", {{"a", 1}}));
  CHECK(OnHand(*f.j, "a") == 10);
  // The base is still the snapshot's; the count is a local delta after it.
  const StockRow row = f.Row("a");
  CHECK(row.base_qty == 20);
  CHECK(row.as_of_seq == r1);
  f.Verify();
  CHECK(OnHand(*f.j, "a") == 10);
}

TEST_CASE("reconcile: oversell from local sales after a snapshot, and from a snapshot") {
  DownstreamFixture f;
  const uint64_t r1 = f.Append1(Receipt("r1", {{"a", 5}, {"b", 5}}));
  f.Append1(Sale("s1", {{"b", 4}}));
  // HQ says a had 1: a sale of 2 oversells it.
  auto res = f.Snap(Snapshot(f.j->epoch(), r1, 1, {{"a", 1}}));
  REQUIRE(res.outcome == SnapshotResult::Outcome::kApplied);
  const uint64_t s2 = f.Append1(Sale("s2", {{"a", 2}}));
  CHECK(OnHand(*f.j, "a") == -1);
  auto alert = f.At(s2 + 1);
  REQUIRE(alert.event().has_alert());
  CHECK(alert.event().alert().kind() == v1::Alert::OVERSELL);
  CHECK(alert.event().alert().cause_seq() == s2);
  // A snapshot that says b had 2 as of r1: 2 - 4 = -2, oversold by the
  // snapshot itself; the alert follows the snapshot's event.
  res = f.Snap(Snapshot(f.j->epoch(), r1, 2, {{"b", 2}}));
  REQUIRE(res.outcome == SnapshotResult::Outcome::kApplied);
  CHECK(OnHand(*f.j, "b") == -2);
  auto b = f.At(res.seq + 1);
  REQUIRE(b.event().has_alert());
  CHECK(b.event().alert().kind() == v1::Alert::OVERSELL);
  CHECK(b.event().alert().sku() == "b");
  CHECK(b.event().alert().cause_seq() == res.seq);
  std::set<std::string> skus;
  for (const auto& a : f.Open(v1::Alert::OVERSELL)) skus.insert(a.sku());
  CHECK(skus == std::set<std::string>{"a", "b"});
  f.Verify();
}

// ------------------------------------------------------------ alerts

TEST_CASE("count mismatch: an alert right after a count that differs by more than the threshold") {
  DownstreamFixture f([](JournalOptions& o) { o.count_mismatch_threshold = 3; });
  f.Append1(Receipt("r1", {{"a", 10}}));
  SUBCASE("at the threshold: no alert") {
    const uint64_t k = f.Append1(Count("k1", "a", 7));  // |7 - 10| = 3
    CHECK(f.last() == k);
    const uint64_t k2 = f.Append1(Count("k2", "a", 10));  // +3
    CHECK(f.last() == k2);
    CHECK(f.Open(v1::Alert::COUNT_MISMATCH).empty());
  }
  SUBCASE("above the threshold, both ways") {
    f.clock.Advance(std::chrono::seconds(5));
    const uint64_t k = f.Append1(Count("k1", "a", 6));  // -4
    CHECK(f.last() == k + 1);
    auto e = f.At(k + 1);
    REQUIRE(e.event().has_alert());
    const auto& a = e.event().alert();
    CHECK(a.kind() == v1::Alert::COUNT_MISMATCH);
    CHECK(a.sku() == "a");
    CHECK(a.on_hand() == 6);
    CHECK(a.cause_seq() == k);
    CHECK(a.message().find("10") != std::string::npos);  // what the ledger held
    CHECK(e.event().device_id() == "gw-test");
    const uint64_t k2 = f.Append1(Count("k2", "a", 11));  // +5
    CHECK(f.last() == k2 + 1);
    auto open = f.Open(v1::Alert::COUNT_MISMATCH);
    REQUIRE(open.size() == 2);
    CHECK(open[0].seq() == k2 + 1);  // newest first
    CHECK(open[0].sku() == "a");
    CHECK(open[0].on_hand() == 11);
    CHECK(open[0].raised_at() == f.clock.now());
    CHECK(open[1].on_hand() == 6);
    // They are shown for a day, then drop off the open list.
    f.clock.Advance(std::chrono::hours(25));
    CHECK(f.Open(v1::Alert::COUNT_MISMATCH).empty());
  }
  SUBCASE("the first count of a sku never seen is its baseline, not a mismatch") {
    const uint64_t k = f.Append1(Count("k1", "new", 4));
    CHECK(f.last() == k);
    CHECK(f.Open(v1::Alert::COUNT_MISMATCH).empty());
    auto row = f.j->Stock("new");
    REQUIRE(row.ok());
    CHECK(row->tracked);
    CHECK(row->on_hand == 4);
    // The next count is compared with it.
    const uint64_t k2 = f.Append1(Count("k2", "new", 10));
    CHECK(f.last() == k2 + 1);
    CHECK(f.At(k2 + 1).event().alert().kind() == v1::Alert::COUNT_MISMATCH);
  }
  SUBCASE("a count of a sku only sold so far is its baseline too") {
    f.Append1(Sale("s-new", {{"sold-only", 3}}));
    const uint64_t k = f.Append1(Count("k1", "sold-only", 20));
    CHECK(f.last() == k);
    CHECK(f.Open(v1::Alert::COUNT_MISMATCH).empty());
    CHECK(OnHand(*f.j, "sold-only") == 20);
  }
  SUBCASE("in a batch, the alert sits right after its count") {
    auto r = MustAppend(*f.j, {Count("k1", "a", 0), Sale("s1", {{"a", 1}})});
    CHECK(r[0].seq + 1 < r[1].seq);
    CHECK(f.At(r[0].seq + 1).event().alert().kind() == v1::Alert::COUNT_MISMATCH);
    CHECK(f.At(r[0].seq + 1).event().alert().cause_seq() == r[0].seq);
  }
  f.Verify();
}

TEST_CASE("count mismatch: a negative threshold turns it off") {
  DownstreamFixture f([](JournalOptions& o) { o.count_mismatch_threshold = -1; });
  f.Append1(Receipt("r1", {{"a", 10}}));
  const uint64_t k = f.Append1(Count("k1", "a", 0));
  CHECK(f.last() == k);
}

TEST_CASE("low stock: off by default") {
  DownstreamFixture f;
  f.Append1(Receipt("r1", {{"a", 1}}));
  const uint64_t s = f.Append1(Sale("s1", {{"a", 1}}));
  CHECK(f.last() == s);
  CHECK(f.Open(v1::Alert::LOW_STOCK).empty());
}

TEST_CASE("low stock: raised once on crossing below, cleared at or above, per-sku first") {
  DownstreamFixture f([](JournalOptions& o) {
    o.low_stock_default = 5;
    o.low_stock_thresholds = {{"b", 2}, {"c", -1}};
  });
  f.Append1(Receipt("r1", {{"a", 10}, {"b", 10}, {"c", 10}}));
  // a: default 5. 10 -> 5 is not below; 5 -> 4 is.
  uint64_t s = f.Append1(Sale("s1", {{"a", 5}}));
  CHECK(f.last() == s);
  s = f.Append1(Sale("s2", {{"a", 1}}));
  REQUIRE(f.last() == s + 1);
  auto e = f.At(s + 1);
  REQUIRE(e.event().has_alert());
  CHECK(e.event().alert().kind() == v1::Alert::LOW_STOCK);
  CHECK(e.event().alert().sku() == "a");
  CHECK(e.event().alert().on_hand() == 4);
  CHECK(e.event().alert().cause_seq() == s);
  // Further down: no second alert. It stays open (unlike count mismatch).
  s = f.Append1(Sale("s3", {{"a", 2}}));
  CHECK(f.last() == s);
  f.clock.Advance(std::chrono::hours(48));
  auto open = f.Open(v1::Alert::LOW_STOCK);
  REQUIRE(open.size() == 1);
  CHECK(open[0].sku() == "a");
  CHECK(open[0].on_hand() == 4);
  // The state survives a restart.
  f.Reopen();
  s = f.Append1(Sale("s4", {{"a", 1}}));
  CHECK(f.last() == s);
  // Back to exactly the threshold clears it; the next crossing raises again.
  f.Append1(Receipt("r2", {{"a", 4}}));
  CHECK(OnHand(*f.j, "a") == 5);
  CHECK(f.Open(v1::Alert::LOW_STOCK).empty());
  s = f.Append1(Sale("s5", {{"a", 1}}));
  CHECK(f.last() == s + 1);
  CHECK(f.Open(v1::Alert::LOW_STOCK).size() == 1);

  // b: its own threshold 2 (not the default 5).
  s = f.Append1(Sale("s6", {{"b", 8}}));
  CHECK(f.last() == s);
  s = f.Append1(Sale("s7", {{"b", 1}}));
  CHECK(f.last() == s + 1);
  CHECK(f.At(s + 1).event().alert().sku() == "b");
  // c: -1 in the map turns it off for c.
  s = f.Append1(Sale("s8", {{"c", 10}}));
  CHECK(f.last() == s);

  // Below zero: oversell first, and the open low-stock alert stays as is.
  s = f.Append1(Sale("s9", {{"b", 3}}));
  CHECK(f.last() == s + 1);
  CHECK(f.At(s + 1).event().alert().kind() == v1::Alert::OVERSELL);
  std::set<std::string> low;
  for (const auto& a : f.Open(v1::Alert::LOW_STOCK)) low.insert(a.sku());
  CHECK(low == std::set<std::string>{"a", "b"});

  // A snapshot that lifts a sku back up clears its alert; one that puts a
  // sku under raises it, right after the snapshot's event.
  auto res = f.Snap(Snapshot(f.j->epoch(), f.last(), 3, {{"a", 50}, {"c", 1}}));
  REQUIRE(res.outcome == SnapshotResult::Outcome::kApplied);
  low.clear();
  for (const auto& a : f.Open(v1::Alert::LOW_STOCK)) low.insert(a.sku());
  CHECK(low == std::set<std::string>{"b"});
  CHECK(f.last() == res.seq);  // c is off: no alert for it
  f.Verify();
}

// ------------------------------------------------------------ chunking

// Builds a snapshot of `n` skus "sku-00000"... with qty 100 + i.
v1::StockSnapshot ManySkus(uint64_t epoch, uint64_t as_of, uint64_t version, int n) {
  v1::StockSnapshot s;
  s.set_store_id("store-0042");
  s.set_epoch(epoch);
  s.set_as_of_seq(as_of);
  s.set_hq_version(version);
  for (int i = 0; i < n; ++i) {
    auto* l = s.add_lines();
    char buf[32];
    std::snprintf(buf, sizeof buf, "sku-%05d", i);
    l->set_sku(buf);
    l->set_qty(100 + i);
  }
  return s;
}

TEST_CASE("chunking: each chunk is its own stock_snapshot event of that chunk's lines") {
  DownstreamFixture f([](JournalOptions& o) { o.snapshot_chunk_lines = 3; });
  f.Append1(Receipt("r1", {{"sku-00001", 5}}));
  const auto snap = ManySkus(f.j->epoch(), 1, 4, 7);
  auto res = f.Snap(snap);
  CHECK(res.outcome == SnapshotResult::Outcome::kApplied);
  CHECK(res.chunks == 3);
  CHECK(res.chunk_micros.size() == 3);
  CHECK(res.skus_applied == 7);
  CHECK(res.first_seq == 2);
  CHECK(res.seq == 4);
  int line = 0;
  for (uint64_t seq = 2; seq <= 4; ++seq) {
    auto e = f.At(seq);
    REQUIRE(e.event().has_stock_snapshot());
    const auto& part = e.event().stock_snapshot();
    CHECK(part.as_of_seq() == 1);
    CHECK(part.hq_version() == 4);
    CHECK(part.epoch() == f.j->epoch());
    CHECK(part.store_id() == "store-0042");
    CHECK(part.lines_size() == (seq == 4 ? 1 : 3));
    for (const auto& l : part.lines()) {
      CHECK(l.sku() == snap.lines(line).sku());
      CHECK(l.qty() == snap.lines(line).qty());
      ++line;
    }
  }
  CHECK(line == 7);
  CHECK(OnHand(*f.j, "sku-00006") == 106);
  f.Verify();
}

TEST_CASE("chunking: appends interleaved between chunks give the unchunked result") {
  // 3,000 skus in chunks of 100 while another thread keeps selling; events
  // after as_of_seq exist before the call (the reader's scan) and arrive
  // during it (each chunk's own scan). Both journals must end equal to
  // qty + every local delta after as_of_seq, whatever the interleaving.
  constexpr int kSkus = 3000;
  const std::string ram = RamDirOrDefault();
  std::map<std::string, int64_t> results[2];
  size_t interleaved = 0;
  for (int chunked = 0; chunked < 2; ++chunked) {
    TempDir dir(ram);
    auto o = Options(dir.path());
    o.snapshot_chunk_lines = chunked ? 100 : kSkus;
    o.count_mismatch_threshold = -1;
    auto j = MustOpen(o);
    auto name = [](int i) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "sku-%05d", i);
      return std::string(buf);
    };
    // Before: a receipt for every sku, then as_of, then 600 sales.
    for (int b = 0; b < kSkus; b += 500) {
      std::vector<v1::Event> batch;
      for (int i = b; i < b + 500; ++i) {
        batch.push_back(Receipt(test::Id("r", i), {{name(i), 50}}));
      }
      MustAppend(*j, batch);
    }
    const uint64_t as_of = j->Stats().last_seq;
    for (int i = 0; i < 600; ++i) {
      MustAppend(*j, {Sale(test::Id("pre", i), {{name((i * 7) % kSkus), 1}})});
    }
    // During: sales of 2 from another thread while the snapshot is applied;
    // the rest of its fixed 400 sales afterwards, so both runs end with the
    // same events.
    std::atomic<bool> done{false}, failed{false};
    std::atomic<int> during{0};
    std::thread seller([&] {
      for (int i = 0; i < 400 && !done.load(); ++i) {
        if (!j->Append({Sale(test::Id("dur", i), {{name((i * 13) % kSkus), 2}})}).ok()) {
          failed = true;
          return;
        }
        during = i + 1;
      }
    });
    auto res = j->ApplySnapshot(ManySkus(j->epoch(), as_of, 1, kSkus));
    done = true;
    seller.join();
    REQUIRE_FALSE(failed.load());
    REQUIRE_MESSAGE(res.ok(), res.status().ToString());
    CHECK(res->skus_applied == static_cast<size_t>(kSkus));
    CHECK(res->chunks == (chunked ? 30u : 1u));
    // Sales that landed between the first and the last chunk.
    if (chunked) {
      for (const auto& e : ReadAll(*j, res->first_seq)) {
        if (e.seq() > res->seq) break;
        if (e.event().has_sale()) ++interleaved;
      }
    }
    for (int i = during.load(); i < 400; ++i) {
      MustAppend(*j, {Sale(test::Id("dur", i), {{name((i * 13) % kSkus), 2}})});
    }
    auto rows = j->StockByPrefix("sku-", kSkus + 10);
    REQUIRE(rows.ok());
    REQUIRE(rows->size() == static_cast<size_t>(kSkus));
    for (const auto& r : *rows) results[chunked][r.sku] = r.on_hand;
    // The expected value: 100 + i - pre-sales - during-sales.
    std::map<std::string, int64_t> want;
    for (int i = 0; i < kSkus; ++i) want[name(i)] = 100 + i;
    for (int i = 0; i < 600; ++i) want[name((i * 7) % kSkus)] -= 1;
    for (int i = 0; i < 400; ++i) want[name((i * 13) % kSkus)] -= 2;
    CHECK(results[chunked] == want);
    j.reset();
    auto v = VerifyJournal(dir.path());
    REQUIRE_MESSAGE(v.ok(), v.status().ToString());
  }
  CHECK(results[0] == results[1]);
  MESSAGE(interleaved << " sales were journaled between the first and the last chunk");
}

TEST_CASE("chunking: a crash between chunks leaves a correct state, and applying again finishes it") {
  // What a crash after the first chunk leaves is the first chunk's event
  // and its rebased skus, nothing of the rest: the same as a snapshot of
  // just those lines. Every sku is right on its own, verify passes, and
  // the full snapshot applied again (HQ resends) ends where an uncrashed
  // apply does.
  DownstreamFixture f([](JournalOptions& o) { o.snapshot_chunk_lines = 4; });
  DownstreamFixture clean([](JournalOptions& o) { o.snapshot_chunk_lines = 4; });
  for (DownstreamFixture* x : {&f, &clean}) {
    auto r = MustAppend(*x->j, {Receipt("r1", {{"sku-00000", 9}, {"sku-00005", 9}})});
    (void)r;
  }
  const auto full = ManySkus(f.j->epoch(), 1, 3, 10);
  v1::StockSnapshot first = full;
  first.mutable_lines()->DeleteSubrange(4, 6);
  f.Snap(first);  // "crash" here
  f.Append1(Sale("s1", {{"sku-00000", 1}, {"sku-00005", 2}}));
  CHECK(OnHand(*f.j, "sku-00000") == 99);  // rebased: 100 - 1
  CHECK(OnHand(*f.j, "sku-00005") == 7);   // not yet: 9 - 2
  CHECK(f.j->Stock("sku-00009").status().code() == StatusCode::kNotFound);
  f.Verify();
  auto again = f.Snap(ManySkus(f.j->epoch(), 1, 3, 10));
  CHECK(again.skus_applied == 10);

  auto r = clean.Snap(ManySkus(clean.j->epoch(), 1, 3, 10));
  CHECK(r.skus_applied == 10);
  clean.Append1(Sale("s1", {{"sku-00000", 1}, {"sku-00005", 2}}));
  auto a = f.j->StockByPrefix("sku-", 100);
  auto b = clean.j->StockByPrefix("sku-", 100);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  REQUIRE(a->size() == 10);
  REQUIRE(b->size() == 10);
  for (size_t i = 0; i < a->size(); ++i) {
    CAPTURE((*a)[i].sku);
    CHECK((*a)[i].sku == (*b)[i].sku);
    CHECK((*a)[i].on_hand == (*b)[i].on_hand);
    CHECK((*a)[i].base_qty == (*b)[i].base_qty);
  }
  CHECK(OnHand(*f.j, "sku-00005") == 103);  // 105 - 2
  f.Verify();
}

TEST_CASE("chunking: an invalid snapshot journals nothing, a rejected one only its alert") {
  DownstreamFixture f([](JournalOptions& o) { o.snapshot_chunk_lines = 2; });
  f.Append1(Receipt("r1", {{"a", 1}}));
  auto bad = ManySkus(f.j->epoch(), 1, 1, 5);
  bad.mutable_lines(3)->set_qty(-1);
  auto r = f.j->ApplySnapshot(bad);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == StatusCode::kInvalidArgument);
  CHECK(r.status().field() == "lines[3].qty");
  CHECK(f.last() == 1);
  auto foreign = ManySkus(f.j->epoch() + 1, 1, 1, 5);
  auto res = f.Snap(foreign);
  CHECK(res.outcome == SnapshotResult::Outcome::kRejected);
  CHECK(f.last() == 2);
  CHECK(res.chunks == 0);
}

// ------------------------------------------------------------ validation

TEST_CASE("validate: snapshots name the bad field") {
  auto ok = Snapshot(1, 0, 1, {{"a", 0}, {"b", 5}});
  CHECK(ValidateSnapshot(ok).ok());
  struct Case {
    v1::StockSnapshot s;
    std::string field;
  };
  v1::StockSnapshot empty = ok;
  empty.clear_lines();
  const Case cases[] = {
      {empty, "lines"},
      {Snapshot(1, 0, 1, {{"a", 1}, {"", 1}}), "lines[1].sku"},
      {Snapshot(1, 0, 1, {{"a", 1}, {"has space", 1}}), "lines[1].sku"},
      {Snapshot(1, 0, 1, {{std::string(65, 'x'), 1}}), "lines[0].sku"},
      {Snapshot(1, 0, 1, {{"a", -1}}), "lines[0].qty"},
      {Snapshot(1, 0, 1, {{"a", 2'000'000'000'000}}), "lines[0].qty"},
      {Snapshot(1, 0, 1, {{"a", 1}, {"b", 1}, {"a", 2}}), "lines[2].sku"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.field);
    Status s = ValidateSnapshot(c.s);
    CHECK(s.code() == StatusCode::kInvalidArgument);
    CHECK(s.field() == c.field);
    CHECK_FALSE(s.message().empty());
  }
}

TEST_CASE("validate: price updates name the bad field") {
  CHECK(ValidatePriceUpdate(Price("a", 0, 1)).ok());
  struct Case {
    v1::PriceUpdate p;
    std::string field;
  };
  const Case cases[] = {
      {Price("", 1, 1), "sku"},
      {Price("a b", 1, 1), "sku"},
      {Price("a", -1, 1), "price"},
      {Price("a", 1, 1, "eur"), "currency"},
      {Price("a", 1, 1, "EURO"), "currency"},
      {Price("a", 1, 1, ""), "currency"},
      {Price("a", 1, 0), "effective_from"},
      {Price("a", 1, -5), "effective_from"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.field);
    Status s = ValidatePriceUpdate(c.p);
    CHECK(s.code() == StatusCode::kInvalidArgument);
    CHECK(s.field() == c.field);
  }
}

// ------------------------------------------------------------ prices

TEST_CASE("prices: the update in force is the latest effective_from <= now, ties to the last") {
  DownstreamFixture f;
  const int64_t t = f.clock.now();
  CHECK(f.j->PriceAt("milk", t).status().code() == StatusCode::kNotFound);
  auto p1 = f.j->ApplyPriceUpdate(Price("milk", 100, t - 1000));
  REQUIRE_MESSAGE(p1.ok(), p1.status().ToString());
  CHECK_FALSE(p1->duplicate);
  CHECK(p1->seq == 1);
  auto p2 = f.j->ApplyPriceUpdate(Price("milk", 120, t - 500));
  REQUIRE(p2.ok());
  // Arrives later but is effective earlier: does not replace p2.
  auto p0 = f.j->ApplyPriceUpdate(Price("milk", 90, t - 2000));
  REQUIRE(p0.ok());
  REQUIRE(f.j->ApplyPriceUpdate(Price("bread", 250, t - 2000)).ok());

  auto now = f.j->PriceAt("milk", t);
  REQUIRE(now.ok());
  CHECK(now->sku == "milk");
  CHECK(now->price == 120);
  CHECK(now->currency == "EUR");
  CHECK(now->effective_from == t - 500);
  CHECK(now->seq == p2->seq);
  CHECK_FALSE(now->next.has_value());
  CHECK(f.j->PriceAt("milk", t - 600)->price == 100);
  CHECK(f.j->PriceAt("milk", t - 1000)->price == 100);  // effective_from is inclusive
  CHECK(f.j->PriceAt("milk", t - 1500)->price == 90);
  CHECK(f.j->PriceAt("milk", t - 2001).status().code() == StatusCode::kNotFound);
  // The earlier time knows the next change.
  auto then = f.j->PriceAt("milk", t - 1500);
  REQUIRE(then->next.has_value());
  CHECK(then->next->price() == 100);
  CHECK(then->next->effective_from() == t - 1000);

  // Same effective_from, another price: a correction; the one journaled
  // last wins.
  auto fix = f.j->ApplyPriceUpdate(Price("milk", 119, t - 500));
  REQUIRE(fix.ok());
  CHECK_FALSE(fix->duplicate);
  CHECK(f.j->PriceAt("milk", t)->price == 119);
  CHECK(f.j->PriceAt("milk", t)->seq == fix->seq);

  // Each update is a journaled price_update event (export, upstream).
  auto e = f.At(fix->seq);
  REQUIRE(e.event().has_price_update());
  CHECK(e.event().price_update().price() == 119);
  CHECK(e.event().device_id() == "gw-test");
  CHECK(e.event().event_id().rfind("gw:", 0) == 0);
  // And it all survives a restart.
  f.Verify();
  CHECK(f.j->PriceAt("milk", t)->price == 119);
  CHECK(f.j->PriceAt("bread", t)->price == 250);
}

TEST_CASE("prices: a future-dated price comes into force by time alone") {
  DownstreamFixture f;
  const int64_t t = f.clock.now();
  REQUIRE(f.j->ApplyPriceUpdate(Price("milk", 100, t - 1)).ok());
  REQUIRE(f.j->ApplyPriceUpdate(Price("milk", 150, t + 60'000'000)).ok());
  auto now = f.j->PriceAt("milk", f.clock.now());
  REQUIRE(now.ok());
  CHECK(now->price == 100);
  REQUIRE(now->next.has_value());
  CHECK(now->next->price() == 150);
  CHECK(now->next->effective_from() == t + 60'000'000);
  CHECK(now->next->sku() == "milk");
  f.clock.Advance(std::chrono::seconds(59));
  CHECK(f.j->PriceAt("milk", f.clock.now())->price == 100);
  f.clock.Advance(std::chrono::seconds(1));
  auto later = f.j->PriceAt("milk", f.clock.now());
  REQUIRE(later.ok());
  CHECK(later->price == 150);
  CHECK_FALSE(later->next.has_value());
  // A price only in the future: not found now.
  REQUIRE(f.j->ApplyPriceUpdate(Price("new", 5, f.clock.now() + 10)).ok());
  CHECK(f.j->PriceAt("new", f.clock.now()).status().code() == StatusCode::kNotFound);
}

TEST_CASE("prices: an identical update is a duplicate and journals nothing") {
  DownstreamFixture f;
  const int64_t t = f.clock.now();
  auto a = f.j->ApplyPriceUpdate(Price("milk", 100, t));
  REQUIRE(a.ok());
  const uint64_t last = f.last();
  auto b = f.j->ApplyPriceUpdate(Price("milk", 100, t));
  REQUIRE(b.ok());
  CHECK(b->duplicate);
  CHECK(b->seq == a->seq);
  CHECK(f.last() == last);
  // Not identical: another currency, another time.
  auto c = f.j->ApplyPriceUpdate(Price("milk", 100, t, "GBP"));
  REQUIRE(c.ok());
  CHECK_FALSE(c->duplicate);
  auto d = f.j->ApplyPriceUpdate(Price("milk", 100, t + 1));
  REQUIRE(d.ok());
  CHECK_FALSE(d->duplicate);
  // c is in force at once (its price_in_force event follows it); d only
  // from t + 1.
  CHECK(f.last() == last + 3);
  // Still a duplicate after a restart.
  f.Reopen();
  auto e = f.j->ApplyPriceUpdate(Price("milk", 100, t));
  REQUIRE(e.ok());
  CHECK(e->duplicate);
  CHECK(e->seq == a->seq);
}

TEST_CASE("prices: another store's update and invalid fields change nothing") {
  DownstreamFixture f;
  const int64_t t = f.clock.now();
  struct Case {
    v1::PriceUpdate p;
    std::string field;
  };
  const Case cases[] = {
      {Price("milk", 100, t, "EUR", "store-0001"), "store_id"},
      {Price("milk", 100, t, "EUR", ""), "store_id"},
      {Price("", 100, t), "sku"},
      {Price("milk", -3, t), "price"},
      {Price("milk", 100, t, "E1R"), "currency"},
      {Price("milk", 100, 0), "effective_from"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.field);
    auto r = f.j->ApplyPriceUpdate(c.p);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == StatusCode::kInvalidArgument);
    CHECK(r.status().field() == c.field);
  }
  CHECK(f.last() == 0);
  CHECK(f.j->PriceAt("milk", t).status().code() == StatusCode::kNotFound);
}

TEST_CASE("verify: catches a prices row that disagrees with its price_update event") {
  DownstreamFixture f;
  const int64_t t = f.clock.now();
  REQUIRE(f.j->ApplyPriceUpdate(Price("milk", 100, t)).ok());
  REQUIRE(f.j->ApplyPriceUpdate(Price("milk", 110, t + 5)).ok());
  f.j.reset();
  REQUIRE(VerifyJournal(f.dir.path()).ok());
  SUBCASE("changed price") {
    Sql(f.dir / "journal.db", "UPDATE prices SET price = 1 WHERE seq = (SELECT max(seq) FROM prices)");
  }
  SUBCASE("missing row") {
    Sql(f.dir / "journal.db", "DELETE FROM prices WHERE seq = 1");
  }
  SUBCASE("a row without its event") {
    Sql(f.dir / "journal.db",
        "INSERT INTO prices(sku, effective_from, seq, price, currency) VALUES('x', 1, 99, 1, "
        "'EUR')");
  }
  auto v = VerifyJournal(f.dir.path());
  CHECK(v.status().code() == StatusCode::kCorruption);
  CHECK(v.status().message().find("price") != std::string::npos);
}

}  // namespace
}  // namespace storegw::storage
