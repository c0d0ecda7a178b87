#include "storegw/status.h"

namespace storegw {

std::string_view StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "ok";
    case StatusCode::kInvalidArgument: return "invalid_argument";
    case StatusCode::kNotFound: return "not_found";
    case StatusCode::kCorruption: return "corruption";
    case StatusCode::kIoError: return "io_error";
    case StatusCode::kUnavailable: return "unavailable";
    case StatusCode::kResourceExhausted: return "resource_exhausted";
    case StatusCode::kPermissionDenied: return "permission_denied";
    case StatusCode::kUnauthenticated: return "unauthenticated";
    case StatusCode::kFailedPrecondition: return "failed_precondition";
  }
  return "unknown";
}

Status Status::WithFieldPrefix(std::string_view prefix) const {
  Status s = *this;
  if (prefix.empty()) return s;
  if (s.field_.empty()) {
    s.field_ = std::string(prefix);
  } else if (s.field_.front() == '[') {
    s.field_ = std::string(prefix) + s.field_;
  } else {
    s.field_ = std::string(prefix) + "." + s.field_;
  }
  return s;
}

std::string Status::ToString() const {
  std::string out(StatusCodeName(code_));
  if (ok()) return out;
  out += ": ";
  if (!field_.empty()) {
    out += field_;
    out += ": ";
  }
  out += message_;
  return out;
}

}  // namespace storegw
