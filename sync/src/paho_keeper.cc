#include "paho_keeper.h"

#include <MQTTAsync.h>
#include <spdlog/spdlog.h>

namespace storegw::sync {

void KeepPahoRunning() {
  static const bool kept = [] {
    // Only parsed: the keeper never connects anywhere.
    MQTTAsync handle = nullptr;
    const int rc = MQTTAsync_create(&handle, "tcp://127.0.0.1:1", "storegw-paho-keeper",
                                    MQTTCLIENT_PERSISTENCE_NONE, nullptr);
    if (rc != MQTTASYNC_SUCCESS) {
      spdlog::warn("mqtt: could not create Paho's keep-alive handle (rc {}); Paho restarts its "
                   "threads on every reconnect",
                   rc);
      return false;
    }
    return true;  // the handle lives until the process exits, on purpose
  }();
  (void)kept;
}

}  // namespace storegw::sync
