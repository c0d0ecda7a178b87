// The status page in a real browser: headless Chromium (Debian's chromium,
// installed by packaging/install-deps.sh) loads GET / from a real daemon
// that has a backlog and whose link is down, runs the page's script, and
// the rendered DOM must show the backlog number (formatted for people) and
// the link state in words, and the last error with its time. Screenshots
// (desktop and phone width) are left in the build tree as test artefacts;
// their paths are printed.
#include <doctest/doctest.h>

#include <regex>
#include <string>

#include "cdp.h"
#include "sp_util.h"

using namespace storegw;
using namespace storegw::test;

namespace {

const char kChromium[] = "/usr/bin/chromium";

// Headless Chromium with a fresh profile and nothing that talks to the
// network on its own. As root the sandbox cannot run: --no-sandbox.
std::vector<std::string> ChromiumArgs(const TempDir& profile, std::vector<std::string> more) {
  std::vector<std::string> args = {kChromium, "--headless", "--no-sandbox", "--disable-gpu",
                                   "--disable-quic", "--no-first-run",
                                   "--disable-background-networking", "--disable-component-update",
                                   "--disable-sync", "--disable-dev-shm-usage", "--hide-scrollbars",
                                   "--user-data-dir=" + (profile / "profile").string(),
                                   // Let the page's fetches and timers run before the dump.
                                   "--virtual-time-budget=6000"};
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

// The text content of the element with this id in dumped HTML ("" if none).
std::string TextOf(const std::string& dom, const std::string& id) {
  std::regex re("id=\"" + id + "\"[^>]*>([^<]*)<");
  std::smatch m;
  return std::regex_search(dom, m, re) ? m[1].str() : "";
}

// A count of `sku` (its baseline): a sale below it then raises OVERSELL.
std::string BrowserCountJson(const std::string& event_id, const std::string& sku, int64_t qty) {
  return R"({"event_id":")" + event_id +
         R"(","device_id":"handheld-02","occurred_at":1700000000000000,"count":{"sku":")" + sku +
         R"(","qty":)" + std::to_string(qty) + "}}";
}

bool IsPng(const std::filesystem::path& p) {
  std::string head = ReadFile(p).substr(0, 8);
  return head == std::string("\x89PNG\r\n\x1a\n", 8);
}

}  // namespace

