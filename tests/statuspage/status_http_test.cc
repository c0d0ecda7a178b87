// Unit tests of the status routes (status_http.h) and the history ring
// (history.h), over a real journal in a temp dir, without a server.
#include <doctest/doctest.h>

#include <atomic>
#include <string>

#include "storegw/monitor/history.h"
#include "prom_parser.h"
#include "storegw/monitor/status.h"
#include "storegw/monitor/status_http.h"
#include "storegw/monitor/status_page.h"
#include "test_util.h"

using namespace storegw;
using storegw::test::TempDir;

namespace {

std::unique_ptr<storage::Journal> OpenJournal(const TempDir& dir) {
  storage::JournalOptions o;
  o.data_dir = dir / "data";
  o.store_id = "store-9";
  o.gateway_id = "gw-3";
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

devices::HttpRequest Get(const std::string& path, const std::string& auth = "",
                         std::vector<std::pair<std::string, std::string>> query = {}) {
  devices::HttpRequest r;
  r.method = "GET";
  r.path = path;
  r.authorization = auth;
  r.query = std::move(query);
  return r;
}

std::string Header(const devices::HttpResponse& r, const std::string& name) {
  for (const auto& [k, v] : r.headers) {
    if (k == name) return v;
  }
  return "";
}

}  // namespace

TEST_CASE("status routes: page, status, history and metrics without a token") {
  TempDir dir;
  auto journal = OpenJournal(dir);
  gateway::Config config;
  gateway::StatusReporter reporter(*journal, config);
  gateway::StatusHttp http(reporter, *journal, "");

  CHECK_FALSE(http.Handle(Get("/v1/events")).has_value());  // not ours: the device API's
  CHECK_FALSE(http.Handle(Get("/nope")).has_value());

  auto page = http.Handle(Get("/"));
  REQUIRE(page);
  CHECK(page->status == 200);
  CHECK(page->content_type == "text/html; charset=utf-8");
  CHECK(page->body == gateway::StatusPageHtml());
  CHECK(Header(*page, "Content-Security-Policy").find("default-src 'none'") != std::string::npos);
  CHECK(Header(*page, "Cache-Control") == "no-store");

  auto status = http.Handle(Get("/v1/status"));
  REQUIRE(status);
  CHECK(status->status == 200);
  CHECK(status->content_type == "application/json");
  CHECK(status->body.find("\"store_id\":\"store-9\"") != std::string::npos);

  auto post = http.Handle(devices::HttpRequest{"POST", "/metrics", {}, "", ""});
  REQUIRE(post);
  CHECK(post->status == 405);
  CHECK(Header(*post, "Allow") == "GET, HEAD");

  auto bad_since = http.Handle(Get("/v1/status/history", "", {{"since", "yesterday"}}));
  REQUIRE(bad_since);
  CHECK(bad_since->status == 400);

  // Metrics reflect the journal and what the device API reports.
  REQUIRE(journal->Append({Receipt("r1", 5), Receipt("r2", 5)}).ok());
  http.SetApiCounters([] {
    devices::ApiCounters c;
    c.events_accepted = 2;
    c.responses_by_code = {{200, 1}};
    return c;
  });
  auto obs = http.AppendObserver();
  obs(std::chrono::milliseconds(2), true);
  obs(std::chrono::milliseconds(9), false);  // a failed append is not a commit
  auto metrics = http.Handle(Get("/metrics"));
  REQUIRE(metrics);
  CHECK(metrics->status == 200);
  CHECK(metrics->content_type == std::string(gateway::kMetricsContentType));
  std::string error;
  auto doc = test::ParsePrometheus(metrics->body, &error);
  REQUIRE_MESSAGE(doc, error);
  CHECK(test::CheckStoregwConventions(*doc) == "");
  CHECK(doc->Value("storegw_last_seq") == 2);
  CHECK(doc->Value("storegw_backlog_events") == 2);
  CHECK(doc->Value("storegw_events_ingested_total") == 2);
  CHECK(doc->Value("storegw_commit_latency_seconds_count") == 1);
  CHECK(doc->Value("storegw_http_requests_total", {{"code", "200"}}) == 1);
  CHECK(doc->Value("storegw_journal_max_bytes") == static_cast<double>(config.journal.max_bytes));
}

TEST_CASE("status routes: with a token, every route needs it and the page also takes ?token") {
  TempDir dir;
  auto journal = OpenJournal(dir);
  gateway::Config config;
  gateway::StatusReporter reporter(*journal, config);
  const std::string token = "s3cret-token-0123456789";
  gateway::StatusHttp http(reporter, *journal, token);

  for (const char* path : {"/", "/kitchen", "/v1/status", "/v1/status/history", "/metrics"}) {
    CAPTURE(path);
    auto none = http.Handle(Get(path));
    REQUIRE(none);
    CHECK(none->status == 401);
    CHECK(Header(*none, "WWW-Authenticate").find("Bearer") == 0);
    CHECK(none->body.find(token) == std::string::npos);  // never shown
    auto wrong = http.Handle(Get(path, "Bearer s3cret-token-0123456780"));
    CHECK(wrong->status == 401);
    auto prefix = http.Handle(Get(path, "Bearer s3cret-token-012345678"));
    CHECK(prefix->status == 401);
    auto longer = http.Handle(Get(path, "Bearer " + token + "x"));
    CHECK(longer->status == 401);
    auto basic = http.Handle(Get(path, "Basic " + token));
    CHECK(basic->status == 401);
    auto right = http.Handle(Get(path, "Bearer " + token));
    CHECK(right->status == 200);
    auto lower = http.Handle(Get(path, "bearer  " + token));
    CHECK(lower->status == 200);
    auto query = http.Handle(Get(path, "", {{"token", token}}));
    const bool page = std::string(path) == "/" || std::string(path) == "/kitchen";
    CHECK(query->status == (page ? 200 : 401));
    CHECK(query->body.find(token) == std::string::npos);
  }
  CHECK(http.Handle(Get("/", ""))->content_type == "text/html; charset=utf-8");
}

TEST_CASE("history: one point per interval, rates over the interval, a ring of fixed size") {
  gateway::StatusHistory h(std::chrono::seconds(5), 3);
  using std::chrono::seconds;
  const auto t0 = std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
  storage::JournalStats st;
  st.backlog_events = 10;
  st.backlog_bytes = 1000;
  st.events_appended = 100;
  st.watermark = 50;
  h.Sample(st, 1'000'000, t0);  // first: recorded at once, zero rates
  st.events_appended = 150;
  h.Sample(st, 1'003'000, t0 + seconds(3));  // too soon: skipped
  st.events_appended = 200;
  st.watermark = 60;
  st.backlog_events = 140;
  h.Sample(st, 1'005'000, t0 + seconds(5));
  auto p = h.Points();
  REQUIRE(p.size() == 2);
  CHECK(p[0].t_ms == 1'000'000);
  CHECK(p[0].ingest_rate == 0);
  CHECK(p[1].t_ms == 1'005'000);
  CHECK(p[1].backlog_events == 140);
  CHECK(p[1].ingest_rate == doctest::Approx(20.0));  // 100 events in 5 s
  CHECK(p[1].send_rate == doctest::Approx(2.0));     // watermark +10 in 5 s

  st.events_appended = 201;
  h.Sample(st, 1'010'000, t0 + seconds(10));
  h.Sample(st, 1'015'000, t0 + seconds(15));  // the ring holds 3: the first point goes
  p = h.Points();
  REQUIRE(p.size() == 3);
  CHECK(p[0].t_ms == 1'005'000);
  CHECK(p[2].t_ms == 1'015'000);
  CHECK(h.Points(1'005'000).size() == 2);  // only newer than `since`
  CHECK(h.Json(1'010'000) ==
        "{\"interval_ms\":5000,\"capacity\":3,\"points\":[[1015000,140,1000,0,0]]}");
  CHECK(h.Json().find("[1010000,140,1000,0.2,0]") != std::string::npos);
}

TEST_CASE("history: served by the status routes from the journal's stats") {
  TempDir dir;
  auto journal = OpenJournal(dir);
  gateway::Config config;
  gateway::StatusReporter reporter(*journal, config);
  int64_t now_us = 1'700'000'000'000'000;
  gateway::StatusHttp http(reporter, *journal, "", [&] { return now_us; });
  REQUIRE(journal->Append({Receipt("a", 1), Receipt("b", 1), Receipt("c", 1)}).ok());
  http.Sample();
  auto r = http.Handle(Get("/v1/status/history"));
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->body.find("\"points\":[[1700000000000,3,") != std::string::npos);
  auto since = http.Handle(Get("/v1/status/history", "", {{"since", "1700000000000"}}));
  CHECK(since->body.find("\"points\":[]") != std::string::npos);
}

