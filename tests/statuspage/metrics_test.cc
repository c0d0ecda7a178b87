// Unit tests of the strict Prometheus parser the other tests rely on, and of
// RenderMetrics() (metrics.h) through it.
#include <doctest/doctest.h>

#include <string>

#include "storegw/monitor/metrics.h"
#include "prom_parser.h"

using namespace storegw;
using storegw::test::ParsePrometheus;
using storegw::test::PromDoc;

namespace {

std::string Why(const std::string& text) {
  std::string error;
  auto doc = ParsePrometheus(text, &error);
  return doc ? "" : error;
}

}  // namespace

TEST_CASE("prometheus parser: accepts a well-formed exposition") {
  const std::string text =
      "# HELP a_total Things.\n"
      "# TYPE a_total counter\n"
      "a_total{reason=\"x\\\"y\\\\z\\n\"} 3\n"
      "a_total{reason=\"b\"} 0 1700000000000\n"
      "# a comment\n"
      "\n"
      "# TYPE h histogram\n"
      "h_bucket{le=\"0.1\"} 1\n"
      "h_bucket{le=\"1\"} 1\n"
      "h_bucket{le=\"+Inf\"} 2\n"
      "h_sum 3.5\n"
      "h_count 2\n"
      "g -1.5e-3\n"
      "g2 NaN\n";
  std::string error;
  auto doc = ParsePrometheus(text, &error);
  REQUIRE_MESSAGE(doc, error);
  CHECK(doc->Value("a_total", {{"reason", "x\"y\\z\n"}}) == 3);
  CHECK(doc->Value("h_count") == 2);
  CHECK(doc->Value("g") == -0.0015);
  CHECK(doc->families.at("h").samples.size() == 5);
  CHECK(doc->order == std::vector<std::string>{"a_total", "h", "g", "g2"});
  // g and g2 have neither HELP nor TYPE: fine for the format, not for us.
  CHECK(test::CheckStoregwConventions(*doc) == "a_total: not prefixed storegw_");
}

TEST_CASE("prometheus parser: rejects what breaks the format") {
  CHECK(Why("") == "empty exposition");
  CHECK(Why("a 1") == "the last line does not end in \\n");
  CHECK(Why("a 1\r\n").find("\\r") != std::string::npos);
  CHECK(Why("1a 1\n").find("bad metric name") != std::string::npos);
  CHECK(Why("a{1b=\"x\"} 1\n").find("bad label name") != std::string::npos);
  CHECK(Why("a{__x=\"x\"} 1\n").find("bad label name") != std::string::npos);
  CHECK(Why("a{b=\"x\\t\"} 1\n").find("bad escape") != std::string::npos);
  CHECK(Why("a{b=\"x} 1\n").find("unterminated") != std::string::npos);
  CHECK(Why("a{b=\"x\",} 1\n").find("trailing comma") != std::string::npos);
  CHECK(Why("a{b=\"x\",b=\"y\"} 1\n").find("twice") != std::string::npos);
  CHECK(Why("a abc\n").find("bad value") != std::string::npos);
  CHECK(Why("a 1 12x\n").find("bad timestamp") != std::string::npos);
  CHECK(Why("a 1\na 2\n").find("series a twice") != std::string::npos);
  CHECK(Why("a 1\nb 1\na{x=\"1\"} 2\n").find("two groups") != std::string::npos);
  CHECK(Why("a 1\n# TYPE a gauge\n").find("after its samples") != std::string::npos);
  CHECK(Why("# TYPE a gauge\n# TYPE a gauge\na 1\n").find("second TYPE") != std::string::npos);
  CHECK(Why("# HELP a x\n# HELP a y\na 1\n").find("second HELP") != std::string::npos);
  CHECK(Why("# TYPE a number\na 1\n").find("unknown TYPE") != std::string::npos);
  CHECK(Why("# HELP a bad \\t escape\na 1\n").find("bad escape") != std::string::npos);
  CHECK(Why("#TYPE a gauge\n").find("comment") != std::string::npos);
  CHECK(Why("# TYPE a_total counter\na_total -1\n").find("negative") != std::string::npos);
  CHECK(Why("# TYPE g gauge\ng{le=\"1\"} 1\n").find("le label") != std::string::npos);
}

