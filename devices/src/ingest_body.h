// Decoding the body of POST /v1/events. Internal to storegw_devices (tests
// include it directly).
//
// JSON is the proto3 JSON mapping of storegw.v1 (parsed by protobuf's
// JsonStringToMessage; no hand-written JSON parsing). The shape of a JSON
// body is decided by its top-level keys: a JSON object with an "events" key
// is an IngestRequest (a batch); any other JSON object is one Event. Field
// paths in errors follow what the client sent: "events[1].sale.lines[0].qty"
// for a batch, "sale.lines[0].qty" for a single Event. A protobuf body is
// always an IngestRequest (a batch).
#pragma once

#include "storegw/devices/json_out.h"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "storegw/status.h"
#include "storegw/v1/storegw.pb.h"

namespace storegw::devices {

enum class BodyFormat { kJson, kProtobuf };

// The format a Content-Type header value names; nullopt for anything else
// (answer 415). Accepts "application/json" (charset, if given, must be
// utf-8), "application/x-protobuf" and "application/protobuf",
// case-insensitive, with parameters.
std::optional<BodyFormat> FormatForContentType(std::string_view content_type);

struct DecodedBody {
  std::vector<v1::Event> events;
  // True when the body was one Event rather than a batch: field paths of
  // errors about it carry no "events[i]." prefix.
  bool single = false;
};

// kInvalidArgument (field = path of the offending field when known) for a
// malformed body, an unknown field, a value of the wrong type, or a batch
// without events. Does not validate the events' contents (see
// storage::ValidateDeviceEvent).
Result<DecodedBody> DecodeIngestBody(BodyFormat format, const std::string& body);

// CheckStrictJson (storegw/devices/json_out.h) runs before protobuf's parser.

// The plausible window of occurred_at (microseconds since 1970-01-01 UTC):
// from 2000-01-01 to one day ahead of the gateway's clock `now_us`.
// kInvalidArgument (field "occurred_at"; the message follows the field's
// name: "1795790000000 looks like milliseconds ...") outside it, saying the
// unit expected and, when the value looks like seconds, milliseconds or
// nanoseconds, what it would be in microseconds.
Status CheckOccurredAt(int64_t occurred_at, int64_t now_us);

// "" for a single-event body, "events[i]" for a batch.
std::string EventPath(bool single, size_t index);

// Joins field paths: JoinPath("events[1]", "sale.qty") == "events[1].sale.qty",
// JoinPath("", "sale") == "sale".
std::string JoinPath(std::string_view prefix, std::string_view field);

}  // namespace storegw::devices