TEST_CASE("statuspage browser: headless Chromium shows the backlog and the link down") {
  REQUIRE_MESSAGE(std::filesystem::exists(kChromium),
                  "the browser test needs Debian's chromium: run packaging/install-deps.sh");
  TempDir tmp;
  // An MQTT uplink to a port where no broker listens: the link is down and
  // the last error says why, like a store whose uplink is cut.
  WriteFile(tmp / "storegw.toml",
            "[gateway]\nstore_id = \"store-0042\"\ngateway_id = \"gw-01\"\n"
            "[uplink]\ntransport = \"mqtt\"\nurl = \"tcp://127.0.0.1:" +
                std::to_string(FreePort()) +
                "\"\nbackoff_initial = \"1s\"\nbackoff_max = \"5s\"\n");
  std::string why;
  auto d = StartDaemon(tmp / "data", tmp / "logs", "browser", &why, 0,
                       {"--config", (tmp / "storegw.toml").string()});
  REQUIRE_MESSAGE(d, why);
  // A backlog of 12,345 events (and growing for a while, so the chart has a
  // slope), plus two oversold skus for the alert table.
  REQUIRE_MESSAGE(PostReceipts(d->port, "a", 6000, 1000, &why), why);
  // Counts give the two skus a baseline (an untracked sku raises no alert).
  REQUIRE(HttpPost(d->port, "/v1/events", BrowserCountJson("k-1", "SKU-00731", 1)).status == 200);
  REQUIRE(HttpPost(d->port, "/v1/events", BrowserCountJson("k-2", "SKU-01288", 0)).status == 200);
  REQUIRE(HttpPost(d->port, "/v1/events", SaleJson("s-1", "SKU-00731", 4)).status == 200);
  REQUIRE(HttpPost(d->port, "/v1/events", SaleJson("s-2", "SKU-01288", 1)).status == 200);
  // A refused request for the device table (nothing journaled).
  REQUIRE(HttpPost(d->port, "/v1/events",
                   R"({"event_id":"ms-1","device_id":"scale-03","occurred_at":1795790000000,)"
                   R"("count":{"sku":"SKU-1","qty":1}})")
              .status == 400);
  // A second history point (the daemon records one per 5 s): wait for it.
  REQUIRE(WaitFor(
      [&] {
        const std::string h = HttpGet(d->port, "/v1/status/history", 2s).body;
        return h.find("],[") != std::string::npos;  // at least two points
      },
      20s, 100ms));
  REQUIRE_MESSAGE(PostReceipts(d->port, "b", 6339, 1000, &why), why);
  // 6000 + 2 counts + 2 sales + 2 alerts + 6339 = 12,345 events waiting.
  auto s = GetStatus(d->port);
  REQUIRE(s);
  REQUIRE(s->backlog_events() == 12345);
  REQUIRE(s->link() != "up");

  TempDir profile;
  RunResult dom = Run(ChromiumArgs(profile, {"--dump-dom", d->url() + "/"}), 120s);
  REQUIRE_MESSAGE(dom.exit.ok(), Describe(dom.exit) << (dom.timed_out ? " (timed out)" : "") << "\n"
                                                    << dom.err.substr(0, 3000));
  const std::string& html = dom.out;
  {
    INFO("rendered DOM:\n" << html.substr(0, 20000));
    CHECK(TextOf(html, "backlog-events") == "12,345");
    CHECK(TextOf(html, "link") == "Link down");
    CHECK(html.find("data-state=\"down\"") != std::string::npos);
    CHECK(html.find("data-health=\"degraded\"") != std::string::npos);
    CHECK(TextOf(html, "ident") == "store store-0042 · gateway gw-01");
    CHECK(TextOf(html, "backlog-bytes").find(" waiting") != std::string::npos);
    CHECK(TextOf(html, "last-error").find("127.0.0.1") != std::string::npos);
    // ... with when it happened and how long before the document.
    CHECK(std::regex_match(TextOf(html, "last-error-at"),
                           std::regex(R"( \(at (\d{4}-\d\d-\d\d )?\d\d:\d\d:\d\d, .+ ago\))")));
    CHECK(html.find("SKU-00731") != std::string::npos);  // the alert table
    CHECK(html.find("SKU-01288") != std::string::npos);
    CHECK(html.find("<path") != std::string::npos);  // the chart was drawn
    // The device table: scale-03 (refusals) before till-01.
    CHECK(html.find("id=\"device-table\"") != std::string::npos);
    const size_t scale = html.find("data-device=\"scale-03\"");
    const size_t till = html.find("data-device=\"till-01\"");
    REQUIRE(scale != std::string::npos);
    REQUIRE(till != std::string::npos);
    CHECK(scale < till);
    CHECK(html.find("looks like milliseconds") != std::string::npos);  // its last error
    CHECK(TextOf(html, "device-count") == "3");
    CHECK(html.find("1970-01-01 00:00") == std::string::npos);  // no "last error" for till-01
  }

  // Screenshots for people: desktop and phone width.
  const std::filesystem::path out_dir = std::filesystem::path(STOREGW_BINARY_DIR) / "statuspage";
  std::filesystem::create_directories(out_dir);
  for (auto [name, size] : {std::pair<const char*, const char*>{"status_page.png", "1280,1250"},
                            {"status_page_phone.png", "412,1150"}}) {
    const std::filesystem::path png = out_dir / name;
    std::filesystem::remove(png);
    TempDir shot_profile;
    RunResult shot =
        Run(ChromiumArgs(shot_profile, {"--window-size=" + std::string(size),
                                        "--screenshot=" + png.string(), d->url() + "/"}),
            120s);
    CHECK_MESSAGE(shot.exit.ok(), Describe(shot.exit) << "\n" << shot.err.substr(0, 3000));
    REQUIRE(std::filesystem::exists(png));
    CHECK(IsPng(png));
    CHECK(std::filesystem::file_size(png) > 10000);
    MESSAGE("status page screenshot: " << png.string());
    std::printf("status page screenshot: %s\n", png.c_str());
  }

  d->proc.Signal(SIGTERM);
  auto e = d->proc.WaitExit(30s);
  REQUIRE(e);
  CHECK(e->ok());
}


