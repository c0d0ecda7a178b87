// The proto3 JSON mapping of a message, as PgStore stores events in the
// `event` jsonb column: exactly what
// google::protobuf::util::MessageToJsonString prints with
// preserve_proto_field_names (the field names of storegw.proto, as the
// device API and `storegw journal export` write them), only faster.
//
// MessageToJsonString converts every message to the wire format and back
// through a type resolver: about 100,000 events/s on one core of the CI
// machine, the whole budget of storegw-hq's path. AppendProtoJson walks
// the message by reflection instead (about ten times faster) for what
// storegw's events hold: strings of printable ASCII, integers, enums,
// booleans, nested and repeated messages. Anything else (a string with
// non-ASCII or control characters, floating point, bytes, maps, well-known
// types) falls back to MessageToJsonString for the whole message, so the
// output is always MessageToJsonString's. tests/hq/store/event_json_test.cc
// compares the two on every event kind and on random events.
#pragma once

#include <google/protobuf/message.h>

#include <string>

namespace storegw::hq::pg {

// Appends the JSON of `m` to *out. False only if MessageToJsonString
// itself fails (then *out is unchanged).
bool AppendProtoJson(const google::protobuf::Message& m, std::string* out);

// The fast path alone: false (and *out unchanged) when `m` holds
// something it does not print.
bool AppendProtoJsonFast(const google::protobuf::Message& m, std::string* out);

}  // namespace storegw::hq::pg
