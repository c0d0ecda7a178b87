// systemd Type=notify support. Every call is harmless when the process does
// not run under systemd (NOTIFY_SOCKET unset): sd_notify then does nothing.
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

namespace storegw::gateway {

// READY=1 plus a STATUS= line for `systemctl status`.
void NotifyReady(std::string_view status);
// STOPPING=1: the service is draining.
void NotifyStopping();
// WATCHDOG=1: the main loop is alive.
void NotifyWatchdog();
// The unit's WatchdogSec when the watchdog is enabled for this process.
std::optional<std::chrono::microseconds> WatchdogInterval();

}  // namespace storegw::gateway
