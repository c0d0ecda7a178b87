// The stock ledger: deltas per body, counts as an absolute set (journaled as
// the delta that achieves it), snapshot rebasing by as_of_seq
// (on_hand = base_qty + the deltas after as_of_seq), and oversell alerts.
#include <doctest/doctest.h>
#include <google/protobuf/util/message_differencer.h>

#include <set>
#include <string>
#include <vector>

#include "test_util.h"

namespace storegw::storage {
namespace {

using namespace testing;  // NOLINT
using google::protobuf::util::MessageDifferencer;

struct LedgerCaseFixture : LedgerFixture {
  // Checks that `seq` holds an OVERSELL alert about `sku` raised by `cause`.
  void ExpectOversell(uint64_t seq, const std::string& sku, int64_t on_hand, uint64_t cause) {
    auto e = At(seq);
    REQUIRE_MESSAGE(e.event().has_alert(), "seq " << seq << ": " << e.event().ShortDebugString());
    const auto& a = e.event().alert();
    CHECK(a.kind() == v1::Alert::OVERSELL);
    CHECK(a.sku() == sku);
    CHECK(a.on_hand() == on_hand);
    CHECK(a.cause_seq() == cause);
    CHECK_FALSE(a.message().empty());
    CHECK(e.event().device_id() == "gw-test");
    CHECK_FALSE(e.event().event_id().empty());
  }
};

TEST_CASE("ledger: each body moves on_hand by its delta") {
  LedgerCaseFixture f;
  struct Step {
    v1::Event e;
    int64_t expect;
  };
  const Step steps[] = {
      {Receipt("1", {{"a", 10}}), 10},
      {Sale("2", {{"a", 3}}), 7},
      {Return("3", {{"a", 1}}), 8},
      {Adjust("4", {{"a", -2}}), 6},
      {Adjust("5", {{"a", 1}}), 7},
      {Transfer("6", v1::Transfer::OUT, {{"a", 2}}), 5},
      {Transfer("7", v1::Transfer::IN, {{"a", 4}}), 9},
      {Reservation("8", {{"a", 3}}), 9},
      {Pickup("9", {{"a", 2}}), 7},
      {Sensor("10"), 7},
      {Count("11", "a", 20), 20},
      {Sale("12", {{"a", 1}, {"b", 1}, {"a", 2}}), 17},
  };
  for (const auto& s : steps) {
    CAPTURE(s.e.ShortDebugString());
    f.Append1(s.e);
    CHECK(OnHand(*f.j, "a") == s.expect);
  }
  const StockRow row = f.Row("a");
  CHECK(row.sku == "a");
  CHECK(row.base_qty == 0);  // no snapshot yet
  CHECK(row.as_of_seq == 0);
  CHECK(OnHand(*f.j, "b") == -1);
}

TEST_CASE("ledger: a count sets on_hand at its seq, recorded as the delta that achieves it") {
  LedgerCaseFixture f;
  const uint64_t r1 = f.Append1(Receipt("r1", {{"a", 10}}));
  f.Append1(Sale("s1", {{"a", 3}}));  // 7
  f.Append1(Count("k1", "a", 5));     // 5: recorded delta -2
  f.Append1(Sale("s2", {{"a", 1}}));  // 4
  CHECK(OnHand(*f.j, "a") == 4);
  f.Append1(Count("k2", "never-seen", 6));
  CHECK(OnHand(*f.j, "never-seen") == 6);
  f.Append1(Count("k3", "never-seen", 0));
  CHECK(OnHand(*f.j, "never-seen") == 0);

  // A late snapshot from before the count: the count's recorded delta (-2)
  // is one of the local deltas after as_of_seq: 12 - 3 - 2 - 1 = 6.
  auto res = f.Snap(Snapshot(f.j->epoch(), r1, 1, {{"a", 12}}));
  CHECK(res.outcome == SnapshotResult::Outcome::kApplied);
  CHECK(OnHand(*f.j, "a") == 6);
  // A count after the snapshot sets the value again.
  f.Append1(Count("k4", "a", 9));
  CHECK(OnHand(*f.j, "a") == 9);
  f.Append1(Receipt("r2", {{"a", 1}}));
  CHECK(OnHand(*f.j, "a") == 10);
}

TEST_CASE("ledger: snapshots arriving early, late, stale, and for another sku") {
  LedgerCaseFixture f;
  const uint64_t r1 = f.Append1(Receipt("r1", {{"a", 10}, {"b", 4}}));
  const uint64_t s1 = f.Append1(Sale("s1", {{"a", 2}}));
  f.Append1(Sale("s2", {{"a", 3}}));
  REQUIRE(OnHand(*f.j, "a") == 5);
  const uint64_t epoch = f.j->epoch();

  SUBCASE("early: as_of_seq = last_seq sets on_hand to the snapshot's qty") {
    const uint64_t last = f.last();
    auto res = f.Snap(Snapshot(epoch, last, 7, {{"a", 40}}));
    CHECK(res.outcome == SnapshotResult::Outcome::kApplied);
    CHECK(res.skus_applied == 1);
    CHECK(res.skus_stale == 0);
    CHECK(res.seq == last + 1);
    CHECK(f.last() == last + 1);
    const StockRow row = f.Row("a");
    CHECK(row.on_hand == 40);
    CHECK(row.base_qty == 40);
    CHECK(row.as_of_seq == last);
    CHECK(row.hq_version == 7);
    CHECK(OnHand(*f.j, "b") == 4);  // not in the snapshot: untouched
    // Later local events count on top of the new base.
    f.Append1(Sale("s3", {{"a", 1}}));
    CHECK(OnHand(*f.j, "a") == 39);
  }
  SUBCASE("late: as_of_seq in the past adds the local deltas after it") {
    auto res = f.Snap(Snapshot(epoch, r1, 7, {{"a", 20}}));
    CHECK(res.outcome == SnapshotResult::Outcome::kApplied);
    CHECK(OnHand(*f.j, "a") == 20 - 2 - 3);
    CHECK(f.Row("a").as_of_seq == r1);
    // A newer one, still in the past, replaces it.
    auto res2 = f.Snap(Snapshot(epoch, s1, 8, {{"a", 30}}));
    CHECK(res2.outcome == SnapshotResult::Outcome::kApplied);
    CHECK(OnHand(*f.j, "a") == 30 - 3);
    CHECK(f.Row("a").base_qty == 30);
    CHECK(f.Row("a").as_of_seq == s1);
    SUBCASE("stale: older than the current base is ignored") {
      const uint64_t last = f.last();
      auto stale = f.Snap(Snapshot(epoch, r1, 9, {{"a", 99}}));
      CHECK(stale.outcome == SnapshotResult::Outcome::kStale);
      CHECK(stale.skus_applied == 0);
      CHECK(stale.skus_stale == 1);
      CHECK_FALSE(stale.reason.empty());
      CHECK(OnHand(*f.j, "a") == 27);
      CHECK(f.Row("a").base_qty == 30);
      CHECK(f.Row("a").as_of_seq == s1);
      // Whatever is journaled for it is the snapshot itself, not a rebase.
      CHECK(f.last() <= last + 1);
      if (f.last() == last + 1) CHECK(f.At(last + 1).event().has_stock_snapshot());
    }
    SUBCASE("mixed: a stale line and a fresh line in one snapshot") {
      auto mixed = f.Snap(Snapshot(epoch, r1, 9, {{"a", 99}, {"b", 50}}));
      CHECK(mixed.outcome == SnapshotResult::Outcome::kApplied);
      CHECK(mixed.skus_applied == 1);
      CHECK(mixed.skus_stale == 1);
      CHECK(OnHand(*f.j, "a") == 27);
      CHECK(OnHand(*f.j, "b") == 50);
    }
  }
  SUBCASE("a sku the store never saw") {
    auto res = f.Snap(Snapshot(epoch, s1, 3, {{"new", 11}}));
    CHECK(res.outcome == SnapshotResult::Outcome::kApplied);
    CHECK(OnHand(*f.j, "new") == 11);
  }
  SUBCASE("the snapshot is journaled as a stock_snapshot event") {
    const v1::StockSnapshot snap = Snapshot(epoch, r1, 5, {{"a", 20}, {"b", 1}});
    auto res = f.Snap(snap);
    REQUIRE(res.outcome == SnapshotResult::Outcome::kApplied);
    auto e = f.At(res.seq);
    REQUIRE(e.event().has_stock_snapshot());
    CHECK(MessageDifferencer::Equals(e.event().stock_snapshot(), snap));
    CHECK(e.event().device_id() == "gw-test");
    CHECK(e.epoch() == epoch);
    // Snapshot events move no stock by themselves.
    CHECK(StockDeltas(e.event()).empty());
  }
  // All paths leave a journal that verifies.
  f.j.reset();
  auto v = VerifyJournal(f.dir.path());
  CHECK_MESSAGE(v.ok(), v.status().ToString());
}

TEST_CASE("ledger: snapshots for another epoch or store, or from the future, are rejected") {
  LedgerCaseFixture f;
  f.Append1(Receipt("r1", {{"a", 10}}));
  f.Append1(Sale("s1", {{"a", 2}}));
  const uint64_t epoch = f.j->epoch();
  const uint64_t last = f.last();

  const v1::StockSnapshot bad[] = {
      Snapshot(epoch ^ 0x5a5a5a5aull, last, 1, {{"a", 100}}),
      Snapshot(epoch, last, 1, {{"a", 100}}, "store-0001"),
      // Beyond last_seq even after the two alerts above are journaled.
      Snapshot(epoch, last + 3, 1, {{"a", 100}}),
  };
  uint64_t expect_seq = last;
  for (const auto& s : bad) {
    CAPTURE(s.ShortDebugString());
    auto res = f.Snap(s);
    CHECK(res.outcome == SnapshotResult::Outcome::kRejected);
    CHECK_FALSE(res.reason.empty());
    CHECK(res.skus_applied == 0);
    ++expect_seq;
    CHECK(res.seq == expect_seq);
    CHECK(f.last() == expect_seq);
    auto e = f.At(res.seq);
    REQUIRE(e.event().has_alert());
    CHECK(e.event().alert().kind() == v1::Alert::SNAPSHOT_REJECTED);
    CHECK_FALSE(e.event().alert().message().empty());
    CHECK(e.event().device_id() == "gw-test");
    // Stock unchanged.
    const StockRow row = f.Row("a");
    CHECK(row.on_hand == 8);
    CHECK(row.base_qty == 0);
    CHECK(row.as_of_seq == 0);
  }
  auto alerts = f.j->OpenAlerts(10);
  REQUIRE(alerts.ok());
  size_t rejected = 0;
  for (const auto& a : *alerts) rejected += a.kind() == v1::Alert::SNAPSHOT_REJECTED;
  CHECK(rejected == 3);
}

TEST_CASE("ledger: a malformed snapshot is refused and changes nothing") {
  LedgerCaseFixture f;
  f.Append1(Receipt("r1", {{"a", 10}}));
  const uint64_t last = f.last();
  const v1::StockSnapshot bad[] = {
      Snapshot(f.j->epoch(), last, 1, {{"", 5}}),
      Snapshot(f.j->epoch(), last, 1, {{"a", 5}, {"b", -1}}),
  };
  for (const auto& s : bad) {
    CAPTURE(s.ShortDebugString());
    auto r = f.j->ApplySnapshot(s);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == StatusCode::kInvalidArgument);
    CHECK_FALSE(r.status().field().empty());
    CHECK(f.last() == last);
    CHECK(OnHand(*f.j, "a") == 10);
  }
}

TEST_CASE("oversell: alert right after the causing event, once, re-armed at >= 0") {
  LedgerCaseFixture f;
  f.Append1(Receipt("r1", {{"a", 2}}));
  f.Append1(Sale("s0", {{"a", 2}}));
  CHECK(OnHand(*f.j, "a") == 0);  // zero is not oversold
  CHECK(f.last() == 2);

  // 0 -> -1: the alert is journaled in the same commit, right after the sale.
  const uint64_t s1 = f.Append1(Sale("s1", {{"a", 1}}));
  CHECK(s1 == 3);
  CHECK(f.last() == 4);
  f.ExpectOversell(4, "a", -1, 3);
  auto open = f.j->OpenAlerts(10);
  REQUIRE(open.ok());
  REQUIRE(open->size() == 1);
  CHECK((*open)[0].kind() == v1::Alert::OVERSELL);
  CHECK((*open)[0].sku() == "a");
  CHECK((*open)[0].seq() == 4);
  CHECK((*open)[0].on_hand() == -1);
  CHECK((*open)[0].raised_at() == f.clock.now());

  // Further below zero, or up but still below: no new alert.
  CHECK(f.Append1(Sale("s2", {{"a", 4}})) == 5);
  CHECK(f.Append1(Receipt("r2", {{"a", 3}})) == 6);
  CHECK(f.Append1(Adjust("j1", {{"a", -1}})) == 7);
  CHECK(f.last() == 7);
  CHECK(OnHand(*f.j, "a") == -3);

  // Back to exactly zero clears it; the next crossing raises again.
  CHECK(f.Append1(Receipt("r3", {{"a", 3}})) == 8);
  CHECK(f.last() == 8);
  open = f.j->OpenAlerts(10);
  REQUIRE(open.ok());
  CHECK(open->empty());
  CHECK(f.Append1(Pickup("p1", {{"a", 2}})) == 9);
  f.ExpectOversell(10, "a", -2, 9);
  CHECK(f.last() == 10);

  // A count clears it too (the count differs from the ledger's -2, so a
  // COUNT_MISMATCH alert follows it at the default threshold 0), and an
  // outbound transfer can cross again.
  CHECK(f.Append1(Count("k1", "a", 0)) == 11);
  CHECK(f.last() == 12);
  REQUIRE(f.At(12).event().has_alert());
  CHECK(f.At(12).event().alert().kind() == v1::Alert::COUNT_MISMATCH);
  CHECK(f.Append1(Transfer("t1", v1::Transfer::OUT, {{"a", 5}})) == 13);
  f.ExpectOversell(14, "a", -5, 13);
  open = f.j->OpenAlerts(10);
  REQUIRE(open.ok());
  std::vector<uint64_t> oversells;
  for (const auto& a : *open) {
    if (a.kind() == v1::Alert::OVERSELL) oversells.push_back(a.seq());
  }
  CHECK(oversells == std::vector<uint64_t>{14});

  // The state survives a restart: still oversold, no second alert.
  f.j.reset();
  auto o = Options(f.dir.path());
  o.now_us = f.clock.fn();
  f.j = MustOpen(o);
  CHECK(f.Append1(Sale("s9", {{"a", 1}})) == 15);
  CHECK(f.last() == 15);
}

TEST_CASE("oversell: within a batch, alerts sit right after their event") {
  LedgerCaseFixture f;
  f.Append1(Receipt("r1", {{"a", 1}, {"b", 1}, {"d", 1}}));
  auto r = MustAppend(*f.j, {Sale("s1", {{"a", 2}}), Receipt("r2", {{"c", 5}}),
                             Sale("s2", {{"b", 3}, {"c", 6}, {"d", 2}, {"e", 1}}),
                             Sensor("t1")});
  REQUIRE(r.size() == 4);
  CHECK(r[0].seq == 2);
  f.ExpectOversell(3, "a", -1, 2);
  CHECK(r[1].seq == 4);
  CHECK(r[2].seq == 5);
  // One alert per tracked sku that crossed, right after the event; e has
  // no baseline (no snapshot, count or receipt): no alert.
  std::set<std::string> skus;
  for (uint64_t s = 6; s <= 8; ++s) {
    auto e = f.At(s);
    REQUIRE_MESSAGE(e.event().has_alert(), e.event().ShortDebugString());
    CHECK(e.event().alert().kind() == v1::Alert::OVERSELL);
    CHECK(e.event().alert().cause_seq() == 5);
    skus.insert(e.event().alert().sku());
  }
  CHECK(skus == std::set<std::string>{"b", "c", "d"});
  CHECK(r[3].seq == 9);
  CHECK(f.last() == 9);
  // Alert ids are unique and never collide with device ids (duplicates of a
  // device event are still answered by event_id).
  std::set<std::string> ids;
  for (const auto& e : ReadAll(*f.j)) CHECK(ids.insert(e.event().event_id()).second);
}

TEST_CASE("oversell: a late snapshot that puts on_hand below zero raises it") {
  LedgerCaseFixture f;
  const uint64_t r1 = f.Append1(Receipt("r1", {{"a", 10}}));
  f.Append1(Sale("s1", {{"a", 4}}));
  REQUIRE(OnHand(*f.j, "a") == 6);
  // HQ says there were only 2 as of r1: 2 - 4 = -2.
  auto res = f.Snap(Snapshot(f.j->epoch(), r1, 1, {{"a", 2}}));
  REQUIRE(res.outcome == SnapshotResult::Outcome::kApplied);
  CHECK(OnHand(*f.j, "a") == -2);
  CHECK(f.last() == res.seq + 1);
  f.ExpectOversell(res.seq + 1, "a", -2, res.seq);
}

}  // namespace
}  // namespace storegw::storage
