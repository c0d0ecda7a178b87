// Perishables (production batches, hold times, REMOVE_FROM_SHELF), cold
// chain (TEMPERATURE_EXCURSION, SENSOR_SILENT) and prices coming into force,
// driven by an injected clock through Journal::RunTimers (no sleeps).
#include <doctest/doctest.h>

#include <string>
#include <thread>
#include <vector>

#include "test_util.h"

namespace storegw::storage {
namespace {

using namespace testing;
using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;

constexpr int64_t kSec = 1'000'000;

v1::Event Production(const std::string& id, const std::string& sku, int64_t qty,
                     const std::string& location, int64_t occurred_at) {
  v1::Event e = Base(id);
  e.set_device_id("kitchen-1");
  e.set_occurred_at(occurred_at);
  auto* p = e.mutable_production();
  p->set_sku(sku);
  p->set_qty(qty);
  p->set_location(location);
  return e;
}

v1::Event Waste(const std::string& id, const std::string& sku, int64_t qty) {
  v1::Event e = Base(id);
  auto* l = e.mutable_adjustment()->add_lines();
  l->set_sku(sku);
  l->set_qty(-qty);
  l->set_reason("waste");
  return e;
}

v1::Event Reading(const std::string& id, const std::string& sensor, int64_t value) {
  v1::Event e = Base(id);
  e.set_device_id(sensor);
  auto* s = e.mutable_sensor();
  s->set_sensor_id(sensor);
  s->set_metric("temp_mc");
  s->set_value(value);
  return e;
}

struct Rig {
  TempDir dir{RamDirOrDefault()};
  FakeClock clock;
  JournalOptions opt;
  std::unique_ptr<Journal> j;

