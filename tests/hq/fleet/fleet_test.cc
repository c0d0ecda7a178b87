// The fleet view's rules (sync/hq/fleet: BuildFleet), its JSON (what
// /v1/fleet answers and `storegw-hq status` reads back) and /metrics,
// parsed by the strict Prometheus parser of the gateway's tests.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include <google/protobuf/util/json_util.h>

#include "common/ids.h"
#include "prom_parser.h"
#include "storegw/hq/fleet.h"

using namespace storegw;
using namespace storegw::hq;

namespace {

constexpr int64_t kNow = 1796104800000000;  // 2026-12-01T06:00:00Z
constexpr int64_t kSec = 1000000;

FleetRow Row(const std::string& store, const std::string& gw) {
  FleetRow r;
  r.store_id = store;
  r.gateway_id = gw;
  r.epoch = 0xF00DFACE12345678ull;  // above 2^53: JSON must keep every digit
  r.epochs_seen = 1;
  r.applied_seq = 100;
  r.last_batch_at_us = kNow - 5 * kSec;
  return r;
}

// With a status received `ago_s` seconds ago saying `online`.
FleetRow WithStatus(FleetRow r, bool online, int64_t ago_s, uint64_t backlog = 0,
                    uint64_t age_s = 0) {
  v1::GatewayStatus s;
  s.set_store_id(r.store_id);
  s.set_gateway_id(r.gateway_id);
  s.set_epoch(r.epoch);
  s.set_online(online);
  s.set_backlog_events(backlog);
  s.set_oldest_undelivered_age_s(age_s);
  s.set_link(online ? "up" : "down");
  s.set_version("0.1.0");
  r.status = s;
  r.status_received_at_us = kNow - ago_s * kSec;
  r.online_since_us = kNow - 3600 * kSec;
  return r;
}

FleetOptions Opts() {
  FleetOptions o;
  o.offline_after = std::chrono::seconds(90);
  return o;
}

}  // namespace

TEST_CASE("fleet: online, reported offline, silent, and a gateway without a status channel") {
  std::vector<FleetRow> rows = {
      WithStatus(Row("store-a", "gw-01"), true, 10),            // online, its status is fresh
      WithStatus(Row("store-b", "gw-01"), false, 600),          // its last will said offline
      WithStatus(Row("store-c", "gw-01"), true, 300, 40, 120),  // says online but silent
      Row("store-d", "gw-01"),                                  // HTTPS: batches only
  };
  rows[2].last_batch_at_us = kNow - 200 * kSec;
  rows[1].online_since_us = kNow - 600 * kSec;  // when it went offline
  const fleet::v1::Fleet f = BuildFleet(rows, kNow, Opts());
  REQUIRE(f.gateways_size() == 4);
  CHECK(f.generated_at() == kNow);
  CHECK(f.offline_after_s() == 90);

  // Worst first: the longest offline (store-b, 10 min), then the silent
  // one (since its last batch, 200 s ago), then the online ones.
  const auto& b = f.gateways(0);
  CHECK(b.store_id() == "store-b");
  CHECK_FALSE(b.online());
  CHECK(b.offline_reason() == "reported");
  CHECK(b.since() == kNow - 600 * kSec);
  CHECK(b.for_s() == 600);

  const auto& c = f.gateways(1);
  CHECK(c.store_id() == "store-c");
  CHECK_FALSE(c.online());
  CHECK(c.offline_reason() == "silent");
  CHECK(c.last_seen() == kNow - 200 * kSec);  // the newest of status and batch
  CHECK(c.since() == c.last_seen());
  CHECK(c.for_s() == 200);
  CHECK(c.backlog_events() == 40);
  // The backlog kept ageing after the status was sent 300 s ago.
  CHECK(c.lag_s() == 120 + 300);

  const auto& a = f.gateways(2);
  CHECK(a.store_id() == "store-a");
  CHECK(a.online());
  CHECK(a.offline_reason().empty());
  CHECK(a.since() == kNow - 3600 * kSec);
  CHECK(a.for_s() == 3600);
  CHECK(a.has_status());
  CHECK(a.link() == "up");
  CHECK(a.lag_s() == 0);

  const auto& d = f.gateways(3);
  CHECK(d.store_id() == "store-d");
  CHECK(d.online());  // a batch 5 s ago
  CHECK_FALSE(d.has_status());
  CHECK(d.since() == 0);  // unknown without a status
  CHECK(d.for_s() == 0);

  CHECK(f.summary().gateways() == 4);
  CHECK(f.summary().online() == 2);
  CHECK(f.summary().offline() == 2);
  CHECK(f.summary().backlog_events() == 40);
  CHECK(f.summary().max_lag_s() == 420);
}

