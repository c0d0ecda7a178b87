// `storegw status`, `alerts` and `stock` against real daemons: exit codes
// 0 healthy (link up through a real mosquitto, nothing waiting), 1 degraded
// (a backlog older than --max-age; the link down), 2 down (no daemon).
#include <doctest/doctest.h>

#include <algorithm>
#include <regex>
#include <sstream>
#include <string>

#include "sp_util.h"

using namespace storegw;
using namespace storegw::test;

namespace {

std::string Show(const RunResult& r) {
  return Describe(r.exit) + (r.timed_out ? " (timed out)" : "") + "\nstdout:\n" + r.out +
         "\nstderr:\n" + r.err;
}

RunResult Storegw(std::vector<std::string> args) {
  return Run(StoregwArgs(std::move(args)), 30s);
}

// True when a line of `out`, split at spaces, starts with `words`.
bool HasRow(const std::string& out, const std::vector<std::string>& words) {
  std::istringstream lines(out);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream in(line);
    std::vector<std::string> tokens;
    for (std::string w; in >> w;) tokens.push_back(w);
    if (tokens.size() >= words.size() && std::equal(words.begin(), words.end(), tokens.begin())) {
      return true;
    }
  }
  return false;
}

}  // namespace

TEST_CASE("statuspage cli: no daemon at the address is down (exit 2)") {
  const std::string url = "http://127.0.0.1:" + std::to_string(FreePort());
  RunResult s = Storegw({"status", "--url", url, "--timeout", "2s"});
  CHECK_MESSAGE(s.exit.exited, Show(s));
  CHECK_MESSAGE(s.exit.code == 2, Show(s));
  CHECK(s.out.rfind("DOWN: no answer from " + url, 0) == 0);
  CHECK(s.out.find("\x1b[") == std::string::npos);  // not a terminal: no colour
  RunResult a = Storegw({"alerts", "--url", url, "--timeout", "2s"});
  CHECK_MESSAGE(a.exit.code == 2, Show(a));
  RunResult k = Storegw({"stock", "SKU-1", "--url", url, "--timeout", "2s"});
  CHECK_MESSAGE(k.exit.code == 2, Show(k));
  // Not an http URL: a usage error, also 2.
  RunResult bad = Storegw({"status", "--url", "ftp://x"});
  CHECK_MESSAGE(bad.exit.code == 2, Show(bad));
  CHECK(bad.err.find("--url: expected http://HOST:PORT") != std::string::npos);
}

