// Untracked skus, the true alert counts, acknowledging alerts and paging
// the stock list, through the Journal API.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "test_util.h"

namespace storegw::storage {
namespace {

using namespace testing;

uint64_t AlertsOpenOf(const AlertSummary& s, v1::Alert::Kind kind) {
  for (const auto& c : s.counts) {
    if (c.kind() == kind) return c.open();
  }
  FAIL("no count for kind " << static_cast<int>(kind));
  return 0;
}

uint64_t AlertsAckedOf(const AlertSummary& s, v1::Alert::Kind kind) {
  for (const auto& c : s.counts) {
    if (c.kind() == kind) return c.acknowledged();
  }
  return 0;
}

AlertSummary MustSummary(Journal& j) {
  auto s = j.Alerts();
  REQUIRE_MESSAGE(s.ok(), s.status().ToString());
  return *s;
}

TEST_CASE("untracked: selling a sku the gateway has no baseline for raises nothing") {
  LedgerFixture f([](JournalOptions& o) { o.low_stock_default = 5; });
  const uint64_t s1 = f.Append1(Sale("u-s1", {{"never-seen", 3}, {"other", 1}}));
  CHECK(f.last() == s1);  // no OVERSELL, no LOW_STOCK
  CHECK(OnHand(*f.j, "never-seen") == -3);  // the movement is still recorded
  auto row = f.j->Stock("never-seen");
  REQUIRE(row.ok());
  CHECK_FALSE(row->tracked);
  AlertSummary sum = MustSummary(*f.j);
  CHECK(sum.skus_total == 2);
  CHECK(sum.skus_untracked == 2);
  CHECK(sum.open_total == 0);

  SUBCASE("a receipt is a baseline: the next sale below zero alerts") {
    // on_hand 1, tracked: below the low-stock threshold 5 at once.
    const uint64_t r = f.Append1(Receipt("u-r1", {{"never-seen", 4}}));
    CHECK(f.Stock("never-seen").tracked);
    CHECK(MustSummary(*f.j).skus_untracked == 1);
    CHECK(f.last() == r + 1);
    CHECK(f.At(r + 1).event().alert().kind() == v1::Alert::LOW_STOCK);
    const uint64_t s2 = f.Append1(Sale("u-s2", {{"never-seen", 2}}));
    CHECK(f.last() == s2 + 1);
    CHECK(f.At(s2 + 1).event().alert().kind() == v1::Alert::OVERSELL);
  }
  SUBCASE("a receipt that leaves on_hand below zero alerts at once") {
    // The ledger now holds the movements since the gateway first saw the
    // sku; below zero it says so (a count is what fixes it).
    const uint64_t r = f.Append1(Receipt("u-r1", {{"never-seen", 1}}));
    CHECK(f.last() == r + 2);
    CHECK(f.At(r + 1).event().alert().kind() == v1::Alert::OVERSELL);
  }
  SUBCASE("the first count is the baseline, without COUNT_MISMATCH") {
    const uint64_t k = f.Append1(Count("u-k1", "never-seen", 30));
    CHECK(f.last() == k);
    CHECK(OnHand(*f.j, "never-seen") == 30);
    CHECK(f.Stock("never-seen").tracked);
  }
  SUBCASE("a snapshot line is a baseline") {
    v1::StockSnapshot snap = Snapshot(f.j->epoch(), f.last(), 1, {{"never-seen", 2}});
    REQUIRE(f.Snap(snap).outcome == SnapshotResult::Outcome::kApplied);
    CHECK(f.Stock("never-seen").tracked);
    CHECK_FALSE(f.Stock("other").tracked);
  }
  SUBCASE("tracked survives a restart") {
    f.Append1(Count("u-k1", "never-seen", 1));
    f.Reopen();
    CHECK(f.Stock("never-seen").tracked);
    CHECK_FALSE(f.Stock("other").tracked);
    // LOW_STOCK was raised by the count; now OVERSELL, of never-seen only.
    const uint64_t s2 = f.Append1(Sale("u-s2", {{"never-seen", 2}, {"other", 5}}));
    CHECK(f.last() == s2 + 1);
    CHECK(f.At(s2 + 1).event().alert().sku() == "never-seen");
    CHECK(f.At(s2 + 1).event().alert().kind() == v1::Alert::OVERSELL);
  }
}

TEST_CASE("alerts: the counts are true whatever the list shows") {
  LedgerFixture f;
  std::vector<v1::Event> batch;
  for (int i = 0; i < 120; ++i) {
    batch.push_back(Count("base-" + std::to_string(i), "sku-" + std::to_string(i), 1));
  }
  MustAppend(*f.j, batch);
  batch.clear();
  for (int i = 0; i < 120; ++i) {
    batch.push_back(Sale("over-" + std::to_string(i), {{"sku-" + std::to_string(i), 2}}));
  }
  MustAppend(*f.j, batch);
  auto shown = f.j->OpenAlerts(50);
  REQUIRE(shown.ok());
  CHECK(shown->size() == 50);
  AlertSummary sum = MustSummary(*f.j);
  CHECK(sum.open_total == 120);
  CHECK(AlertsOpenOf(sum, v1::Alert::OVERSELL) == 120);
  CHECK(AlertsOpenOf(sum, v1::Alert::LOW_STOCK) == 0);
  REQUIRE(sum.counts.size() == 7);  // every kind, in kind order
  CHECK(sum.counts[0].kind() == v1::Alert::OVERSELL);
  // Clearing one is counted at once.
  f.Append1(Receipt("back", {{"sku-7", 5}}));
  CHECK(MustSummary(*f.j).open_total == 119);
}

TEST_CASE("alerts: acknowledging journals an alert_ack event and records it") {
  LedgerFixture f;
  f.Append1(Count("k", "milk", 1));
  const uint64_t s = f.Append1(Sale("s", {{"milk", 3}}));
  const uint64_t alert = s + 1;
  REQUIRE(f.At(alert).event().has_alert());
  const uint64_t before = f.last();
  f.clock.Advance(std::chrono::seconds(5));

  auto ack = f.j->AcknowledgeAlert(alert, "Ana (night shift)", "recount at 6");
  REQUIRE_MESSAGE(ack.ok(), ack.status().ToString());
  CHECK_FALSE(ack->already);
  CHECK(ack->alert.seq() == alert);
  CHECK(ack->alert.kind() == v1::Alert::OVERSELL);
  CHECK(ack->alert.sku() == "milk");
  CHECK(ack->alert.acked_seq() == before + 1);
  CHECK(ack->alert.acked_by() == "Ana (night shift)");
  CHECK(ack->alert.acked_at() == f.clock.now());
  CHECK(f.last() == before + 1);
  const auto e = f.At(before + 1);
  REQUIRE(e.event().has_alert_ack());
  CHECK(e.event().alert_ack().alert_seq() == alert);
  CHECK(e.event().alert_ack().acked_by() == "Ana (night shift)");
  CHECK(e.event().alert_ack().note() == "recount at 6");
  CHECK(e.event().alert_ack().sku() == "milk");
  CHECK(e.event().occurred_at() == f.clock.now());
  CHECK(e.event().event_id().rfind("gw:", 0) == 0);

  // The open list and the counts show it; it stays open until cleared.
  auto open = f.j->OpenAlerts(10);
  REQUIRE(open.ok());
  REQUIRE(open->size() == 1);
  CHECK((*open)[0].acked_by() == "Ana (night shift)");
  CHECK((*open)[0].ack_note() == "recount at 6");
  AlertSummary sum = MustSummary(*f.j);
  CHECK(AlertsOpenOf(sum, v1::Alert::OVERSELL) == 1);
  CHECK(AlertsAckedOf(sum, v1::Alert::OVERSELL) == 1);

  SUBCASE("a second acknowledgement changes nothing") {
    auto again = f.j->AcknowledgeAlert(alert, "Bo", "");
    REQUIRE(again.ok());
    CHECK(again->already);
    CHECK(again->alert.acked_by() == "Ana (night shift)");
    CHECK(f.last() == before + 1);
  }
  SUBCASE("it survives a restart") {
    f.Reopen();
    auto o = f.j->OpenAlerts(10);
    REQUIRE(o.ok());
    REQUIRE(o->size() == 1);
    CHECK((*o)[0].acked_seq() == before + 1);
  }
  SUBCASE("the journal verifies") {
    f.j.reset();
    auto v = VerifyJournal(f.dir.path());
    REQUIRE_MESSAGE(v.ok(), v.status().ToString());
  }
}

TEST_CASE("alerts: refused acknowledgements name the problem and change nothing") {
  LedgerFixture f;
  f.Append1(Count("k", "milk", 1));
  const uint64_t s = f.Append1(Sale("s", {{"milk", 3}}));
  const uint64_t alert = s + 1;
  const uint64_t before = f.last();
  auto expect = [&](uint64_t seq, const std::string& by, const std::string& note,
                    StatusCode code, const std::string& text) {
    auto r = f.j->AcknowledgeAlert(seq, by, note);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == code);
    CHECK_MESSAGE(r.status().message().find(text) != std::string::npos, r.status().ToString());
    CHECK(f.last() == before);
  };
  expect(alert, "", "", StatusCode::kInvalidArgument, "1 to 64");
  expect(alert, std::string(65, 'x'), "", StatusCode::kInvalidArgument, "1 to 64");
  expect(alert, "ana\nbo", "", StatusCode::kInvalidArgument, "control");
  expect(alert, "ana", std::string(257, 'n'), StatusCode::kInvalidArgument, "256");
  expect(0, "ana", "", StatusCode::kInvalidArgument, "at least 1");
  expect(9999, "ana", "", StatusCode::kNotFound, "alert 9999 does not exist");
  expect(s, "ana", "", StatusCode::kNotFound, "does not exist");  // a sale is not an alert
  // A cleared alert cannot be acknowledged.
  f.Append1(Receipt("r", {{"milk", 10}}));
  auto r = f.j->AcknowledgeAlert(alert, "ana", "");
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == StatusCode::kFailedPrecondition);
  CHECK(r.status().message().find("cleared") != std::string::npos);
  CHECK(f.last() == before + 1);  // only the receipt
}

