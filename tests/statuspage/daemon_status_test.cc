// The real daemon's /metrics against its /v1/status and its journal, and the
// status routes on a listener of their own with a token.
#include <doctest/doctest.h>

#include <cmath>
#include <string>

#include "prom_parser.h"
#include "sp_util.h"

using namespace storegw;
using namespace storegw::test;

namespace {

std::string Header(const HttpResult& r, const std::string& name) {
  auto it = r.headers.find(name);
  return it == r.headers.end() ? "" : it->second;
}

PromDoc ParseStrict(const std::string& text) {
  std::string error;
  auto doc = ParsePrometheus(text, &error);
  REQUIRE_MESSAGE(doc, error << "\n" << text);
  CHECK_MESSAGE(CheckStoregwConventions(*doc) == "", text);
  return *doc;
}

}  // namespace

TEST_CASE("statuspage daemon: /metrics parses strictly and matches /v1/status and the journal") {
  TempDir tmp;
  WriteFile(tmp / "storegw.toml",
            "[gateway]\nstore_id = \"store-77\"\ngateway_id = \"gw-2\"\n"
            "[uplink]\ntransport = \"none\"\n[journal]\nmax_bytes = 268435456\n");
  std::string why;
  auto d = StartDaemon(tmp / "data", tmp / "logs", "metrics", &why, 0,
                       {"--config", (tmp / "storegw.toml").string()});
  REQUIRE_MESSAGE(d, why);

  // Traffic: 120 new events in 3 requests, one request of 40 duplicates,
  // one invalid request, a sale that oversells SKU-1 (tracked: it had
  // receipts), an unknown path.
  REQUIRE_MESSAGE(PostReceipts(d->port, "r", 120, 40, &why), why);
  REQUIRE_MESSAGE(PostReceipts(d->port, "r", 40, 40, &why), why);  // all duplicates
  HttpResult bad = HttpPost(d->port, "/v1/events", R"({"event_id":"x","device_id":"till-01"})");
  REQUIRE(bad.status == 400);
  HttpResult sale = HttpPost(d->port, "/v1/events", SaleJson("s-1", "SKU-1", 123));
  REQUIRE_MESSAGE(sale.status == 200, sale.body);
  REQUIRE(HttpGet(d->port, "/no-such-page").status == 404);

  HttpResult st = HttpGet(d->port, "/v1/status");
  REQUIRE(st.status == 200);
  auto status = FromJson<v1::GatewayStatus>(st.body);
  REQUIRE(status);
  HttpResult m = HttpGet(d->port, "/metrics");
  REQUIRE(m.status == 200);
  CHECK(Header(m, "Content-Type") == "text/plain; version=0.0.4; charset=utf-8");
  PromDoc doc = ParseStrict(m.body);
  auto events = ExportJournal(tmp / "data", &why);
  REQUIRE_MESSAGE(events, why);

  // The journal: 120 receipts + 1 sale + the gateway's oversell alert.
  uint64_t undelivered = 0;
  for (const auto& e : *events) undelivered += e.seq() > status->watermark() ? 1 : 0;
  REQUIRE(events->size() == 122);
  CHECK(doc.Value("storegw_last_seq") == static_cast<double>(events->back().seq()));
  CHECK(doc.Value("storegw_last_seq") == static_cast<double>(status->last_seq()));
  CHECK(doc.Value("storegw_ack_watermark") == static_cast<double>(status->watermark()));
  CHECK(doc.Value("storegw_backlog_events") == static_cast<double>(undelivered));
  CHECK(doc.Value("storegw_backlog_events") == static_cast<double>(status->backlog_events()));
  CHECK(doc.Value("storegw_backlog_bytes") == static_cast<double>(status->backlog_bytes()));
  CHECK(doc.Value("storegw_journal_bytes") == static_cast<double>(status->journal_bytes()));
  CHECK(doc.Value("storegw_journal_max_bytes") == 268435456);
  CHECK(doc.Value("storegw_journal_max_bytes") == static_cast<double>(status->journal_max_bytes()));
  CHECK(doc.Value("storegw_journal_full") == 0);
  double age_m = doc.Value("storegw_oldest_undelivered_age_seconds");
  CHECK(age_m >= static_cast<double>(status->oldest_undelivered_age_s()));
  CHECK(age_m <= static_cast<double>(status->oldest_undelivered_age_s()) + 2);  // read later

  // Device traffic, counted by the device API.
  CHECK(doc.Value("storegw_events_ingested_total") == 121);
  CHECK(doc.Value("storegw_events_duplicate_total") == 40);
  CHECK(doc.Value("storegw_events_rejected_total", {{"reason", "invalid"}}) == 1);
  CHECK(doc.Value("storegw_events_rejected_total", {{"reason", "auth"}}) == 0);
  CHECK(doc.Value("storegw_journal_events_appended_total") == 121);  // not the alert
  // One commit latency per successful POST: 3 + 1 (duplicates) + 1 (sale).
  CHECK(doc.Value("storegw_commit_latency_seconds_count") == 5);
  CHECK(doc.Value("storegw_commit_latency_seconds_sum") > 0);
  CHECK(doc.Value("storegw_http_requests_total", {{"code", "400"}}) == 1);
  CHECK(doc.Value("storegw_http_requests_total", {{"code", "404"}}) == 1);
  CHECK(doc.Value("storegw_http_requests_total", {{"code", "200"}}) >= 6);

  // Link and alerts as the status says.
  CHECK(status->link() == "down");
  CHECK(doc.Value("storegw_link_up") == 0);
  CHECK(doc.Value("storegw_link_state", {{"state", "down"}}) == 1);
  CHECK(doc.Value("storegw_uplink_reconnects_total") == static_cast<double>(status->reconnects()));
  REQUIRE(status->alerts_size() == 1);
  CHECK(status->alerts(0).sku() == "SKU-1");
  CHECK(status->alerts_open_total() == 1);
  CHECK(doc.Value("storegw_skus_untracked") == 0);
  CHECK(doc.Value("storegw_skus") == 1);
  CHECK(doc.Value("storegw_alerts_open", {{"kind", "oversell"}}) == 1);
  CHECK(doc.Value("storegw_info", {{"version", status->version()},
                                   {"store_id", "store-77"},
                                   {"gateway_id", "gw-2"},
                                   {"epoch", std::to_string(status->epoch())}}) == 1);

  // The history for the chart has the daemon's first point already.
  HttpResult h = HttpGet(d->port, "/v1/status/history");
  REQUIRE(h.status == 200);
  CHECK(h.body.find("\"interval_ms\":5000") != std::string::npos);
  CHECK(h.body.find("\"points\":[[") != std::string::npos);

  // And the page itself.
  HttpResult page = HttpGet(d->port, "/");
  REQUIRE(page.status == 200);
  CHECK(Header(page, "Content-Type") == "text/html; charset=utf-8");
  CHECK(page.body.find("<title>storegw status</title>") != std::string::npos);

  d->proc.Signal(SIGTERM);
  auto e = d->proc.WaitExit(30s);
  REQUIRE(e);
  CHECK(e->ok());
}

