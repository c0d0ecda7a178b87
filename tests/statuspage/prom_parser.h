// A strict parser of the Prometheus text exposition format 0.0.4, for
// tests of GET /metrics. Stricter than Prometheus itself where the format
// says "should": it rejects what a careful exporter never writes.
//
//   * every line ends in "\n" (also the last); no "\r"; blank lines ignored
//   * "# HELP name text" and "# TYPE name type" at most once per family,
//     both before the family's first sample; type is counter, gauge,
//     histogram, summary or untyped; other "#" lines are comments
//   * metric names [a-zA-Z_:][a-zA-Z0-9_:]*, label names
//     [a-zA-Z_][a-zA-Z0-9_]* not starting with "__", no label twice,
//     values in double quotes with only \\ \" \n escapes, no trailing comma
//   * values: Go float syntax, +Inf, -Inf, NaN; optional integer timestamp
//   * a family's samples form one group (no interleaving with another
//     family), no series (name + label set) twice
//   * counters: never negative or NaN
//   * histograms: per label set, _bucket lines with an "le" label in
//     strictly increasing order, cumulative (non-decreasing) counts, a last
//     bucket le="+Inf", _count == the +Inf bucket, _sum present; _sum and
//     _count carry no "le"
//
// CheckStoregwConventions() adds this project's rules: every family has
// HELP and TYPE, names start with storegw_, counters end in _total.
#pragma once

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace storegw::test {

using PromLabels = std::map<std::string, std::string>;

struct PromSample {
  std::string name;  // as written: "x_bucket", "x_sum", ...
  PromLabels labels;
  double value = 0;
  int line = 0;
};

struct PromFamily {
  std::string name;
  std::string type = "untyped";
  bool has_type = false;
  std::optional<std::string> help;
  std::vector<PromSample> samples;
};

struct PromDoc {
  std::map<std::string, PromFamily> families;
  std::vector<std::string> order;  // families in order of appearance

  // The value of one series; throws when it is not there.
  double Value(const std::string& name, const PromLabels& labels = {}) const {
    for (const auto& [fname, f] : families) {
      for (const auto& s : f.samples) {
        if (s.name == name && s.labels == labels) return s.value;
      }
    }
    std::string l;
    for (const auto& [k, v] : labels) l += k + "=\"" + v + "\",";
    throw std::runtime_error("no series " + name + "{" + l + "}");
  }
  bool Has(const std::string& name, const PromLabels& labels = {}) const {
    try {
      Value(name, labels);
      return true;
    } catch (const std::runtime_error&) {
      return false;
    }
  }
};

namespace prom_detail {

inline bool IsNameStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}
inline bool IsNameChar(char c) {
  return IsNameStart(c) || (c >= '0' && c <= '9');
}

inline bool ValidMetricName(const std::string& n) {
  if (n.empty() || !IsNameStart(n[0])) return false;
  for (char c : n) {
    if (!IsNameChar(c)) return false;
  }
  return true;
}

inline bool ValidLabelName(const std::string& n) {
  if (n.empty() || n[0] == ':' || !IsNameStart(n[0])) return false;
  for (char c : n) {
    if (!IsNameChar(c) || c == ':') return false;
  }
  return n.rfind("__", 0) != 0;
}

inline std::optional<double> ParseValue(const std::string& s) {
  if (s == "+Inf" || s == "Inf") return HUGE_VAL;
  if (s == "-Inf") return -HUGE_VAL;
  if (s == "NaN") return std::nan("");
  if (s.empty()) return std::nullopt;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-')) {
      return std::nullopt;
    }
  }
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size() || errno == ERANGE) return std::nullopt;
  return v;
}

// The family a sample name belongs to, given the TYPEs seen so far.
inline std::string FamilyOf(const std::string& name,
                            const std::map<std::string, PromFamily>& families) {
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    std::string sfx = suffix;
    if (name.size() > sfx.size() && name.compare(name.size() - sfx.size(), sfx.size(), sfx) == 0) {
      std::string base = name.substr(0, name.size() - sfx.size());
      auto it = families.find(base);
      if (it != families.end() &&
          (it->second.type == "histogram" || (it->second.type == "summary" && sfx != "_bucket"))) {
        return base;
      }
    }
  }
  return name;
}

