// Checks shared by the two ingest-body fuzz targets (JSON and protobuf).
#pragma once

#include "fuzz_common.h"
#include "storegw/devices/json_out.h"
#include "storegw/status.h"

namespace storegw::fuzz {

// An ingest error is invalid_argument with a message, and the error body the
// device API would answer with is valid JSON whatever the client sent.
inline void CheckIngestError(const Status& s) {
  Check(s.code() == StatusCode::kInvalidArgument, "error is not invalid_argument", s.ToString());
  Check(!s.message().empty(), "error without a message");
  Check(IsJson(devices::ErrorJson("invalid_argument", s.message(), s.field())),
        "error body is not valid JSON", s.message());
}

}  // namespace storegw::fuzz