TEST_CASE("prometheus parser: histogram rules") {
  const std::string head = "# TYPE h histogram\n";
  CHECK(Why(head + "h_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n") == "");
  CHECK(Why(head + "h_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n")
            .find("not cumulative") != std::string::npos);
  CHECK(
      Why(head + "h_bucket{le=\"1\"} 1\nh_bucket{le=\"2\"} 1\nh_sum 1\nh_count 1\n").find("+Inf") !=
      std::string::npos);
  CHECK(Why(head + "h_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 1\n"
                   "h_sum 1\nh_count 1\n")
            .find("strictly increasing") != std::string::npos);
  CHECK(Why(head + "h_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 1\n").find("_count differs") !=
        std::string::npos);
  CHECK(Why(head + "h_bucket{le=\"+Inf\"} 1\nh_count 1\n").find("missing") != std::string::npos);
  CHECK(Why(head + "h_bucket 1\n").find("without an le") != std::string::npos);
  CHECK(Why(head + "h_bucket{le=\"x\"} 1\n").find("not a number") != std::string::npos);
  CHECK(Why(head + "h_total 1\n").find("only _bucket") == std::string::npos);  // another family
  CHECK(Why(head + "h 1\n").find("only _bucket") != std::string::npos);
  CHECK(Why(head + "h_bucket{le=\"+Inf\"} 1\nh_sum{le=\"1\"} 1\nh_count 1\n")
            .find("must not have an le") != std::string::npos);
}

TEST_CASE("metrics: the latency histogram counts into the right buckets") {
  gateway::LatencyHistogram h({0.001, 0.01, 0.1});
  h.Observe(std::chrono::microseconds(500));   // <= 0.001
  h.Observe(std::chrono::microseconds(1000));  // == 0.001: "le" is inclusive
  h.Observe(std::chrono::milliseconds(50));    // <= 0.1
  h.Observe(std::chrono::seconds(3));          // +Inf
  auto s = h.Take();
  CHECK(s.counts == std::vector<uint64_t>{2, 0, 1, 1});
  CHECK(s.count == 4);
  CHECK(s.sum_seconds == doctest::Approx(3.0515));
}

