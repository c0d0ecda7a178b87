// libFuzzer target: the application/x-protobuf body of POST /v1/events
// (DecodeIngestBody with BodyFormat::kProtobuf, then ValidateDeviceEvent on
// each event, as the device API does). Properties checked besides "no
// crash, no sanitizer report":
//   * a decoded body has at least one event and no unknown fields;
//   * every error is kInvalidArgument with a message, and the error body
//     the API would answer with (ErrorJson) is valid JSON;
//   * an event that validates re-serializes to bytes that decode to the
//     same event.
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
  auto decoded = dev::DecodeIngestBody(dev::BodyFormat::kProtobuf, body);
  if (!decoded.ok()) {
    fz::CheckIngestError(decoded.status());
    return 0;
  }
  fz::Check(!decoded->events.empty(), "decoded body without events");
  fz::Check(!decoded->single, "a protobuf body is always a batch");
  storegw::v1::IngestRequest again;
  for (size_t i = 0; i < decoded->events.size(); ++i) {
    const auto& e = decoded->events[i];
    fz::Check(e.GetReflection()->GetUnknownFields(e).empty(), "decoded event has unknown fields");
    storegw::Status s = storegw::storage::ValidateDeviceEvent(e);
    if (!s.ok()) {
      fz::CheckIngestError(s.WithFieldPrefix(dev::EventPath(false, i)));
      continue;
    }
    *again.add_events() = e;
  }
  if (again.events_size() == 0) return 0;
  auto redecoded = dev::DecodeIngestBody(dev::BodyFormat::kProtobuf, again.SerializeAsString());
  fz::Check(redecoded.ok(), "re-serialized valid events do not decode",
            redecoded.ok() ? "" : redecoded.status().ToString());
  fz::Check(redecoded->events.size() == static_cast<size_t>(again.events_size()),
            "re-serialized valid events decode to another count");
  for (int i = 0; i < again.events_size(); ++i) {
    fz::Check(redecoded->events[static_cast<size_t>(i)].SerializeAsString() ==
                  again.events(i).SerializeAsString(),
              "re-serialized event decodes differently");
  }
  return 0;
}
