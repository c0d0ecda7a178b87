// Unit tests of the status document (storegw/monitor/status.h) over a real journal.
#include <doctest/doctest.h>

#include <atomic>
#include <thread>

#include "storegw/monitor/health.h"
#include "storegw/monitor/metrics.h"
#include "storegw/monitor/status.h"
#include "test_util.h"
#include "version.h"

using namespace storegw;
using storegw::test::TempDir;

namespace {

constexpr int64_t kJournalClock = 1'700'000'000'000'000;  // us

std::unique_ptr<storage::Journal> OpenJournal(
    const TempDir& dir, const storage::JournalOptions::TestHooks& hooks = {}) {
  storage::JournalOptions o;
  o.test_hooks = hooks;
  o.data_dir = dir / "data";
  o.store_id = "store-9";
  o.gateway_id = "gw-3";
  o.now_us = [] { return kJournalClock; };
  auto j = storage::Journal::Open(o);
  REQUIRE_MESSAGE(j.ok(), j.status().ToString());
  return std::move(*j);
}

v1::Event Receipt(const std::string& id, int64_t qty) {
  v1::Event e;
  e.set_event_id(id);
  e.set_device_id("till-01");
  auto* line = e.mutable_receipt()->add_lines();
  line->set_sku("SKU-1");
  line->set_qty(qty);
  return e;
}

}  // namespace

TEST_CASE("gateway status: built from the journal's stats, link down without an uplink") {
  TempDir dir;
  auto journal = OpenJournal(dir);
  gateway::Config config;
  int64_t now = kJournalClock + 90'000'000;  // 90 s after the events were recorded
  auto steady = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
  gateway::StatusReporter reporter(*journal, config, [&] { return now; }, [&] { return steady; });

  v1::GatewayStatus s = reporter.Build();
  CHECK(s.store_id() == "store-9");
  CHECK(s.gateway_id() == "gw-3");
  CHECK(s.epoch() == journal->epoch());
  CHECK(s.last_seq() == 0);
  CHECK(s.backlog_events() == 0);
  CHECK(s.oldest_undelivered_age_s() == 0);
  CHECK(s.link() == "down");
  CHECK(s.last_error().find("not available") != std::string::npos);
  CHECK(s.journal_max_bytes() == config.journal.max_bytes);
  CHECK(s.journal_bytes() > 0);
  CHECK(s.version() == gateway::kVersion);
  CHECK(s.online());
  CHECK(s.updated_at() == now);
  CHECK(s.alerts_size() == 0);

  reporter.Sample();
  std::vector<v1::Event> events = {Receipt("r1", 5), Receipt("r2", 5), Receipt("r3", 5)};
  REQUIRE(journal->Append(events).ok());
  steady += std::chrono::milliseconds(1500);
  reporter.Sample();
  REQUIRE(journal->Ack(2).ok());

  s = reporter.Build();
  CHECK(s.last_seq() == 3);
  CHECK(s.ingest_rate() == doctest::Approx(2.0));  // 3 events in the 1.5 s between the samples
  // The watermark update is folded into the next commit: wait for it.
  CHECK(test::WaitFor([&] { return reporter.Build().watermark() == 2; }, std::chrono::seconds(10)));
  s = reporter.Build();
  CHECK(s.backlog_events() == 1);
  CHECK(s.backlog_bytes() > 0);
  CHECK(s.oldest_undelivered_age_s() == 90);

  std::string json = reporter.Json();
  CHECK(json.find("\"link\":\"down\"") != std::string::npos);
  CHECK(json.find("\"last_seq\":\"3\"") != std::string::npos);      // proto3 JSON: 64-bit as string
  CHECK(json.find("\"journal_full\":false") != std::string::npos);  // zero values printed
}

