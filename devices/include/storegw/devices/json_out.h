// Writing the few JSON bodies that have no proto message (errors, stock,
// health), and the strict check every JSON body the gateway reads passes
// before protobuf's proto3 JSON parser.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "storegw/status.h"

namespace storegw::devices {

// `s` as a JSON string literal, quotes included. Bytes that are not valid
// UTF-8 are replaced by U+FFFD so the output is always valid JSON.
std::string JsonString(std::string_view s);

// 64-bit integers are written as JSON strings, as the proto3 JSON mapping
// does ("seq":"7"), so that every 64-bit value in the API looks the same and
// survives JavaScript's 53-bit numbers.
// (Built by appending: `"\"" + std::to_string(v)` inserts at the front of
// the temporary, which GCC 12 at -O3 misreads as an overlapping memcpy and
// warns about with -Wrestrict.)
inline std::string JsonInt64(int64_t v) {
  std::string out = "\"";
  out += std::to_string(v);
  out += '"';
  return out;
}
inline std::string JsonUint64(uint64_t v) {
  std::string out = "\"";
  out += std::to_string(v);
  out += '"';
  return out;
}

// {"error":{"code":CODE,"message":MESSAGE,"field":FIELD}}
std::string ErrorJson(std::string_view code, std::string_view message, std::string_view field);

// The 409 answer to a reused event_id with another body: the error object
// of ErrorJson with code "event_id_conflict", plus the event_id and the seq
// it is journaled as ("0" when the other body is in the same request).
std::string ConflictJson(std::string_view message, std::string_view field,
                         std::string_view event_id, uint64_t seq);

// kInvalidArgument unless `body` is one RFC 8259 JSON text: no byte order
// mark, no comments, no single quotes, no trailing commas, valid UTF-8, no
// key repeated within an object, nothing after the value. The message names
// the problem and its byte offset. (protobuf's JSON parser accepts all of
// these; every JSON body the gateway reads is checked with this first.)
Status CheckStrictJson(std::string_view body);

}  // namespace storegw::devices
