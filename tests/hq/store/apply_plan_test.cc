// The apply rules without a database (sync/hq/pg/src/apply_plan.h): ranges,
// dedupe, gaps, epochs, conflicts, and the order of decisions within one
// call. The same rules against PostgreSQL: pg_store_test.cc.
#include <doctest/doctest.h>

#include "apply_plan.h"
#include "hq_store_test_util.h"

namespace storegw::hq::pg {
namespace {

using hq_test::Batch;

std::vector<std::optional<std::pair<RefuseReason, std::string>>> NoShapeErrors(size_t n) {
  return std::vector<std::optional<std::pair<RefuseReason, std::string>>>(n);
}

// BuildPlan against a state where store s1's `gw` has `epoch` (applied,
// pending) as its current epoch; exists=false: nothing known.
struct World {
  std::map<GatewayKey, GatewayState> gateways;
  std::map<EpochKey, EpochState> epochs;
  StoredEvents stored;

  void Known(const std::string& gw, uint64_t epoch, uint64_t applied, Ranges pending = {},
             bool current = true, const std::string& store = "s1") {
    GatewayState& g = gateways[{store, gw}];
    if (current) {
      g.has_current = true;
      g.current_epoch = epoch;
    }
    EpochState& e = epochs[{store, gw, epoch}];
    e.exists = true;
    e.applied_seq = applied;
    e.pending = std::move(pending);
  }
  Plan Run(const std::vector<IncomingBatch>& batches) {
    for (const auto& in : batches) {
      gateways.try_emplace(GatewayKey{in.batch.store_id(), in.batch.gateway_id()});
      epochs.try_emplace(EpochKey{in.batch.store_id(), in.batch.gateway_id(), in.batch.epoch()});
    }
    return BuildPlan(batches, NoShapeErrors(batches.size()), gateways, epochs, stored);
  }
};

}  // namespace

TEST_CASE("ranges: AddRange merges adjacent ranges, AdvancePrefix eats what starts at prefix+1") {
  Ranges r;
  AddRange(&r, {21, 30});
  AddRange(&r, {5, 9});
  AddRange(&r, {11, 20});
  CHECK(r == Ranges{{5, 9}, {11, 30}});
  AddRange(&r, {10, 10});
  CHECK(r == Ranges{{5, 30}});
  uint64_t applied = 3;
  AdvancePrefix(&applied, &r);
  CHECK(applied == 3);  // 4 is missing
  AddRange(&r, {4, 4});
  CHECK(r == Ranges{{4, 30}});
  AdvancePrefix(&applied, &r);
  CHECK(applied == 30);
  CHECK(r.empty());
}

TEST_CASE("plan: new, duplicate and overlapping batches - outcomes name the final prefix") {
  World w;
  w.Known("gw1", 7, 10);
  Plan p = w.Run(
      {Batch("s1", "gw1", 7, 1, 10), Batch("s1", "gw1", 7, 5, 15), Batch("s1", "gw1", 7, 11, 20)});
  REQUIRE(p.outcomes.size() == 3);
  CHECK(p.outcomes[0].events_stored == 0);
  CHECK(p.outcomes[0].events_duplicate == 10);
  CHECK(p.outcomes[1].events_stored == 5);     // 11..15
  CHECK(p.outcomes[1].events_duplicate == 6);  // 5..10
  CHECK(p.outcomes[2].events_stored == 5);
  CHECK(p.outcomes[2].events_duplicate == 5);
  for (const auto& o : p.outcomes) {
    CHECK_FALSE(o.refused);
    CHECK(o.applied_seq == 20);
  }
  CHECK(p.rows.size() == 10);  // seqs 11..20, once
  REQUIRE(p.epochs.size() == 1);
  CHECK(p.epochs[0].applied_seq == 20);
  CHECK_FALSE(p.epochs[0].pending_changed);
  CHECK(p.gateways.empty());  // same epoch
}

TEST_CASE("plan: 3 before 2 before 1 - stored past the gap, prefix moves when it fills") {
  World w;
  Plan p = w.Run({Batch("s1", "gw1", 7, 21, 30)});
  CHECK(p.outcomes[0].events_stored == 10);
  CHECK(p.outcomes[0].applied_seq == 0);
  REQUIRE(p.epochs.size() == 1);
  CHECK(p.epochs[0].pending == Ranges{{21, 30}});
  CHECK(p.epochs[0].pending_changed);
  REQUIRE(p.gateways.size() == 1);  // first epoch of a new gateway
  CHECK(p.gateways[0].current_epoch == 7);

  w.Known("gw1", 7, 0, {{21, 30}});
  p = w.Run({Batch("s1", "gw1", 7, 11, 20)});
  CHECK(p.outcomes[0].applied_seq == 0);
  CHECK(p.epochs[0].pending == Ranges{{11, 30}});

  w.Known("gw1", 7, 0, {{11, 30}});
  p = w.Run({Batch("s1", "gw1", 7, 1, 10), Batch("s1", "gw1", 7, 25, 35)});
  CHECK(p.outcomes[0].events_stored == 10);
  CHECK(p.outcomes[1].events_stored == 5);
  CHECK(p.outcomes[1].events_duplicate == 6);
  CHECK(p.outcomes[0].applied_seq == 35);
  CHECK(p.epochs[0].pending.empty());
  CHECK(p.epochs[0].pending_changed);
}

TEST_CASE("plan: a batch covering part of a pending range stores only the missing seqs") {
  World w;
  w.Known("gw1", 7, 10, {{21, 25}, {31, 40}});
  Plan p = w.Run({Batch("s1", "gw1", 7, 8, 45)});
  CHECK(p.outcomes[0].events_stored == 10 + 5 + 5);  // 11..20, 26..30, 41..45
  CHECK(p.outcomes[0].events_duplicate == 3 + 5 + 10);
  CHECK(p.outcomes[0].applied_seq == 45);
  CHECK(p.rows.size() == 20);
}

TEST_CASE("plan: a new epoch supersedes the current one, also within one call") {
  World w;
  w.Known("gw1", 7, 100);
  Plan p = w.Run({Batch("s1", "gw1", 7, 101, 110), Batch("s1", "gw1", 8, 1, 5),
                  Batch("s1", "gw1", 7, 111, 120)});
  CHECK_FALSE(p.outcomes[0].refused);
  CHECK(p.outcomes[0].applied_seq == 110);
  CHECK_FALSE(p.outcomes[1].refused);
  CHECK(p.outcomes[1].applied_seq == 5);
  REQUIRE(p.outcomes[2].refused);
  CHECK(*p.outcomes[2].refused == RefuseReason::kSupersededEpoch);
  CHECK(p.outcomes[2].refuse_detail.find("superseded by epoch 8") != std::string::npos);
  CHECK(p.outcomes[2].events_stored == 0);
  CHECK(p.rows.size() == 15);
  REQUIRE(p.gateways.size() == 1);
  CHECK(p.gateways[0].current_epoch == 8);

  // Known superseded: refused, whatever the seqs.
  World w2;
  w2.Known("gw1", 8, 5);
  w2.Known("gw1", 7, 110, {}, /*current=*/false);
  w2.epochs[{"s1", "gw1", 7}].superseded = true;
  w2.epochs[{"s1", "gw1", 7}].superseded_by = 8;
  p = w2.Run({Batch("s1", "gw1", 7, 111, 120)});
  REQUIRE(p.outcomes[0].refused);
  CHECK(*p.outcomes[0].refused == RefuseReason::kSupersededEpoch);
  CHECK(p.outcomes[0].applied_seq == 110);
  CHECK(p.epochs.empty());
}

TEST_CASE("plan: a repeated seq holding another event is a conflict - the batch is refused whole") {
  World w;
  w.Known("gw1", 7, 10);
  for (uint64_t s = 1; s <= 10; ++s) {
    w.stored[{"s1", "gw1", 7}][s] = {test::Id("e", static_cast<long long>(s)),
                                     hq_test::SaleEvent(s).recorded_at()};
  }
  w.stored[{"s1", "gw1", 7}].erase(3);  // dropped by retention: still a duplicate
  auto bad = Batch("s1", "gw1", 7, 5, 15);
  bad.batch.mutable_events(2)->mutable_event()->set_event_id("other");  // seq 7
  Plan p = w.Run({Batch("s1", "gw1", 7, 1, 12), bad, Batch("s1", "gw1", 7, 13, 14)});
  CHECK_FALSE(p.outcomes[0].refused);
  REQUIRE(p.outcomes[1].refused);
  CHECK(*p.outcomes[1].refused == RefuseReason::kConflict);
  CHECK(p.outcomes[1].refuse_detail.find("seq 7") != std::string::npos);
  CHECK_FALSE(p.outcomes[2].refused);
  CHECK(p.outcomes[2].applied_seq == 14);
  CHECK(p.rows.size() == 4);  // 11, 12 from the first, 13, 14 from the third

  // A conflict with an event stored earlier in the same call.
  World w3;
  auto b2 = Batch("s1", "gw1", 7, 1, 3);
  b2.batch.mutable_events(1)->set_recorded_at(1);
  p = w3.Run({Batch("s1", "gw1", 7, 1, 3), b2});
  REQUIRE(p.outcomes[1].refused);
  CHECK(*p.outcomes[1].refused == RefuseReason::kConflict);
}

TEST_CASE("plan: two stores' gw-01 are two gateways - interleaved, neither supersedes the other") {
  World w;
  w.Known("gw-01", 7, 10, {}, true, "s1");
  w.Known("gw-01", 9, 4, {}, true, "s2");
  Plan p = w.Run({Batch("s1", "gw-01", 7, 11, 20), Batch("s2", "gw-01", 9, 5, 8),
                  Batch("s1", "gw-01", 7, 21, 30), Batch("s2", "gw-01", 9, 9, 12)});
  for (const auto& o : p.outcomes) CHECK_FALSE(o.refused);
  CHECK(p.outcomes[0].applied_seq == 30);
  CHECK(p.outcomes[1].applied_seq == 12);
  CHECK(p.rows.size() == 28);
  CHECK(p.gateways.empty());  // each store's gateway stays on its own current epoch
  REQUIRE(p.epochs.size() == 2);
  CHECK(p.epochs[0].key == EpochKey{"s1", "gw-01", 7});
  CHECK(p.epochs[1].key == EpochKey{"s2", "gw-01", 9});

  // A third store's gw-01 appears: its first epoch is current for it alone
  // (s1's epoch 7 after it in the same call is not superseded).
  p = w.Run({Batch("s3", "gw-01", 11, 1, 5), Batch("s1", "gw-01", 7, 11, 12)});
  CHECK_FALSE(p.outcomes[0].refused);
  CHECK_FALSE(p.outcomes[1].refused);
  REQUIRE(p.gateways.size() == 1);
  CHECK(p.gateways[0].key == GatewayKey{"s3", "gw-01"});
  CHECK(p.gateways[0].current_epoch == 11);

  // An epoch that is already another store's journal (copied between
  // stores): refused, nothing of it planned.
  World c;
  c.epochs[{"s2", "gw-01", 7}].other_store = "s1";
  p = c.Run({Batch("s2", "gw-01", 7, 1, 5)});
  REQUIRE(p.outcomes[0].refused);
  CHECK(*p.outcomes[0].refused == RefuseReason::kConflict);
  CHECK(p.outcomes[0].refuse_detail.find("already the journal of store s1") != std::string::npos);
  CHECK(p.outcomes[0].applied_seq == 0);
  CHECK(p.rows.empty());
  CHECK(p.epochs.empty());
  CHECK(p.gateways.empty());
  CHECK(
      RepeatedRanges(std::vector<IncomingBatch>{Batch("s2", "gw-01", 7, 1, 5)}, c.epochs).empty());
}

TEST_CASE("plan: RepeatedRanges asks only for seqs stored before the call, merged") {
  World w;
  w.Known("gw1", 7, 10, {{21, 30}});
  w.epochs.try_emplace(EpochKey{"s1", "gw2", 1});
  auto r = RepeatedRanges(
      std::vector<IncomingBatch>{Batch("s1", "gw1", 7, 5, 25), Batch("s1", "gw1", 7, 8, 12),
                                 Batch("s1", "gw2", 1, 1, 5)},
      w.epochs);
  REQUIRE(r.size() == 2);
  CHECK(r[0].second == Range{5, 10});
  CHECK(r[1].second == Range{21, 25});
}

TEST_CASE("shape: what the store refuses before anything else") {
  auto b = Batch("s1", "gw1", 7, 1, 3);
  CHECK_FALSE(CheckBatchShape(b.batch));
  auto missing = b;
  missing.batch.mutable_events()->RemoveLast();
  REQUIRE(CheckBatchShape(missing.batch));
  CHECK(CheckBatchShape(missing.batch)->first == RefuseReason::kNotContiguous);
  auto big = Batch("s1", "gw1", 7, 1, 1);
  big.batch.set_first_seq(1ULL << 63);
  big.batch.set_last_seq(1ULL << 63);
  big.batch.mutable_events(0)->set_seq(1ULL << 63);
  REQUIRE(CheckBatchShape(big.batch));
  CHECK(CheckBatchShape(big.batch)->first == RefuseReason::kInvalidEvent);
  auto nul = b;
  nul.batch.mutable_events(1)->mutable_event()->set_event_id(std::string("a\0b", 3));
  REQUIRE(CheckBatchShape(nul.batch));
  CHECK(CheckBatchShape(nul.batch)->second.find("seq 2") != std::string::npos);
  auto no_gw = b;
  no_gw.batch.clear_gateway_id();
  CHECK(CheckBatchShape(no_gw.batch));
  auto no_store = b;
  no_store.batch.clear_store_id();
  REQUIRE(CheckBatchShape(no_store.batch));
  CHECK(CheckBatchShape(no_store.batch)->second == "store_id is empty");
  auto no_time = b;
  no_time.batch.mutable_events(0)->set_recorded_at(0);
  CHECK(CheckBatchShape(no_time.batch)->first == RefuseReason::kInvalidEvent);
}

TEST_CASE("kind: the name of the body field") {
  CHECK(EventKind(hq_test::SaleEvent(1).event()) == "sale");
  v1::Event e;
  CHECK(EventKind(e).empty());
  e.mutable_count()->set_sku("x");
  CHECK(EventKind(e) == "count");
  e.mutable_sale_return();
  CHECK(EventKind(e) == "sale_return");
}

}  // namespace storegw::hq::pg