TEST_CASE(
    "statuspage cli: a backlog older than --max-age is degraded (exit 1) - alerts and stock") {
  TempDir tmp;
  WriteFile(tmp / "storegw.toml", "[uplink]\ntransport = \"none\"\n");
  std::string why;
  auto d = StartDaemon(tmp / "data", tmp / "logs", "degraded", &why, 0,
                       {"--config", (tmp / "storegw.toml").string()});
  REQUIRE_MESSAGE(d, why);
  REQUIRE_MESSAGE(PostReceipts(d->port, "r", 1233, 500, &why), why);
  // A count of 0 gives SKU-GONE a baseline; the sale then oversells it.
  REQUIRE(HttpPost(d->port, "/v1/events",
                   R"({"event_id":"k-1","device_id":"till-01","occurred_at":1700000000000000,)"
                   R"("count":{"sku":"SKU-GONE","qty":0}})")
              .status == 200);
  REQUIRE(HttpPost(d->port, "/v1/events", SaleJson("s-1", "SKU-GONE", 2)).status == 200);
  // Let the oldest event age past one second.
  REQUIRE(WaitFor(
      [&] {
        auto s = GetStatus(d->port);
        return s && s->oldest_undelivered_age_s() >= 2;
      },
      20s, 100ms));

  RunResult old = Storegw({"status", "--url", d->url(), "--max-age", "1s"});
  CHECK_MESSAGE(old.exit.code == 1, Show(old));
  CHECK(old.out.find("DEGRADED") != std::string::npos);
  CHECK(old.out.find("the oldest undelivered event is ") != std::string::npos);
  CHECK(old.out.find("(limit 1 s); 1,236 events wait") != std::string::npos);  // + count, sale, alert
  CHECK(HasRow(old.out, {"Backlog", "1,236", "events"}));
  CHECK(HasRow(old.out, {"Link", "down"}));
  CHECK(old.out.find("SKU-GONE") != std::string::npos);
  CHECK(old.out.find("\x1b[") == std::string::npos);

  // With a generous --max-age the age is fine, but a disabled uplink still
  // means events are not leaving the store: degraded, for that reason only.
  RunResult young = Storegw({"status", "--url", d->url(), "--max-age", "1h"});
  CHECK_MESSAGE(young.exit.code == 1, Show(young));
  CHECK(young.out.find("oldest undelivered") == std::string::npos);
  CHECK(young.out.find("the link to HQ is down (uplink disabled") != std::string::npos);

  // --json: the document, and the same exit code.
  RunResult json = Storegw({"status", "--url", d->url(), "--max-age", "1s", "--json"});
  CHECK_MESSAGE(json.exit.code == 1, Show(json));
  auto doc = FromJson<v1::GatewayStatus>(json.out);
  REQUIRE(doc);
  CHECK(doc->backlog_events() == 1236);

  RunResult alerts = Storegw({"alerts", "--url", d->url()});
  CHECK_MESSAGE(alerts.exit.code == 1, Show(alerts));
  CHECK(alerts.out.find("alerts: 1 open (store") != std::string::npos);
  CHECK(alerts.out.find("oversell") != std::string::npos);
  CHECK(alerts.out.find("SKU-GONE") != std::string::npos);
  CHECK(alerts.out.find(" -2 ") != std::string::npos);

  RunResult known = Storegw({"stock", "--url", d->url(), "SKU-1", "SKU-GONE"});
  CHECK_MESSAGE(known.exit.code == 0, Show(known));
  CHECK(HasRow(known.out, {"SKU-1", "1,233"}));
  CHECK(HasRow(known.out, {"SKU-GONE", "-2"}));
  RunResult unknown = Storegw({"stock", "--url", d->url(), "SKU-1", "NO-SUCH"});
  CHECK_MESSAGE(unknown.exit.code == 1, Show(unknown));
  CHECK(HasRow(unknown.out, {"NO-SUCH", "unknown"}));
  RunResult listed = Storegw({"stock", "--url", d->url(), "--prefix", "SKU-"});
  CHECK_MESSAGE(listed.exit.code == 0, Show(listed));
  CHECK(listed.out.find("SKU-GONE") != std::string::npos);
  // Paging: one row, then the next after it.
  RunResult page1 = Storegw({"stock", "--url", d->url(), "--prefix", "SKU-", "--limit", "1"});
  CHECK_MESSAGE(page1.exit.code == 0, Show(page1));
  CHECK(HasRow(page1.out, {"SKU-1", "1,233"}));
  CHECK(page1.out.find("more: storegw stock --prefix 'SKU-' --limit 1 --after 'SKU-1'") !=
        std::string::npos);
  RunResult page2 = Storegw(
      {"stock", "--url", d->url(), "--prefix", "SKU-", "--limit", "1", "--after", "SKU-1"});
  CHECK_MESSAGE(page2.exit.code == 0, Show(page2));
  CHECK(HasRow(page2.out, {"SKU-GONE", "-2"}));
  CHECK(page2.out.find("more:") == std::string::npos);

  // The devices: till-01 sent everything, one refused request named no device.
  REQUIRE(HttpPost(d->port, "/v1/events", "{").status == 400);
  RunResult devs = Storegw({"devices", "--url", d->url()});
  CHECK_MESSAGE(devs.exit.code == 0, Show(devs));  // none silent (10 min default)
  CHECK(devs.out.find("2 devices, 0 silent (no request for 10m while open, always open)") == 0);
  CHECK(HasRow(devs.out, {"till-01", "ok"}));
  CHECK(HasRow(devs.out, {"(unidentified)", "ERRORS"}));
  CHECK(devs.out.find("malformed JSON at byte 1") != std::string::npos);
  RunResult devs_json = Storegw({"devices", "--url", d->url(), "--json"});
  CHECK_MESSAGE(devs_json.exit.code == 0, Show(devs_json));
  auto list = FromJson<v1::DeviceList>(devs_json.out);
  REQUIRE(list);
  REQUIRE(list->devices_size() == 2);
  CHECK(list->devices(0).device_id() == "");  // refusals first
  CHECK(list->devices(1).device_id() == "till-01");
  CHECK(list->devices(1).events_accepted() == 1236 - 1);  // all but the alert

  // alerts ack: journaled once, the second time says so, refusals exit 1.
  REQUIRE(doc->alerts_size() == 1);
  const std::string seq = std::to_string(doc->alerts(0).seq());
  RunResult ack = Storegw({"alerts", "ack", seq, "--by", "Ana", "--note", "recount at 6", "--url",
                           d->url()});
  CHECK_MESSAGE(ack.exit.code == 0, Show(ack));
  CHECK(ack.out.find("alert " + seq + " (oversell SKU-GONE) acknowledged by Ana at ") == 0);
  RunResult again_ack = Storegw({"alerts", "ack", seq, "--by", "Bo", "--url", d->url()});
  CHECK_MESSAGE(again_ack.exit.code == 0, Show(again_ack));
  CHECK(again_ack.out.find("was already acknowledged by Ana") != std::string::npos);
  RunResult no_such = Storegw({"alerts", "ack", "99999", "--by", "Ana", "--url", d->url()});
  CHECK_MESSAGE(no_such.exit.code == 1, Show(no_such));
  CHECK(no_such.err.find("alert 99999 does not exist") != std::string::npos);
  RunResult no_name = Storegw({"alerts", "ack", seq, "--url", d->url()});
  CHECK_MESSAGE(no_name.exit.code == 2, Show(no_name));
  CHECK(no_name.err.find("--by") != std::string::npos);
  RunResult acked = Storegw({"alerts", "--url", d->url()});
  CHECK_MESSAGE(acked.exit.code == 1, Show(acked));
  CHECK(acked.out.find("alerts: 1 open, 1 acknowledged") == 0);
  CHECK(acked.out.find("[acknowledged by Ana at ") != std::string::npos);
  auto after_ack = GetStatus(d->port);
  REQUIRE(after_ack);
  CHECK(after_ack->last_seq() == doc->last_seq() + 1);  // one alert_ack event, once

  d->proc.Signal(SIGTERM);
  REQUIRE(d->proc.WaitExit(30s));
  // The daemon is gone: down.
  RunResult gone = Storegw({"status", "--url", d->url(), "--timeout", "2s"});
  CHECK_MESSAGE(gone.exit.code == 2, Show(gone));
  RunResult devs_gone = Storegw({"devices", "--url", d->url(), "--timeout", "2s"});
  CHECK_MESSAGE(devs_gone.exit.code == 2, Show(devs_gone));

  // The table outlives the restart (saved in the journal on the way down).
  auto again = StartDaemon(tmp / "data", tmp / "logs", "degraded-again", &why, 0,
                           {"--config", (tmp / "storegw.toml").string()});
  REQUIRE_MESSAGE(again, why);
  RunResult after = Storegw({"devices", "--url", again->url(), "--json"});
  auto kept = FromJson<v1::DeviceList>(after.out);
  REQUIRE_MESSAGE(kept, Show(after));
  CHECK(kept->devices_size() == 2);
  again->proc.Signal(SIGTERM);
  REQUIRE(again->proc.WaitExit(30s));
}

