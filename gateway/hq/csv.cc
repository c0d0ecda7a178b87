#include "storegw/hq/app/csv.h"

#include <cctype>
#include <charconv>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <tuple>
#include <utility>

#include "storegw/config/config_text.h"
#include "storegw/storage/journal.h"

namespace storegw::hq {
namespace {

using gateway::Quote;

struct CsvField {
  std::string text;
  int column = 1;  // where the field starts, from 1
};

// Collects problems as "NAME:LINE:COLUMN: message", in file order.
class Problems {
 public:
  explicit Problems(std::string_view name) : name_(name) {}
  void Add(int line, int column, const std::string& msg) {
    ++count_;
    if (list_.size() < kMaxCsvProblems) {
      list_.push_back(name_ + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " +
                      msg);
    }
  }
  void AddFile(const std::string& msg) {
    ++count_;
    if (list_.size() < kMaxCsvProblems) list_.push_back(name_ + ": " + msg);
  }
  bool empty() const { return count_ == 0; }
  // Not ok: the first problem, with the count of the others.
  Status ToStatus(std::vector<std::string>* out) const {
    std::vector<std::string> all = list_;
    if (count_ > list_.size()) {
      all.push_back("... and " + std::to_string(count_ - list_.size()) + " more problems");
    }
    if (out) *out = all;
    std::string msg = list_.front();
    if (count_ > 1) {
      msg +=
          " (and " + std::to_string(count_ - 1) + " more problem" + (count_ > 2 ? "s" : "") + ")";
    }
    return Status::InvalidArgument("", msg);
  }

