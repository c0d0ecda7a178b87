// Unit tests of the status routes (status_http.h) and the history ring
// (history.h), over a real journal in a temp dir, without a server.
#include <doctest/doctest.h>

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

  for (const char* path : {"/", "/v1/status", "/v1/status/history", "/metrics"}) {
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
    CHECK(query->status == (std::string(path) == "/" ? 200 : 401));
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
        "id=\"last-error\"", "id=\"reconnects\"", "id=\"alerts\"", "id=\"chart\""}) {
    CAPTURE(id);
    CHECK(page.find(id) != std::string_view::npos);
  }
}
