#include "storegw/devices/json_out.h"

namespace storegw::devices {
namespace {

// Length of the valid UTF-8 sequence starting at s[i], or 0.
size_t Utf8Len(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  size_t n = 0;
  uint32_t cp = 0;
  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2;
    cp = c & 0x1f;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    cp = c & 0x0f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((b(i + k) & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (b(i + k) & 0x3f);
  }
  if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
      (n == 4 && (cp < 0x10000 || cp > 0x10ffff))) {
    return 0;
  }
  return n;
}

}  // namespace

std::string JsonString(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out += '"';
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      const size_t n = Utf8Len(s, i);
      if (n == 0) {
        out += "\\ufffd";
        ++i;
      } else {
        out.append(s.substr(i, n));
        i += n;
      }
      continue;
    }
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
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          static const char* kHex = "0123456789abcdef";
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 0xf];
        } else {
          out += static_cast<char>(c);
        }
    }
    ++i;
  }
  out += '"';
  return out;
}

std::string ErrorJson(std::string_view code, std::string_view message, std::string_view field) {
  std::string out = "{\"error\":{\"code\":";
  out += JsonString(code);
  out += ",\"message\":";
  out += JsonString(message);
  out += ",\"field\":";
  out += JsonString(field);
  out += "}}";
  return out;
}

std::string ConflictJson(std::string_view message, std::string_view field,
                         std::string_view event_id, uint64_t seq) {
  std::string out = ErrorJson("event_id_conflict", message, field);
  out.resize(out.size() - 2);  // reopen the error object: "...}}"
  out += ",\"event_id\":";
  out += JsonString(event_id);
  out += ",\"seq\":\"";  // 64-bit numbers are strings, as in every answer
  out += std::to_string(seq);
  out += "\"}}";
  return out;
}

}  // namespace storegw::devices