TEST_CASE("metrics: the exposition parses strictly and carries the snapshot's numbers") {
  gateway::MetricsInput in;
  in.status.set_store_id("store \"7\"");  // needs escaping in a label value
  in.status.set_gateway_id("gw-1");
  in.status.set_version("0.1.0");
  in.status.set_link("connecting");
  in.status.set_oldest_undelivered_age_s(8040);
  in.status.set_reconnects(0);
  auto* a = in.status.add_alerts();
  a->set_kind(v1::Alert::OVERSELL);
  in.status.add_alerts()->set_kind(v1::Alert::OVERSELL);
  in.status.add_alerts()->set_kind(v1::Alert::LOW_STOCK);
  in.journal.epoch = 1234567890123ull;
  in.journal.last_seq = 500;
  in.journal.watermark = 200;
  in.journal.backlog_events = 300;
  in.journal.backlog_bytes = 45678;
  in.journal.journal_bytes = 1 << 20;
  in.journal.max_bytes = 1 << 30;
  in.journal.full = true;
  in.journal.events_appended = 503;
  in.journal.commits = 77;
  devices::ApiCounters api;
  api.events_accepted = 500;
  api.events_duplicate = 9;
  api.rejected_invalid = 2;
  api.rejected_unavailable = 4;
  api.responses_by_code = {{200, 40}, {400, 2}, {503, 4}};
  in.api = api;
  sync::UplinkStatus up;
  up.events_sent = 260;
  up.events_acked = 200;
  up.reconnects = 3;
  up.connect_failures = 5;
  in.uplink = up;
  in.http_responses = api.responses_by_code;
  in.http_responses.emplace_back(200, 2);  // the status listener's
  in.http_responses.emplace_back(401, 1);
  gateway::LatencyHistogram h;
  h.Observe(std::chrono::microseconds(700));
  h.Observe(std::chrono::milliseconds(3));
  in.commit_latency = h.Take();
  in.start_time_us = 1'700'000'000'500'000;

  const std::string text = gateway::RenderMetrics(in);
  std::string error;
  auto doc = ParsePrometheus(text, &error);
  REQUIRE_MESSAGE(doc, error << "\n" << text);
  CHECK_MESSAGE(test::CheckStoregwConventions(*doc) == "", text);

  CHECK(doc->Value("storegw_info", {{"version", "0.1.0"},
                                    {"store_id", "store \"7\""},
                                    {"gateway_id", "gw-1"},
                                    {"epoch", "1234567890123"}}) == 1);
  CHECK(doc->Value("storegw_start_time_seconds") == 1700000000.5);
  CHECK(doc->Value("storegw_backlog_events") == 300);
  CHECK(doc->Value("storegw_backlog_bytes") == 45678);
  CHECK(doc->Value("storegw_oldest_undelivered_age_seconds") == 8040);
  CHECK(doc->Value("storegw_last_seq") == 500);
  CHECK(doc->Value("storegw_ack_watermark") == 200);
  CHECK(doc->Value("storegw_journal_bytes") == 1 << 20);
  CHECK(doc->Value("storegw_journal_max_bytes") == 1 << 30);
  CHECK(doc->Value("storegw_journal_full") == 1);
  CHECK(doc->Value("storegw_journal_events_appended_total") == 503);
  CHECK(doc->Value("storegw_journal_commits_total") == 77);
  CHECK(doc->Value("storegw_events_ingested_total") == 500);
  CHECK(doc->Value("storegw_events_duplicate_total") == 9);
  CHECK(doc->Value("storegw_events_rejected_total", {{"reason", "invalid"}}) == 2);
  CHECK(doc->Value("storegw_events_rejected_total", {{"reason", "unavailable"}}) == 4);
  CHECK(doc->Value("storegw_events_rejected_total", {{"reason", "auth"}}) == 0);
  CHECK(doc->Value("storegw_events_sent_total") == 260);
  CHECK(doc->Value("storegw_events_acked_total") == 200);
  CHECK(doc->Value("storegw_uplink_reconnects_total") == 3);
  CHECK(doc->Value("storegw_uplink_connect_failures_total") == 5);
  CHECK(doc->Value("storegw_link_up") == 0);
  CHECK(doc->Value("storegw_link_state", {{"state", "connecting"}}) == 1);
  CHECK(doc->Value("storegw_link_state", {{"state", "down"}}) == 0);
  CHECK(doc->Value("storegw_alerts_open", {{"kind", "oversell"}}) == 2);
  CHECK(doc->Value("storegw_alerts_open", {{"kind", "low_stock"}}) == 1);
  CHECK(doc->Value("storegw_alerts_open", {{"kind", "count_mismatch"}}) == 0);
  CHECK(doc->Value("storegw_http_requests_total", {{"code", "200"}}) == 42);
  CHECK(doc->Value("storegw_http_requests_total", {{"code", "401"}}) == 1);
  CHECK(doc->Value("storegw_commit_latency_seconds_count") == 2);
  CHECK(doc->Value("storegw_commit_latency_seconds_bucket", {{"le", "0.0005"}}) == 0);
  CHECK(doc->Value("storegw_commit_latency_seconds_bucket", {{"le", "0.001"}}) == 1);
  CHECK(doc->Value("storegw_commit_latency_seconds_bucket", {{"le", "0.005"}}) == 2);
  CHECK(doc->Value("storegw_commit_latency_seconds_bucket", {{"le", "+Inf"}}) == 2);
  CHECK(doc->Value("storegw_commit_latency_seconds_sum") == doctest::Approx(0.0037));
  CHECK(doc->families.at("storegw_commit_latency_seconds").type == "histogram");
  CHECK(doc->families.at("storegw_events_rejected_total").type == "counter");
  CHECK(doc->families.at("storegw_backlog_events").type == "gauge");
}

TEST_CASE("metrics: before the device API and without an uplink, every family is still there") {
  gateway::MetricsInput in;
  in.status.set_link("down");
  in.status.set_reconnects(0);
  in.commit_latency = gateway::LatencyHistogram().Take();
  std::string error;
  auto doc = ParsePrometheus(gateway::RenderMetrics(in), &error);
  REQUIRE_MESSAGE(doc, error);
  CHECK(test::CheckStoregwConventions(*doc) == "");
  CHECK(doc->Value("storegw_events_ingested_total") == 0);
  CHECK(doc->Value("storegw_events_sent_total") == 0);
  CHECK(doc->Value("storegw_link_up") == 0);
  CHECK(doc->Value("storegw_link_state", {{"state", "down"}}) == 1);
  CHECK(doc->Value("storegw_commit_latency_seconds_count") == 0);
  CHECK(doc->families.count("storegw_http_requests_total") == 1);
  CHECK(doc->families.at("storegw_http_requests_total").samples.empty());
}

