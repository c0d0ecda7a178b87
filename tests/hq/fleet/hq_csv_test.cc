// The CSV files of `storegw-hq publish` (gateway/hq/csv.cc): what is read,
// and that every problem names FILE:LINE:COLUMN and what is wrong, all of
// them, with no result at all when there is one.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "common/ids.h"
#include "storegw/hq/app/csv.h"

using namespace storegw;
using namespace storegw::hq;

namespace {

constexpr int64_t kDefault = 1767225600000000;  // 2026-01-01T00:00:00Z

std::vector<std::string> StockProblems(const std::string& text) {
  std::vector<std::string> problems;
  auto r = ParseStockCsv(text, "stock.csv", &problems);
  CHECK(r.ok() == problems.empty());
  return problems;
}

std::string OneStockProblem(const std::string& text) {
  auto p = StockProblems(text);
  REQUIRE_MESSAGE(p.size() == 1, p.size() << " problems" << (p.empty() ? "" : ": " + p[0]));
  return p[0];
}

std::string OnePriceProblem(const std::string& text) {
  std::vector<std::string> p;
  auto r = ParsePriceCsv(text, "prices.csv", kDefault, &p);
  CHECK_FALSE(r.ok());
  REQUIRE_MESSAGE(p.size() == 1, p.size() << " problems" << (p.empty() ? "" : ": " + p[0]));
  return p[0];
}

}  // namespace

TEST_CASE("csv stock: header, comments, blank lines, CRLF, BOM, quotes and blanks") {
  const std::string text =
      "\xEF\xBB\xBFsku,qty\r\n"
      "# counted on Monday\r\n"
      "SKU-1,12\r\n"
      "\r\n"
      "  SKU-2 , 0 \r\n"
      "\"SKU,3\",\"7\"\n"
      "\"SKU\"\"4\",+5\n";
  auto r = ParseStockCsv(text, "stock.csv");
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  REQUIRE(r->size() == 4);
  CHECK((*r)[0].sku() == "SKU-1");
  CHECK((*r)[0].qty() == 12);
  CHECK((*r)[1].sku() == "SKU-2");
  CHECK((*r)[1].qty() == 0);
  CHECK((*r)[2].sku() == "SKU,3");
  CHECK((*r)[2].qty() == 7);
  CHECK((*r)[3].sku() == "SKU\"4");
  // Without a header too.
  auto plain = ParseStockCsv("A,1\nB,2", "stock.csv");
  REQUIRE(plain.ok());
  CHECK(plain->size() == 2);
}

TEST_CASE("csv stock: each mistake names file, line, column and what is wrong") {
  CHECK(OneStockProblem("sku,qty\nSKU-1,12\nSKU-2,1.5\n") ==
        "stock.csv:3:7: qty: expected a whole number of base units (e.g. 12), got \"1.5\"");
  CHECK(OneStockProblem("SKU-1,-3\n") == "stock.csv:1:7: qty: must be >= 0 in a snapshot");
  CHECK(OneStockProblem("SKU-1,2000000000000\n") ==
        "stock.csv:1:7: qty: is out of range (|qty| <= 10^12)");
  CHECK(OneStockProblem("SKU 1,3\n") ==
        "stock.csv:1:1: sku: must be printable ASCII without spaces");
  CHECK(OneStockProblem("   ,3\n") == "stock.csv:1:4: sku: is required");
  CHECK(OneStockProblem(storegw::test::Id("S", 0) + std::string(70, 'x') + ",1\n") ==
        "stock.csv:1:1: sku: is longer than 64 characters");
  CHECK(OneStockProblem("SKU-1,3,extra\n") ==
        "stock.csv:1:9: expected 2 fields (sku,qty), got 3 fields");
  CHECK(OneStockProblem("SKU-1\n") == "stock.csv:1:6: expected 2 fields (sku,qty), got 1 field");
  CHECK(OneStockProblem("SKU-1,3\nSKU-2,4\nSKU-1,5\n") ==
        "stock.csv:3:1: sku: \"SKU-1\" is already on line 1 (a sku appears once)");
  CHECK(OneStockProblem("sku,quantity\nSKU-1,3\n") ==
        "stock.csv:1:1: the header must name the columns sku,qty, got \"sku,quantity\"");
  CHECK(OneStockProblem("SKU-1,\"3\n") ==
        "stock.csv:1:7: the quoted field is not closed (a field cannot span lines)");
  CHECK(OneStockProblem("SK\"U,3\n")
            .rfind("stock.csv:1:3: a double quote inside an unquoted field", 0) == 0);
  CHECK(OneStockProblem("\"SKU-1\"x,3\n") ==
        "stock.csv:1:8: unexpected \"x\" after a quoted field (expected ',')");
  CHECK(OneStockProblem("# only a comment\n\n") == "stock.csv: no stock lines (expected sku,qty)");
}

