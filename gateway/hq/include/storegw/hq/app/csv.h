// The CSV files of `storegw-hq publish`: stock (`sku,qty`), prices
// (`sku,price,currency[,effective_from]`) and store rules (`hold,...` and
// `sensor,...` lines). Every line is checked before
// anything is published; each problem names FILE:LINE:COLUMN (the column
// is the character where the field starts, from 1) and what is wrong:
//   "stock.csv:7:8: qty: expected a whole number of base units (e.g. 12), got \"1.5\""
//
// Format: one record per line, fields separated by commas, optionally in
// double quotes ("" is a quote inside; a quoted field cannot span lines);
// blanks around fields are ignored; blank lines and lines starting with '#'
// are skipped; CRLF line ends and a UTF-8 byte order mark are accepted. A
// first record whose first field is "sku" is a header and must name the
// columns in order (the optional effective_from may be left out); in a
// rules file, a first record whose first field is "kind" is a header (its
// other fields are not checked: the two kinds of line have different
// columns).
//
//   stock:  sku, qty           qty: whole base units >= 0 (HQ's stock on hand)
//   prices: sku, price, currency[, effective_from]
//           price: whole minor units >= 0 (199 for 1.99 EUR); currency: ISO 4217
//           ("EUR"); effective_from: Unix microseconds, or UTC date-time
//           "2026-12-01T06:00:00Z" (an offset "+01:00" instead of Z, or a date
//           "2026-12-01" = its midnight UTC); empty: the default given.
//   rules:  any mix of
//           hold, SKU, HOLD
//             HOLD: HQ's hold time of the perishable sku, a duration such as
//             "4h", "90m" or "3600s" (whole seconds, 1m .. 7d), or 0 to
//             remove it (the gateway's local hold time applies again)
//           sensor, SENSOR_ID, LOCATION, MIN, MAX[, GRACE[, SILENT_AFTER]][, metric=NAME]
//             MIN, MAX: inclusive limits, whole numbers in the metric's unit
//             (the default metric temp_mc: milli-degrees Celsius, 4000 for
//             4 C); GRACE, SILENT_AFTER: durations (0 or empty: the
//             gateway's [cold_chain] defaults); LOCATION may be empty
//           sensor, SENSOR_ID, remove
//             drops HQ's limits of the sensor (its local ones apply again)
//
// The sku, quantity, price, currency, hold time and sensor limit rules are
// the gateway's own (storage::ValidateSnapshot / ValidatePriceUpdate /
// ValidateStoreRules): what passes here, the gateway accepts. A sku appears
// once in a stock file; a (sku, effective_from) pair once in a price file;
// a sku once among the hold lines and a sensor once among the sensor lines
// of a rules file.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "storegw/status.h"
#include "storegw/v1/storegw.pb.h"

namespace storegw::hq {

// At most this many problems are listed (the count of the rest is given).
inline constexpr size_t kMaxCsvProblems = 20;

// `text` is the file's content, `name` its path for messages. Not ok: the
// first problem, and `problems` (when given) lists them all (up to
// kMaxCsvProblems, then "... and N more").
Result<std::vector<v1::SnapshotLine>> ParseStockCsv(std::string_view text, std::string_view name,
                                                    std::vector<std::string>* problems = nullptr);

// store_id of each PriceUpdate is left empty (publish sets it).
// `default_effective_from_us` is used for an empty or missing effective_from.
Result<std::vector<v1::PriceUpdate>> ParsePriceCsv(std::string_view text, std::string_view name,
                                                   int64_t default_effective_from_us,
                                                   std::vector<std::string>* problems = nullptr);

// One StoreRules of every line, in file order (hold times, then sensor
// limits); its store_id is left empty (publish sets it).
Result<v1::StoreRules> ParseRulesCsv(std::string_view text, std::string_view name,
                                     std::vector<std::string>* problems = nullptr);

// "2026-12-01T06:00:00Z", "2026-12-01T07:00:00.5+01:00", "2026-12-01" or
// Unix microseconds ("1764568800000000") -> Unix microseconds. Also for
// `publish prices --effective-from`.
Result<int64_t> ParseTimestamp(std::string_view text);

// Reads a whole file (for the parsers); an error names it.
Result<std::string> ReadCsvFile(const std::string& path);

}  // namespace storegw::hq
