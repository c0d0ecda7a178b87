// Downstream::Handle against a real journal in a temporary directory: every
// kind of bad message is refused with its reason and counted, and changes
// nothing; good snapshots, prices and store rules are applied and journaled
// (HQ's hold time then sets a production batch's due time); the queue
// applies in arrival order and Stop() drains it.
#include <doctest/doctest.h>

#include <chrono>
#include <map>
#include <stop_token>
#include <string>
#include <thread>

#include "failing_vfs.h"
#include "storegw/storage/journal.h"
#include "storegw/sync/downstream.h"
#include "sync_test_util.h"

namespace {

namespace v1 = storegw::v1;
namespace st = storegw::sync_test;
namespace sync = storegw::sync;
namespace storage = storegw::storage;
using storegw::StatusCode;
using sync::DownstreamKind;

int64_t NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string Bytes(const google::protobuf::MessageLite& m) {
  std::string out;
  m.SerializeToString(&out);
  return out;
}

v1::StockSnapshot Snapshot(const storage::Journal& j,
                           std::vector<std::pair<std::string, int64_t>> lines,
                           uint64_t hq_version = 1) {
  v1::StockSnapshot s;
  s.set_store_id(j.store_id());
  s.set_epoch(j.epoch());
  s.set_as_of_seq(j.Stats().last_seq);
  s.set_hq_version(hq_version);
  for (const auto& [sku, qty] : lines) {
    auto* l = s.add_lines();
    l->set_sku(sku);
    l->set_qty(qty);
  }
  return s;
}

v1::PriceUpdate Price(const storage::Journal& j, const std::string& sku, int64_t price,
                      int64_t effective_from, const std::string& currency = "EUR") {
  v1::PriceUpdate p;
  p.set_store_id(j.store_id());
  p.set_sku(sku);
  p.set_price(price);
  p.set_currency(currency);
  p.set_effective_from(effective_from);
  return p;
}

v1::StoreRules Rules(const storage::Journal& j) {
  v1::StoreRules r;
  r.set_store_id(j.store_id());
  auto* h = r.add_hold_times();
  h->set_sku("SKU-ROTI");
  h->set_hold_s(2 * 3600);
  auto* l = r.add_sensor_limits();
  l->set_sensor_id("fridge-1");
  l->set_location("dairy fridge 1");
  l->set_min_value(0);
  l->set_max_value(5000);
  return r;
}

// A tray of `sku` put out at a counter now (no occurred_at: the receipt).
v1::Event Production(const std::string& id, const std::string& sku, int64_t qty) {
  v1::Event e;
  e.set_event_id(id);
  e.set_device_id("oven-1");
  auto* p = e.mutable_production();
  p->set_sku(sku);
  p->set_qty(qty);
  p->set_location("hot counter 1");
  return e;
}

struct Fixture {
  st::TempDir dir;
  std::unique_ptr<storage::Journal> journal;
  Fixture() {
    auto j = storage::Journal::Open(st::TestJournalOptions(dir.path() / "data"));
    REQUIRE_MESSAGE(j.ok(), j.status().ToString());
    journal = std::move(*j);
  }
};

}  // namespace

TEST_CASE("downstream: a good snapshot and a good price are applied and journaled") {
  Fixture f;
  storage::Journal& j = *f.journal;
  sync::Downstream down(&j);

  auto snap = Snapshot(j, {{"SKU-1", 40}, {"SKU-2", 7}});
  storegw::Status s = down.Handle(DownstreamKind::kStock, Bytes(snap));
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  auto row = j.Stock("SKU-1");
  REQUIRE(row.ok());
  CHECK(row->on_hand == 40);
  CHECK(row->hq_version == 1);
  CHECK(j.Stock("SKU-2")->on_hand == 7);

  const int64_t from = NowUs() - 1000000;
  s = down.Handle(DownstreamKind::kPrices, Bytes(Price(j, "SKU-1", 249, from)));
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  auto price = j.PriceAt("SKU-1", NowUs());
  REQUIRE(price.ok());
  CHECK(price->price == 249);
  CHECK(price->currency == "EUR");
  CHECK(price->effective_from == from);

  // HQ resends the same update: a duplicate, nothing new journaled.
  const uint64_t last = j.Stats().last_seq;
  s = down.Handle(DownstreamKind::kPrices, Bytes(Price(j, "SKU-1", 249, from)));
  CHECK(s.ok());
  CHECK(j.Stats().last_seq == last);

  // Both changes are in the journal (and so go upstream).
  auto events = j.ReadEvents(1, 100, 1 << 20);
  REQUIRE(events.ok());
  int snapshots = 0, prices = 0;
  for (const auto& e : *events) {
    snapshots += e.event().has_stock_snapshot();
    prices += e.event().has_price_update();
  }
  CHECK(snapshots >= 1);
  CHECK(prices == 1);

  const sync::DownstreamCounters c = down.counters();
  CHECK(c.snapshots_applied == 1);
  CHECK(c.snapshot_lines_applied == 2);
  CHECK(c.prices_applied == 1);
  CHECK(c.prices_duplicate == 1);
  CHECK(c.accepted() == 3);
  CHECK(c.refused_total() == 0);
}