inline bool CheckHistogram(const PromFamily& f, std::string* error) {
  // Group by the labels other than le.
  struct Series {
    std::vector<std::pair<double, double>> buckets;  // (le, count) in order
    std::optional<double> sum, count;
  };
  std::map<PromLabels, Series> series;
  for (const auto& s : f.samples) {
    PromLabels key = s.labels;
    if (s.name == f.name + "_bucket") {
      auto le = key.find("le");
      if (le == key.end()) {
        *error = "line " + std::to_string(s.line) + ": " + s.name + " without an le label";
        return false;
      }
      auto bound = ParseValue(le->second);
      if (!bound || std::isnan(*bound)) {
        *error = "line " + std::to_string(s.line) + ": le=\"" + le->second + "\" is not a number";
        return false;
      }
      key.erase(le);
      series[key].buckets.emplace_back(*bound, s.value);
    } else if (s.name == f.name + "_sum" || s.name == f.name + "_count") {
      if (key.count("le")) {
        *error = "line " + std::to_string(s.line) + ": " + s.name + " must not have an le label";
        return false;
      }
      (s.name == f.name + "_sum" ? series[key].sum : series[key].count) = s.value;
    } else {
      *error = "line " + std::to_string(s.line) + ": sample " + s.name + " in histogram family " +
               f.name + " (only _bucket, _sum, _count)";
      return false;
    }
  }
  for (const auto& [labels, s] : series) {
    if (s.buckets.empty()) {
      *error = "histogram " + f.name + ": a label set has no buckets";
      return false;
    }
    for (size_t i = 0; i < s.buckets.size(); ++i) {
      if (std::isnan(s.buckets[i].second) || s.buckets[i].second < 0) {
        *error = "histogram " + f.name + ": a bucket count is negative or NaN";
        return false;
      }
      if (i > 0 && !(s.buckets[i].first > s.buckets[i - 1].first)) {
        *error = "histogram " + f.name + ": le bounds are not strictly increasing";
        return false;
      }
      if (i > 0 && s.buckets[i].second < s.buckets[i - 1].second) {
        *error = "histogram " + f.name + ": bucket counts are not cumulative";
        return false;
      }
    }
    if (!std::isinf(s.buckets.back().first) || s.buckets.back().first < 0) {
      *error = "histogram " + f.name + ": the last bucket is not le=\"+Inf\"";
      return false;
    }
    if (!s.count || !s.sum) {
      *error = "histogram " + f.name + ": _sum or _count is missing";
      return false;
    }
    if (*s.count != s.buckets.back().second) {
      *error = "histogram " + f.name + ": _count differs from the +Inf bucket";
      return false;
    }
  }
  return true;
}

}  // namespace prom_detail