TEST_CASE("statuspage daemon: status.listen serves the status routes alone, behind the token") {
  TempDir tmp;
  const std::string token = "tok-0123456789abcdef-XYZ";
  uint16_t sport = FreePort();
  WriteFile(tmp / "storegw.toml",
            "[uplink]\ntransport = \"none\"\n[status]\nlisten = \"127.0.0.1:" +
                std::to_string(sport) + "\"\ntoken = \"" + token + "\"\n");
  std::string why;
  auto d = StartDaemon(tmp / "data", tmp / "logs", "status-listen", &why, 0,
                       {"--config", (tmp / "storegw.toml").string()});
  REQUIRE_MESSAGE(d, why);
  REQUIRE_MESSAGE(PostReceipts(d->port, "r", 7, 7, &why), why);

  // The device API no longer serves them.
  CHECK(HttpGet(d->port, "/v1/status").status == 404);
  CHECK(HttpGet(d->port, "/metrics").status == 404);
  CHECK(HttpGet(d->port, "/").status == 404);

  // The status listener does, with the token only.
  CHECK(HttpGet(sport, "/healthz").status == 200);
  for (const char* path : {"/", "/v1/status", "/v1/status/history", "/metrics"}) {
    CAPTURE(path);
    HttpResult r = HttpGet(sport, path);
    CHECK(r.status == 401);
    CHECK(r.body.find(token) == std::string::npos);
  }
  auto cli = LoopbackClient(sport, 5s);
  auto m = cli.Get("/metrics", {{"Authorization", "Bearer " + token}});
  REQUIRE(m);
  REQUIRE(m->status == 200);
  PromDoc doc = ParseStrict(m->body);
  CHECK(doc.Value("storegw_backlog_events") == 7);
  CHECK(doc.Value("storegw_events_ingested_total") == 7);
  // Both listeners' answers are counted: 4 x 401 on the status listener,
  // 3 x 404 on the device API.
  CHECK(doc.Value("storegw_http_requests_total", {{"code", "401"}}) == 4);
  CHECK(doc.Value("storegw_http_requests_total", {{"code", "404"}}) == 3);
  auto s = GetStatus(sport, "Bearer " + token);
  REQUIRE(s);
  CHECK(s->backlog_events() == 7);
  auto page = cli.Get("/?token=" + token);
  REQUIRE(page);
  CHECK(page->status == 200);
  CHECK(page->body.find("id=\"backlog-events\"") != std::string::npos);
  CHECK(page->body.find(token) == std::string::npos);
  HttpResult post = HttpPost(sport, "/v1/events", "{}");
  CHECK(post.status == 404);  // devices post to the device API only

  d->proc.Signal(SIGTERM);
  auto e = d->proc.WaitExit(30s);
  REQUIRE(e);
  CHECK(e->ok());
  // It said where the status is; the token is in no output.
  std::string out = d->proc.Stdout(), err = d->proc.Stderr();
  CHECK(out.find("(status: http://127.0.0.1:" + std::to_string(sport) + "/v1/status)") !=
        std::string::npos);
  CHECK(out.find(token) == std::string::npos);
  CHECK(err.find(token) == std::string::npos);
}