TEST_CASE("fleet: the offline_after boundary, alerts, new epochs, and the order of online ones") {
  FleetRow edge = WithStatus(Row("s-edge", "gw"), true, 90);
  edge.last_batch_at_us = 0;
  FleetRow past = WithStatus(Row("s-past", "gw"), true, 91);
  past.last_batch_at_us = 0;
  FleetRow alerts = WithStatus(Row("s-alerts", "gw"), true, 1);
  alerts.status->add_alerts()->set_sku("SKU-1");
  alerts.status->add_alerts()->set_sku("SKU-2");
  alerts.epochs_seen = 3;
  FleetRow backlog = WithStatus(Row("s-backlog", "gw"), true, 1, 5000, 30);
  FleetRow lag = WithStatus(Row("s-lag", "gw"), true, 1, 10, 900);
  const fleet::v1::Fleet f = BuildFleet({edge, past, alerts, backlog, lag}, kNow, Opts());
  REQUIRE(f.gateways_size() == 5);
  CHECK(f.gateways(0).store_id() == "s-past");  // 91 s of silence: offline
  CHECK_FALSE(f.gateways(0).online());
  // Online ones: the largest lag, then backlog, then open alerts.
  CHECK(f.gateways(1).store_id() == "s-lag");
  CHECK(f.gateways(2).store_id() == "s-backlog");
  CHECK(f.gateways(3).store_id() == "s-alerts");
  CHECK(f.gateways(3).open_alerts() == 2);
  CHECK(f.gateways(3).alerts_size() == 2);
  CHECK(f.gateways(3).epochs_seen() == 3);
  CHECK(f.gateways(4).store_id() == "s-edge");  // exactly 90 s: still online
  CHECK(f.gateways(4).online());
  CHECK(f.summary().open_alerts() == 2);
  CHECK(f.summary().new_epochs() == 1);
  // Nothing at all: an empty fleet.
  CHECK(BuildFleet({}, kNow, Opts()).gateways_size() == 0);
}

TEST_CASE("fleet: /v1/fleet's JSON has every field and 64-bit numbers as strings") {
  fleet::v1::Fleet f = BuildFleet({WithStatus(Row("store-a", "gw-01"), true, 10)}, kNow, Opts());
  f.set_version("9.9.9");
  const std::string json = FleetToJson(f);
  CHECK(json.find("\"epoch\":\"17297757506775570040\"") != std::string::npos);
  CHECK(json.find("\"store_error\":\"\"") != std::string::npos);  // present while empty
  CHECK(json.find("\"offline_reason\":\"\"") != std::string::npos);
  CHECK(json.find("\"generated_at\":\"1796104800000000\"") != std::string::npos);
  fleet::v1::Fleet back;
  REQUIRE(google::protobuf::util::JsonStringToMessage(json, &back).ok());
  CHECK(back.gateways(0).epoch() == 0xF00DFACE12345678ull);
  CHECK(back.version() == "9.9.9");
  CHECK(back.SerializeAsString() == f.SerializeAsString());
}