// nullopt with `error` set ("line N: why") when the text breaks a rule.
inline std::optional<PromDoc> ParsePrometheus(const std::string& text, std::string* error) {
  using namespace prom_detail;
  PromDoc doc;
  std::set<std::pair<std::string, PromLabels>> seen_series;
  std::set<std::string> closed;  // families whose sample group has ended
  std::string current;           // family of the previous sample
  auto fail = [&](int line, const std::string& why) {
    *error = "line " + std::to_string(line) + ": " + why;
    return std::nullopt;
  };
  if (text.empty()) {
    *error = "empty exposition";
    return std::nullopt;
  }
  if (text.back() != '\n') {
    *error = "the last line does not end in \\n";
    return std::nullopt;
  }
  if (text.find('\r') != std::string::npos) {
    *error = "\\r in the text (lines end in \\n only)";
    return std::nullopt;
  }
  auto family = [&](const std::string& name) -> PromFamily& {
    auto it = doc.families.find(name);
    if (it == doc.families.end()) {
      doc.order.push_back(name);
      it = doc.families.emplace(name, PromFamily{}).first;
      it->second.name = name;
    }
    return it->second;
  };

  int lineno = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string line = text.substr(pos, nl - pos);
    pos = nl + 1;
    ++lineno;
    if (line.empty()) continue;
    if (line[0] == '#') {
      // "# HELP name text" / "# TYPE name type" / comment.
      if (line.rfind("# HELP ", 0) == 0 || line.rfind("# TYPE ", 0) == 0) {
        bool help = line[2] == 'H';
        std::string rest = line.substr(7);
        size_t sp = rest.find(' ');
        std::string name = rest.substr(0, sp);
        std::string arg = sp == std::string::npos ? "" : rest.substr(sp + 1);
        if (!ValidMetricName(name)) return fail(lineno, "bad metric name \"" + name + "\"");
        if (doc.families.count(name) && !doc.families[name].samples.empty()) {
          return fail(lineno,
                      std::string(help ? "HELP" : "TYPE") + " for " + name + " after its samples");
        }
        if (closed.count(name)) return fail(lineno, name + " appears in two groups");
        PromFamily& f = family(name);
        if (help) {
          if (f.help) return fail(lineno, "second HELP for " + name);
          for (size_t i = 0; i < arg.size(); ++i) {
            if (arg[i] == '\\') {
              if (i + 1 >= arg.size() || (arg[i + 1] != '\\' && arg[i + 1] != 'n')) {
                return fail(lineno, "bad escape in HELP of " + name);
              }
              ++i;
            }
          }
          f.help = arg;
        } else {
          if (f.has_type) return fail(lineno, "second TYPE for " + name);
          static const std::set<std::string> kTypes = {"counter", "gauge", "histogram", "summary",
                                                       "untyped"};
          if (!kTypes.count(arg)) return fail(lineno, "unknown TYPE \"" + arg + "\"");
          f.type = arg;
          f.has_type = true;
        }
        continue;
      }
      if (line.rfind("# ", 0) == 0 || line == "#") continue;  // a comment
      return fail(lineno, "a comment must start with \"# \"");
    }

    // A sample: name [{labels}] value [timestamp]
    size_t i = 0;
    while (i < line.size() && IsNameChar(line[i])) ++i;
    std::string name = line.substr(0, i);
    if (!ValidMetricName(name)) return fail(lineno, "bad metric name in \"" + line + "\"");
    PromLabels labels;
    if (i < line.size() && line[i] == '{') {
      ++i;
      bool first = true;
      while (true) {
        if (i < line.size() && line[i] == '}') {
          if (!first) return fail(lineno, "trailing comma in the label set");
          ++i;
          break;
        }
        size_t start = i;
        while (i < line.size() && IsNameChar(line[i])) ++i;
        std::string lname = line.substr(start, i - start);
        if (!ValidLabelName(lname)) return fail(lineno, "bad label name \"" + lname + "\"");
        if (i + 1 >= line.size() || line[i] != '=' || line[i + 1] != '"') {
          return fail(lineno, "expected =\" after label " + lname);
        }
        i += 2;
        std::string value;
        bool closed_quote = false;
        while (i < line.size()) {
          char c = line[i++];
          if (c == '"') {
            closed_quote = true;
            break;
          }
          if (c == '\\') {
            if (i >= line.size()) break;
            char e = line[i++];
            if (e == '\\') {
              value += '\\';
            } else if (e == '"') {
              value += '"';
            } else if (e == 'n') {
              value += '\n';
            } else {
              return fail(lineno, std::string("bad escape \\") + e + " in label " + lname);
            }
          } else {
            value += c;
          }
        }
        if (!closed_quote) return fail(lineno, "unterminated value of label " + lname);
        if (labels.count(lname)) return fail(lineno, "label " + lname + " twice");
        labels[lname] = value;
        first = false;
        if (i < line.size() && line[i] == ',') {
          ++i;
          if (i < line.size() && line[i] == '}') return fail(lineno, "trailing comma in labels");
          continue;
        }
        if (i < line.size() && line[i] == '}') {
          ++i;
          break;
        }
        return fail(lineno, "expected , or } after label " + lname);
      }
    }
    if (i >= line.size() || line[i] != ' ')
      return fail(lineno, "expected a space before the value");
    while (i < line.size() && line[i] == ' ') ++i;
    size_t vend = line.find(' ', i);
    std::string vtext = line.substr(i, vend == std::string::npos ? std::string::npos : vend - i);
    auto value = ParseValue(vtext);
    if (!value) return fail(lineno, "bad value \"" + vtext + "\"");
    if (vend != std::string::npos) {
      std::string ts = line.substr(vend + 1);
      if (ts.empty() || ts.find_first_not_of("-0123456789") != std::string::npos) {
        return fail(lineno, "bad timestamp \"" + ts + "\"");
      }
    }

    std::string fam = FamilyOf(name, doc.families);
    if (fam != current) {
      if (!current.empty()) closed.insert(current);
      if (closed.count(fam)) return fail(lineno, "samples of " + fam + " in two groups");
      current = fam;
    }
    if (!seen_series.insert({name, labels}).second) {
      return fail(lineno, "series " + name + " twice with the same labels");
    }
    PromFamily& f = family(fam);
    if (f.type == "counter" && (std::isnan(*value) || *value < 0)) {
      return fail(lineno, "counter " + name + " is negative or NaN");
    }
    if (f.type != "histogram" && labels.count("le") && f.type != "untyped") {
      return fail(lineno, "le label outside a histogram: " + name);
    }
    f.samples.push_back(PromSample{name, labels, *value, lineno});
  }
  for (const auto& name : doc.order) {
    const PromFamily& f = doc.families.at(name);
    if (f.type == "histogram" && !CheckHistogram(f, error)) return std::nullopt;
  }
  return doc;
}

// This project's rules on top of the format. "" when they hold.
inline std::string CheckStoregwConventions(const PromDoc& doc) {
  for (const auto& name : doc.order) {
    const PromFamily& f = doc.families.at(name);
    if (name.rfind("storegw_", 0) != 0) return name + ": not prefixed storegw_";
    if (!f.help || f.help->empty()) return name + ": no HELP";
    if (!f.has_type) return name + ": no TYPE";
    if (f.type == "counter" &&
        (name.size() < 6 || name.compare(name.size() - 6, 6, "_total") != 0)) {
      return name + ": a counter whose name does not end in _total";
    }
  }
  return "";
}

}  // namespace storegw::test