TEST_CASE("statuspage browser: an alert acknowledged in headless Chromium is journaled") {
  REQUIRE_MESSAGE(std::filesystem::exists(kChromium),
                  "the browser test needs Debian's chromium: run packaging/install-deps.sh");
  TempDir tmp;
  WriteFile(tmp / "storegw.toml",
            "[gateway]\nstore_id = \"store-0042\"\ngateway_id = \"gw-01\"\n"
            "[uplink]\ntransport = \"none\"\n");
  std::string why;
  auto d = StartDaemon(tmp / "data", tmp / "logs", "browser-ack", &why, 0,
                       {"--config", (tmp / "storegw.toml").string()});
  REQUIRE_MESSAGE(d, why);
  // Two tracked skus oversold (two alerts) and one untracked sku sold
  // (no alert, counted as untracked).
  REQUIRE(HttpPost(d->port, "/v1/events", BrowserCountJson("k-1", "SKU-00731", 1)).status == 200);
  REQUIRE(HttpPost(d->port, "/v1/events", BrowserCountJson("k-2", "SKU-01288", 0)).status == 200);
  REQUIRE(HttpPost(d->port, "/v1/events", SaleJson("s-1", "SKU-00731", 4)).status == 200);
  REQUIRE(HttpPost(d->port, "/v1/events", SaleJson("s-2", "SKU-01288", 1)).status == 200);
  REQUIRE(HttpPost(d->port, "/v1/events", SaleJson("s-3", "SKU-NEW", 2)).status == 200);
  auto before = GetStatus(d->port);
  REQUIRE(before);
  REQUIRE(before->alerts_size() == 2);
  CHECK(before->alerts_open_total() == 2);
  CHECK(before->skus_untracked() == 1);
  const uint64_t alert_seq = before->alerts(1).seq();  // the older: SKU-00731
  REQUIRE(before->alerts(1).sku() == "SKU-00731");
  const uint64_t last_before = before->last_seq();

  TempDir profile;
  CdpBrowser b;
  // Without --virtual-time-budget: with it, headless Chromium closes the
  // page once the budget is spent, and the test is not done with it yet.
  std::vector<std::string> args = ChromiumArgs(profile, {"--window-size=1280,1100"});
  std::erase_if(args, [](const std::string& a) { return a.rfind("--virtual-time-budget", 0) == 0; });
  REQUIRE_MESSAGE(b.Start(args, (tmp / "chromium.log").string(), &why), why);
  auto page = b.OpenPage(d->url() + "/", &why);
  REQUIRE_MESSAGE(page, why);
  auto eval = [&](const std::string& js) {
    auto v = b.Eval(*page, js, &why);
    REQUIRE_MESSAGE(v, why);
    return *v;
  };
  auto wait_for = [&](const std::string& js) {
    return WaitFor([&] { return eval(js) == "true"; }, 30s, 100ms);
  };
  const std::string row = "document.querySelector('tr.alert[data-seq=\"" +
                          std::to_string(alert_seq) + "\"]')";
  REQUIRE(wait_for(row + " !== null && " + row + ".querySelector('button.ack') !== null"));
  CHECK(eval("document.getElementById('untracked').textContent").find(
            "1 of 3 skus have no baseline yet") != std::string::npos);
  CHECK(eval("document.getElementById('alerts-open').textContent") == "2");

  // Without a name: refused on the page, nothing sent.
  eval(row + ".querySelector('button.ack').click(), true");
  CHECK(wait_for("document.getElementById('ack-error').textContent.indexOf('Type your name') >= 0"));
  CHECK(GetStatus(d->port)->last_seq() == last_before);

  // With a name: the alert is acknowledged, the row greyed with who.
  eval("document.getElementById('ack-by').value = 'Ana Night', true");
  eval(row + ".querySelector('button.ack').click(), true");
  REQUIRE(wait_for(row + ".classList.contains('acked')"));
  const std::string note = eval(row + ".querySelector('.acknote').textContent");
  CHECK(note.find("acknowledged by Ana Night") != std::string::npos);
  CHECK(eval("document.getElementById('alerts-sub').textContent") == "1 acknowledged");
  // The other alert still has its button.
  CHECK(eval("document.querySelectorAll('button.ack').length") == "1");

  const std::filesystem::path out_dir = std::filesystem::path(STOREGW_BINARY_DIR) / "statuspage";
  std::filesystem::create_directories(out_dir);
  auto png = b.Screenshot(*page, &why);
  REQUIRE_MESSAGE(png, why);
  WriteFile(out_dir / "status_page_ack.png", *png);
  CHECK(IsPng(out_dir / "status_page_ack.png"));
  CHECK(png->size() > 10000);
  std::printf("status page screenshot (acknowledged alert): %s\n",
              (out_dir / "status_page_ack.png").c_str());

  // Journaled: one alert_ack event with who, and the alert carries it.
  auto after = GetStatus(d->port);
  REQUIRE(after);
  CHECK(after->last_seq() == last_before + 1);
  bool found = false;
  for (const auto& a : after->alerts()) {
    if (a.seq() != alert_seq) continue;
    found = true;
    CHECK(a.acked_by() == "Ana Night");
    CHECK(a.acked_seq() == last_before + 1);
  }
  CHECK(found);
  d->proc.Signal(SIGTERM);
  auto e = d->proc.WaitExit(30s);
  REQUIRE(e);
  CHECK(e->ok());
}

