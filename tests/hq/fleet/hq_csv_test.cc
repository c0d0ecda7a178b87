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
