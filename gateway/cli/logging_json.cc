#include "logging_json.h"

#include <time.h>

#include <chrono>
#include <cstdio>
#include <string>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace storegw::gateway {
namespace {

// "2026-01-31T12:00:00.123+01:00": local time, as the text form prints it,
// with the offset so that a collector in another zone reads it right.
std::string IsoLocalTime(std::chrono::system_clock::time_point t) {
  const auto since = t.time_since_epoch();
  const time_t secs = std::chrono::duration_cast<std::chrono::seconds>(since).count();
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(since).count() % 1000;
  tm local{};
  localtime_r(&secs, &local);
  char date[32], zone[8];
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &local);
  std::strftime(zone, sizeof zone, "%z", &local);  // "+0100"
  char millis[8];
  std::snprintf(millis, sizeof millis, ".%03d", static_cast<int>(ms < 0 ? ms + 1000 : ms));
  std::string out = date;
  out += millis;
  const std::string z = zone;
  if (z.size() == 5) {
    out += z.substr(0, 3);
    out += ':';
    out += z.substr(3);
  } else {
    out += 'Z';
  }
  return out;
}

// Length of the well-formed UTF-8 sequence at the start of `s` (RFC 3629,
// table 3-7 of the Unicode standard), 0 when there is none.
size_t Utf8SequenceLength(std::string_view s) {
  const auto b = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char c = b(0);
  if (c < 0x80) return 1;
  size_t n = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;  // no overlong forms
    if (c == 0xED) hi = 0x9F;  // no surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;  // no overlong forms
    if (c == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
  } else {
    return 0;
  }
  if (s.size() < n || b(1) < lo || b(1) > hi) return 0;
  for (size_t i = 2; i < n; ++i) {
    if (b(i) < 0x80 || b(i) > 0xBF) return 0;
  }
  return n;
}

}  // namespace

std::string ValidUtf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  while (!text.empty()) {
    const size_t n = Utf8SequenceLength(text);
    if (n == 0) {
      out += "\xEF\xBF\xBD";  // U+FFFD REPLACEMENT CHARACTER
      text.remove_prefix(1);
    } else {
      out.append(text.data(), n);
      text.remove_prefix(n);
    }
  }
  return out;
}

void JsonLogFormatter::format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) {
  const auto str = [](spdlog::string_view_t v) {
    return ValidUtf8(std::string_view(v.data(), v.size()));
  };
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  const auto field = [&w](const char* key, const std::string& value) {
    w.Key(key);
    w.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
  };
  w.StartObject();
  field("time", IsoLocalTime(msg.time));
  field("level", str(spdlog::level::to_string_view(msg.level)));
  field("logger", str(msg.logger_name));
  field("message", str(msg.payload));
  w.EndObject();
  dest.append(buf.GetString(), buf.GetString() + buf.GetSize());
  dest.push_back('\n');
}

std::unique_ptr<spdlog::formatter> JsonLogFormatter::clone() const {
  return std::make_unique<JsonLogFormatter>();
}

}  // namespace storegw::gateway