TEST_CASE("gateway status: open alerts are listed - a disabled uplink says so") {
  TempDir dir;
  auto journal = OpenJournal(dir);
  gateway::Config config;
  config.uplink.transport = "none";
  gateway::StatusReporter reporter(*journal, config);

  v1::Event count;  // a baseline: an untracked sku raises no alert
  count.set_event_id("k1");
  count.set_device_id("till-01");
  count.mutable_count()->set_sku("SKU-GONE");
  count.mutable_count()->set_qty(0);
  v1::Event sale;
  sale.set_event_id("s1");
  sale.set_device_id("till-01");
  auto* line = sale.mutable_sale()->add_lines();
  line->set_sku("SKU-GONE");
  line->set_qty(4);
  line->set_unit_price(100);
  line->set_currency("EUR");
  REQUIRE(journal->Append({count, sale}).ok());

  v1::GatewayStatus s = reporter.Build();
  CHECK(s.last_error().find("uplink.transport") != std::string::npos);
  REQUIRE(s.alerts_size() == 1);
  CHECK(s.alerts_open_total() == 1);
  REQUIRE(s.alert_counts_size() == 7);  // a row per kind
  CHECK(s.alert_counts(0).kind() == v1::Alert::OVERSELL);
  CHECK(s.alert_counts(0).open() == 1);
  CHECK(s.skus_total() == 1);
  CHECK(s.skus_untracked() == 0);
  CHECK(s.alerts(0).kind() == v1::Alert::OVERSELL);
  CHECK(s.alerts(0).sku() == "SKU-GONE");
  CHECK(s.alerts(0).on_hand() == -4);
}

TEST_CASE("gateway status: a checkpointer that cannot work shows on the status, health and /metrics") {
  TempDir dir;
  std::atomic<bool> fail{true};
  storage::JournalOptions::TestHooks hooks;
  hooks.fail_checkpointer_open = [&] { return fail.load(); };
  auto journal = OpenJournal(dir, hooks);
  gateway::Config config;
  gateway::StatusReporter reporter(*journal, config);

  REQUIRE(test::WaitFor([&] { return !reporter.Build().journal_error().empty(); },
                        std::chrono::seconds(20)));
  v1::GatewayStatus s = reporter.Build();
  INFO(s.journal_error());
  CHECK(s.journal_error().find("checkpointer") != std::string::npos);
  const gateway::Health h = gateway::EvaluateHealth(s, gateway::HealthPolicy{});
  CHECK(h.level == gateway::HealthLevel::kDegraded);
  bool named = false;
  for (const auto& r : h.reasons) named = named || r.find("the journal has a problem") == 0;
  CHECK(named);

  gateway::MetricsInput in;
  in.status = s;
  in.journal = journal->Stats();
  const std::string metrics = gateway::RenderMetrics(in);
  CHECK(metrics.find("\nstoregw_journal_healthy 0\n") != std::string::npos);
  // A failing checkpointer is not a failed integrity check.
  CHECK(metrics.find("\nstoregw_journal_integrity_failed 0\n") != std::string::npos);
  CHECK(metrics.find("\nstoregw_journal_checkpoint_failures_total 0\n") == std::string::npos);
  CHECK(metrics.find("\nstoregw_journal_wal_bytes ") != std::string::npos);

  // It recovers by itself once the connection opens again.
  fail = false;
  CHECK(test::WaitFor([&] { return reporter.Build().journal_error().empty(); },
                      std::chrono::seconds(20)));
  in.journal = journal->Stats();
  CHECK(gateway::RenderMetrics(in).find("\nstoregw_journal_healthy 1\n") != std::string::npos);
  // A failed integrity check is (the journal's stats say so).
  in.journal.integrity_error = "journal quick_check: row 7 missing from index";
  in.journal.integrity_checked = true;
  const std::string damaged = gateway::RenderMetrics(in);
  CHECK(damaged.find("\nstoregw_journal_integrity_failed 1\n") != std::string::npos);
  CHECK(damaged.find("\nstoregw_journal_integrity_checked 1\n") != std::string::npos);
}
