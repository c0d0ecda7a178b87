// Logging for the storegw binary: spdlog to stderr (systemd's journal picks
// it up under the unit). Tokens and passwords are never passed to a logger.
#pragma once

#include <string_view>

#include "storegw/status.h"

namespace storegw::gateway {

// Sets the default logger: stderr, "2026-01-31 12:00:00.123 info message".
// `level` is a [log] level name (trace ... off); checked by the config.
void InitLogging(std::string_view level);

}  // namespace storegw::gateway