TEST_CASE("statuspage browser: perishables, cold chain and the kitchen screen in headless Chromium") {
  REQUIRE_MESSAGE(std::filesystem::exists(kChromium),
                  "the browser test needs Debian's chromium: run packaging/install-deps.sh");
  TempDir tmp;
  std::string why;
  auto d = StartPerishablesDaemon(tmp / "gw", "browser-perishables", &why);
  REQUIRE_MESSAGE(d, why);

  TempDir profile;
  CdpBrowser b;
  std::vector<std::string> args = ChromiumArgs(profile, {"--window-size=1600,1200"});
  std::erase_if(args, [](const std::string& a) { return a.rfind("--virtual-time-budget", 0) == 0; });
  REQUIRE_MESSAGE(b.Start(args, (tmp / "chromium.log").string(), &why), why);
  const std::filesystem::path out_dir = std::filesystem::path(STOREGW_BINARY_DIR) / "statuspage";
  std::filesystem::create_directories(out_dir);

  // The same checks on the page and on the kitchen screen.
  for (const std::string path : {"/", "/kitchen"}) {
    CAPTURE(path);
    auto page = b.OpenPage(d->url() + path, &why);
    REQUIRE_MESSAGE(page, why);
    auto eval = [&](const std::string& js) {
      auto v = b.Eval(*page, js, &why);
      REQUIRE_MESSAGE(v, why);
      return *v;
    };
    auto wait_for = [&](const std::string& js) {
      return WaitFor([&] { return eval(js) == "true"; }, 30s, 100ms);
    };
    REQUIRE(wait_for("document.querySelectorAll('#remove-table tbody tr').length === 2 && "
                     "document.querySelector('#sensor-table') !== null"));
    const bool kitchen = path == "/kitchen";
    CHECK(eval("document.body.classList.contains('kitchen')") == (kitchen ? "true" : "false"));
    CHECK(eval("document.getElementById('batch-count').textContent") == "4 batches out · 2 overdue");

    // Remove from shelf: the escalated tray first, highlighted.
    const std::string rows = "document.querySelectorAll('#remove-table tbody tr')";
    CHECK(eval(rows + "[0].classList.contains('escalated')") == "true");
    CHECK(eval(rows + "[0].querySelector('.sku').textContent") == "SKU-ROLL");
    CHECK(eval(rows + "[0].querySelector('.where').textContent") == "hot counter 1");
    CHECK(eval(rows + "[0].querySelector('.num').textContent") == "12");
    CHECK(eval(rows + "[0].textContent.indexOf('ESCALATED') >= 0") == "true");
    CHECK(eval("/^\\d\\d:\\d\\d$/.test(" + rows + "[0].querySelector('.when').textContent)") ==
          "true");
    CHECK(eval("/^overdue by 4\\d min$/.test(" + rows + "[0].querySelector('.count').textContent)") ==
          "true");
    CHECK(eval(rows + "[1].querySelector('.sku').textContent") == "SKU-PIE");
    CHECK(eval(rows + "[1].classList.contains('escalated')") == "false");
    CHECK(eval("/^overdue by [5-9] min$/.test(" + rows + "[1].querySelector('.count').textContent)") ==
          "true");

    // Due next: overdue first, then by due time, with a live countdown.
    const std::string due = "document.querySelectorAll('#due-table tbody tr')";
    REQUIRE(eval(due + ".length") == "4");
    CHECK(eval(due + "[0].querySelector('.sku').textContent") == "SKU-ROLL");
    CHECK(eval(due + "[1].querySelector('.sku').textContent") == "SKU-PIE");
    // The markup sku and location are shown as text: no element made of them.
    CHECK(eval(due + "[2].querySelector('.sku').textContent") == kScriptSku);
    CHECK(eval(due + "[2].querySelector('.where').textContent") == kImgLocation);
    CHECK(eval("document.querySelectorAll('#perishables script, #perishables img').length") == "0");
    CHECK(eval("document.scripts.length") == "1");  // the page's own
    CHECK(eval("document.getElementById('due-table').innerHTML.indexOf("
               "'&lt;script&gt;alert(1)&lt;/script&gt;') >= 0") == "true");
    CHECK(eval(due + "[3].querySelector('.sku').textContent") == "SKU-SOUP");
    const std::string countdown = due + "[2].querySelector('.count').textContent";
    const std::string first = eval(countdown);
    CHECK(std::regex_match(first, std::regex(R"(in (9|10):\d\d)")));
    CHECK(eval(due + "[2].classList.contains('overdue')") == "false");
    // It counts down without a new document: the next second shows another value.
    CHECK(wait_for(countdown + " !== " + "'" + first + "'"));
    CHECK(std::regex_match(eval(due + "[3].querySelector('.count').textContent"),
                           std::regex(R"(in (3:59|4:00):\d\d)")));

    // Cold chain: the fridge's excursion in °C, the silent freezer.
    const std::string fridge = "document.querySelector('#sensor-table tr[data-sensor=\"fridge-2\"]')";
    const std::string freezer =
        "document.querySelector('#sensor-table tr[data-sensor=\"freezer-1\"]')";
    CHECK(eval(fridge + ".classList.contains('sensor-bad')") == "true");
    CHECK(eval(fridge + ".querySelector('.where').textContent") == "Dairy fridge 2");
    CHECK(eval(fridge + ".querySelector('.reading .value').textContent") == "9.5 °C");
    CHECK(eval(fridge + ".querySelector('.limits').textContent") == "0.0 °C to 5.0 °C (config)");
    const std::string state = eval(fridge + ".querySelector('.state').textContent");
    CHECK(state.find("EXCURSION") == 0);
    CHECK(state.find("seen 9.5 °C to 9.5 °C") != std::string::npos);
    CHECK(std::regex_search(state, std::regex(R"(since \d\d:\d\d for (<1|\d+) min)")));
    CHECK(eval(fridge + ".querySelector('td.num').textContent") == "1");  // excursions
    CHECK(eval(freezer + ".querySelector('.state').textContent.indexOf('SILENT') === 0") == "true");
    CHECK(eval(freezer + ".querySelector('.reading .value').textContent") == "-18.0 °C");
    CHECK(eval("document.getElementById('sensor-count').textContent") ==
          "(2 sensors, 1 out of limits, 1 silent)");

    if (kitchen) {
      // Only the perishables, big and high-contrast.
      for (const char* hidden : {".banner", ".grid", "#devices", "#alerts", "#chart", "footer"}) {
        CAPTURE(hidden);
        CHECK(eval("getComputedStyle(document.querySelector('" + std::string(hidden) +
                   "').closest('section, div.grid, footer')).display === 'none'") == "true");
      }
      CHECK(eval("getComputedStyle(document.getElementById('perishables')).display !== 'none'") ==
            "true");
      CHECK(eval("parseFloat(getComputedStyle(document.querySelector('#due-table td.sku')).fontSize) "
                 ">= 28") == "true");
      CHECK(eval("getComputedStyle(document.body).backgroundColor") == "rgb(0, 0, 0)");
      CHECK(eval("getComputedStyle(document.body).color") == "rgb(255, 255, 255)");
      CHECK(std::regex_match(eval("document.getElementById('clock').textContent"),
                             std::regex(R"(\d\d:\d\d:\d\d)")));
    } else {
      CHECK(eval("getComputedStyle(document.querySelector('.grid')).display !== 'none'") == "true");
      // The new kinds are in the general alert list too (to acknowledge).
      CHECK(eval("document.querySelectorAll('#alert-table tr.alert').length") == "4");
    }
    auto png = b.Screenshot(*page, &why);
    REQUIRE_MESSAGE(png, why);
    const auto file = out_dir / (kitchen ? "status_page_kitchen.png" : "status_page_perishables.png");
    WriteFile(file, *png);
    CHECK(IsPng(file));
    std::printf("status page screenshot (%s): %s\n", path.c_str(), file.c_str());
  }

  // ?view=kitchen is the kitchen screen too.
  auto view = b.OpenPage(d->url() + "/?view=kitchen", &why);
  REQUIRE_MESSAGE(view, why);
  CHECK(WaitFor(
      [&] {
        auto v = b.Eval(*view, "document.body.classList.contains('kitchen') && "
                               "document.querySelector('#remove-table') !== null", &why);
        return v && *v == "true";
      },
      30s, 100ms));

  d->proc.Signal(SIGTERM);
  auto e = d->proc.WaitExit(30s);
  REQUIRE(e);
  CHECK(e->ok());
}
