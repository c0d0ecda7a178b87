// Shared checks of the fuzz targets. Every check that fails aborts (so
// libFuzzer reports the input as a crash and keeps it): a fuzz target
// checks properties, not only that nothing crashes.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

namespace storegw::fuzz {

[[noreturn]] inline void Fail(std::string_view what, std::string_view detail) {
  std::fprintf(stderr, "fuzz check failed: %.*s\n%.*s\n", static_cast<int>(what.size()),
               what.data(), static_cast<int>(detail.size()), detail.data());
  std::abort();
}

inline void Check(bool ok, std::string_view what, std::string_view detail = {}) {
  if (!ok) Fail(what, detail);
}

// Whether `json` parses as JSON (any value) with protobuf's parser.
inline bool IsJson(const std::string& json) {
  google::protobuf::Value v;
  return google::protobuf::util::JsonStringToMessage(json, &v).ok();
}

}  // namespace storegw::fuzz
