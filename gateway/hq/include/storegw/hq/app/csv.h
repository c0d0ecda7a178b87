// The CSV files of `storegw-hq publish`: stock (`sku,qty`) and prices
// (`sku,price,currency[,effective_from]`). Every line is checked before
// anything is published; each problem names FILE:LINE:COLUMN (the column
// is the character where the field starts, from 1) and what is wrong:
//   "stock.csv:7:8: qty: expected a whole number of base units (e.g. 12), got \"1.5\""
//
// Format: one record per line, fields separated by commas, optionally in
// double quotes ("" is a quote inside; a quoted field cannot span lines);
// blanks around fields are ignored; blank lines and lines starting with '#'
// are skipped; CRLF line ends and a UTF-8 byte order mark are accepted. A
// first record whose first field is "sku" is a header and must name the
// columns in order (the optional effective_from may be left out).
//
//   stock:  sku, qty           qty: whole base units >= 0 (HQ's stock on hand)
//   prices: sku, price, currency[, effective_from]
//           price: whole minor units >= 0 (199 for 1.99 EUR); currency: ISO 4217
//           ("EUR"); effective_from: Unix microseconds, or UTC date-time
//           "2026-12-01T06:00:00Z" (an offset "+01:00" instead of Z, or a date
//           "2026-12-01" = its midnight UTC); empty: the default given.
//
// The sku, quantity, price and currency rules are the gateway's own
// (storage::ValidateSnapshot / ValidatePriceUpdate): what passes here, the
// gateway accepts. A sku appears once in a stock file; a (sku,
// effective_from) pair once in a price file.
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

// "2026-12-01T06:00:00Z", "2026-12-01T07:00:00.5+01:00", "2026-12-01" or
// Unix microseconds ("1764568800000000") -> Unix microseconds. Also for
// `publish prices --effective-from`.
Result<int64_t> ParseTimestamp(std::string_view text);

// Reads a whole file (for the two parsers); an error names it.
Result<std::string> ReadCsvFile(const std::string& path);

}  // namespace storegw::hq
