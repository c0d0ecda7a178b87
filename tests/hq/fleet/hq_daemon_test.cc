// `storegw-hq` as a process, end to end: a private PostgreSQL, a mosquitto,
// storegw-hq run, and a real `storegw run` gateway (this build tree's
// binaries) that posts events upstream with uplink.ack = "hq" (so its
// watermark moves only by storegw-hq's acks). Checked: /healthz, /v1/fleet
// and /metrics while the gateway reports and after it stops; `status` exit
// codes; `publish stock`, `publish prices` and `publish rules` reaching
// the gateway (its ledger, price table, perishables and journal show them,
// and the applied snapshot and rules come back up to HQ as events); a CSV
// with errors publishing nothing.
#include <doctest/doctest.h>

#include <chrono>
#include <string>

#include "hq_fleet_test_util.h"
#include "prom_parser.h"

using namespace storegw;
using namespace storegw::test;

namespace {

const char kStore[] = "store-0001";
const char kGateway[] = "gw-01";

std::string GatewayToml(const std::string& broker_url) {
  return std::string("[gateway]\nstore_id = \"") + kStore + "\"\ngateway_id = \"" + kGateway +
         "\"\n[uplink]\nurl = \"" + broker_url +
         "\"\nack = \"hq\"\nbackoff_initial = \"100ms\"\nbackoff_max = \"1s\"\n";
}

}  // namespace

TEST_CASE("storegw-hq run: a start failure is one line on stderr, exit 1, no secret") {
  TempDir tmp;
  WriteFile(tmp / "bad.toml", "[mqtt]\nurl = \"tcp://127.0.0.1:1\"\nsharegroup = \"x\"\n");
  RunResult r = RunHq({"run", "--config", (tmp / "bad.toml").string()}, 30s);
  CHECK(r.exit.exited);
  CHECK(r.exit.code == 1);
  CHECK(r.err == "storegw-hq: cannot start: " + (tmp / "bad.toml").string() +
                     ":3: unknown key 'mqtt.sharegroup' (did you mean 'mqtt.share_group'?)\n");

  // No database where [hq] database points: the error names host and port,
  // never the password.
  WriteFile(tmp / "nodb.toml",
            HqConfigToml("host=127.0.0.1 port=" + std::to_string(FreePort()) +
                             " dbname=storegw user=hq password=Pw0fTheDay connect_timeout=5",
                         "tcp://127.0.0.1:1"));
  r = RunHq({"run", "--config", (tmp / "nodb.toml").string()}, 30s);
  CHECK(r.exit.code == 1);
  CHECK(r.err.find("\nstoregw-hq: cannot start: database: ") != std::string::npos);
  CHECK(r.err.find("127.0.0.1") != std::string::npos);
  CHECK(r.err.find("Pw0fTheDay") == std::string::npos);
  CHECK(r.out.find("Pw0fTheDay") == std::string::npos);
}