TEST_CASE(
    "downstream: every kind of bad message is refused with its reason, counted, and "
    "changes nothing") {
  Fixture f;
  storage::Journal& j = *f.journal;
  sync::Downstream down(&j);
  const int64_t from = NowUs() - 1000000;

  auto snap_with = [&](auto edit) {
    auto s = Snapshot(j, {{"SKU-1", 5}});
    edit(s);
    return Bytes(s);
  };
  auto price_with = [&](auto edit) {
    auto p = Price(j, "SKU-1", 100, from);
    edit(p);
    return Bytes(p);
  };

  struct Case {
    const char* name;
    DownstreamKind kind;
    std::string payload;
    const char* reason;
    StatusCode code;  // what Handle() answers
  };
  constexpr StatusCode kInvalid = StatusCode::kInvalidArgument;
  constexpr StatusCode kRejected = StatusCode::kFailedPrecondition;  // by the journal
  const std::string garbage("\xff\xfe\x00\x13garbage\x80", 12);
  const Case cases[] = {
      {"garbage snapshot", DownstreamKind::kStock, garbage, "undecodable", kInvalid},
      {"garbage price", DownstreamKind::kPrices, garbage, "undecodable", kInvalid},
      {"empty snapshot", DownstreamKind::kStock, "", "empty", kInvalid},
      {"empty price", DownstreamKind::kPrices, "", "empty", kInvalid},
      {"snapshot without lines", DownstreamKind::kStock,
       snap_with([](v1::StockSnapshot& s) { s.clear_lines(); }), "invalid_lines", kInvalid},
      {"snapshot with a bad sku", DownstreamKind::kStock,
       snap_with([](v1::StockSnapshot& s) { s.mutable_lines(0)->set_sku("bad sku!"); }),
       "invalid_sku", kInvalid},
      {"snapshot with a negative qty", DownstreamKind::kStock,
       snap_with([](v1::StockSnapshot& s) { s.mutable_lines(0)->set_qty(-3); }), "invalid_qty",
       kInvalid},
      {"snapshot for another store", DownstreamKind::kStock,
       snap_with([](v1::StockSnapshot& s) { s.set_store_id("store-9999"); }), "other_store",
       kRejected},
      {"snapshot for another epoch", DownstreamKind::kStock,
       snap_with([&](v1::StockSnapshot& s) { s.set_epoch(j.epoch() ^ 0x5a5a); }), "other_epoch",
       kRejected},
      {"price with a bad sku", DownstreamKind::kPrices,
       price_with([](v1::PriceUpdate& p) { p.set_sku("bad sku!"); }), "invalid_sku", kInvalid},
      {"price with a bad currency", DownstreamKind::kPrices,
       price_with([](v1::PriceUpdate& p) { p.set_currency("eur"); }), "invalid_currency", kInvalid},
      {"price below zero", DownstreamKind::kPrices,
       price_with([](v1::PriceUpdate& p) { p.set_price(-1); }), "invalid_price", kInvalid},
      {"price without effective_from", DownstreamKind::kPrices,
       price_with([](v1::PriceUpdate& p) { p.set_effective_from(0); }), "invalid_effective_from",
       kInvalid},
      {"price for another store", DownstreamKind::kPrices,
       price_with([](v1::PriceUpdate& p) { p.set_store_id("store-9999"); }), "other_store",
       kInvalid},
  };

  std::map<std::string, uint64_t> expected;
  for (const Case& c : cases) {
    INFO(c.name);
    storegw::Status s = down.Handle(c.kind, c.payload);
    CHECK(s.code() == c.code);
    CHECK_FALSE(s.message().empty());
    ++expected[c.reason];
    CHECK(down.counters().refused == expected);
    CHECK(j.Stock("SKU-1").status().code() == StatusCode::kNotFound);
    CHECK(j.PriceAt("SKU-1", NowUs()).status().code() == StatusCode::kNotFound);
  }
  const sync::DownstreamCounters c = down.counters();
  CHECK(c.accepted() == 0);
  CHECK(c.refused_total() == std::size(cases));

  // The two refused snapshots for another store / epoch raised
  // SNAPSHOT_REJECTED alerts through the journal.
  auto alerts = j.OpenAlerts(100);
  REQUIRE(alerts.ok());
  int rejected = 0;
  for (const auto& a : *alerts) rejected += a.kind() == v1::Alert::SNAPSHOT_REJECTED;
  CHECK(rejected == 2);

  // Still working: a good message after all of them is applied.
  CHECK(down.Handle(DownstreamKind::kStock, Bytes(Snapshot(j, {{"SKU-1", 9}}))).ok());
  CHECK(j.Stock("SKU-1")->on_hand == 9);
}