TEST_CASE("stock list: pages by sku with a cursor") {
  LedgerFixture f;
  std::vector<v1::Event> batch;
  for (int i = 0; i < 25; ++i) {
    char sku[16];
    std::snprintf(sku, sizeof sku, "p-%02d", i);
    batch.push_back(Receipt("pr-" + std::to_string(i), {{sku, 1}}));
  }
  batch.push_back(Receipt("q", {{"q-1", 1}}));
  MustAppend(*f.j, batch);
  std::vector<std::string> seen;
  std::string after;
  for (int page = 0; page < 10; ++page) {
    auto rows = f.j->StockByPrefix("p-", 10, after);
    REQUIRE(rows.ok());
    if (rows->empty()) break;
    for (const auto& r : *rows) seen.push_back(r.sku);
    after = rows->back().sku;
  }
  REQUIRE(seen.size() == 25);
  for (int i = 0; i < 25; ++i) {
    char sku[16];
    std::snprintf(sku, sizeof sku, "p-%02d", i);
    CHECK(seen[static_cast<size_t>(i)] == sku);
  }
  // A cursor before the prefix starts at the prefix; one past it is empty.
  auto first = f.j->StockByPrefix("p-", 3, "a");
  REQUIRE(first.ok());
  CHECK(first->front().sku == "p-00");
  auto none = f.j->StockByPrefix("p-", 3, "p-99");
  REQUIRE(none.ok());
  CHECK(none->empty());
}

}  // namespace
}  // namespace storegw::storage