TEST_CASE("metrics: downstream counters by kind, outcome and refusal reason") {
  gateway::MetricsInput in;
  in.status.set_link("up");
  sync::DownstreamCounters d;
  d.snapshots_applied = 3;
  d.snapshots_stale = 1;
  d.snapshot_lines_applied = 50002;
  d.snapshot_lines_stale = 4;
  d.prices_applied = 7;
  d.prices_duplicate = 2;
  d.rules_applied = 4;
  devices::FeedStats feed;
  feed.clients = 3;
  feed.clients_total = 9;
  feed.rejected_busy = 2;
  feed.changes_sent = 1234;
  feed.drops_by_reason = {{"slow_client", 5}};
  in.feed = feed;
  d.refused = {{"undecodable", 5}, {"invalid_currency", 1}, {"other_epoch", 2}};
  d.queued = 1;
  d.last_snapshot_apply = std::chrono::microseconds(257000);
  in.downstream = d;
  std::string error;
  auto doc = ParsePrometheus(gateway::RenderMetrics(in), &error);
  REQUIRE_MESSAGE(doc, error);
  using L = test::PromLabels;
  CHECK(doc->Value("storegw_downstream_messages_total",
                   L{{"kind", "stock"}, {"outcome", "applied"}}) == 3);
  CHECK(doc->Value("storegw_downstream_messages_total",
                   L{{"kind", "stock"}, {"outcome", "stale"}}) == 1);
  CHECK(doc->Value("storegw_downstream_messages_total",
                   L{{"kind", "prices"}, {"outcome", "duplicate"}}) == 2);
  CHECK(doc->Value("storegw_downstream_messages_total",
                   L{{"kind", "rules"}, {"outcome", "applied"}}) == 4);
  CHECK(doc->Value("storegw_downstream_accepted_total") == 17);
  CHECK(doc->Value("storegw_changes_clients") == 3);
  CHECK(doc->Value("storegw_changes_clients_total") == 9);
  CHECK(doc->Value("storegw_changes_rejected_busy_total") == 2);
  CHECK(doc->Value("storegw_changes_sent_total") == 1234);
  CHECK(doc->Value("storegw_changes_dropped_total", L{{"reason", "slow_client"}}) == 5);
  CHECK(doc->Value("storegw_changes_dropped_total", L{{"reason", "write_timeout"}}) == 0);
  CHECK(doc->Value("storegw_downstream_refused_total", L{{"reason", "undecodable"}}) == 5);
  CHECK(doc->Value("storegw_downstream_refused_total", L{{"reason", "invalid_currency"}}) == 1);
  CHECK(doc->Value("storegw_downstream_refused_total", L{{"reason", "other_epoch"}}) == 2);
  // Reasons never seen are listed at 0, so an alert rule can rely on them.
  CHECK(doc->Has("storegw_downstream_refused_total", L{{"reason", "other_store"}}));
  CHECK(doc->Value("storegw_downstream_refused_total", L{{"reason", "other_store"}}) == 0);
  CHECK(doc->Value("storegw_downstream_snapshot_lines_applied_total") == 50002);
  CHECK(doc->Value("storegw_downstream_price_updates_total") == 7);
  CHECK(doc->Value("storegw_downstream_queued") == 1);
  CHECK(doc->Value("storegw_downstream_snapshot_apply_seconds") == doctest::Approx(0.257));

  // Without a downlink the families are there, at zero.
  auto empty = ParsePrometheus(gateway::RenderMetrics(gateway::MetricsInput{}), &error);
  REQUIRE_MESSAGE(empty, error);
  CHECK(empty->Value("storegw_downstream_accepted_total") == 0);
  CHECK(empty->Has("storegw_downstream_refused_total", L{{"reason", "undecodable"}}));
}

