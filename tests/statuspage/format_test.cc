// Unit tests of the people-facing formatting (humanize.h), the progress bar
// (progress.h) and the health verdict (health.h).
#include <doctest/doctest.h>

#include <cstdio>
#include <string>

#include "storegw/monitor/health.h"
#include "storegw/monitor/humanize.h"
#include "storegw/monitor/progress.h"

using namespace storegw;
using namespace storegw::gateway;

TEST_CASE("humanize: counts have thousands separators") {
  CHECK(FormatCount(uint64_t{0}) == "0");
  CHECK(FormatCount(uint64_t{999}) == "999");
  CHECK(FormatCount(uint64_t{1000}) == "1,000");
  CHECK(FormatCount(uint64_t{12345}) == "12,345");
  CHECK(FormatCount(uint64_t{1234567}) == "1,234,567");
  CHECK(FormatCount(uint64_t{18446744073709551615ull}) == "18,446,744,073,709,551,615");
  CHECK(FormatCount(int64_t{-4}) == "-4");
  CHECK(FormatCount(int64_t{-12345}) == "-12,345");
  CHECK(FormatCount(INT64_MIN) == "-9,223,372,036,854,775,808");
}

TEST_CASE("humanize: bytes in 1024 steps, one decimal below ten") {
  CHECK(FormatBytes(0) == "0 B");
  CHECK(FormatBytes(512) == "512 B");
  CHECK(FormatBytes(1023) == "1023 B");
  CHECK(FormatBytes(1024) == "1 KB");
  CHECK(FormatBytes(1536) == "1.5 KB");
  CHECK(FormatBytes(3355443) == "3.2 MB");
  CHECK(FormatBytes(50ull << 20) == "50 MB");
  CHECK(FormatBytes(1ull << 30) == "1 GB");
  CHECK(FormatBytes((1ull << 20) * 1023 + (1ull << 20) * 999 / 1000) == "1 GB");
  CHECK(FormatBytes(10189) == "10 KB");  // 9.95 KB rounds to 10, printed without a decimal
}

TEST_CASE("humanize: sensor readings, milli-Celsius as degrees with one decimal") {
  CHECK(FormatSensorValue(4500, "temp_mc") == "4.5 \xc2\xb0" "C");
  CHECK(FormatSensorValue(4500, "") == "4.5 \xc2\xb0" "C");  // the default metric
  CHECK(FormatSensorValue(0, "temp_mc") == "0.0 \xc2\xb0" "C");
  CHECK(FormatSensorValue(4449, "temp_mc") == "4.4 \xc2\xb0" "C");
  CHECK(FormatSensorValue(4450, "temp_mc") == "4.5 \xc2\xb0" "C");  // half away from zero
  CHECK(FormatSensorValue(-18250, "temp_mc") == "-18.3 \xc2\xb0" "C");
  CHECK(FormatSensorValue(-18249, "temp_mc") == "-18.2 \xc2\xb0" "C");
  CHECK(FormatSensorValue(-40, "temp_mc") == "0.0 \xc2\xb0" "C");  // never "-0.0"
  CHECK(FormatSensorValue(72000, "temp_mc") == "72.0 \xc2\xb0" "C");
  CHECK(FormatSensorValue(INT64_MIN, "temp_mc") == "-9223372036854775.8 \xc2\xb0" "C");
  CHECK(FormatSensorValue(1234, "rh_pm") == "1,234 rh_pm");
  CHECK(FormatSensorValue(-5, "door") == "-5 door");
}

TEST_CASE("humanize: ages in at most two units") {
  CHECK(FormatAge(0) == "0 s");
  CHECK(FormatAge(42) == "42 s");
  CHECK(FormatAge(60) == "1 min");
  CHECK(FormatAge(303) == "5 min 3 s");
  CHECK(FormatAge(8040) == "2 h 14 min");
  CHECK(FormatAge(7200) == "2 h");
  CHECK(FormatAge(3 * 86400 + 4 * 3600 + 59) == "3 d 4 h");
}

TEST_CASE("humanize: rates and percentages") {
  CHECK(FormatRate(0) == "0/s");
  CHECK(FormatRate(-1) == "0/s");
  CHECK(FormatRate(0.01) == "<0.1/s");
  CHECK(FormatRate(0.4) == "0.4/s");
  CHECK(FormatRate(4.25) == "4.2/s");  // printf rounding of 4.25 (binary 4.25 exactly: to even)
  CHECK(FormatRate(5) == "5/s");
  CHECK(FormatRate(12.4) == "12/s");
  CHECK(FormatRate(1234.4) == "1,234/s");
  CHECK(FormatPercent(0, 0) == "-");
  CHECK(FormatPercent(1, 3) == "33%");
  CHECK(FormatPercent(996, 1000) == "99%");  // rounds down: not "100%" until it is
  CHECK(FormatPercent(1000, 1000) == "100%");
}

