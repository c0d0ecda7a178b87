// The fleet page in a real browser: a database holding 200 gateways (their
// statuses and batches written through PgStore, with HQ receive times spread
// over the last hours: some reported offline, some silent, some with a
// backlog, alerts or a new epoch), a real `storegw-hq run` on it, and
// headless Chromium (Debian's chromium) loading GET /, running the page's
// script. The rendered DOM must list all 200, the offline ones first and
// the longest offline at the top, with the summary in words. Screenshots
// (desktop and phone width) are left in the build tree; their paths are
// printed.
#include <doctest/doctest.h>

#include <cstdio>
#include <regex>
#include <string>
#include <vector>

#include "hq_fleet_test_util.h"
#include "hq_store_test_util.h"
#include "storegw/hq/pg_store.h"

using namespace storegw;
using namespace storegw::test;

namespace {

const char kChromium[] = "/usr/bin/chromium";
constexpr int kGateways = 200;
constexpr int64_t kSec = 1000000;

// Headless Chromium with a fresh profile and nothing that talks to the
// network on its own; as root the sandbox cannot run.
std::vector<std::string> ChromiumArgs(const TempDir& profile, std::vector<std::string> more) {
  std::vector<std::string> args = {kChromium, "--headless", "--no-sandbox", "--disable-gpu",
                                   "--disable-quic", "--no-first-run",
                                   "--disable-background-networking", "--disable-component-update",
                                   "--disable-sync", "--disable-dev-shm-usage", "--hide-scrollbars",
                                   "--user-data-dir=" + (profile / "profile").string(),
                                   // Let the page's fetch and rendering run before the dump.
                                   "--virtual-time-budget=5000"};
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

std::string TextOf(const std::string& dom, const std::string& id) {
  std::regex re("id=\"" + id + "\"[^>]*>([^<]*)<");
  std::smatch m;
  return std::regex_search(dom, m, re) ? m[1].str() : "";
}

std::string StoreId(int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "store-%04d", i + 1);
  return buf;
}

// Every store's gateway is "gw-01", the packaged default: HQ tells them
// apart by (store, gateway), so these are 200 gateways, 200 rows.
std::string GatewayId(int) {
  return "gw-01";
}

// Which kind of gateway number i is.
bool Reported(int i) {
  return i % 10 == 3;
}  // 20: their last will said offline
bool Silent(int i) {
  return i % 25 == 7;
}  // 8: online in their status, then nothing

}  // namespace