TEST_CASE(
    "statuspage cli: link up and nothing waiting is healthy (exit 0) and broker gone is degraded") {
  TempDir tmp;
  Broker broker(tmp / "broker");
  const std::string token = "cli-token-0123456789abcdef";
  uint16_t sport = FreePort();
  WriteFile(tmp / "storegw.toml", "[uplink]\ntransport = \"mqtt\"\nurl = \"" + broker.url() +
                                      "\"\nbackoff_initial = \"100ms\"\nbackoff_max = \"500ms\"\n"
                                      "[status]\nlisten = \"127.0.0.1:" +
                                      std::to_string(sport) + "\"\ntoken = \"" + token + "\"\n");
  std::string why;
  auto d = StartDaemon(tmp / "data", tmp / "logs", "healthy", &why, 0,
                       {"--config", (tmp / "storegw.toml").string()});
  REQUIRE_MESSAGE(d, why);
  REQUIRE_MESSAGE(PostReceipts(d->port, "r", 300, 100, &why), why);
  const std::string auth = "Bearer " + token;
  bool delivered = WaitFor(
      [&] {
        auto s = GetStatus(sport, auth);
        return s && s->link() == "up" && s->backlog_events() == 0;
      },
      30s, 100ms);
  auto last = GetStatus(sport, auth);
  REQUIRE_MESSAGE(delivered, (last ? last->DebugString() : std::string("no status")));

  // --config gives the address (status.listen) and the token (status.token).
  RunResult ok = Storegw({"status", "--config", (tmp / "storegw.toml").string()});
  CHECK_MESSAGE(ok.exit.code == 0, Show(ok));
  CHECK(ok.out.find("HEALTHY") != std::string::npos);
  CHECK(HasRow(ok.out, {"Link", "up"}));
  CHECK(HasRow(ok.out, {"Backlog", "0", "events"}));
  CHECK(ok.out.find(token) == std::string::npos);
  // Without the token: cannot tell, exit 2, and it says what to do.
  RunResult no_token = Storegw({"status", "--url", "http://127.0.0.1:" + std::to_string(sport)});
  CHECK_MESSAGE(no_token.exit.code == 2, Show(no_token));
  CHECK(no_token.out.find("STOREGW_STATUS_TOKEN") != std::string::npos);
  RunResult alerts = Storegw({"alerts", "--config", (tmp / "storegw.toml").string()});
  CHECK_MESSAGE(alerts.exit.code == 0, Show(alerts));
  CHECK(alerts.out.find("no open alerts") == 0);

  // The broker dies: the link goes down, the gateway is degraded.
  broker.Kill();
  REQUIRE(WaitFor(
      [&] {
        auto s = GetStatus(sport, auth);
        return s && s->link() != "up";
      },
      30s, 100ms));
  RunResult down = Storegw({"status", "--config", (tmp / "storegw.toml").string()});
  CHECK_MESSAGE(down.exit.code == 1, Show(down));
  CHECK(down.out.find("the link to HQ is ") != std::string::npos);

  d->proc.Signal(SIGTERM);
  REQUIRE(d->proc.WaitExit(30s));
}

