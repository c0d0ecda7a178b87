#include "storegw/config/config_text.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <limits>
#include <vector>

namespace storegw::gateway {
namespace {

constexpr int64_t kSec = 1000;
constexpr int64_t kDay = 86400 * kSec;

}  // namespace

std::string Quote(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04X", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
  return out;
}

size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

Result<Millis> ParseDuration(std::string_view text) {
  auto bad = [&] {
    return Status::InvalidArgument(
        "",
        "expected a duration with a unit, e.g. \"250ms\", \"5s\", \"10m\", \"2h\" or \"7d\", "
        "got " +
            Quote(text));
  };
  size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  if (digits == 0 || digits == text.size()) return bad();
  int64_t n = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + digits, n);
  std::string_view unit = text.substr(digits);
  int64_t scale = 0;
  if (unit == "ms")
    scale = 1;
  else if (unit == "s")
    scale = kSec;
  else if (unit == "m")
    scale = 60 * kSec;
  else if (unit == "h")
    scale = 3600 * kSec;
  else if (unit == "d")
    scale = kDay;
  else
    return bad();
  if (ec == std::errc::result_out_of_range || n > std::numeric_limits<int64_t>::max() / scale) {
    return Status::InvalidArgument("", "duration " + Quote(text) + " is too large");
  }
  (void)ptr;
  return Millis(n * scale);
}

std::string FormatDuration(Millis d) {
  int64_t ms = d.count();
  if (ms == 0) return "0s";
  struct Unit {
    int64_t scale;
    const char* name;
  };
  for (Unit u : {Unit{kDay, "d"}, Unit{3600 * kSec, "h"}, Unit{60 * kSec, "m"}, Unit{kSec, "s"}}) {
    if (ms % u.scale == 0) return std::to_string(ms / u.scale) + u.name;
  }
  return std::to_string(ms) + "ms";
}

}  // namespace storegw::gateway