TEST_CASE("downstream: a stale snapshot is accepted but changes nothing") {
  Fixture f;
  storage::Journal& j = *f.journal;
  sync::Downstream down(&j);
  REQUIRE(down.Handle(DownstreamKind::kStock, Bytes(Snapshot(j, {{"SKU-1", 10}}, 5))).ok());
  REQUIRE(st::AppendSales(j, 1, 3).empty());  // skus sku-1001.. : not SKU-1
  REQUIRE(down.Handle(DownstreamKind::kStock, Bytes(Snapshot(j, {{"SKU-1", 30}}, 6))).ok());
  CHECK(j.Stock("SKU-1")->on_hand == 30);
  // An older one (as_of_seq below the current base) is ignored.
  auto old = Snapshot(j, {{"SKU-1", 99}}, 4);
  old.set_as_of_seq(0);
  CHECK(down.Handle(DownstreamKind::kStock, Bytes(old)).ok());
  CHECK(j.Stock("SKU-1")->on_hand == 30);
  const auto c = down.counters();
  CHECK(c.snapshot_lines_stale == 1);
  CHECK(c.refused_total() == 0);
}

TEST_CASE("downstream: queued messages are applied in arrival order - Stop() drains the queue") {
  Fixture f;
  storage::Journal& j = *f.journal;
  sync::Downstream down(&j);
  REQUIRE(down.Start().ok());
  CHECK(down.Start().code() == StatusCode::kFailedPrecondition);
  const int64_t from = NowUs() - 1000000;
  // Same sku and effective_from: the one applied last wins, so order shows.
  for (int price = 1; price <= 50; ++price) {
    down.Enqueue(DownstreamKind::kPrices, Bytes(Price(j, "SKU-7", price, from)));
  }
  down.Enqueue(DownstreamKind::kStock, "not a snapshot");
  down.Enqueue(DownstreamKind::kStock, Bytes(Snapshot(j, {{"SKU-7", 12}})));
  down.Stop();
  CHECK(j.PriceAt("SKU-7", NowUs())->price == 50);
  CHECK(j.Stock("SKU-7")->on_hand == 12);
  const auto c = down.counters();
  CHECK(c.prices_applied == 50);
  CHECK(c.snapshots_applied == 1);
  CHECK(c.refused_total() == 1);
  CHECK(c.queued == 0);
  // After Stop, nothing is accepted any more (and that is counted).
  down.Enqueue(DownstreamKind::kPrices, Bytes(Price(j, "SKU-7", 1, from)));
  CHECK(down.counters().refused.at("shutting_down") == 1);
}

TEST_CASE("downstream: a queue over its byte cap refuses instead of growing") {
  Fixture f;
  storage::Journal& j = *f.journal;
  sync::DownstreamOptions o;
  o.max_queued_bytes = 64;
  sync::Downstream down(&j, o);  // not started: nothing drains
  const std::string big(100, 'x');
  down.Enqueue(DownstreamKind::kStock, big);
  CHECK(down.counters().refused.at("overflow") == 1);
  CHECK(down.counters().queued == 0);
}

TEST_CASE("downstream: a 20,000-line snapshot is applied in chunks and counted") {
  Fixture f;
  storage::Journal& j = *f.journal;
  sync::Downstream down(&j);
  std::vector<std::pair<std::string, int64_t>> lines;
  for (int i = 0; i < 20000; ++i) lines.emplace_back("SKU-" + std::to_string(i), i % 97);
  REQUIRE(down.Handle(DownstreamKind::kStock, Bytes(Snapshot(j, lines))).ok());
  CHECK(j.Stock("SKU-19999")->on_hand == 19999 % 97);
  const auto c = down.counters();
  CHECK(c.snapshot_lines_applied == 20000);
  CHECK(c.last_snapshot_apply.count() > 0);
}