TEST_CASE(
    "statuspage daemon: a full journal is loud in /metrics, /v1/status and `storegw status`") {
  TempDir tmp;
  // The smallest cap: a few hundred events fill it.
  WriteFile(tmp / "storegw.toml", "[uplink]\ntransport = \"none\"\n[journal]\nmax_bytes = 65536\n");
  std::string why;
  auto d = StartDaemon(tmp / "data", tmp / "logs", "full", &why, 0,
                       {"--config", (tmp / "storegw.toml").string()});
  REQUIRE_MESSAGE(d, why);
  int accepted = 0, refused = 0;
  for (int i = 0; i < 400 && refused == 0; ++i) {
    std::vector<std::string> events;
    for (int k = 0; k < 25; ++k) {
      events.push_back(
          ReceiptJson("f-" + std::to_string(i) + "-" + std::to_string(k), "till-01", "SKU-1", 1));
    }
    HttpResult r = HttpPost(d->port, "/v1/events", BatchJson(events));
    if (r.status == 200) {
      accepted += 25;
    } else {
      REQUIRE_MESSAGE(r.status == 503, r.status << " " << r.body);
      ++refused;
    }
  }
  REQUIRE_MESSAGE(refused == 1, "the journal never filled after " << accepted << " events");

  auto s = GetStatus(d->port);
  REQUIRE(s);
  CHECK(s->journal_full());
  CHECK(s->backlog_events() == static_cast<uint64_t>(accepted));
  HttpResult m = HttpGet(d->port, "/metrics");
  REQUIRE(m.status == 200);
  PromDoc doc = ParseStrict(m.body);
  CHECK(doc.Value("storegw_journal_full") == 1);
  CHECK(doc.Value("storegw_journal_max_bytes") == 65536);
  CHECK(doc.Value("storegw_events_rejected_total", {{"reason", "unavailable"}}) == 1);
  CHECK(doc.Value("storegw_http_requests_total", {{"code", "503"}}) >= 1);
  CHECK(doc.Value("storegw_events_ingested_total") == accepted);

  RunResult cli = Run(StoregwArgs({"status", "--url", d->url(), "--max-age", "1h"}), 30s);
  CHECK_MESSAGE(cli.exit.code == 1, cli.out << cli.err);
  CHECK(cli.out.find("the journal is FULL") != std::string::npos);
  CHECK(cli.out.find("Journal         FULL: ") != std::string::npos);

  d->proc.Signal(SIGTERM);
  auto e = d->proc.WaitExit(30s);
  REQUIRE(e);
  CHECK(e->ok());
}