TEST_CASE("metrics: per-device families, the busiest max_metric_devices by name, the rest as other") {
  gateway::MetricsInput in;
  v1::DeviceList list;
  const struct {
    const char* id;
    uint64_t requests, accepted;
    bool silent;
  } devs[] = {{"till-01", 50, 900, false}, {"till-02", 40, 700, true}, {"hh-1", 3, 5, false},
              {"hh-2", 2, 4, true}, {"", 7, 0, false}};
  for (const auto& d : devs) {
    v1::DeviceStatus* s = list.add_devices();
    s->set_device_id(d.id);
    s->set_requests(d.requests);
    s->set_events_accepted(d.accepted);
    s->set_last_seen_at(1'795'790'000'000'000);
    s->set_silent(d.silent);
    if (d.silent) list.set_silent(list.silent() + 1);
  }
  v1::RejectCount* r = list.mutable_devices(0)->add_rejected();
  r->set_reason("conflict");
  r->set_count(2);
  in.devices = list;
  in.max_metric_devices = 2;
  const std::string text = gateway::RenderMetrics(in);
  std::string error;
  auto doc = ParsePrometheus(text, &error);
  REQUIRE_MESSAGE(doc, error << "\n" << text);
  CHECK_MESSAGE(test::CheckStoregwConventions(*doc) == "", text);
  CHECK(doc->Value("storegw_devices") == 5);
  CHECK(doc->Value("storegw_devices_silent") == 2);
  CHECK(doc->Value("storegw_device_requests_total", {{"device", "till-01"}}) == 50);
  CHECK(doc->Value("storegw_device_events_accepted_total", {{"device", "till-02"}}) == 700);
  // hh-1, hh-2 and the unidentified requests are summed.
  CHECK(doc->Value("storegw_device_requests_total", {{"device", "other"}}) == 12);
  CHECK(doc->Value("storegw_device_events_accepted_total", {{"device", "other"}}) == 9);
  CHECK(doc->Value("storegw_device_silent", {{"device", "till-02"}}) == 1);
  CHECK(doc->Value("storegw_device_silent", {{"device", "other"}}) == 1);
  CHECK(doc->Value("storegw_device_rejected_total", {{"device", "till-01"}, {"reason", "conflict"}}) ==
        2);
  CHECK(doc->Value("storegw_device_last_seen_timestamp_seconds", {{"device", "till-01"}}) ==
        1795790000);
  CHECK(text.find("device=\"hh-1\"") == std::string::npos);
}

TEST_CASE("metrics: perishables and cold chain, with device-chosen names escaped") {
  gateway::MetricsInput in;
  in.status.set_updated_at(1'795'790'000'000'000);
  in.status.set_batches_open(7);
  in.status.set_batches_overdue(2);
  // A sensor id and a location are device input: quotes, backslashes and a
  // newline must come out escaped, not break the exposition.
  const std::string odd_id = "fr\"idge\\2";
  const std::string odd_loc = "dairy \"B\"\nback";
  v1::SensorState* a = in.status.add_sensors();
  a->set_sensor_id(odd_id);
  a->set_location(odd_loc);
  a->set_metric("temp_mc");
  a->set_last_value(-18250);  // negative: a gauge, not an unsigned number
  a->set_last_at(1'795'790'000'000'000 - 42'500'000);
  a->set_excursions(3);
  a->set_excursion_alert_seq(812);
  v1::SensorState* b = in.status.add_sensors();
  b->set_sensor_id("freezer-1");
  b->set_location("freezer 1");
  b->set_metric("temp_mc");
  b->set_last_value(-19000);
  b->set_last_at(1'795'790'000'000'000 - 1200'000'000);
  b->set_silent_alert_seq(815);
  v1::SensorState* c = in.status.add_sensors();  // watched, never read
  c->set_sensor_id("lamp-1");
  c->set_location("hot counter");
  c->set_metric("temp_mc");
  // The alert counts cover the new kinds.
  for (auto [kind, open] : {std::pair{v1::Alert::REMOVE_FROM_SHELF, 2},
                            {v1::Alert::TEMPERATURE_EXCURSION, 1},
                            {v1::Alert::SENSOR_SILENT, 1}}) {
    v1::AlertCount* n = in.status.add_alert_counts();
    n->set_kind(kind);
    n->set_open(static_cast<uint64_t>(open));
  }

  const std::string text = gateway::RenderMetrics(in);
  std::string error;
  auto doc = ParsePrometheus(text, &error);
  REQUIRE_MESSAGE(doc, error << "\n" << text);
  CHECK_MESSAGE(test::CheckStoregwConventions(*doc) == "", text);
  using L = test::PromLabels;
  CHECK(doc->Value("storegw_perishable_batches_open") == 7);
  CHECK(doc->Value("storegw_perishable_batches_overdue") == 2);
  CHECK(doc->families.at("storegw_perishable_batches_open").type == "gauge");
  CHECK(doc->Value("storegw_temperature_excursions_total",
                   L{{"sensor", odd_id}, {"location", odd_loc}}) == 3);
  CHECK(doc->Value("storegw_temperature_excursions_total",
                   L{{"sensor", "freezer-1"}, {"location", "freezer 1"}}) == 0);
  CHECK(doc->families.at("storegw_temperature_excursions_total").type == "counter");
  CHECK(doc->Value("storegw_sensor_in_excursion", L{{"sensor", odd_id}}) == 1);
  CHECK(doc->Value("storegw_sensor_in_excursion", L{{"sensor", "freezer-1"}}) == 0);
  CHECK(doc->Value("storegw_sensor_in_excursion", L{{"sensor", "lamp-1"}}) == 0);
  CHECK(doc->Value("storegw_sensor_silent", L{{"sensor", odd_id}}) == 0);
  CHECK(doc->Value("storegw_sensor_silent", L{{"sensor", "freezer-1"}}) == 1);
  CHECK(doc->Value("storegw_sensor_last_reading", L{{"sensor", odd_id}, {"metric", "temp_mc"}}) ==
        -18250);
  CHECK(doc->Value("storegw_sensor_last_reading",
                   L{{"sensor", "freezer-1"}, {"metric", "temp_mc"}}) == -19000);
  CHECK(doc->Value("storegw_sensor_last_reading_age_seconds", L{{"sensor", odd_id}}) == 42.5);
  CHECK(doc->Value("storegw_sensor_last_reading_age_seconds", L{{"sensor", "freezer-1"}}) == 1200);
  // A sensor that never sent a reading has no reading series (not a fake 0).
  CHECK_FALSE(doc->Has("storegw_sensor_last_reading",
                       L{{"sensor", "lamp-1"}, {"metric", "temp_mc"}}));
  CHECK_FALSE(doc->Has("storegw_sensor_last_reading_age_seconds", L{{"sensor", "lamp-1"}}));
  // The escaping itself, as written on the wire.
  CHECK(text.find(R"(sensor="fr\"idge\\2",location="dairy \"B\"\nback")") != std::string::npos);
  CHECK(doc->Value("storegw_alerts_open", L{{"kind", "remove_from_shelf"}}) == 2);
  CHECK(doc->Value("storegw_alerts_open", L{{"kind", "temperature_excursion"}}) == 1);
  CHECK(doc->Value("storegw_alerts_open", L{{"kind", "sensor_silent"}}) == 1);
  CHECK(doc->Value("storegw_alerts_open", L{{"kind", "oversell"}}) == 0);
  CHECK(doc->Value("storegw_alerts_acknowledged", L{{"kind", "sensor_silent"}}) == 0);
}

TEST_CASE("metrics: no batches and no sensors still give every perishables family") {
  std::string error;
  auto doc = ParsePrometheus(gateway::RenderMetrics(gateway::MetricsInput{}), &error);
  REQUIRE_MESSAGE(doc, error);
  CHECK(doc->Value("storegw_perishable_batches_open") == 0);
  CHECK(doc->Value("storegw_perishable_batches_overdue") == 0);
  for (const char* f : {"storegw_temperature_excursions_total", "storegw_sensor_in_excursion",
                        "storegw_sensor_silent", "storegw_sensor_last_reading",
                        "storegw_sensor_last_reading_age_seconds"}) {
    INFO(f);
    REQUIRE(doc->families.count(f) == 1);
    CHECK(doc->families.at(f).samples.empty());
  }
  // Every alert kind is listed at 0, the new ones included.
  CHECK(doc->Has("storegw_alerts_open", {{"kind", "remove_from_shelf"}}));
  CHECK(doc->Has("storegw_alerts_open", {{"kind", "temperature_excursion"}}));
  CHECK(doc->Has("storegw_alerts_open", {{"kind", "sensor_silent"}}));
}