TEST_CASE("downstream: Submit applies before it returns - after Stop it refuses") {
  Fixture f;
  storage::Journal& j = *f.journal;
  sync::Downstream down(&j);
  const int64_t from = NowUs() - 1000000;
  CHECK(down.Submit(DownstreamKind::kPrices, Bytes(Price(j, "SKU-3", 120, from))).ok());
  CHECK(j.PriceAt("SKU-3", NowUs())->price == 120);  // durable now, no worker
  CHECK(down.Submit(DownstreamKind::kStock, "garbage!").code() == StatusCode::kInvalidArgument);
  down.Stop();
  CHECK(down.Submit(DownstreamKind::kPrices, Bytes(Price(j, "SKU-3", 130, from))).code() ==
        StatusCode::kUnavailable);
  CHECK(j.PriceAt("SKU-3", NowUs())->price == 120);
  const auto c = down.counters();
  CHECK(c.prices_applied == 1);
  CHECK(c.refused.at("undecodable") == 1);
  CHECK(c.refused.at("shutting_down") == 1);
}

TEST_CASE("downstream: Submit retries a refusing journal and a stop request ends the retries") {
  // A journal whose disk refuses writes on demand; no background writes
  // (maintenance) that could be refused instead of the message's.
  st::InstallFailingVfs();
  st::TempDir dir;
  st::TrackDir(dir.path() / "data");
  storage::JournalOptions jo = st::TestJournalOptions(dir.path() / "data");
  jo.maintenance_interval = std::chrono::hours(1);
  auto opened = storage::Journal::Open(jo);
  REQUIRE_MESSAGE(opened.ok(), opened.status().ToString());
  storage::Journal& j = **opened;
  sync::DownstreamOptions o;
  o.retry_initial = std::chrono::milliseconds(200);  // retries 0.2 + 0.4 + 0.8 + 1.6 s
  o.max_retry_time = std::chrono::seconds(10);
  sync::Downstream down(&j, o);
  const int64_t from = NowUs() - 1000000;
  const std::string price = Bytes(Price(j, "SKU-5", 120, from));
  const uint64_t refused_before = st::RefusedWrites();
  auto refused_once = [&] {
    return st::WaitUntil([&] { return st::RefusedWrites() > refused_before; },
                         std::chrono::seconds(10));
  };

  SUBCASE("the journal recovers during the retries: applied") {
    st::FailWrites(true);
    std::thread disk([&] {
      CHECK(refused_once());
      st::FailWrites(false);
    });
    const storegw::Status s = down.Submit(DownstreamKind::kPrices, price);
    disk.join();
    CHECK_MESSAGE(s.ok(), s.ToString());
    auto applied = j.PriceAt("SKU-5", NowUs());
    REQUIRE(applied.ok());
    CHECK(applied->price == 120);
    CHECK(down.counters().prices_applied == 1);
    CHECK(down.counters().refused_total() == 0);
  }
  SUBCASE("a stop request during the retries: the next attempt is the last") {
    std::stop_source stop;
    st::FailWrites(true);
    std::thread stopper([&] {
      CHECK(refused_once());
      stop.request_stop();
    });
    const auto t0 = std::chrono::steady_clock::now();
    const storegw::Status s = down.Submit(DownstreamKind::kPrices, price, stop.get_token());
    const auto took = std::chrono::steady_clock::now() - t0;
    stopper.join();
    st::FailWrites(false);
    CHECK(s.code() == StatusCode::kResourceExhausted);
    CHECK(took < std::chrono::seconds(1));  // the retries alone would take 3 s
    auto c = down.counters();
    CHECK(c.refused["journal_error"] == 1);
    CHECK(c.prices_applied == 0);
    CHECK(j.PriceAt("SKU-5", NowUs()).status().code() == StatusCode::kNotFound);
  }
}