namespace {

// The line of `out` that holds every one of `parts` ("" if none).
std::string LineWith(const std::string& out, const std::vector<std::string>& parts) {
  std::istringstream lines(out);
  std::string line;
  while (std::getline(lines, line)) {
    if (std::all_of(parts.begin(), parts.end(),
                    [&](const std::string& p) { return line.find(p) != std::string::npos; })) {
      return line;
    }
  }
  return "";
}

}  // namespace

TEST_CASE("statuspage cli: alerts lists perishables and cold chain, and the batches due next") {
  TempDir tmp;
  std::string why;
  auto d = StartPerishablesDaemon(tmp / "gw", "cli-perishables", &why);
  REQUIRE_MESSAGE(d, why);

  RunResult a = Storegw({"alerts", "--url", d->url()});
  INFO(Show(a));
  CHECK(a.exit.code == 1);  // open alerts, as for the stock kinds
  CHECK(a.out.find("alerts: 4 open (store store-0042, gateway gw-01)") == 0);
  // Kind, sku or sensor, location, qty, due/since, overdue/for, note.
  const std::string roll = LineWith(a.out, {"remove from shelf", "SKU-ROLL", "hot counter 1"});
  REQUIRE(!roll.empty());
  CHECK(std::regex_search(roll, std::regex(R"( 12  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d  4\d min)")));
  CHECK(roll.find("ESCALATED") != std::string::npos);
  const std::string pie = LineWith(a.out, {"remove from shelf", "SKU-PIE", "deli"});
  REQUIRE(!pie.empty());
  CHECK(std::regex_search(pie, std::regex(R"( 4  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d  [5-9] min)")));
  CHECK(pie.find("ESCALATED") == std::string::npos);
  const std::string exc =
      LineWith(a.out, {"temperature excursion", "fridge-2", "Dairy fridge 2", "seen 9.5 °C to 9.5 °C"});
  CHECK_MESSAGE(!exc.empty(), "no excursion line");
  const std::string silent = LineWith(a.out, {"sensor silent", "freezer-1", "freezer 1"});
  CHECK_MESSAGE(!silent.empty(), "no silent-sensor line");
  // The batches still out, due or not, and the sensors.
  CHECK(a.out.find("next batches due: 4 out, 2 overdue\n") != std::string::npos);
  CHECK(!LineWith(a.out, {"SKU-ROLL", "overdue 4", "ESCALATED"}).empty());
  CHECK(std::regex_search(LineWith(a.out, {kScriptSku, kImgLocation}),
                          std::regex(R"(  3  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d  9 min( \d+ s)?$)")));
  CHECK(std::regex_search(LineWith(a.out, {"SKU-SOUP", "hot counter 1"}),
                          std::regex(R"(  2  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d  3 h 59 min$)")));
  CHECK(a.out.find("cold chain: 2 sensors, 1 out of limits, 1 silent, 1 excursion in all\n") !=
        std::string::npos);
  CHECK(a.out.find("\x1b[") == std::string::npos);  // not a terminal: no colour

  // `storegw status` summarises them (and stays degraded only for the
  // disabled uplink: store business is not gateway health).
  RunResult s = Storegw({"status", "--url", d->url()});
  CHECK_MESSAGE(s.exit.code == 1, Show(s));
  CHECK(HasRow(s.out, {"Perishables", "4", "batches", "out,", "2", "overdue"}));
  CHECK(HasRow(s.out, {"Cold", "chain", "2", "sensors,", "1", "out", "of", "limits,", "1", "silent,"}));
  CHECK(s.out.find("the link to HQ is down (uplink disabled") != std::string::npos);
  CHECK(!LineWith(s.out, {"remove from shelf", "SKU-ROLL"}).empty());

  // The kitchen screen is served on the device API's address too.
  HttpResult k = HttpGet(d->port, "/kitchen");
  CHECK(k.status == 200);
  CHECK(k.body.find("<!doctype html>") == 0);

  d->proc.Signal(SIGTERM);
  REQUIRE(d->proc.WaitExit(30s));
}