TEST_CASE("status page: self-contained, with the elements the browser test reads") {
  std::string_view page = gateway::StatusPageHtml();
  CHECK(page.substr(0, 15) == "<!doctype html>");
  CHECK(page.find("</html>") != std::string_view::npos);
  // Nothing from the network: no external scripts, styles, fonts or images.
  CHECK(page.find("http://") == page.find("http://www.w3.org/2000/svg"));  // the SVG namespace only
  CHECK(page.find("https://") == std::string_view::npos);
  CHECK(page.find("<script src") == std::string_view::npos);
  CHECK(page.find("<link rel=\"stylesheet\"") == std::string_view::npos);
  CHECK(page.find("@import") == std::string_view::npos);
  CHECK(page.find("name=\"viewport\"") != std::string_view::npos);  // readable on a phone
  for (const char* id :
       {"id=\"link\"", "id=\"backlog-events\"", "id=\"backlog-bytes\"", "id=\"oldest-age\"",
        "id=\"ingest-rate\"", "id=\"send-rate\"", "id=\"journal-pct\"", "id=\"journal-size\"",
        "id=\"last-error\"", "id=\"reconnects\"", "id=\"alerts\"", "id=\"chart\"",
        "id=\"perishables\"", "id=\"remove\"", "id=\"due-next\"", "id=\"cold-chain\""}) {
    CAPTURE(id);
    CHECK(page.find(id) != std::string_view::npos);
  }
  // What devices name (skus, counters, sensors) reaches the page as text
  // only: the script never parses strings as HTML.
  for (const char* sink : {"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write",
                           "DOMParser", "createContextualFragment"}) {
    CAPTURE(sink);
    CHECK(page.find(sink) == std::string_view::npos);
  }
}

