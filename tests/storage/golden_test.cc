// Golden journals (tests/storage/golden/README.md): a journal written by
// schema version 1 opens, with every event, its ledger, identity and
// watermark, in this and every later release.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "test_util.h"

namespace storegw::storage {
namespace {

using namespace testing;  // NOLINT

const fs::path kGoldenDir = fs::path(STOREGW_TEST_SOURCE_DIR) / "storage" / "golden";
constexpr uint64_t kGoldenV2Epoch = 6893333018122542640ull;  // golden/README.md

TEST_CASE("golden: a schema v1 journal opens with its events, ledger, identity and watermark") {
  TempDir dir;
  const fs::path golden = kGoldenDir / "journal-v1.db";
  REQUIRE(fs::exists(golden));
  fs::copy_file(golden, dir / "journal.db");  // Open writes: never the golden itself
  REQUIRE(SqlInt(dir / "journal.db", "PRAGMA user_version") == 1);

  auto o = Options(dir.path());
  o.store_id = "store-golden";
  o.gateway_id = "gw-golden";
  FakeClock clock;
  o.now_us = clock.fn();
  auto j = MustOpen(o);
  const OpenReport report = j->open_report();
  CHECK_FALSE(report.created);
  CHECK(report.corrupt_moved_to.empty());
  CHECK(j->epoch() == 17032433578379392470ull);

  const JournalStats st = j->Stats();
  CHECK(st.first_seq == 1);
  CHECK(st.last_seq == 8);
  CHECK(st.watermark == 3);
  CHECK(st.backlog_events == 5);

  auto all = ReadAll(*j);
  REQUIRE(all.size() == 8);
  const char* ids[] = {"g-receipt-1", "g-sale-1", "g-sale-2", nullptr,
                       "g-count-1",   nullptr,    "g-adj-1",  "g-sensor-1"};
  const int64_t t0 = 1'700'000'000'000'000;
  const int64_t at[] = {t0,
                        t0,
                        t0 + 1'000'000,
                        t0 + 1'000'000,
                        t0 + 2'000'000,
                        t0 + 3'000'000,
                        t0 + 4'000'000,
                        t0 + 4'000'000};
  for (size_t i = 0; i < all.size(); ++i) {
    CAPTURE(i);
    CHECK(all[i].seq() == i + 1);
    CHECK(all[i].epoch() == j->epoch());
    CHECK(all[i].store_id() == "store-golden");
    CHECK(all[i].gateway_id() == "gw-golden");
    CHECK(all[i].recorded_at() == at[i]);
    if (ids[i]) CHECK(all[i].event().event_id() == ids[i]);
  }
  CHECK(all[0].event().receipt().lines_size() == 2);
  CHECK(all[0].event().receipt().delivery_id() == "DN-1");
  CHECK(all[1].event().sale().lines(0).unit_price() == 129);
  CHECK(all[1].event().sale().lines(0).currency() == "EUR");
  CHECK(all[1].event().device_id() == "till-1");
  REQUIRE(all[3].event().has_alert());
  CHECK(all[3].event().alert().kind() == v1::Alert::OVERSELL);
  CHECK(all[3].event().alert().sku() == "bread-white");
  CHECK(all[3].event().alert().on_hand() == -1);
  CHECK(all[3].event().alert().cause_seq() == 3);
  CHECK(all[3].event().device_id() == "gw-golden");
  CHECK(all[4].event().count().qty() == 5);
  REQUIRE(all[5].event().has_stock_snapshot());
  CHECK(all[5].event().stock_snapshot().as_of_seq() == 2);
  CHECK(all[5].event().stock_snapshot().hq_version() == 7);
  CHECK(all[6].event().adjustment().lines(0).qty() == -3);
  CHECK(all[7].event().sensor().value() == 3500);

  auto milk = j->Stock("milk-1l");
  REQUIRE(milk.ok());
  CHECK(milk->on_hand == 27);
  CHECK(milk->base_qty == 30);
  CHECK(milk->as_of_seq == 2);
  CHECK(milk->hq_version == 7);
  auto bread = j->Stock("bread-white");
  REQUIRE(bread.ok());
  CHECK(bread->on_hand == 5);
  CHECK(bread->base_qty == 0);
  CHECK(bread->as_of_seq == 0);

  // The count cleared the oversell: no open oversell alert.
  auto alerts = j->OpenAlerts(10);
  REQUIRE(alerts.ok());
  for (const auto& a : *alerts) CHECK(a.kind() != v1::Alert::OVERSELL);

  // It keeps working: duplicates are still known, seqs continue, the
  // count's recorded delta still feeds the ledger.
  // (a retry is the same event: resend what the journal holds)
  v1::Event again;
  for (const auto& je : ReadAll(*j)) {
    if (je.event().event_id() == "g-sale-1") again = je.event();
  }
  REQUIRE(again.event_id() == "g-sale-1");
  auto dup = MustAppend(*j, {again});
  CHECK(dup[0].duplicate);
  CHECK(dup[0].seq == 2);
  auto next = MustAppend(*j, {Sale("after-upgrade", {{"bread-white", 5}})});
  CHECK(next[0].seq == 9);
  CHECK(OnHand(*j, "bread-white") == 0);

  // Schema 2 added the prices table (empty after the migration) and the
  // low-stock state of each sku: prices work on the migrated journal.
  CHECK(j->PriceAt("milk-1l", t0).status().code() == StatusCode::kNotFound);
  v1::PriceUpdate p;
  p.set_store_id("store-golden");
  p.set_sku("milk-1l");
  p.set_price(109);
  p.set_currency("EUR");
  p.set_effective_from(t0);
  auto pr = j->ApplyPriceUpdate(p);
  REQUIRE_MESSAGE(pr.ok(), pr.status().ToString());
  CHECK(pr->seq == 10);
  CHECK_FALSE(pr->duplicate);
  auto price = j->PriceAt("milk-1l", t0 + 1);
  REQUIRE_MESSAGE(price.ok(), price.status().ToString());
  CHECK(price->price == 109);
  CHECK(price->currency == "EUR");
  CHECK(price->seq == 10);
  j.reset();
  CHECK(SqlInt(dir / "journal.db", "SELECT count(*) FROM prices") == 1);
  CHECK(SqlInt(dir / "journal.db",
               "SELECT count(*) FROM pragma_table_info('prices') WHERE name IN "
               "('sku', 'effective_from', 'seq', 'price', 'currency')") == 5);
  // Every migrated stock row starts without an open low-stock alert.
  CHECK(SqlInt(dir / "journal.db", "SELECT count(*) FROM stock WHERE low_stock != 0") == 0);
  CHECK(SqlInt(dir / "journal.db", "SELECT count(*) FROM stock") == 2);

  // A migration (when this release's schema is newer) says where it came from.
  const int64_t now_version = SqlInt(dir / "journal.db", "PRAGMA user_version");
  CHECK(now_version >= 1);
  CHECK(now_version >= 2);
  CHECK(report.migrated_from == 1);
  auto v = VerifyJournal(dir.path());
  REQUIRE_MESSAGE(v.ok(), v.status().ToString());
  CHECK(v->full_replay);
  CHECK(v->last_seq == 11);  // the price (seq 10) is in force at once: price_in_force 11
  CHECK(v->watermark == 3);
}

TEST_CASE("golden: a schema v2 journal written by the storegw daemon opens and migrates to 5") {
  TempDir dir;
  const fs::path golden = kGoldenDir / "journal-v2.db";
  REQUIRE(fs::exists(golden));
  fs::copy_file(golden, dir / "journal.db");
  REQUIRE(SqlInt(dir / "journal.db", "PRAGMA user_version") == 2);
  REQUIRE(SqlInt(dir / "journal.db",
                 "SELECT count(*) FROM sqlite_master WHERE name = 'devices'") == 0);

  auto o = Options(dir.path());
  o.store_id = "store-golden2";
  o.gateway_id = "gw-golden2";
  auto j = MustOpen(o);
  const OpenReport report = j->open_report();
  CHECK_FALSE(report.created);
  CHECK(report.corrupt_moved_to.empty());
  CHECK(report.migrated_from == 2);
  CHECK(j->epoch() == kGoldenV2Epoch);
  auto all = ReadAll(*j);
  REQUIRE(all.size() == 4);
  const char* ids[] = {"g2-receipt-1", "g2-sale-1", "g2-count-1", nullptr};
  for (size_t i = 0; i < all.size(); ++i) {
    CAPTURE(i);
    CHECK(all[i].seq() == i + 1);
    if (ids[i]) {
      CHECK(all[i].event().event_id() == ids[i]);
    } else {
      CHECK(all[i].event().alert().kind() == v1::Alert::COUNT_MISMATCH);
    }
  }
  CHECK(OnHand(*j, "milk-1l") == 22);
  CHECK(OnHand(*j, "bread-white") == 5);
  // Skus of an older journal alerted before: they stay tracked.
  auto milk = j->Stock("milk-1l");
  REQUIRE(milk.ok());
  CHECK(milk->tracked);
  auto sum = j->Alerts();
  REQUIRE(sum.ok());
  CHECK(sum->skus_untracked == 0);
  CHECK(sum->skus_total == 2);
  // Its alert can be acknowledged (the new columns are there).
  auto ack = j->AcknowledgeAlert(4, "golden", "");
  REQUIRE_MESSAGE(ack.ok(), ack.status().ToString());
  CHECK(ack->alert.acked_seq() == 5);
  // The device table is there, empty, and works.
  auto devs = j->LoadDevices();
  REQUIRE(devs.ok());
  CHECK(devs->empty());
  REQUIRE(j->SaveDevices({{"till-1", "x"}}).ok());
  // A retry of a journaled event is still a duplicate with its seq.
  auto dup = MustAppend(*j, {all[1].event()});
  CHECK(dup[0].duplicate);
  CHECK(dup[0].seq == 2);
  j.reset();
  CHECK(SqlInt(dir / "journal.db", "PRAGMA user_version") == 5);
  CHECK(SqlInt(dir / "journal.db", "SELECT count(*) FROM devices") == 1);
  auto v = VerifyJournal(dir.path());
  REQUIRE_MESSAGE(v.ok(), v.status().ToString());
  CHECK(v->last_seq == 5);
}

}  // namespace
}  // namespace storegw::storage