TEST_CASE("csv stock: every problem is listed, in order, and nothing is returned") {
  std::vector<std::string> p = StockProblems("A,1\nB,x\nC,2\nD,-1\nE,3,4\n");
  REQUIRE(p.size() == 3);
  CHECK(p[0].rfind("stock.csv:2:3: qty:", 0) == 0);
  CHECK(p[1].rfind("stock.csv:4:3: qty:", 0) == 0);
  CHECK(p[2].rfind("stock.csv:5:5: expected 2 fields", 0) == 0);
  auto r = ParseStockCsv("A,1\nB,x\nC,2\nD,-1\nE,3,4\n", "stock.csv");
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message() ==
        "stock.csv:2:3: qty: expected a whole number of base units (e.g. 12), got \"x\" (and 2 "
        "more problems)");

  // A file full of mistakes: the first kMaxCsvProblems, then the count.
  std::string many;
  for (int i = 0; i < 25; ++i) many += storegw::test::Id("SKU-", i) + ",bad\n";
  p = StockProblems(many);
  REQUIRE(p.size() == kMaxCsvProblems + 1);
  CHECK(p.back() == "... and 5 more problems");
}

TEST_CASE("csv prices: what is read, with and without effective_from") {
  auto r = ParsePriceCsv(
      "sku,price,currency,effective_from\n"
      "SKU-1,199,EUR\n"
      "SKU-1,179,EUR,2026-12-01T06:00:00Z\n"
      "SKU-2,0,GBP,1796104800000000\n"
      "SKU-3,250,EUR,\n",
      "prices.csv", kDefault);
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  REQUIRE(r->size() == 4);
  CHECK((*r)[0].sku() == "SKU-1");
  CHECK((*r)[0].price() == 199);
  CHECK((*r)[0].currency() == "EUR");
  CHECK((*r)[0].effective_from() == kDefault);
  CHECK((*r)[1].effective_from() == 1796104800000000);  // 2026-12-01T06:00:00Z
  CHECK((*r)[2].effective_from() == 1796104800000000);
  CHECK((*r)[3].effective_from() == kDefault);
  CHECK((*r)[0].store_id().empty());  // publish sets it
  // The optional column may be left out of the header too.
  CHECK(ParsePriceCsv("sku,price,currency\nA,1,EUR\n", "prices.csv", kDefault).ok());
}

TEST_CASE("csv prices: each mistake names file, line, column and what is wrong") {
  CHECK(OnePriceProblem("SKU-1,1.99,EUR\n") ==
        "prices.csv:1:7: price: expected a whole number of minor units (e.g. 199 for 1.99), got "
        "\"1.99\"");
  CHECK(OnePriceProblem("SKU-1,-1,EUR\n") == "prices.csv:1:7: price: must be >= 0");
  CHECK(OnePriceProblem("SKU-1,199,eur\n") ==
        "prices.csv:1:11: currency: must be an ISO 4217 code of three capital letters, e.g. "
        "\"EUR\"");
  CHECK(OnePriceProblem("SKU-1,199,EUR,tomorrow\n")
            .rfind("prices.csv:1:15: effective_from: expected a UTC date-time", 0) == 0);
  CHECK(OnePriceProblem("SKU-1,199,EUR,1764568800\n") ==
        "prices.csv:1:15: effective_from: Unix time must be in microseconds (16 digits today); "
        "this looks like seconds or milliseconds, got \"1764568800\"");
  CHECK(OnePriceProblem("SKU-1,199\n") ==
        "prices.csv:1:10: expected 3 or 4 fields (sku,price,currency[,effective_from]), got 2 "
        "fields");
  CHECK(
      OnePriceProblem("SKU-1,199,EUR,2026-12-01T06:00:00Z\nSKU-1,189,EUR,2026-12-01T06:00:00Z\n") ==
      "prices.csv:2:1: sku: \"SKU-1\" has a price from the same effective_from on line 1");
  CHECK(OnePriceProblem("sku,price\nSKU-1,1,EUR\n")
            .rfind("prices.csv:1:1: the header must name "
                   "the columns sku,price,currency,"
                   "effective_from",
                   0) == 0);
  CHECK(OnePriceProblem("") ==
        "prices.csv: no price lines (expected "
        "sku,price,currency[,effective_from])");
}