namespace {

constexpr int64_t kMin = 60'000'000;  // microseconds

v1::Event DeviceEvent(const std::string& id, int64_t at) {
  v1::Event e;
  e.set_event_id(id);
  e.set_device_id("kitchen-01");
  e.set_occurred_at(at);
  return e;
}

v1::Event Production(const std::string& id, int64_t at, const std::string& sku, int64_t qty,
                     const std::string& location) {
  v1::Event e = DeviceEvent(id, at);
  e.mutable_production()->set_sku(sku);
  e.mutable_production()->set_qty(qty);
  e.mutable_production()->set_location(location);
  return e;
}

v1::Event Reading(const std::string& id, int64_t at, const std::string& sensor, int64_t mc) {
  v1::Event e = DeviceEvent(id, at);
  e.mutable_sensor()->set_sensor_id(sensor);
  e.mutable_sensor()->set_metric("temp_mc");
  e.mutable_sensor()->set_value(mc);
  return e;
}

const v1::StatusAlert* FindAlert(const v1::GatewayStatus& s, v1::Alert::Kind kind) {
  for (const auto& a : s.alerts()) {
    if (a.kind() == kind) return &a;
  }
  return nullptr;
}

}  // namespace

// The journal's perishables, driven by an injected clock, as /v1/status
// (proto3 JSON), /metrics and the page's routes show them.
TEST_CASE("status routes: perishables and cold chain in /v1/status and /metrics") {
  TempDir dir;
  const int64_t t0 = 1'795'790'000'000'000;
  std::atomic<int64_t> clock{t0};
  storage::JournalOptions o;
  o.data_dir = dir / "data";
  o.store_id = "store-9";
  o.gateway_id = "gw-3";
  o.now_us = [&clock] { return clock.load(); };
  o.timer_thread = false;
  o.default_hold = std::chrono::minutes(60);
  o.escalate_after = std::chrono::minutes(30);
  storage::JournalOptions::SensorLimits fridge;
  fridge.location = "dairy fridge 2";
  fridge.min_value = 0;
  fridge.max_value = 5000;
  fridge.grace = std::chrono::minutes(5);
  o.sensor_limits["fridge-2"] = fridge;
  storage::JournalOptions::SensorLimits freezer;
  freezer.location = "freezer 1";
  freezer.min_value = -25000;
  freezer.max_value = -15000;
  freezer.silent_after = std::chrono::minutes(10);
  o.sensor_limits["freezer-1"] = freezer;
  auto opened = storage::Journal::Open(o);
  REQUIRE_MESSAGE(opened.ok(), opened.status().ToString());
  auto& journal = *opened;
  gateway::Config config;
  gateway::StatusReporter reporter(*journal, config, [&clock] { return clock.load(); });
  gateway::StatusHttp http(reporter, *journal, "", [&clock] { return clock.load(); });
  auto run_timers = [&] {
    for (int i = 0; i < 10; ++i) {  // until nothing more is due now
      auto r = journal->RunTimers();
      REQUIRE_MESSAGE(r.ok(), r.status().ToString());
      if (r->raised == 0 && r->cleared == 0) return;
    }
    FAIL("RunTimers kept raising");
  };

  // Nothing out yet: zeros, and no sensor read so far.
  v1::GatewayStatus empty = reporter.Build();
  CHECK(empty.batches_open() == 0);
  CHECK(empty.due_next_size() == 0);

  // t0: a tray of rolls (due t0+60 min, escalates at t0+90), both sensors
  // inside their limits.
  auto a = journal->Append({Production("p-a", t0, "SKU-ROLL", 12, "hot counter 1"),
                            Reading("r-1", t0, "fridge-2", 3000),
                            Reading("r-2", t0, "freezer-1", -18000)});
  REQUIRE_MESSAGE(a.ok(), a.status().ToString());
  const uint64_t roll_seq = (*a)[0].seq;
  clock = t0 + 40 * kMin;
  REQUIRE(journal->Append({Production("p-b", t0 + 40 * kMin, "SKU-PIE", 4, "deli")}).ok());
  clock = t0 + 50 * kMin;
  REQUIRE(journal->Append({Production("p-c", t0 + 50 * kMin, "SKU-SOUP", 2, "hot counter 1"),
                           Reading("r-3", t0 + 50 * kMin, "freezer-1", -18000),
                           Reading("r-3b", t0 + 50 * kMin, "fridge-2", 3500)})
              .ok());
  run_timers();
  v1::GatewayStatus before = reporter.Build();
  CHECK(before.batches_open() == 3);
  CHECK(before.batches_overdue() == 0);
  CHECK(before.alerts_size() == 0);

  // t0+85: the fridge goes warm; t0+91 still warm. By then the rolls are
  // due (t0+60) and escalated (t0+90), the fridge is past its 5 min grace,
  // the freezer has been silent since t0+50 (10 min allowed).
  clock = t0 + 85 * kMin;
  REQUIRE(journal->Append({Reading("r-4", t0 + 85 * kMin, "fridge-2", 9500)}).ok());
  clock = t0 + 91 * kMin;
  REQUIRE(journal->Append({Reading("r-5", t0 + 91 * kMin, "fridge-2", 8000)}).ok());
  run_timers();

  const v1::GatewayStatus s = reporter.Build();
  INFO(s.DebugString());
  CHECK(s.batches_open() == 3);
  CHECK(s.batches_overdue() == 1);
  REQUIRE(s.due_next_size() == 3);
  CHECK(s.due_next(0).sku() == "SKU-ROLL");  // overdue first
  CHECK(s.due_next(0).seq() == roll_seq);
  CHECK(s.due_next(0).location() == "hot counter 1");
  CHECK(s.due_next(0).qty() == 12);
  CHECK(s.due_next(0).due_at() == t0 + 60 * kMin);
  CHECK(s.due_next(0).escalated());
  CHECK(s.due_next(0).alert_seq() != 0);
  CHECK(s.due_next(1).sku() == "SKU-PIE");
  CHECK(s.due_next(1).due_at() == t0 + 100 * kMin);
  CHECK(s.due_next(1).alert_seq() == 0);
  CHECK(s.due_next(2).sku() == "SKU-SOUP");

  const v1::StatusAlert* remove = FindAlert(s, v1::Alert::REMOVE_FROM_SHELF);
  REQUIRE(remove);
  CHECK(remove->sku() == "SKU-ROLL");
  CHECK(remove->location() == "hot counter 1");
  CHECK(remove->qty() == 12);
  CHECK(remove->batch_seq() == roll_seq);
  CHECK(remove->since() == t0 + 60 * kMin);
  CHECK(remove->escalated());
  CHECK(remove->seq() == s.due_next(0).alert_seq());
  const v1::StatusAlert* exc = FindAlert(s, v1::Alert::TEMPERATURE_EXCURSION);
  REQUIRE(exc);
  CHECK(exc->sensor_id() == "fridge-2");
  CHECK(exc->location() == "dairy fridge 2");
  CHECK(exc->since() == t0 + 85 * kMin);
  CHECK(exc->max_seen() == 9500);
  CHECK(exc->min_seen() == 8000);
  const v1::StatusAlert* silent = FindAlert(s, v1::Alert::SENSOR_SILENT);
  REQUIRE(silent);
  CHECK(silent->sensor_id() == "freezer-1");
  CHECK(silent->location() == "freezer 1");
  CHECK(silent->since() == t0 + 50 * kMin);

  REQUIRE(s.sensors_size() == 2);  // by sensor_id
  const v1::SensorState& fz = s.sensors(0);
  const v1::SensorState& fr = s.sensors(1);
  CHECK(fz.sensor_id() == "freezer-1");
  CHECK(fz.silent_alert_seq() == silent->seq());
  CHECK(fz.excursion_alert_seq() == 0);
  CHECK(fr.sensor_id() == "fridge-2");
  CHECK(fr.location() == "dairy fridge 2");
  CHECK(fr.metric() == "temp_mc");
  CHECK(fr.has_limits());
  CHECK(fr.min_value() == 0);
  CHECK(fr.max_value() == 5000);
  CHECK(fr.limits_from() == "config");
  CHECK(fr.last_value() == 8000);
  CHECK(fr.last_at() == t0 + 91 * kMin);
  CHECK(fr.excursions() == 1);
  CHECK(fr.excursion_alert_seq() == exc->seq());
  CHECK(fr.out_since() == t0 + 85 * kMin);

  // GET /v1/status carries all of it in proto3 JSON, under the .proto's
  // names (64-bit numbers as strings, kinds by name).
  auto json = http.Handle(Get("/v1/status"));
  REQUIRE(json);
  REQUIRE(json->status == 200);
  for (const std::string& part :
       {std::string("\"batches_open\":\"3\""), std::string("\"batches_overdue\":\"1\""),
        std::string("\"kind\":\"REMOVE_FROM_SHELF\""), std::string("\"kind\":\"SENSOR_SILENT\""),
        std::string("\"kind\":\"TEMPERATURE_EXCURSION\""), std::string("\"escalated\":true"),
        std::string("\"location\":\"hot counter 1\""),
        "\"batch_seq\":\"" + std::to_string(roll_seq) + "\"", std::string("\"qty\":\"12\""),
        "\"since\":\"" + std::to_string(t0 + 60 * kMin) + "\"",
        std::string("\"sensor_id\":\"fridge-2\""), std::string("\"min_seen\":\"8000\""),
        std::string("\"max_seen\":\"9500\""), "\"due_at\":\"" + std::to_string(t0 + 100 * kMin) + "\"",
        std::string("\"limits_from\":\"config\""), std::string("\"last_value\":\"8000\""),
        std::string("\"excursions\":\"1\"")}) {
    CAPTURE(part);
    CHECK(json->body.find(part) != std::string::npos);
  }
  auto parsed = test::FromJson<v1::GatewayStatus>(json->body);
  REQUIRE(parsed);
  CHECK(parsed->due_next_size() == 3);
  CHECK(parsed->sensors_size() == 2);
  CHECK(parsed->alerts_size() == 3);

  // /metrics.
  auto metrics = http.Handle(Get("/metrics"));
  REQUIRE(metrics);
  std::string error;
  auto doc = test::ParsePrometheus(metrics->body, &error);
  REQUIRE_MESSAGE(doc, error);
  CHECK(test::CheckStoregwConventions(*doc) == "");
  using L = test::PromLabels;
  CHECK(doc->Value("storegw_perishable_batches_open") == 3);
  CHECK(doc->Value("storegw_perishable_batches_overdue") == 1);
  CHECK(doc->Value("storegw_temperature_excursions_total",
                   L{{"sensor", "fridge-2"}, {"location", "dairy fridge 2"}}) == 1);
  CHECK(doc->Value("storegw_temperature_excursions_total",
                   L{{"sensor", "freezer-1"}, {"location", "freezer 1"}}) == 0);
  CHECK(doc->Value("storegw_sensor_in_excursion", L{{"sensor", "fridge-2"}}) == 1);
  CHECK(doc->Value("storegw_sensor_silent", L{{"sensor", "freezer-1"}}) == 1);
  CHECK(doc->Value("storegw_sensor_silent", L{{"sensor", "fridge-2"}}) == 0);
  CHECK(doc->Value("storegw_sensor_last_reading", L{{"sensor", "fridge-2"}, {"metric", "temp_mc"}}) ==
        8000);
  CHECK(doc->Value("storegw_sensor_last_reading_age_seconds", L{{"sensor", "freezer-1"}}) ==
        41 * 60);
  CHECK(doc->Value("storegw_alerts_open", L{{"kind", "remove_from_shelf"}}) == 1);
  CHECK(doc->Value("storegw_alerts_open", L{{"kind", "temperature_excursion"}}) == 1);
  CHECK(doc->Value("storegw_alerts_open", L{{"kind", "sensor_silent"}}) == 1);

  // The kitchen screen is the same page.
  auto kitchen = http.Handle(Get("/kitchen"));
  REQUIRE(kitchen);
  CHECK(kitchen->status == 200);
  CHECK(kitchen->body == gateway::StatusPageHtml());
  CHECK(Header(*kitchen, "Content-Security-Policy").find("default-src 'none'") !=
        std::string::npos);
}