TEST_CASE("storegw-hq with a real gateway: fleet, metrics, status exit codes, publish") {
  TempDir tmp;
  const TestDb db = FreshDatabase("hq_daemon");
  Broker broker(tmp / "broker");
  WriteFile(tmp / "hq.toml",
            HqConfigToml(db.conninfo, broker.url(), "[fleet]\noffline_after = \"60s\"\n"));
  std::string why;
  auto hq = StartHq(tmp / "hq.toml", tmp / "logs", "hq", &why);
  REQUIRE_MESSAGE(hq, why);
  const std::string hq_cfg = (tmp / "hq.toml").string();

  // 1. Up, connected, no gateway yet.
  REQUIRE_MESSAGE(WaitFor([&] { return HttpGet(hq->port, "/healthz").status == 200; }, 20s),
                  HttpGet(hq->port, "/healthz").body);
  CHECK(HttpGet(hq->port, "/healthz").body == "{\"status\":\"ok\"}");
  auto empty = GetFleet(hq->port);
  REQUIRE(empty);
  CHECK(empty->gateways_size() == 0);
  CHECK(empty->mqtt_enabled());
  CHECK(empty->mqtt_connected());
  CHECK(empty->version() == STOREGW_PROJECT_VERSION);
  const HttpResult page = HttpGet(hq->port, "/");
  CHECK(page.status == 200);
  CHECK(page.body.find("<title>storegw-hq fleet</title>") != std::string::npos);
  CHECK(HttpGet(hq->port, "/nope").status == 404);
  CHECK(HttpPost(hq->port, "/v1/fleet", "{}").status == 405);

  // 2. A gateway reports and sends 25 events; storegw-hq stores and acks
  // them (ack = "hq": the gateway's backlog drains only by those acks).
  WriteFile(tmp / "gw.toml", GatewayToml(broker.url()));
  auto gw = StartDaemon(tmp / "gw-data", tmp / "logs", "gw", &why, 0,
                        {"--config", (tmp / "gw.toml").string()});
  REQUIRE_MESSAGE(gw, why);
  REQUIRE_MESSAGE(PostReceipts(gw->port, "r", 25, 10, &why), why);
  REQUIRE_MESSAGE(WaitFor(
                      [&] {
                        auto g = FleetGatewayOf(hq->port, kStore, kGateway);
                        return g && g->applied_seq() == 25 && g->has_status() && g->online();
                      },
                      30s),
                  HttpGet(hq->port, "/v1/fleet").body);
  REQUIRE(WaitFor(
      [&] {
        auto s = GetStatus(gw->port);
        return s && s->watermark() == 25;
      },
      30s));
  auto g = FleetGatewayOf(hq->port, kStore, kGateway);
  REQUIRE(g);
  CHECK(g->epoch() == GetStatus(gw->port)->epoch());
  CHECK(g->epochs_seen() == 1);
  CHECK(g->link() == "up");
  CHECK(g->last_batch_at() > 0);
  CHECK(g->pending_events() == 0);
  CHECK(db.Psql("SELECT count(*) FROM events WHERE store_id = 'store-0001'") == "25");

  // 3. /metrics: strict text format, the gateway's series, the counters.
  {
    const HttpResult m = HttpGet(hq->port, "/metrics");
    REQUIRE(m.status == 200);
    std::string error;
    auto doc = ParsePrometheus(m.body, &error);
    REQUIRE_MESSAGE(doc, error);
    CHECK(CheckStoregwConventions(*doc) == "");
    const PromLabels l{{"store", kStore}, {"gateway", kGateway}};
    CHECK(doc->Value("storegw_hq_gateway_online", l) == 1);
    CHECK(doc->Value("storegw_hq_gateway_applied_seq", l) == 25);
    CHECK(doc->Has("storegw_hq_gateway_backlog_events", l));
    CHECK(doc->Has("storegw_hq_gateway_lag_seconds", l));
    CHECK(doc->Value("storegw_hq_events_stored_total") >= 25);
    CHECK(doc->Value("storegw_hq_acks_published_total") >= 1);
    CHECK(doc->Value("storegw_hq_statuses_received_total") >= 1);
    CHECK(doc->Value("storegw_hq_mqtt_connected") == 1);
    CHECK(doc->Value("storegw_hq_batches_refused_total", {{"reason", "conflict"}}) == 0);
  }

  // 4. `status`: everything online: exit 0, the gateway in the table.
  RunResult st = RunHq({"status", "--config", hq_cfg, "--url", hq->url()});
  CHECK_MESSAGE(st.exit.code == 0, st.err);
  CHECK(st.out.find("1 gateways, 1 online, 0 offline") != std::string::npos);
  CHECK(st.out.find(kStore) != std::string::npos);

  // 5. publish: a CSV with errors publishes nothing (the spy sees only the
  // good file's snapshot, published after it), then the good one reaches
  // the gateway as of HQ's applied seq.
  DownstreamSpy spy(broker.url(), kStore);
  WriteFile(tmp / "bad.csv", "sku,qty\nSKU-1,500\nSKU-2,x\nSKU 3,4\n");
  RunResult bad = RunHq({"publish", "stock", "--config", hq_cfg, "--store", kStore, "--csv",
                         (tmp / "bad.csv").string()});
  CHECK(bad.exit.code == 1);
  CHECK(bad.err.find("nothing was published") != std::string::npos);
  CHECK(bad.err.find((tmp / "bad.csv").string() +
                     ":3:7: qty: expected a whole number of base units (e.g. 12), got \"x\"") !=
        std::string::npos);
  CHECK(bad.err.find((tmp / "bad.csv").string() +
                     ":4:1: sku: must be printable ASCII without spaces") != std::string::npos);
  WriteFile(tmp / "stock.csv", "sku,qty\nSKU-1,500\nSKU-9,7\n");
  RunResult ok = RunHq({"publish", "stock", "--config", hq_cfg, "--store", kStore, "--csv",
                        (tmp / "stock.csv").string()});
  REQUIRE_MESSAGE(ok.exit.code == 0, ok.err);
  CHECK(ok.out.find("as_of_seq 25") != std::string::npos);
  CHECK(ok.out.find("acknowledged 1 of 1") != std::string::npos);
  REQUIRE(WaitFor([&] { return spy.messages().size() >= 1; }, 20s));
  {
    auto msgs = spy.messages();
    REQUIRE(msgs.size() == 1);
    CHECK(msgs[0].topic == "retail/v1/store-0001/downstream/stock");
    v1::StockSnapshot snap;
    REQUIRE(snap.ParseFromString(msgs[0].payload));
    CHECK(snap.lines_size() == 2);  // the good file's
    CHECK(snap.store_id() == kStore);
    CHECK(snap.epoch() == g->epoch());
    CHECK(snap.as_of_seq() == 25);
  }
  // The gateway's ledger: SKU-1 rebased on HQ's 500 as of seq 25.
  REQUIRE(WaitFor(
      [&] {
        return HttpGet(gw->port, "/v1/stock/SKU-1").body.find("\"as_of_seq\":\"25\"") !=
               std::string::npos;
      },
      20s));
  CHECK(HttpGet(gw->port, "/v1/stock/SKU-1").body.find("\"base_qty\":\"500\"") !=
        std::string::npos);
  CHECK(HttpGet(gw->port, "/v1/stock/SKU-9").body.find("\"on_hand\":\"7\"") != std::string::npos);
  // ... and its journal event of the applied snapshot comes back up to HQ.
  REQUIRE(WaitFor(
      [&] { return db.Psql("SELECT count(*) FROM events WHERE kind = 'stock_snapshot'") == "1"; },
      30s));

  // Prices: one PriceUpdate per line, in force at the gateway.
  WriteFile(tmp / "prices.csv", "sku,price,currency\nSKU-1,249,EUR\nSKU-9,99,EUR\n");
  ok = RunHq({"publish", "prices", "--config", hq_cfg, "--store", kStore, "--csv",
              (tmp / "prices.csv").string(), "--effective-from", "2026-01-01T00:00:00Z"});
  REQUIRE_MESSAGE(ok.exit.code == 0, ok.err);
  CHECK(ok.out.find("acknowledged 2 of 2") != std::string::npos);
  REQUIRE(WaitFor([&] { return HttpGet(gw->port, "/v1/prices/SKU-9").status == 200; }, 20s));
  CHECK(HttpGet(gw->port, "/v1/prices/SKU-1").body.find("\"price\":\"249\"") != std::string::npos);
  CHECK(WaitFor([&] { return spy.messages().size() == 3; }, 20s));

  // Store rules: a file with an error publishes nothing; a good one is one
  // StoreRules, journaled by the gateway (a store_rules event, which comes
  // back up to HQ), whose hold time sets the due time of a production batch.
  WriteFile(tmp / "bad-rules.csv", "hold,SKU-ROTI,2 hours\n");
  bad = RunHq({"publish", "rules", "--config", hq_cfg, "--store", kStore, "--csv",
               (tmp / "bad-rules.csv").string()});
  CHECK(bad.exit.code == 1);
  CHECK(bad.err.find("nothing was published") != std::string::npos);
  CHECK(bad.err.find((tmp / "bad-rules.csv").string() +
                     ":1:15: hold: expected a duration such as \"4h\", \"90m\" or \"3600s\" "
                     "(or 0), got \"2 hours\"") != std::string::npos);
  WriteFile(tmp / "rules.csv",
            "kind,id,location,min,max,grace\nhold,SKU-ROTI,2h\n"
            "sensor,fridge-1,dairy fridge 1,0,5000,15m\n");
  ok = RunHq({"publish", "rules", "--config", hq_cfg, "--store", kStore, "--csv",
              (tmp / "rules.csv").string(), "--dry-run"});
  REQUIRE_MESSAGE(ok.exit.code == 0, ok.err);
  CHECK(ok.out.find("would publish the store rules (1 hold time, 1 sensor limit) for store "
                    "store-0001") != std::string::npos);
  ok = RunHq({"publish", "rules", "--config", hq_cfg, "--store", kStore, "--csv",
              (tmp / "rules.csv").string()});
  REQUIRE_MESSAGE(ok.exit.code == 0, ok.err);
  CHECK(ok.out.find("acknowledged 1 of 1") != std::string::npos);
  REQUIRE(WaitFor([&] { return spy.messages().size() >= 4; }, 20s));
  {
    auto msgs = spy.messages();
    REQUIRE(msgs.size() == 4);  // nothing from the bad file nor the dry run
    CHECK(msgs[3].topic == "retail/v1/store-0001/downstream/rules");
    v1::StoreRules rules;
    REQUIRE(rules.ParseFromString(msgs[3].payload));
    CHECK(rules.store_id() == kStore);
    REQUIRE(rules.hold_times_size() == 1);
    CHECK(rules.hold_times(0).sku() == "SKU-ROTI");
    CHECK(rules.hold_times(0).hold_s() == 7200);
    REQUIRE(rules.sensor_limits_size() == 1);
    CHECK(rules.sensor_limits(0).location() == "dairy fridge 1");
    CHECK(rules.sensor_limits(0).max_value() == 5000);
    CHECK(rules.sensor_limits(0).grace_s() == 900);
  }
  // Applied at the gateway: the sensor is watched with HQ's limits ...
  REQUIRE(WaitFor(
      [&] {
        auto s = GetStatus(gw->port);
        return s && s->sensors_size() == 1 && s->sensors(0).limits_from() == "hq";
      },
      20s));
  // ... and a tray of SKU-ROTI put out now is due in HQ's 2 h.
  const int64_t now_us = std::chrono::duration_cast<std::chrono::microseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  HttpResult tray =
      HttpPost(gw->port, "/v1/events",
               R"({"event_id":"p-1","device_id":"oven-1","occurred_at":)" + std::to_string(now_us) +
                   R"(,"production":{"sku":"SKU-ROTI","qty":12,)"
                   R"("location":"hot counter 1"}})");
  REQUIRE_MESSAGE(tray.status == 200, tray.body);
  {
    auto s = GetStatus(gw->port);
    REQUIRE(s);
    REQUIRE(s->due_next_size() == 1);
    CHECK(s->due_next(0).sku() == "SKU-ROTI");
    CHECK(s->due_next(0).due_at() - s->due_next(0).produced_at() == int64_t{7200} * 1000000);
  }
  // The applied rules come back up to HQ as an event.
  REQUIRE_MESSAGE(
      WaitFor(
          [&] { return db.Psql("SELECT count(*) FROM events WHERE kind = 'store_rules'") == "1"; },
          30s),
      HttpGet(hq->port, "/metrics").body);
  CHECK(db.Psql("SELECT event->'store_rules'->'hold_times'->0->>'hold_s' FROM events WHERE kind "
                "= 'store_rules'") == "7200");

  // A store HQ never heard of: no epoch to publish for; nothing published.
  RunResult unknown = RunHq({"publish", "stock", "--config", hq_cfg, "--store", "store-9999",
                             "--csv", (tmp / "stock.csv").string()});
  CHECK(unknown.exit.code == 1);
  CHECK(unknown.err.find("HQ has nothing from store store-9999 yet") != std::string::npos);

  // 6. The gateway stops cleanly: its last status says offline.
  gw->proc.Signal(SIGTERM);
  REQUIRE(gw->proc.WaitExit(30s));
  REQUIRE_MESSAGE(WaitFor(
                      [&] {
                        auto x = FleetGatewayOf(hq->port, kStore, kGateway);
                        return x && !x->online();
                      },
                      20s),
                  HttpGet(hq->port, "/v1/fleet").body);
  g = FleetGatewayOf(hq->port, kStore, kGateway);
  CHECK(g->offline_reason() == "reported");
  CHECK(g->since() > 0);
  // The gateway's journal holds the snapshot it applied, as of HQ's seq.
  {
    auto journal = ExportJournal(tmp / "gw-data", &why);
    REQUIRE_MESSAGE(journal, why);
    int snapshots = 0;
    for (const auto& je : *journal) {
      if (!je.event().has_stock_snapshot()) continue;
      ++snapshots;
      CHECK(je.event().stock_snapshot().as_of_seq() == 25);
      CHECK(je.event().stock_snapshot().lines_size() == 2);
    }
    CHECK(snapshots == 1);
  }
  {
    std::string error;
    auto doc = ParsePrometheus(HttpGet(hq->port, "/metrics").body, &error);
    REQUIRE_MESSAGE(doc, error);
    CHECK(doc->Value("storegw_hq_gateway_online", {{"store", kStore}, {"gateway", kGateway}}) == 0);
    CHECK(doc->Value("storegw_hq_gateways", {{"state", "offline"}}) == 1);
  }
  // Offline longer than 0 s: exit 1, naming it; within an hour: exit 0.
  st = RunHq({"status", "--config", hq_cfg, "--url", hq->url(), "--max-offline", "0s"});
  CHECK(st.exit.code == 1);
  CHECK(st.err.find("1 gateway offline longer than 0s: store-0001/gw-01 (") != std::string::npos);
  CHECK(st.out.find("offline (reported)") != std::string::npos);
  st = RunHq({"status", "--config", hq_cfg, "--url", hq->url(), "--max-offline", "1h"});
  CHECK_MESSAGE(st.exit.code == 0, st.err);
  // JSON for scripts.
  st = RunHq({"status", "--url", hq->url(), "--json", "--max-offline", "1h"});
  CHECK(st.exit.code == 0);
  CHECK(st.out.find("\"offline_reason\":\"reported\"") != std::string::npos);
  // Nobody answering: cannot tell, exit 2.
  st = RunHq(
      {"status", "--url", "http://127.0.0.1:" + std::to_string(FreePort()), "--timeout", "2s"});
  CHECK(st.exit.code == 2);
  CHECK(st.err.find("no answer from storegw-hq at") != std::string::npos);

  // 7. SIGTERM: a clean stop.
  hq->proc.Signal(SIGTERM);
  auto e = hq->proc.WaitExit(30s);
  REQUIRE(e);
  CHECK(e->ok());
}