TEST_CASE("progress: a bar, a percentage and the counts") {
  CHECK(RenderProgressLine("journal verify", 0, 200, 10) ==
        "journal verify [----------]   0%  0 / 200 events");
  CHECK(RenderProgressLine("journal verify", 51, 100, 10) ==
        "journal verify [#####-----]  51%  51 / 100 events");
  CHECK(RenderProgressLine("x", 1234567, 1234567, 4) ==
        "x [####] 100%  1,234,567 / 1,234,567 events");
  CHECK(RenderProgressLine("x", 5, 0, 10) == "x  5 events");                // total unknown
  CHECK(RenderProgressLine("x", 9, 3, 3) == "x [###] 100%  3 / 3 events");  // clamped
}

TEST_CASE("progress: drawn only on a terminal, and erased at the end") {
  std::FILE* f = std::tmpfile();
  REQUIRE(f);
  {
    TtyProgress off("job", f);  // a file is not a terminal
    CHECK_FALSE(off.active());
    off.Update(1, 2);
    off.Finish();
  }
  std::fflush(f);
  CHECK(std::ftell(f) == 0);
  {
    TtyProgress on("job", f, /*force=*/true);
    CHECK(on.active());
    on.Update(1, 4);
    on.Update(2, 4);  // within 100 ms of the first: skipped
    on.Update(4, 4);  // complete: always drawn
  }                   // the destructor erases the line
  std::fflush(f);
  std::rewind(f);
  char buf[512] = {};
  size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::string out(buf, n);
  std::fclose(f);
  CHECK(out.find("\rjob [#######") != std::string::npos);
  CHECK(out.find(" 25%  1 / 4 events") != std::string::npos);
  CHECK(out.find("2 / 4") == std::string::npos);
  CHECK(out.find("100%  4 / 4 events") != std::string::npos);
  CHECK(out.size() >= 4);
  CHECK(out.substr(out.size() - 4) == "\r\x1b[K");
}

namespace {

v1::GatewayStatus Fine() {
  v1::GatewayStatus s;
  s.set_online(true);
  s.set_link("up");
  s.set_journal_bytes(100 << 20);
  s.set_journal_max_bytes(1ull << 30);
  return s;
}

}  // namespace

TEST_CASE("health: each rule alone makes the store degraded") {
  HealthPolicy policy;  // 10 min, 80%
  CHECK(EvaluateHealth(Fine(), policy).level == HealthLevel::kHealthy);
  CHECK(EvaluateHealth(Fine(), policy).reasons.empty());

  SUBCASE("link down, with the last error") {
    v1::GatewayStatus s = Fine();
    s.set_link("down");
    s.set_last_error("could not connect to 127.0.0.1:1883: connection refused");
    Health h = EvaluateHealth(s, policy);
    CHECK(h.level == HealthLevel::kDegraded);
    REQUIRE(h.reasons.size() == 1);
    CHECK(h.reasons[0] ==
          "the link to HQ is down (could not connect to 127.0.0.1:1883: connection refused)");
  }
  SUBCASE("link connecting") {
    v1::GatewayStatus s = Fine();
    s.set_link("connecting");
    CHECK(EvaluateHealth(s, policy).level == HealthLevel::kDegraded);
  }
  SUBCASE("a backlog older than max_age, not one just under it") {
    v1::GatewayStatus s = Fine();
    s.set_backlog_events(12345);
    s.set_oldest_undelivered_age_s(600);
    CHECK(EvaluateHealth(s, policy).level == HealthLevel::kHealthy);
    s.set_oldest_undelivered_age_s(8040);
    Health h = EvaluateHealth(s, policy);
    CHECK(h.level == HealthLevel::kDegraded);
    REQUIRE(h.reasons.size() == 1);
    CHECK(h.reasons[0] ==
          "the oldest undelivered event is 2 h 14 min old (limit 10 min); 12,345 events wait");
    policy.max_age = std::chrono::hours(3);
    CHECK(EvaluateHealth(s, policy).level == HealthLevel::kHealthy);
  }
  SUBCASE("journal over the share, and full") {
    v1::GatewayStatus s = Fine();
    s.set_journal_bytes((1ull << 30) * 8 / 10 - 1);
    CHECK(EvaluateHealth(s, policy).level == HealthLevel::kHealthy);
    s.set_journal_bytes((1ull << 30) * 8 / 10 + 1);
    Health h = EvaluateHealth(s, policy);
    CHECK(h.level == HealthLevel::kDegraded);
    REQUIRE(h.reasons.size() == 1);
    CHECK(h.reasons[0].find("80% full (819 MB of 1 GB, limit 80%)") != std::string::npos);
    s.set_journal_full(true);
    h = EvaluateHealth(s, policy);
    REQUIRE(h.reasons.size() == 1);
    CHECK(h.reasons[0].find("the journal is FULL") == 0);
  }
  SUBCASE("offline (shutting down)") {
    v1::GatewayStatus s = Fine();
    s.set_online(false);
    CHECK(EvaluateHealth(s, policy).level == HealthLevel::kDegraded);
  }
  SUBCASE("open stock alerts are not a health problem") {
    v1::GatewayStatus s = Fine();
    s.add_alerts()->set_kind(v1::Alert::OVERSELL);
    CHECK(EvaluateHealth(s, policy).level == HealthLevel::kHealthy);
  }
  CHECK(std::string(HealthName(HealthLevel::kDown)) == "down");
}
