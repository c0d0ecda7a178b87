// libFuzzer target: the JSON body of POST /v1/events (DecodeIngestBody with
// BodyFormat::kJson, then ValidateDeviceEvent on each event, as the device
// API does). Properties checked besides "no crash, no sanitizer report":
//   * a decoded body has at least one event;
//   * every error is kInvalidArgument with a non-empty message, and the
//     error body the API would answer with (ErrorJson) is valid JSON,
//     whatever bytes the client sent;
//   * a decoded body passed the strict RFC 8259 check (CheckStrictJson);
//   * occurred_at's check answers kInvalidArgument on field occurred_at or ok;
//   * a decoded event that validates survives the proto3 JSON round trip.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_common.h"
#include "ingest_body.h"
#include "ingest_checks.h"
#include "storegw/storage/journal.h"

namespace dev = storegw::devices;
namespace fz = storegw::fuzz;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  auto decoded = dev::DecodeIngestBody(dev::BodyFormat::kJson, body);
  if (!decoded.ok()) {
    fz::CheckIngestError(decoded.status());
    return 0;
  }
  fz::Check(!decoded->events.empty(), "decoded body without events");
  fz::Check(dev::CheckStrictJson(body).ok(), "a decoded body fails the strict JSON check");
  for (size_t i = 0; i < decoded->events.size(); ++i) {
    const auto& e = decoded->events[i];
    const storegw::Status t = dev::CheckOccurredAt(e.occurred_at(), 1'795'790'000'000'000);
    if (!t.ok()) {
      fz::Check(t.field() == "occurred_at", "occurred_at refused on another field", t.field());
      fz::CheckIngestError(t);
    }
    storegw::Status s = storegw::storage::ValidateDeviceEvent(e);
    if (!s.ok()) {
      fz::CheckIngestError(s.WithFieldPrefix(dev::EventPath(decoded->single, i)));
      continue;
    }
    std::string json;
    fz::Check(google::protobuf::util::MessageToJsonString(e, &json).ok(),
              "a valid event does not print as JSON");
    storegw::v1::Event back;
    fz::Check(google::protobuf::util::JsonStringToMessage(json, &back).ok(),
              "a valid event's JSON does not parse back", json);
    fz::Check(back.SerializeAsString() == e.SerializeAsString(), "JSON round trip changed an event",
              json);
  }
  return 0;
}
