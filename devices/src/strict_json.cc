// The strict RFC 8259 check of JSON bodies (CheckStrictJson, declared in
// ingest_body.h), with RapidJSON's SAX reader. In a file of its own because
// RapidJSON 1.1.0 (Debian 12's) computes `nullptr + n` in its internal
// stack before the first allocation, which UBSan reports as
// pointer-overflow: the sanitizer builds compile this file without that
// one check (devices/CMakeLists.txt); every other check stays on.
#include <rapidjson/encodedstream.h>
#include <rapidjson/error/en.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

#include <string>
#include <unordered_set>
#include <vector>

#include "ingest_body.h"

namespace storegw::devices {
namespace {

// RapidJSON's SAX events, kept only to find a key repeated in one object.
struct RepeatedKeyFinder
    : rapidjson::BaseReaderHandler<rapidjson::UTF8<>, RepeatedKeyFinder> {
  std::vector<std::unordered_set<std::string>> open_objects;
  std::string repeated;
  bool StartObject() {
    open_objects.emplace_back();
    return true;
  }
  bool Key(const char* s, rapidjson::SizeType n, bool) {
    if (!open_objects.back().emplace(s, n).second) {
      repeated.assign(s, n);
      return false;  // stops the parse: kParseErrorTermination
    }
    return true;
  }
  bool EndObject(rapidjson::SizeType) {
    open_objects.pop_back();
    return true;
  }
  bool Default() { return true; }
};

}  // namespace

Status CheckStrictJson(std::string_view body) {
  if (body.size() >= 3 && body.substr(0, 3) == "\xEF\xBB\xBF") {
    return Status::InvalidArgument(
        "", "malformed JSON at byte 0: the body starts with a UTF-8 byte order mark (EF BB BF); "
            "send the JSON text without it (RFC 8259 section 8.1)");
  }
  // RapidJSON reads a NUL byte as the end of the input.
  if (const size_t nul = body.find('\0'); nul != std::string_view::npos) {
    return Status::InvalidArgument("", "malformed JSON at byte " + std::to_string(nul) +
                                           ": a NUL byte (inside a string it is written \\u0000)");
  }
  // Iterative: nesting depth costs heap, not stack (a body of 100,000 "["
  // must not overflow the handler thread's stack).
  constexpr unsigned kFlags = rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag;
  rapidjson::MemoryStream ms(body.data(), body.size());
  rapidjson::EncodedInputStream<rapidjson::UTF8<>, rapidjson::MemoryStream> in(ms);
  rapidjson::Reader reader;
  RepeatedKeyFinder keys;
  const rapidjson::ParseResult r = reader.Parse<kFlags>(in, keys);
  if (!r.IsError()) return {};
  const std::string at = "malformed JSON at byte " + std::to_string(r.Offset()) + ": ";
  if (r.Code() == rapidjson::kParseErrorTermination) {
    return Status::InvalidArgument(
        "", at + "key \"" + keys.repeated +
                "\" appears twice in one object (each key may appear once; the byte is where "
                "the second one ends)");
  }
  std::string what = rapidjson::GetParseError_En(r.Code());
  if (!what.empty() && what.back() == '.') what.pop_back();
  std::string hint;
  if (r.Offset() < body.size()) {
    const char c = body[r.Offset()];
    if (c == '\'') {
      hint = " (strings and keys take double quotes)";
    } else if (c == '/') {
      hint = " (JSON has no comments)";
    } else if (c == '}' || c == ']') {
      hint = " (a trailing comma?)";
    }
  }
  return Status::InvalidArgument("", at + what + hint);
}

}  // namespace storegw::devices