TEST_CASE("csv timestamps") {
  CHECK(ParseTimestamp("2026-12-01T06:00:00Z").value() == 1796104800000000);
  CHECK(ParseTimestamp("2026-12-01 06:00:00z").value() == 1796104800000000);
  CHECK(ParseTimestamp("2026-12-01T07:00:00+01:00").value() == 1796104800000000);
  CHECK(ParseTimestamp("2026-12-01T01:30:00-04:30").value() == 1796104800000000);
  CHECK(ParseTimestamp("2026-12-01T06:00Z").value() == 1796104800000000);
  CHECK(ParseTimestamp("2026-12-01T06:00:00.25Z").value() == 1796104800250000);
  CHECK(ParseTimestamp("2026-12-01").value() == 1796083200000000);
  CHECK(ParseTimestamp("1796104800000000").value() == 1796104800000000);
  CHECK(ParseTimestamp("2026-02-30").status().message() ==
        "is not a valid date, got \"2026-02-30\"");
  CHECK(ParseTimestamp("2026-12-01T06:00:00").status().message() ==
        "needs a time zone: end it with Z (UTC) or an offset such as +01:00, got "
        "\"2026-12-01T06:00:00\"");
  CHECK(ParseTimestamp("2026-13-01").status().message().find("not a valid date") !=
        std::string::npos);
  CHECK_FALSE(ParseTimestamp("").ok());
  CHECK_FALSE(ParseTimestamp("2026-12-01T06:00:00Zjunk").ok());
}

namespace {

std::vector<std::string> RulesProblems(const std::string& text) {
  std::vector<std::string> problems;
  auto r = ParseRulesCsv(text, "rules.csv", &problems);
  CHECK(r.ok() == problems.empty());
  return problems;
}

std::string OneRulesProblem(const std::string& text) {
  auto p = RulesProblems(text);
  REQUIRE_MESSAGE(p.size() == 1, p.size() << " problems" << (p.empty() ? "" : ": " + p[0]));
  return p[0];
}

}  // namespace

TEST_CASE("csv rules: hold times and sensor limits, any mix, header and comments") {
  const std::string text =
      "# HQ's rules for the store\n"
      "kind,id,location,min,max,grace,silent_after\n"
      "hold,SKU-ROTI,4h\n"
      "\n"
      "Hold , SKU-BUN , 90m \r\n"
      "sensor,fridge-2,dairy fridge 2,0,5000\n"
      "hold,SKU-PIE,3600s\n"
      "sensor,freezer-1,\"freezer, back\",-25000,-15000,15m,30m\n"
      "sensor,hum-1,store room,30,70,,,metric=humidity_pct\n"
      "sensor,hum-2,,40,60,metric=humidity_pct\n"
      "sensor,fridge-9,remove\n"
      "hold,SKU-OLD,0\n";
  auto r = ParseRulesCsv(text, "rules.csv");
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  CHECK(r->store_id().empty());  // publish sets it
  REQUIRE(r->hold_times_size() == 4);
  CHECK(r->hold_times(0).sku() == "SKU-ROTI");
  CHECK(r->hold_times(0).hold_s() == 4 * 3600);
  CHECK(r->hold_times(1).sku() == "SKU-BUN");
  CHECK(r->hold_times(1).hold_s() == 90 * 60);
  CHECK(r->hold_times(2).hold_s() == 3600);
  CHECK(r->hold_times(3).sku() == "SKU-OLD");
  CHECK(r->hold_times(3).hold_s() == 0);  // removes HQ's hold time
  REQUIRE(r->sensor_limits_size() == 5);
  const auto& fridge = r->sensor_limits(0);
  CHECK(fridge.sensor_id() == "fridge-2");
  CHECK(fridge.location() == "dairy fridge 2");
  CHECK(fridge.metric().empty());  // temp_mc
  CHECK(fridge.min_value() == 0);
  CHECK(fridge.max_value() == 5000);
  CHECK(fridge.grace_s() == 0);
  CHECK(fridge.silent_after_s() == 0);
  CHECK_FALSE(fridge.remove());
  const auto& freezer = r->sensor_limits(1);
  CHECK(freezer.location() == "freezer, back");
  CHECK(freezer.min_value() == -25000);
  CHECK(freezer.max_value() == -15000);
  CHECK(freezer.grace_s() == 15 * 60);
  CHECK(freezer.silent_after_s() == 30 * 60);
  CHECK(r->sensor_limits(2).metric() == "humidity_pct");
  CHECK(r->sensor_limits(2).min_value() == 30);
  CHECK(r->sensor_limits(2).grace_s() == 0);  // empty: the gateway's default
  CHECK(r->sensor_limits(3).metric() == "humidity_pct");
  CHECK(r->sensor_limits(3).location().empty());
  CHECK(r->sensor_limits(3).max_value() == 60);
  CHECK(r->sensor_limits(4).sensor_id() == "fridge-9");
  CHECK(r->sensor_limits(4).remove());

  // Without a header, one kind only.
  auto holds = ParseRulesCsv("hold,A,1h\n", "rules.csv");
  REQUIRE(holds.ok());
  CHECK(holds->hold_times_size() == 1);
  CHECK(holds->sensor_limits_size() == 0);
}

