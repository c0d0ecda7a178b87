// `storegw run`: the daemon. Reads as a checklist: load config, open the
// journal, start the device API, tell systemd READY, wait for a stop, stop
// in reverse order.
#pragma once

#include <string>

namespace storegw::gateway {

struct RunFlags {
  std::string config_path;  // empty: embedded defaults
  std::string data_dir;     // non-empty: overrides gateway.data_dir
  std::string listen;       // non-empty: overrides http.listen
};

// Runs until SIGTERM or SIGINT, then drains and returns 0. Returns 1 with a
// one-line reason on stderr when it cannot start. Must be called from the
// main thread before any other thread exists (it blocks the stop signals
// for every thread it starts).
int RunDaemon(const RunFlags& flags);

}  // namespace storegw::gateway