TEST_CASE("fleet page: 200 gateways in headless Chromium, offline ones first") {
  REQUIRE_MESSAGE(std::filesystem::exists(kChromium),
                  "the browser test needs Debian's chromium: run packaging/install-deps.sh");
  TempDir tmp;
  const TestDb db = FreshDatabase("hq_browser");
  const int64_t now = hq_test::NowMicros();
  {
    auto store = hq::PgStore::Open(db.conninfo);
    REQUIRE_MESSAGE(store.ok(), store.status().message());
    std::vector<hq::IncomingBatch> old, batches;
    std::vector<hq::BatchOutcome> outcomes;
    for (int i = 5; i < kGateways; i += 50) {
      // A journal that was replaced: an older epoch first.
      old.push_back(
          hq_test::Batch(StoreId(i), GatewayId(i), 900000 + static_cast<uint64_t>(i), 1, 3, "old"));
    }
    REQUIRE(store.value()->ApplyBatches(old, &outcomes).ok());
    for (int i = 0; i < kGateways; ++i) {
      const uint64_t epoch = 1000 + static_cast<uint64_t>(i);
      if (!Silent(i)) {
        batches.push_back(
            hq_test::Batch(StoreId(i), GatewayId(i), epoch, 1, 1 + static_cast<uint64_t>(i % 13)));
      }
    }
    REQUIRE(store.value()->ApplyBatches(batches, &outcomes).ok());
    for (int i = 0; i < kGateways; ++i) {
      v1::GatewayStatus s;
      s.set_store_id(StoreId(i));
      s.set_gateway_id(GatewayId(i));
      s.set_epoch(1000 + static_cast<uint64_t>(i));
      s.set_online(!Reported(i));
      s.set_link(Reported(i) ? "down" : "up");
      s.set_version("0.1.0");
      s.set_last_seq(1 + static_cast<uint64_t>(i % 13));
      if (i % 4 == 1 || Reported(i)) {
        s.set_backlog_events(static_cast<uint64_t>((i * 37) % 900 + 1));
        s.set_oldest_undelivered_age_s(static_cast<uint64_t>(i * 3));
      }
      if (i % 17 == 0) {
        auto* a = s.add_alerts();
        a->set_kind(v1::Alert::OVERSELL);
        a->set_sku("SKU-1");
      }
      // Offline since a time that grows with i; silent for hours; the
      // others reported seconds ago.
      const int64_t at = Reported(i) ? now - (i + 1) * 97 * kSec
                         : Silent(i) ? now - (6 * 3600 + i) * kSec
                                     : now - 5 * kSec;
      REQUIRE(store.value()->RecordStatus(s, at).ok());
    }
  }

  Broker broker(tmp / "broker");
  WriteFile(tmp / "hq.toml", HqConfigToml(db.conninfo, broker.url()));
  std::string why;
  auto hq = StartHq(tmp / "hq.toml", tmp / "logs", "hq", &why);
  REQUIRE_MESSAGE(hq, why);
  auto fleet = GetFleet(hq->port);
  REQUIRE(fleet);
  REQUIRE(fleet->gateways_size() == kGateways);
  const int offline = static_cast<int>(fleet->summary().offline());
  CHECK(offline == 28);  // 20 reported + 8 silent
  // The longest offline: the silent ones (6 h), the last of them first.
  CHECK(fleet->gateways(0).store_id() == StoreId(182));
  CHECK(fleet->gateways(0).offline_reason() == "silent");
  CHECK(fleet->summary().new_epochs() == 4);

  TempDir profile;
  RunResult dom = Run(ChromiumArgs(profile, {"--dump-dom", hq->url() + "/"}), 120s);
  REQUIRE_MESSAGE(dom.exit.ok(), Describe(dom.exit) << (dom.timed_out ? " (timed out)" : "") << "\n"
                                                    << dom.err.substr(0, 3000));
  const std::string& html = dom.out;
  {
    INFO("rendered DOM (start):\n" << html.substr(0, 6000));
    CHECK(TextOf(html, "n-gateways") == "200");
    CHECK(TextOf(html, "n-offline") == "28");
    CHECK(TextOf(html, "headline") == "28 gateways offline of 200");
    CHECK(TextOf(html, "shown") == "200 gateways");
    CHECK(html.find("id=\"banner\" data-state=\"offline\"") != std::string::npos);
    // Every gateway is a row; the offline ones come first, the worst on top.
    std::regex row_re("<tr class=\"(online|offline)\" data-key=\"([^\"]+)\"");
    std::vector<std::pair<std::string, std::string>> rows;
    for (auto it = std::sregex_iterator(html.begin(), html.end(), row_re);
         it != std::sregex_iterator(); ++it) {
      rows.emplace_back((*it)[1].str(), (*it)[2].str());
    }
    REQUIRE(rows.size() == kGateways);
    for (int k = 0; k < kGateways; ++k) {
      CHECK_MESSAGE((rows[k].first == "offline") == (k < offline), "row " << k);
    }
    CHECK(rows[0].second == StoreId(182) + "/" + GatewayId(182));
    for (int k = 0; k < kGateways; ++k) {
      CHECK(rows[k].second ==
            fleet->gateways(k).store_id() + "/" + fleet->gateways(k).gateway_id());
    }
    CHECK(html.find("new epoch") != std::string::npos);
    CHECK(html.find("said it went offline") != std::string::npos);
  }

  // Screenshots for people: desktop and phone width.
  const std::filesystem::path out_dir = std::filesystem::path(STOREGW_BINARY_DIR) / "hq";
  std::filesystem::create_directories(out_dir);
  for (auto [name, size] : {std::pair<const char*, const char*>{"fleet_page.png", "1400,1100"},
                            {"fleet_page_phone.png", "412,1100"}}) {
    const std::filesystem::path png = out_dir / name;
    std::filesystem::remove(png);
    TempDir shot_profile;
    RunResult shot =
        Run(ChromiumArgs(shot_profile, {"--window-size=" + std::string(size),
                                        "--screenshot=" + png.string(), hq->url() + "/"}),
            120s);
    CHECK_MESSAGE(shot.exit.ok(), Describe(shot.exit) << "\n" << shot.err.substr(0, 3000));
    REQUIRE(std::filesystem::exists(png));
    CHECK(ReadFile(png).substr(0, 8) == std::string("\x89PNG\r\n\x1a\n", 8));
    CHECK(std::filesystem::file_size(png) > 10000);
    MESSAGE("fleet page screenshot: " << png.string());
    std::printf("fleet page screenshot: %s\n", png.c_str());
  }

  hq->proc.Signal(SIGTERM);
  auto e = hq->proc.WaitExit(30s);
  REQUIRE(e);
  CHECK(e->ok());
}