TEST_CASE("csv rules: each mistake names file, line, column and what is wrong") {
  CHECK(OneRulesProblem("hold,SKU-1,4 hours\n") ==
        "rules.csv:1:12: hold: expected a duration such as \"4h\", \"90m\" or \"3600s\" (or 0), "
        "got \"4 hours\"");
  CHECK(OneRulesProblem("hold,SKU-1,240\n") ==
        "rules.csv:1:12: hold: expected a duration such as \"4h\", \"90m\" or \"3600s\" (or 0), "
        "got \"240\"");
  CHECK(OneRulesProblem("hold,SKU-1,1500ms\n") ==
        "rules.csv:1:12: hold: must be whole seconds, got \"1500ms\"");
  CHECK(OneRulesProblem("hold,SKU-1,30s\n") ==
        "rules.csv:1:12: hold: must be 0 (remove) or 60..604800 seconds, got 30");
  CHECK(OneRulesProblem("hold,SKU-1,8d\n") ==
        "rules.csv:1:12: hold: must be 0 (remove) or 60..604800 seconds, got 691200");
  CHECK(OneRulesProblem("hold,SKU 1,4h\n") ==
        "rules.csv:1:6: sku: must be printable ASCII without spaces");
  CHECK(OneRulesProblem("hold,SKU-1\n") ==
        "rules.csv:1:11: expected 3 fields (hold,SKU,HOLD), got 2 fields");
  CHECK(OneRulesProblem("hold,SKU-1,4h,deli\n") ==
        "rules.csv:1:15: expected 3 fields (hold,SKU,HOLD), got 4 fields");
  CHECK(OneRulesProblem("hold,SKU-1,4h\nhold,SKU-2,1h\nhold,SKU-1,2h\n") ==
        "rules.csv:3:6: sku: \"SKU-1\" has a hold time on line 1 already (a sku appears once)");
  CHECK(OneRulesProblem("shelf,SKU-1,4h\n") ==
        "rules.csv:1:1: expected a line of kind \"hold\" or \"sensor\", got \"shelf\"");
  // A header is only the first record.
  CHECK(OneRulesProblem("hold,SKU-1,4h\nkind,id\n") ==
        "rules.csv:2:1: expected a line of kind \"hold\" or \"sensor\", got \"kind\"");

  CHECK(OneRulesProblem("sensor,fridge-2,dairy,4.5,8000\n") ==
        "rules.csv:1:23: min: expected a whole number in the metric's unit (temp_mc: "
        "milli-degrees Celsius, 4000 for 4 C), got \"4.5\"");
  CHECK(OneRulesProblem("sensor,fridge-2,dairy,0,\n") ==
        "rules.csv:1:25: max: expected a whole number in the metric's unit (temp_mc: "
        "milli-degrees Celsius, 4000 for 4 C), got \"\"");
  CHECK(OneRulesProblem("sensor,fridge-2,dairy,8000,2000\n") ==
        "rules.csv:1:28: max: is below min_value (2000 < 8000)");
  CHECK(OneRulesProblem("sensor,fridge-2,dairy,0,5000,10 min\n") ==
        "rules.csv:1:30: grace: expected a duration such as \"4h\", \"90m\" or \"3600s\" (or 0), "
        "got \"10 min\"");
  CHECK(OneRulesProblem("sensor,fridge-2,dairy,0,5000,8d\n") ==
        "rules.csv:1:30: grace: must be 0..604800 seconds");
  CHECK(OneRulesProblem("sensor,fridge-2,dairy,0,5000,,-1h\n") ==
        "rules.csv:1:31: silent_after: expected a duration such as \"4h\", \"90m\" or \"3600s\" "
        "(or 0), got \"-1h\"");
  CHECK(OneRulesProblem("sensor,,dairy,0,5000\n") == "rules.csv:1:8: sensor_id: is required");
  CHECK(OneRulesProblem("sensor,fridge 2,dairy,0,5000\n") ==
        "rules.csv:1:8: sensor_id: must be printable ASCII without spaces");
  CHECK(OneRulesProblem("sensor,f-1,da\x01iry,0,5000\n") ==
        "rules.csv:1:12: location: must not hold control characters");
  CHECK(OneRulesProblem("sensor,f-1,dairy,0,5000,metric=hum pct\n") ==
        "rules.csv:1:32: metric: must be printable ASCII without spaces");
  CHECK(OneRulesProblem("sensor,f-1,dairy,0,5000,metric=\n") ==
        "rules.csv:1:25: metric: the name after \"metric=\" is missing (leave the field out for "
        "temp_mc)");
  CHECK(OneRulesProblem("sensor,fridge-2,dairy,0\n") ==
        "rules.csv:1:24: expected 5 to 8 fields "
        "(sensor,SENSOR_ID,LOCATION,MIN,MAX[,GRACE[,SILENT_AFTER]][,metric=NAME]) or 3 "
        "(sensor,SENSOR_ID,remove), got 4 fields");
  CHECK(OneRulesProblem("sensor,fridge-2,dairy,0,5000,1m,1m,1m\n") ==
        "rules.csv:1:36: expected 5 to 8 fields "
        "(sensor,SENSOR_ID,LOCATION,MIN,MAX[,GRACE[,SILENT_AFTER]][,metric=NAME]) or 3 "
        "(sensor,SENSOR_ID,remove), got 8 fields");
  CHECK(OneRulesProblem("sensor,fridge-2,remove-it\n")
            .rfind("rules.csv:1:26: expected 5 to 8 fields", 0) == 0);
  CHECK(OneRulesProblem("sensor,fridge-2,dairy,0,5000\nsensor,fridge-2,remove\n") ==
        "rules.csv:2:8: sensor: \"fridge-2\" has limits on line 1 already (a sensor appears "
        "once)");
  CHECK(OneRulesProblem("# nothing yet\nkind,id\n") ==
        "rules.csv: no rules (expected hold,SKU,HOLD or "
        "sensor,SENSOR_ID,LOCATION,MIN,MAX[,GRACE[,SILENT_AFTER]][,metric=NAME] lines)");
}