 private:
  std::string name_;
  std::vector<std::string> list_;
  size_t count_ = 0;
};

bool Blank(char c) {
  return c == ' ' || c == '\t';
}

// Splits one line into fields; "" on success, else what is wrong at *col.
std::string SplitLine(std::string_view line, std::vector<CsvField>* out, int* col) {
  out->clear();
  size_t i = 0;
  const size_t n = line.size();
  for (;;) {
    while (i < n && Blank(line[i])) ++i;
    CsvField f;
    f.column = static_cast<int>(i) + 1;
    if (i < n && line[i] == '"') {
      const size_t open = i++;
      bool closed = false;
      while (i < n) {
        if (line[i] == '"') {
          if (i + 1 < n && line[i + 1] == '"') {
            f.text += '"';
            i += 2;
            continue;
          }
          closed = true;
          ++i;
          break;
        }
        f.text += line[i++];
      }
      if (!closed) {
        *col = static_cast<int>(open) + 1;
        return "the quoted field is not closed (a field cannot span lines)";
      }
      while (i < n && Blank(line[i])) ++i;
      if (i < n && line[i] != ',') {
        *col = static_cast<int>(i) + 1;
        return "unexpected " + Quote(line.substr(i, 1)) + " after a quoted field (expected ',')";
      }
    } else {
      const size_t start = i;
      while (i < n && line[i] != ',') {
        if (line[i] == '"') {
          *col = static_cast<int>(i) + 1;
          return "a double quote inside an unquoted field (put the whole field in quotes and "
                 "double the quote: \"a\"\"b\")";
        }
        ++i;
      }
      size_t end = i;
      while (end > start && Blank(line[end - 1])) --end;
      f.text = std::string(line.substr(start, end - start));
    }
    out->push_back(std::move(f));
    if (i < n && line[i] == ',') {
      ++i;
      continue;
    }
    return "";
  }
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// A whole decimal number, optionally signed; nullopt when it is not one.
std::optional<int64_t> ParseInteger(std::string_view s) {
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  if (s.empty() || s.front() == '+') return std::nullopt;
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

// Calls `record(line_number, fields)` for every record that is not blank,
// a comment or the header (a first record whose first field is columns[0]);
// checks the header against `columns` (the last `optional` of them may be
// left out), unless `check_header` is false (any header starting with
// columns[0] is taken).
template <typename OnRecord>
void ForEachRecord(std::string_view text, Problems& problems,
                   const std::vector<std::string_view>& columns, size_t optional, OnRecord record,
                   bool check_header = true) {
  if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);
  int line_no = 0;
  bool first = true;
  std::vector<CsvField> fields;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    size_t lead = 0;
    while (lead < line.size() && Blank(line[lead])) ++lead;
    if (lead == line.size() || line[lead] == '#') continue;
    int col = 0;
    if (std::string why = SplitLine(line, &fields, &col); !why.empty()) {
      problems.Add(line_no, col, why);
      first = false;
      continue;
    }
    if (first && Lower(fields[0].text) == columns.front()) {
      first = false;
      if (!check_header) continue;
      std::string expected;
      for (size_t i = 0; i < columns.size(); ++i) {
        expected += (i ? "," : "");
        expected += columns[i];
      }
      bool ok = fields.size() <= columns.size() && fields.size() + optional >= columns.size();
      for (size_t i = 0; ok && i < fields.size(); ++i) ok = Lower(fields[i].text) == columns[i];
      if (!ok) {
        problems.Add(line_no, 1,
                     "the header must name the columns " + expected +
                         (optional ? " (the last may be left out)" : "") + ", got " +
                         Quote(line.substr(lead)));
      }
      continue;
    }
    first = false;
    record(line_no, fields, static_cast<int>(line.size()) + 1);
  }
}

// The column of the field a storage validation error is about.
int ColumnOf(const Status& s, const std::vector<std::pair<std::string, int>>& fields) {
  for (const auto& [suffix, col] : fields) {
    const std::string& f = s.field();
    if (f.size() >= suffix.size() &&
        f.compare(f.size() - suffix.size(), suffix.size(), suffix) == 0)
      return col;
  }
  return 1;
}

std::string FieldName(const Status& s) {
  const std::string& f = s.field();
  auto dot = f.rfind('.');
  return dot == std::string::npos ? f : f.substr(dot + 1);
}

std::string WrongFieldCount(size_t got, std::string_view expected_columns) {
  return "expected " + std::string(expected_columns) + ", got " + std::to_string(got) + " field" +
         (got == 1 ? "" : "s");
}

// A duration of the rules file in whole seconds: "4h", "90m", "3600s", "0";
// empty is 0 when `empty_is_zero`. nullopt with *why set otherwise.
std::optional<int64_t> ParseSeconds(std::string_view text, bool empty_is_zero, std::string* why) {
  if (text == "0" || (empty_is_zero && text.empty())) return 0;
  auto d = gateway::ParseDuration(text);
  if (!d.ok()) {
    *why = "expected a duration such as \"4h\", \"90m\" or \"3600s\" (or 0), got " + Quote(text);
    return std::nullopt;
  }
  if (d->count() % 1000 != 0) {
    *why = "must be whole seconds, got " + Quote(text);
    return std::nullopt;
  }
  return d->count() / 1000;
}

// The column names of a rules file for the StoreRules fields.
std::string RulesColumnName(const Status& s) {
  const std::string f = FieldName(s);
  if (f == "hold_s") return "hold";
  if (f == "min_value") return "min";
  if (f == "max_value") return "max";
  if (f == "grace_s") return "grace";
  if (f == "silent_after_s") return "silent_after";
  return f;
}

constexpr std::string_view kSensorColumns =
    "sensor,SENSOR_ID,LOCATION,MIN,MAX[,GRACE[,SILENT_AFTER]][,metric=NAME]";

}  // namespace

Result<std::vector<v1::SnapshotLine>> ParseStockCsv(std::string_view text, std::string_view name,
                                                    std::vector<std::string>* problems_out) {
  Problems problems(name);
  std::vector<v1::SnapshotLine> lines;
  std::map<std::string, int> seen;  // sku -> line
  ForEachRecord(text, problems, {"sku", "qty"}, 0,
                [&](int line, const std::vector<CsvField>& f, int end_col) {
                  if (f.size() != 2) {
                    problems.Add(line, f.size() > 2 ? f[2].column : end_col,
                                 WrongFieldCount(f.size(), "2 fields (sku,qty)"));
                    return;
                  }
                  auto qty = ParseInteger(f[1].text);
                  if (!qty) {
                    problems.Add(line, f[1].column,
                                 "qty: expected a whole number of base units (e.g. 12), got " +
                                     Quote(f[1].text));
                    return;
                  }
                  v1::StockSnapshot one;
                  auto* l = one.add_lines();
                  l->set_sku(f[0].text);
                  l->set_qty(*qty);
                  if (Status s = storage::ValidateSnapshot(one); !s.ok()) {
                    problems.Add(line, ColumnOf(s, {{".sku", f[0].column}, {".qty", f[1].column}}),
                                 FieldName(s) + ": " + s.message());
                    return;
                  }
                  auto [it, fresh] = seen.emplace(f[0].text, line);
                  if (!fresh) {
                    problems.Add(line, f[0].column,
                                 "sku: " + Quote(f[0].text) + " is already on line " +
                                     std::to_string(it->second) + " (a sku appears once)");
                    return;
                  }
                  lines.push_back(std::move(*l));
                });
  if (problems.empty() && lines.empty()) problems.AddFile("no stock lines (expected sku,qty)");
  if (!problems.empty()) return problems.ToStatus(problems_out);
  if (problems_out) problems_out->clear();
  return lines;
}

Result<std::vector<v1::PriceUpdate>> ParsePriceCsv(std::string_view text, std::string_view name,
                                                   int64_t default_effective_from_us,
                                                   std::vector<std::string>* problems_out) {
  Problems problems(name);
  std::vector<v1::PriceUpdate> prices;
  std::map<std::pair<std::string, int64_t>, int> seen;  // (sku, effective_from) -> line
  ForEachRecord(
      text, problems, {"sku", "price", "currency", "effective_from"}, 1,
      [&](int line, const std::vector<CsvField>& f, int end_col) {
        if (f.size() < 3 || f.size() > 4) {
          problems.Add(
              line, f.size() > 4 ? f[4].column : end_col,
              WrongFieldCount(f.size(), "3 or 4 fields (sku,price,currency[,effective_from])"));
          return;
        }
        auto price = ParseInteger(f[1].text);
        if (!price) {
          problems.Add(line, f[1].column,
                       "price: expected a whole number of minor units (e.g. 199 for 1.99), got " +
                           Quote(f[1].text));
          return;
        }
        int64_t effective = default_effective_from_us;
        if (f.size() == 4 && !f[3].text.empty()) {
          auto t = ParseTimestamp(f[3].text);
          if (!t.ok()) {
            problems.Add(line, f[3].column, "effective_from: " + t.status().message());
            return;
          }
          effective = *t;
        }
        v1::PriceUpdate p;
        p.set_sku(f[0].text);
        p.set_price(*price);
        p.set_currency(f[2].text);
        p.set_effective_from(effective);
        if (Status s = storage::ValidatePriceUpdate(p); !s.ok()) {
          problems.Add(line,
                       ColumnOf(s, {{"sku", f[0].column},
                                    {"price", f[1].column},
                                    {"currency", f[2].column},
                                    {"effective_from", f.size() == 4 ? f[3].column : end_col}}),
                       FieldName(s) + ": " + s.message());
          return;
        }
        auto [it, fresh] = seen.emplace(std::make_pair(p.sku(), effective), line);
        if (!fresh) {
          problems.Add(line, f[0].column,
                       "sku: " + Quote(p.sku()) +
                           " has a price from the same effective_from on line " +
                           std::to_string(it->second));
          return;
        }
        prices.push_back(std::move(p));
      });
  if (problems.empty() && prices.empty()) {
    problems.AddFile("no price lines (expected sku,price,currency[,effective_from])");
  }
  if (!problems.empty()) return problems.ToStatus(problems_out);
  if (problems_out) problems_out->clear();
  return prices;
}

Result<v1::StoreRules> ParseRulesCsv(std::string_view text, std::string_view name,
                                     std::vector<std::string>* problems_out) {
  Problems problems(name);
  v1::StoreRules rules;
  std::map<std::string, int> holds, sensors;  // sku / sensor_id -> line
  ForEachRecord(
      text, problems, {"kind"}, 0,
      [&](int line, const std::vector<CsvField>& f, int end_col) {
        const std::string kind = Lower(f[0].text);
        if (kind == "hold") {
          if (f.size() != 3) {
            problems.Add(line, f.size() > 3 ? f[3].column : end_col,
                         WrongFieldCount(f.size(), "3 fields (hold,SKU,HOLD)"));
            return;
          }
          std::string why;
          auto hold = ParseSeconds(f[2].text, false, &why);
          if (!hold) {
            problems.Add(line, f[2].column, "hold: " + why);
            return;
          }
          v1::StoreRules one;
          auto* h = one.add_hold_times();
          h->set_sku(f[1].text);
          h->set_hold_s(*hold);
          if (Status s = storage::ValidateStoreRules(one); !s.ok()) {
            problems.Add(line, ColumnOf(s, {{".sku", f[1].column}, {".hold_s", f[2].column}}),
                         RulesColumnName(s) + ": " + s.message());
            return;
          }
          auto [it, fresh] = holds.emplace(h->sku(), line);
          if (!fresh) {
            problems.Add(line, f[1].column,
                         "sku: " + Quote(h->sku()) + " has a hold time on line " +
                             std::to_string(it->second) + " already (a sku appears once)");
            return;
          }
          *rules.add_hold_times() = std::move(*h);
          return;
        }
        if (kind != "sensor") {
          problems.Add(line, f[0].column,
                       "expected a line of kind \"hold\" or \"sensor\", got " + Quote(f[0].text));
          return;
        }
        v1::StoreRules one;
        auto* l = one.add_sensor_limits();
        std::vector<std::pair<std::string, int>> columns;  // field suffix -> column
        if (f.size() == 3 && Lower(f[2].text) == "remove") {
          l->set_sensor_id(f[1].text);
          l->set_remove(true);
          columns = {{".sensor_id", f[1].column}};
        } else {
          // The positional fields, then an optional metric=NAME last.
          size_t n = f.size();
          const bool has_metric = n >= 6 && Lower(f[n - 1].text).rfind("metric=", 0) == 0;
          if (has_metric) --n;
          if (n < 5 || n > 7) {
            // Where the first extra field starts, or where one is missing.
            const int col = n > 7 ? f[7].column : has_metric ? f[n].column : end_col;
            problems.Add(line, col,
                         WrongFieldCount(f.size(), "5 to 8 fields (" + std::string(kSensorColumns) +
                                                       ") or 3 (sensor,SENSOR_ID,remove)"));
            return;
          }
          if (has_metric && f[n].text.size() == 7) {
            problems.Add(line, f[n].column,
                         "metric: the name after \"metric=\" is missing (leave the field out for "
                         "temp_mc)");
            return;
          }
          auto min = ParseInteger(f[3].text);
          auto max = ParseInteger(f[4].text);
          for (auto [v, i, col] : {std::tuple{&min, 3, "min"}, std::tuple{&max, 4, "max"}}) {
            if (!*v) {
              problems.Add(line, f[i].column,
                           std::string(col) +
                               ": expected a whole number in the metric's unit (temp_mc: "
                               "milli-degrees Celsius, 4000 for 4 C), got " +
                               Quote(f[i].text));
              return;
            }
          }
          std::string why;
          std::optional<int64_t> grace = 0, silent = 0;
          if (n > 5 && !(grace = ParseSeconds(f[5].text, true, &why))) {
            problems.Add(line, f[5].column, "grace: " + why);
            return;
          }
          if (n > 6 && !(silent = ParseSeconds(f[6].text, true, &why))) {
            problems.Add(line, f[6].column, "silent_after: " + why);
            return;
          }
          l->set_sensor_id(f[1].text);
          l->set_location(f[2].text);
          l->set_min_value(*min);
          l->set_max_value(*max);
          l->set_grace_s(*grace);
          l->set_silent_after_s(*silent);
          if (has_metric) l->set_metric(f[n].text.substr(7));
          columns = {{".sensor_id", f[1].column},
                     {".location", f[2].column},
                     {".min_value", f[3].column},
                     {".max_value", f[4].column},
                     {".grace_s", n > 5 ? f[5].column : end_col},
                     {".silent_after_s", n > 6 ? f[6].column : end_col},
                     {".metric", has_metric ? f[n].column + 7 : end_col}};
        }
        if (Status s = storage::ValidateStoreRules(one); !s.ok()) {
          problems.Add(line, ColumnOf(s, columns), RulesColumnName(s) + ": " + s.message());
          return;
        }
        auto [it, fresh] = sensors.emplace(l->sensor_id(), line);
        if (!fresh) {
          problems.Add(line, f[1].column,
                       "sensor: " + Quote(l->sensor_id()) + " has limits on line " +
                           std::to_string(it->second) + " already (a sensor appears once)");
          return;
        }
        *rules.add_sensor_limits() = std::move(*l);
      },
      false);
  if (problems.empty() && rules.hold_times().empty() && rules.sensor_limits().empty()) {
    problems.AddFile("no rules (expected hold,SKU,HOLD or " + std::string(kSensorColumns) +
                     " lines)");
  }
  // What only the whole message can break (the count of rules).
  if (problems.empty()) {
    if (Status s = storage::ValidateStoreRules(rules); !s.ok()) problems.AddFile(s.message());
  }
  if (!problems.empty()) return problems.ToStatus(problems_out);
  if (problems_out) problems_out->clear();
  return rules;
}

Result<int64_t> ParseTimestamp(std::string_view t) {
  auto bad = [&](const std::string& why) -> Result<int64_t> {
    return Status::InvalidArgument("", why + ", got " + Quote(t));
  };
  const std::string forms =
      "expected a UTC date-time such as \"2026-12-01T06:00:00Z\" (or with an offset such as "
      "\"+01:00\"), a date \"2026-12-01\", or Unix microseconds";
  if (t.empty()) return bad(forms);
  if (t.find_first_not_of("0123456789") == std::string_view::npos) {
    if (t.size() < 15) {
      return bad(
          "Unix time must be in microseconds (16 digits today); this looks like seconds "
          "or milliseconds");
    }
    auto v = ParseInteger(t);
    if (!v) return bad("is out of range");
    return *v;
  }
  // YYYY-MM-DD[(T| )HH:MM[:SS[.f+]](Z|±HH:MM)]
  auto digits = [&](size_t pos, size_t len, int* out) {
    if (pos + len > t.size()) return false;
    int v = 0;
    for (size_t i = pos; i < pos + len; ++i) {
      if (t[i] < '0' || t[i] > '9') return false;
      v = v * 10 + (t[i] - '0');
    }
    *out = v;
    return true;
  };
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  if (!digits(0, 4, &year) || t.size() < 10 || t[4] != '-' || !digits(5, 2, &month) ||
      t[7] != '-' || !digits(8, 2, &day)) {
    return bad(forms);
  }
  size_t i = 10;
  int64_t micros = 0, offset_s = 0;
  if (i < t.size()) {
    if ((t[i] != 'T' && t[i] != 't' && t[i] != ' ') || !digits(i + 1, 2, &hour) ||
        i + 3 >= t.size() || t[i + 3] != ':' || !digits(i + 4, 2, &minute)) {
      return bad(forms);
    }
    i += 6;
    if (i < t.size() && t[i] == ':') {
      if (!digits(i + 1, 2, &second)) return bad(forms);
      i += 3;
      if (i < t.size() && t[i] == '.') {
        ++i;
        int64_t scale = 100000;
        size_t start = i;
        while (i < t.size() && t[i] >= '0' && t[i] <= '9') {
          micros += (t[i] - '0') * scale;
          scale /= 10;
          ++i;
        }
        if (i == start) return bad(forms);
      }
    }
    if (i >= t.size()) {
      return bad("needs a time zone: end it with Z (UTC) or an offset such as +01:00");
    }
    if (t[i] == 'Z' || t[i] == 'z') {
      ++i;
    } else if (t[i] == '+' || t[i] == '-') {
      int oh = 0, om = 0;
      if (!digits(i + 1, 2, &oh) || i + 3 >= t.size() || t[i + 3] != ':' ||
          !digits(i + 4, 2, &om) || oh > 23 || om > 59) {
        return bad(forms);
      }
      offset_s = (t[i] == '+' ? 1 : -1) * (oh * 3600 + om * 60);
      i += 6;
    } else {
      return bad(forms);
    }
    if (i != t.size()) return bad(forms);
  }
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) {
    return bad("is not a valid date and time");
  }
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  const time_t secs = timegm(&tm);
  std::tm back{};
  if (!gmtime_r(&secs, &back) || back.tm_mday != day || back.tm_mon != month - 1) {
    return bad("is not a valid date");  // 2026-02-30
  }
  const int64_t us = (static_cast<int64_t>(secs) - offset_s) * 1000000 + micros;
  if (us <= 0) return bad("must be after 1970-01-01");
  return us;
}

Result<std::string> ReadCsvFile(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    return Status::InvalidArgument("", path + ": is a directory, not a CSV file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return std::filesystem::exists(path, ec)
               ? Status::PermissionDenied(path + ": cannot be read (check its permissions)")
               : Status::NotFound(path + ": no such file");
  }
  std::stringstream buf;
  buf << in.rdbuf();
  if (in.bad()) return Status::IoError(path + ": read failed");
  return buf.str();
}

}  // namespace storegw::hq
