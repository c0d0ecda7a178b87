// The text conventions every storegw config shares (storegw's own and
// storegw-hq's): durations with a unit, values quoted for a message, and
// the distance behind "did you mean ...?" suggestions. Library
// storegw_config_text: pure functions, any thread, no dependency but Status.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

#include "storegw/status.h"

namespace storegw::gateway {

using Millis = std::chrono::milliseconds;

// "250ms", "5s", "10m", "2h", "7d": a non-negative integer and one unit.
Result<Millis> ParseDuration(std::string_view text);
// The shortest exact form: 604800000ms -> "7d", 1500ms -> "1500ms".
std::string FormatDuration(Millis d);

// `s` as a TOML basic string: in double quotes, with \" \\ \n \t \r and
// \uXXXX escapes for other control characters.
std::string Quote(std::string_view s);

// Levenshtein distance (insertions, deletions, substitutions).
size_t EditDistance(std::string_view a, std::string_view b);

}  // namespace storegw::gateway