TEST_CASE("csv rules: every problem is listed, in order, and nothing is returned") {
  const std::string text =
      "hold,SKU-1,4h\n"
      "hold,SKU-2,soon\n"
      "sensor,fridge-1,dairy,0,5000\n"
      "sensor,fridge-2,dairy,9000,5000\n"
      "lamp,L-1\n";
  std::vector<std::string> p = RulesProblems(text);
  REQUIRE(p.size() == 3);
  CHECK(p[0].rfind("rules.csv:2:12: hold:", 0) == 0);
  CHECK(p[1] == "rules.csv:4:28: max: is below min_value (5000 < 9000)");
  CHECK(p[2].rfind("rules.csv:5:1: expected a line of kind", 0) == 0);
  auto r = ParseRulesCsv(text, "rules.csv");
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message() ==
        "rules.csv:2:12: hold: expected a duration such as \"4h\", \"90m\" or \"3600s\" (or 0), "
        "got \"soon\" (and 2 more problems)");
}

TEST_CASE("csv rules: more rules than one message may hold is a problem of the file") {
  std::string text;
  text.reserve(100001 * 20);
  for (int i = 0; i <= 100000; ++i) text += "hold," + storegw::test::Id("S-", i) + ",1h\n";
  CHECK(OneRulesProblem(text) == "rules.csv: more than 100000 rules in one message");
}