TEST_CASE("fleet: /metrics is strict Prometheus text with the per-gateway families") {
  std::vector<FleetRow> rows;
  for (int i = 0; i < 3; ++i) {
    rows.push_back(WithStatus(Row(storegw::test::Id("store-", i), "gw-01"), i != 1, 5, 10 * i, 7));
    rows.back().applied_seq = 1000 + static_cast<uint64_t>(i);
  }
  FleetMetricsInput in;
  in.fleet = BuildFleet(rows, kNow, Opts());
  in.fleet.set_version("0.1.0");
  in.receiver.batches_received = 12;
  in.receiver.batches_stored = 10;
  in.receiver.events_stored = 500;
  in.receiver.events_duplicate = 20;
  in.receiver.acks_published = 10;
  in.receiver.refused["conflict"] = 2;
  in.receiver.mqtt_connected = true;
  in.http_responses = {{200, 5}, {404, 1}, {200, 2}};
  in.start_time_us = kNow - 60 * kSec;
  const std::string text = RenderFleetMetrics(in);

  std::string error;
  auto doc = storegw::test::ParsePrometheus(text, &error);
  REQUIRE_MESSAGE(doc, error << "\n" << text);
  CHECK_MESSAGE(storegw::test::CheckStoregwConventions(*doc) == "", text);

  using L = storegw::test::PromLabels;
  const L b0{{"store", "store-0"}, {"gateway", "gw-01"}};
  const L b1{{"store", "store-1"}, {"gateway", "gw-01"}};
  const L b2{{"store", "store-2"}, {"gateway", "gw-01"}};
  CHECK(doc->Value("storegw_hq_gateway_online", b0) == 1);
  CHECK(doc->Value("storegw_hq_gateway_online", b1) == 0);
  CHECK(doc->Value("storegw_hq_gateway_backlog_events", b2) == 20);
  CHECK(doc->Value("storegw_hq_gateway_lag_seconds", b2) == 7 + 5);
  CHECK(doc->Value("storegw_hq_gateway_lag_seconds", b0) == 0);  // no backlog
  CHECK(doc->Value("storegw_hq_gateway_applied_seq", b1) == 1001);
  CHECK(doc->Value("storegw_hq_gateways", {{"state", "offline"}}) == 1);
  CHECK(doc->Value("storegw_hq_gateways", {{"state", "online"}}) == 2);
  CHECK(doc->Value("storegw_hq_batches_received_total") == 12);
  CHECK(doc->Value("storegw_hq_events_stored_total") == 500);
  CHECK(doc->Value("storegw_hq_events_duplicate_total") == 20);
  CHECK(doc->Value("storegw_hq_acks_published_total") == 10);
  CHECK(doc->Value("storegw_hq_mqtt_connected") == 1);
  CHECK(doc->Value("storegw_hq_store_up") == 1);
  CHECK(doc->Value("storegw_hq_http_requests_total", {{"code", "200"}}) == 7);
  CHECK(doc->Value("storegw_hq_start_time_seconds") == doctest::Approx(1796104740.0));
  CHECK(doc->Value("storegw_hq_info", {{"version", "0.1.0"}}) == 1);
  // Every refuse reason is listed, also at 0.
  CHECK(doc->Value("storegw_hq_batches_refused_total", {{"reason", "conflict"}}) == 2);
  for (const char* r :
       {"undecodable", "not_contiguous", "invalid_event", "topic_mismatch", "superseded_epoch"}) {
    CHECK_MESSAGE(doc->Value("storegw_hq_batches_refused_total", {{"reason", r}}) == 0, r);
  }

  // The store unreadable: it says so, and there are no per-gateway series.
  FleetMetricsInput down;
  down.fleet.set_store_error("connection refused");
  auto d = storegw::test::ParsePrometheus(RenderFleetMetrics(down), &error);
  REQUIRE_MESSAGE(d, error);
  CHECK(d->Value("storegw_hq_store_up") == 0);
  CHECK_FALSE(d->Has("storegw_hq_gateway_online", b0));
}
