// Logging for the storegw binary: spdlog to stderr (systemd's journal picks
// it up under the unit). Tokens and passwords are never passed to a logger.
#pragma once

#include <string_view>

#include "storegw/status.h"

namespace storegw::gateway {

// Sets the default logger, on stderr, one line per message. `level` is a
// [log] level name (trace ... off); `format` a [log] format; both checked
// by the config:
//   "text": 2026-01-31 12:00:00.123 info message
//   "json": {"time":"2026-01-31T12:00:00.123+01:00","level":"info",
//            "logger":"storegw","message":"message"}
// The two say the same: the local time (JSON adds the UTC offset), the
// level by spdlog's name (trace, debug, info, warning, error, critical),
// the logger's name and the message. JSON is one object per line, escaped
// by RapidJSON, so a message with quotes, newlines or control characters is
// still one valid line; bytes that are not UTF-8 become U+FFFD.
void InitLogging(std::string_view level, std::string_view format = "text");

}  // namespace storegw::gateway