  explicit Rig(const std::function<void(JournalOptions&)>& tweak = {}) {
    opt = Options(dir.path());
    opt.now_us = clock.fn();
    opt.timer_thread = false;
    if (tweak) tweak(opt);
    j = MustOpen(opt);
  }
  void Reopen() {
    j.reset();
    j = MustOpen(opt);
  }
  uint64_t Append1(v1::Event e) { return MustAppend(*j, {std::move(e)})[0].seq; }
  TimerResult Tick() {
    auto r = j->RunTimers();
    REQUIRE_MESSAGE(r.ok(), r.status().ToString());
    return *r;
  }
  std::vector<v1::StatusAlert> Open(v1::Alert::Kind kind) {
    auto all = j->OpenAlerts(1000);
    REQUIRE(all.ok());
    std::vector<v1::StatusAlert> out;
    for (auto& a : *all) {
      if (a.kind() == kind) out.push_back(a);
    }
    return out;
  }
  // Every journaled event of a body kind, in seq order.
  std::vector<v1::JournaledEvent> Events(v1::Event::BodyCase body) {
    std::vector<v1::JournaledEvent> out;
    for (auto& je : ReadAll(*j)) {
      if (je.event().body_case() == body) out.push_back(je);
    }
    return out;
  }
  PerishablesView View() {
    auto v = j->Perishables(10);
    REQUIRE_MESSAGE(v.ok(), v.status().ToString());
    return *v;
  }
};

TEST_CASE("perishables: a batch expiring while the uplink is down raises REMOVE_FROM_SHELF on time, once") {
  Rig r([](JournalOptions& o) { o.default_hold = hours(4); });
  const int64_t t0 = r.clock.now();
  const uint64_t batch = r.Append1(Production("p-1", "chicken-roast", 12, "hot counter 1", t0));
  const int64_t due = t0 + 4 * 3600 * kSec;
  // Production is stock in: +12, and the sku has a baseline.
  CHECK(OnHand(*r.j, "chicken-roast") == 12);
  TimerResult t = r.Tick();
  CHECK(t.raised == 0);
  CHECK(t.next_due_us == due);
  r.clock.Advance(std::chrono::microseconds(due - t0 - kSec));
  CHECK(r.Tick().raised == 0);
  CHECK(r.Open(v1::Alert::REMOVE_FROM_SHELF).empty());
  r.clock.Advance(seconds(1));
  t = r.Tick();
  CHECK(t.raised == 1);
  auto open = r.Open(v1::Alert::REMOVE_FROM_SHELF);
  REQUIRE(open.size() == 1);
  CHECK(open[0].sku() == "chicken-roast");
  CHECK(open[0].location() == "hot counter 1");
  CHECK(open[0].qty() == 12);
  CHECK(open[0].batch_seq() == batch);
  CHECK(open[0].since() == due);
  CHECK(open[0].raised_at() == due);  // to the microsecond on the injected clock
  CHECK(open[0].message().find("hot counter 1") != std::string::npos);
  // Journaled, to go upstream like every event; nothing delivered yet.
  auto alerts = r.Events(v1::Event::kAlert);
  REQUIRE(alerts.size() == 1);
  CHECK(alerts[0].event().alert().kind() == v1::Alert::REMOVE_FROM_SHELF);
  CHECK(r.j->Stats().watermark == 0);
  // Once only.
  CHECK(r.Tick().raised == 0);
  r.clock.Advance(minutes(5));
  CHECK(r.Tick().raised == 0);
  CHECK(r.Open(v1::Alert::REMOVE_FROM_SHELF).size() == 1);
  auto v = r.View();
  CHECK(v.batches_open == 1);
  CHECK(v.batches_overdue == 1);
}

TEST_CASE("perishables: a restart between production and expiry still alerts at the due time") {
  Rig r([](JournalOptions& o) { o.default_hold = hours(2); });
  const int64_t t0 = r.clock.now();
  r.Append1(Production("p-1", "pizza-slice", 8, "deli", t0 - 30 * 60 * kSec));  // put out 30 min ago
  const int64_t due = t0 + 90 * 60 * kSec;
  r.clock.Advance(minutes(60));
  r.Reopen();  // the due time comes from the journal, not from memory
  CHECK(r.Tick().next_due_us == due);
  r.clock.Advance(minutes(30));
  CHECK(r.Tick().raised == 1);
  auto open = r.Open(v1::Alert::REMOVE_FROM_SHELF);
  REQUIRE(open.size() == 1);
  CHECK(open[0].since() == due);
  // A restart after the alert neither repeats nor loses it.
  r.Reopen();
  CHECK(r.Tick().raised == 0);
  CHECK(r.Open(v1::Alert::REMOVE_FROM_SHELF).size() == 1);

  SUBCASE("the journal with its timer thread on catches up at open") {
    Rig r2([](JournalOptions& o) {
      o.default_hold = hours(1);
      o.timer_thread = true;
    });
    r2.Append1(Production("p-9", "soup", 3, "soup station", r2.clock.now() - 2 * 3600 * kSec));
    // Due an hour ago: the journal's own timer raises it without a call.
    for (int i = 0; i < 200 && r2.Open(v1::Alert::REMOVE_FROM_SHELF).empty(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    CHECK(r2.Open(v1::Alert::REMOVE_FROM_SHELF).size() == 1);
  }
}

TEST_CASE("perishables: waste and sales use batches up oldest first and clear their alerts") {
  Rig r([](JournalOptions& o) { o.default_hold = hours(1); });
  const int64_t t0 = r.clock.now();
  const uint64_t old_batch = r.Append1(Production("p-1", "croissant", 10, "bakery", t0));
  r.clock.Advance(minutes(30));
  const uint64_t new_batch =
      r.Append1(Production("p-2", "croissant", 10, "bakery", r.clock.now()));
  r.clock.Advance(minutes(31));
  CHECK(r.Tick().raised == 1);  // only the first one is due
  auto open = r.Open(v1::Alert::REMOVE_FROM_SHELF);
  REQUIRE(open.size() == 1);
  CHECK(open[0].batch_seq() == old_batch);

  // A sale of 4 takes from the oldest batch: 6 left, the alert stays.
  r.Append1(Sale("s-1", {{"croissant", 4}}));
  auto v = r.View();
  REQUIRE(v.due_next.size() == 2);
  CHECK(v.due_next[0].seq() == old_batch);
  CHECK(v.due_next[0].qty() == 6);
  CHECK(v.due_next[1].qty() == 10);
  CHECK(r.Open(v1::Alert::REMOVE_FROM_SHELF).size() == 1);

  // A damage adjustment is not waste: nothing moves.
  r.Append1(Adjust("a-1", {{"croissant", -1}}));
  CHECK(r.View().due_next[0].qty() == 6);

  // Waste of 6 empties the old batch: its alert clears, by a journaled event.
  const uint64_t waste = r.Append1(Waste("w-1", "croissant", 6));
  CHECK(r.Open(v1::Alert::REMOVE_FROM_SHELF).empty());
  auto cleared = r.Events(v1::Event::kAlertCleared);
  REQUIRE(cleared.size() == 1);
  CHECK(cleared[0].event().alert_cleared().alert_seq() == open[0].seq());
  CHECK(cleared[0].event().alert_cleared().reason() == "wasted");
  CHECK(cleared[0].event().alert_cleared().cause_seq() == waste);
  v = r.View();
  REQUIRE(v.due_next.size() == 1);
  CHECK(v.due_next[0].seq() == new_batch);

  // The second batch comes due, then sells out: cleared as "sold".
  r.clock.Advance(minutes(30));
  CHECK(r.Tick().raised == 1);
  r.Append1(Sale("s-2", {{"croissant", 10}}));
  CHECK(r.Open(v1::Alert::REMOVE_FROM_SHELF).empty());
  cleared = r.Events(v1::Event::kAlertCleared);
  REQUIRE(cleared.size() == 2);
  CHECK(cleared[1].event().alert_cleared().reason() == "sold");
  CHECK(r.View().batches_open == 0);
  // Stock: 20 made, 14 sold, 1 damaged, 6 wasted.
  CHECK(OnHand(*r.j, "croissant") == -1);
}

TEST_CASE("perishables: a batch still out escalates once, replacing its first alert") {
  Rig r([](JournalOptions& o) {
    o.default_hold = hours(1);
    o.escalate_after = minutes(20);
  });
  r.Append1(Production("p-1", "wings", 5, "hot counter 2", r.clock.now()));
  r.clock.Advance(hours(1));
  CHECK(r.Tick().raised == 1);
  const uint64_t first = r.Open(v1::Alert::REMOVE_FROM_SHELF)[0].seq();
  r.clock.Advance(minutes(19));
  CHECK(r.Tick().raised == 0);
  r.clock.Advance(minutes(1));
  CHECK(r.Tick().raised == 1);
  auto open = r.Open(v1::Alert::REMOVE_FROM_SHELF);
  REQUIRE(open.size() == 1);
  CHECK(open[0].escalated());
  CHECK(open[0].seq() != first);
  CHECK(r.Events(v1::Event::kAlertCleared).back().event().alert_cleared().reason() ==
        "escalated");
  r.clock.Advance(hours(3));
  CHECK(r.Tick().raised == 0);  // escalates once
  r.Append1(Waste("w-1", "wings", 5));
  CHECK(r.Open(v1::Alert::REMOVE_FROM_SHELF).empty());
}

TEST_CASE("perishables: hold times from HQ win over the local ones, which win over the default") {
  Rig r([](JournalOptions& o) {
    o.default_hold = hours(4);
    o.hold_times["sushi"] = hours(3);
    o.hold_times["salad"] = hours(2);
  });
  v1::StoreRules rules;
  rules.set_store_id("store-0042");
  auto* h = rules.add_hold_times();
  h->set_sku("sushi");
  h->set_hold_s(90 * 60);
  auto applied = r.j->ApplyStoreRules(rules);
  REQUIRE_MESSAGE(applied.ok(), applied.status().ToString());
  CHECK(applied->hold_times == 1);
  REQUIRE(r.Events(v1::Event::kStoreRules).size() == 1);
  const int64_t t0 = r.clock.now();
  r.Append1(Production("p-1", "sushi", 1, "sushi bar", t0));
  r.Append1(Production("p-2", "salad", 1, "salad bar", t0));
  r.Append1(Production("p-3", "bagel", 1, "bakery", t0));
  auto v = r.View();
  REQUIRE(v.due_next.size() == 3);
  CHECK(v.due_next[0].due_at() == t0 + 90 * 60 * kSec);
  CHECK(v.due_next[1].due_at() == t0 + 2 * 3600 * kSec);
  CHECK(v.due_next[2].due_at() == t0 + 4 * 3600 * kSec);

  SUBCASE("hold 0 removes HQ's hold time") {
    h->set_hold_s(0);
    REQUIRE(r.j->ApplyStoreRules(rules).ok());
    const uint64_t p4 = r.Append1(Production("p-4", "sushi", 1, "sushi bar", t0));
    int64_t due = 0;
    for (const auto& b : r.View().due_next) {
      if (b.seq() == p4) due = b.due_at();
    }
    CHECK(due == t0 + 3 * 3600 * kSec);
  }
  SUBCASE("bad rules are refused with the field, and change nothing") {
    const uint64_t last = r.j->Stats().last_seq;
    h->set_hold_s(30);
    auto bad = r.j->ApplyStoreRules(rules);
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.status().ToString().find("hold_times[0].hold_s") != std::string::npos);
    rules.set_store_id("store-0001");
    h->set_hold_s(600);
    bad = r.j->ApplyStoreRules(rules);
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.status().ToString().find("store_id") != std::string::npos);
    v1::StoreRules empty;
    empty.set_store_id("store-0042");
    CHECK_FALSE(r.j->ApplyStoreRules(empty).ok());
    CHECK(r.j->Stats().last_seq == last);
  }
}

TEST_CASE("perishables: production events are checked like every device event") {
  Rig r;
  v1::Event e = Production("p-1", "x", 0, "deli", r.clock.now());
  auto res = r.j->Append({e});
  REQUIRE_FALSE(res.ok());
  CHECK(res.status().ToString().find("production.qty") != std::string::npos);
  e = Production("p-1", "x", 1, "", r.clock.now());
  res = r.j->Append({e});
  REQUIRE_FALSE(res.ok());
  CHECK(res.status().ToString().find("production.location") != std::string::npos);
  v1::Event forged = Base("f-1");
  forged.mutable_price_in_force()->set_sku("x");
  res = r.j->Append({forged});
  REQUIRE_FALSE(res.ok());
  CHECK(res.status().ToString().find("price_in_force") != std::string::npos);
  CHECK(r.j->Stats().last_seq == 0);
}

TEST_CASE("cold chain: an excursion shorter than the grace raises nothing, a longer one one alert") {
  Rig r([](JournalOptions& o) {
    o.cold_chain_grace = minutes(10);
    o.cold_chain_clear_after = minutes(5);
    o.silent_after = hours(24);
    o.sensor_limits["fridge-2"] = {.location = "dairy fridge 2",
                                   .metric = "temp_mc",
                                   .min_value = 0,
                                   .max_value = 5000};
  });
  int n = 0;
  auto read = [&](int64_t v) { r.Append1(Reading("r-" + std::to_string(++n), "fridge-2", v)); };
  read(4000);
  r.clock.Advance(minutes(1));
  read(7000);  // door open
  r.clock.Advance(minutes(9));
  CHECK(r.Tick().raised == 0);
  read(4500);  // back within 9 minutes: no excursion
  r.clock.Advance(minutes(20));
  CHECK(r.Tick().raised == 0);
  CHECK(r.Open(v1::Alert::TEMPERATURE_EXCURSION).empty());

  const int64_t out_at = r.clock.now();
  read(6500);
  r.clock.Advance(minutes(4));
  read(8200);
  r.clock.Advance(minutes(4));
  read(7100);
  r.clock.Advance(minutes(2));  // 10 minutes outside: the grace ran out
  CHECK(r.Tick().raised == 1);
  auto open = r.Open(v1::Alert::TEMPERATURE_EXCURSION);
  REQUIRE(open.size() == 1);
  CHECK(open[0].sensor_id() == "fridge-2");
  CHECK(open[0].location() == "dairy fridge 2");
  CHECK(open[0].since() == out_at);
  CHECK(open[0].max_seen() == 8200);
  CHECK(open[0].min_seen() == 6500);
  // Once per excursion, whatever more readings or ticks come.
  read(9000);
  r.clock.Advance(minutes(30));
  CHECK(r.Tick().raised == 0);
  CHECK(r.Open(v1::Alert::TEMPERATURE_EXCURSION).size() == 1);
  // Back inside: cleared after clear_after, with the excursion's extremes.
  read(4000);
  r.clock.Advance(minutes(4));
  CHECK(r.Tick().cleared == 0);
  r.clock.Advance(minutes(1));
  CHECK(r.Tick().cleared == 1);
  CHECK(r.Open(v1::Alert::TEMPERATURE_EXCURSION).empty());
  auto cleared = r.Events(v1::Event::kAlertCleared);
  REQUIRE(cleared.size() == 1);
  CHECK(cleared[0].event().alert_cleared().reason() == "back_in_limits");
  CHECK(cleared[0].event().alert_cleared().max_seen() == 9000);
  auto v = r.View();
  REQUIRE(v.sensors.size() == 1);
  CHECK(v.sensors[0].excursions() == 1);
  CHECK(v.sensors[0].limits_from() == "config");
  CHECK(v.sensors[0].last_value() == 4000);

  SUBCASE("HQ's limits win over the local ones") {
    v1::StoreRules rules;
    rules.set_store_id("store-0042");
    auto* l = rules.add_sensor_limits();
    l->set_sensor_id("fridge-2");
    l->set_location("dairy 2 (HQ)");
    l->set_min_value(0);
    l->set_max_value(10000);
    REQUIRE(r.j->ApplyStoreRules(rules).ok());
    read(9000);  // inside HQ's limits
    r.clock.Advance(minutes(30));
    CHECK(r.Tick().raised == 0);
    v = r.View();
    CHECK(v.sensors[0].limits_from() == "hq");
    CHECK(v.sensors[0].max_value() == 10000);
  }
}

TEST_CASE("cold chain: a silent sensor raises SENSOR_SILENT, its next reading clears it") {
  Rig r([](JournalOptions& o) {
    o.silent_after = minutes(15);
    o.sensor_limits["freezer-1"] = {.location = "freezer aisle",
                                    .metric = "temp_mc",
                                    .min_value = -25000,
                                    .max_value = -15000};
  });
  // Configured and never heard of: silent 15 min after the journal watched it.
  r.clock.Advance(minutes(14));
  CHECK(r.Tick().raised == 0);
  r.clock.Advance(minutes(1));
  CHECK(r.Tick().raised == 1);
  auto open = r.Open(v1::Alert::SENSOR_SILENT);
  REQUIRE(open.size() == 1);
  CHECK(open[0].sensor_id() == "freezer-1");
  r.Append1(Reading("r-1", "freezer-1", -18000));
  CHECK(r.Open(v1::Alert::SENSOR_SILENT).empty());
  // A sensor first heard of by its readings is watched too.
  r.Append1(Reading("r-2", "fridge-9", 3000));
  r.clock.Advance(minutes(16));
  CHECK(r.Tick().raised == 2);
  CHECK(r.Open(v1::Alert::SENSOR_SILENT).size() == 2);
  CHECK(r.Tick().raised == 0);
  // Readings of another metric do not count as the cold-chain reading.
  v1::Event door = Reading("r-3", "fridge-9", 1);
  door.mutable_sensor()->set_metric("door_open");
  r.Append1(door);
  CHECK(r.Open(v1::Alert::SENSOR_SILENT).size() == 2);
}

TEST_CASE("prices: a price_in_force event when an update comes into force, never before") {
  Rig r;
  const int64_t t0 = r.clock.now();
  v1::PriceUpdate now;
  now.set_store_id("store-0042");
  now.set_sku("milk-1l");
  now.set_price(129);
  now.set_currency("EUR");
  now.set_effective_from(t0 - kSec);
  auto a = r.j->ApplyPriceUpdate(now);
  REQUIRE(a.ok());
  auto inforce = r.Events(v1::Event::kPriceInForce);
  REQUIRE(inforce.size() == 1);  // in force at once: right after its update
  CHECK(inforce[0].seq() == a->seq + 1);
  CHECK(inforce[0].event().price_in_force().price() == 129);

  v1::PriceUpdate later = now;
  later.set_price(99);
  later.set_effective_from(t0 + 3600 * kSec);
  auto b = r.j->ApplyPriceUpdate(later);
  REQUIRE(b.ok());
  CHECK(r.Events(v1::Event::kPriceInForce).size() == 1);
  CHECK(r.Tick().next_due_us == t0 + 3600 * kSec);
  r.clock.Advance(std::chrono::microseconds(3600 * kSec - 1));
  CHECK(r.Tick().prices == 0);
  r.clock.Advance(std::chrono::microseconds(1));
  CHECK(r.Tick().prices == 1);
  inforce = r.Events(v1::Event::kPriceInForce);
  REQUIRE(inforce.size() == 2);
  CHECK(inforce[1].event().price_in_force().price() == 99);
  CHECK(inforce[1].event().price_in_force().update_seq() == b->seq);
  CHECK(inforce[1].recorded_at() == t0 + 3600 * kSec);
  CHECK(r.Tick().prices == 0);

  // An update that arrives late, older than the price in force, never holds.
  v1::PriceUpdate stale = now;
  stale.set_price(150);
  stale.set_effective_from(t0 + 60 * kSec);
  REQUIRE(r.j->ApplyPriceUpdate(stale).ok());
  CHECK(r.Events(v1::Event::kPriceInForce).size() == 2);
  auto p = r.j->PriceAt("milk-1l", r.clock.now());
  REQUIRE(p.ok());
  CHECK(p->price == 99);
}

}  // namespace
}  // namespace storegw::storage