TEST_CASE("downstream: store rules are applied, journaled, and set the due time of batches") {
  Fixture f;
  storage::Journal& j = *f.journal;
  sync::Downstream down(&j);
  CHECK(sync::DownstreamKindName(DownstreamKind::kStock) == "stock");
  CHECK(sync::DownstreamKindName(DownstreamKind::kPrices) == "prices");
  CHECK(sync::DownstreamKindName(DownstreamKind::kRules) == "rules");

  const v1::StoreRules rules = Rules(j);
  storegw::Status s = down.Handle(DownstreamKind::kRules, Bytes(rules));
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  const sync::DownstreamCounters c = down.counters();
  CHECK(c.rules_applied == 1);
  CHECK(c.accepted() == 1);
  CHECK(c.refused_total() == 0);

  // Journaled as a store_rules event, as HQ sent it (and so goes upstream).
  auto events = j.ReadEvents(1, 100, 1 << 20);
  REQUIRE(events.ok());
  int journaled = 0;
  for (const auto& e : *events) {
    if (!e.event().has_store_rules()) continue;
    ++journaled;
    CHECK(e.event().store_rules().SerializeAsString() == rules.SerializeAsString());
  }
  CHECK(journaled == 1);

  // A batch of SKU-ROTI is due HQ's 2 h after it was put out; another sku
  // the local default (4 h).
  auto appended = j.Append({Production("p-1", "SKU-ROTI", 6), Production("p-2", "SKU-PLAIN", 3)});
  REQUIRE_MESSAGE(appended.ok(), appended.status().ToString());
  auto view = j.Perishables(10);
  REQUIRE_MESSAGE(view.ok(), view.status().ToString());
  CHECK(view->batches_open == 2);
  REQUIRE(view->due_next.size() == 2);
  std::map<std::string, int64_t> hold_us;
  for (const auto& b : view->due_next) hold_us[b.sku()] = b.due_at() - b.produced_at();
  CHECK(hold_us["SKU-ROTI"] == int64_t{2 * 3600} * 1000000);
  CHECK(hold_us["SKU-PLAIN"] == int64_t{4 * 3600} * 1000000);
  // The sensor is watched with HQ's limits.
  REQUIRE(view->sensors.size() == 1);
  CHECK(view->sensors[0].sensor_id() == "fridge-1");
  CHECK(view->sensors[0].location() == "dairy fridge 1");
  CHECK(view->sensors[0].has_limits());
  CHECK(view->sensors[0].limits_from() == "hq");
  CHECK(view->sensors[0].min_value() == 0);
  CHECK(view->sensors[0].max_value() == 5000);
}

TEST_CASE("downstream: bad store rules are refused with their reason and change nothing") {
  Fixture f;
  storage::Journal& j = *f.journal;
  sync::Downstream down(&j);
  auto with = [&](auto edit) {
    v1::StoreRules r = Rules(j);
    edit(r);
    return Bytes(r);
  };
  struct Case {
    const char* name;
    std::string payload;
    const char* reason;
    const char* field;  // of the Status Handle() answers
  };
  const std::string garbage("\xff\xfe\x00\x13garbage\x80", 12);
  const Case cases[] = {
      {"garbage", garbage, "undecodable", "payload"},
      {"empty", "", "empty", "payload"},
      {"no rule at all", with([](v1::StoreRules& r) {
         r.clear_hold_times();
         r.clear_sensor_limits();
       }),
       "invalid_hold_times", "hold_times"},
      {"a hold time under a minute",
       with([](v1::StoreRules& r) { r.mutable_hold_times(0)->set_hold_s(30); }), "invalid_hold_s",
       "hold_times[0].hold_s"},
      {"a bad sku", with([](v1::StoreRules& r) { r.mutable_hold_times(0)->set_sku("bad sku!"); }),
       "invalid_sku", "hold_times[0].sku"},
      {"max below min",
       with([](v1::StoreRules& r) { r.mutable_sensor_limits(0)->set_max_value(-1); }),
       "invalid_max_value", "sensor_limits[0].max_value"},
      {"a sensor without an id",
       with([](v1::StoreRules& r) { r.mutable_sensor_limits(0)->clear_sensor_id(); }),
       "invalid_sensor_id", "sensor_limits[0].sensor_id"},
      {"another store", with([](v1::StoreRules& r) { r.set_store_id("store-9999"); }),
       "other_store", "store_id"},
  };
  const uint64_t last = j.Stats().last_seq;
  std::map<std::string, uint64_t> expected;
  for (const Case& c : cases) {
    INFO(c.name);
    const storegw::Status s = down.Handle(DownstreamKind::kRules, c.payload);
    CHECK(s.code() == StatusCode::kInvalidArgument);
    CHECK(s.field() == c.field);
    CHECK_FALSE(s.message().empty());
    ++expected[c.reason];
    CHECK(down.counters().refused == expected);
  }
  CHECK(down.Handle(DownstreamKind::kRules,
                    with([](v1::StoreRules& r) { r.set_store_id("store-9999"); }))
            .message() == "store rules for store \"store-9999\", this is store \"store-0001\"");
  // Nothing journaled, nothing recorded.
  CHECK(j.Stats().last_seq == last);
  auto view = j.Perishables(10);
  REQUIRE(view.ok());
  CHECK(view->sensors.empty());
  CHECK(down.counters().rules_applied == 0);
  CHECK(down.counters().accepted() == 0);

  // Still working: good rules after all of them are applied.
  CHECK(down.Handle(DownstreamKind::kRules, Bytes(Rules(j))).ok());
  CHECK(down.counters().rules_applied == 1);
  CHECK(j.Stats().last_seq == last + 1);
}
