#include "storegw/monitor/humanize.h"

#include <cmath>
#include <cstdio>
#include <ctime>

namespace storegw::gateway {

std::string FormatCount(uint64_t n) {
  std::string digits = std::to_string(n);
  std::string out;
  out.reserve(digits.size() + digits.size() / 3);
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string FormatCount(int64_t n) {
  if (n >= 0) return FormatCount(static_cast<uint64_t>(n));
  // -(n + 1) + 1 avoids overflow for INT64_MIN.
  // Appended, not "-" + ...: GCC 12's -Wrestrict false positive at -O3
  // (tests/common/ids.h).
  std::string out = "-";
  out += FormatCount(static_cast<uint64_t>(-(n + 1)) + 1);
  return out;
}

std::string FormatBytes(uint64_t bytes) {
  static const char* const kUnits[] = {"B", "KB", "MB", "GB", "TB", "PB"};
  if (bytes < 1024) return std::to_string(bytes) + " B";
  double v = static_cast<double>(bytes);
  size_t unit = 0;
  while (v >= 1024 && unit + 1 < std::size(kUnits)) {
    v /= 1024;
    ++unit;
  }
  char buf[32];
  // One decimal below 10 units ("3.2 MB"), none above ("50 MB"); a value
  // that rounds to 10.0 prints as "10".
  if (v < 9.95) {
    std::snprintf(buf, sizeof buf, "%.1f", v);
    std::string s = buf;
    if (s.size() > 2 && s.compare(s.size() - 2, 2, ".0") == 0) s.resize(s.size() - 2);
    return s + " " + kUnits[unit];
  }
  if (v >= 1023.5 && unit + 1 < std::size(kUnits)) return std::string("1 ") + kUnits[unit + 1];
  std::snprintf(buf, sizeof buf, "%.0f", v);
  return std::string(buf) + " " + kUnits[unit];
}

std::string FormatAge(uint64_t s) {
  auto two = [](uint64_t big, const char* big_unit, uint64_t small, const char* small_unit) {
    std::string out = std::to_string(big) + " " + big_unit;
    if (small > 0) {
      out += ' ';
      out += std::to_string(small);
      out += ' ';
      out += small_unit;
    }
    return out;
  };
  if (s < 60) return std::to_string(s) + " s";
  if (s < 3600) return two(s / 60, "min", s % 60, "s");
  if (s < 86400) return two(s / 3600, "h", (s % 3600) / 60, "min");
  return two(s / 86400, "d", (s % 86400) / 3600, "h");
}

std::string FormatRate(double r) {
  if (!std::isfinite(r) || r <= 0) return "0/s";
  char buf[32];
  if (r < 9.95) {
    std::snprintf(buf, sizeof buf, "%.1f", r);
    std::string s = buf;
    if (s == "0.0") return "<0.1/s";
    if (s.size() > 2 && s.compare(s.size() - 2, 2, ".0") == 0) s.resize(s.size() - 2);
    return s + "/s";
  }
  return FormatCount(static_cast<uint64_t>(std::llround(r))) + "/s";
}

std::string FormatPercent(uint64_t part, uint64_t whole) {
  if (whole == 0) return "-";
  long double pct = static_cast<long double>(part) * 100.0L / static_cast<long double>(whole);
  return std::to_string(static_cast<uint64_t>(std::floor(pct))) + "%";
}

std::string FormatSensorValue(int64_t value, std::string_view metric) {
  if (metric.empty() || metric == "temp_mc") {
    // Tenths of a degree, rounded half away from zero, in integers: no
    // "-0.0" and no binary-fraction surprises. The magnitude is unsigned
    // so that INT64_MIN does not overflow.
    const bool neg = value < 0;
    const uint64_t mag_mc =
        neg ? static_cast<uint64_t>(-(value + 1)) + 1 : static_cast<uint64_t>(value);
    const uint64_t tenths = mag_mc / 100 + (mag_mc % 100 >= 50 ? 1 : 0);
    std::string out = neg && tenths > 0 ? "-" : "";
    out += std::to_string(tenths / 10);
    out += '.';
    out += static_cast<char>('0' + tenths % 10);
    out += " \xc2\xb0" "C";  // U+00B0 DEGREE SIGN, UTF-8
    return out;
  }
  std::string out = FormatCount(value);
  out += ' ';
  out += metric;
  return out;
}

std::string FormatLocalTime(int64_t unix_us) {
  std::time_t t = static_cast<std::time_t>(unix_us / 1000000);
  std::tm tm{};
  if (!localtime_r(&t, &tm)) return "-";
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

}  // namespace storegw::gateway
