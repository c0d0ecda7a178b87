// Internal: the Paho transport with a protocol-version hint shared across
// connection attempts (after a broker refused MQTT 5 once, later attempts
// start with 3.1.1 instead of paying a refused round trip every time).
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "storegw/sync/transport.h"
#include "storegw/sync/uplink.h"

namespace storegw::sync {

Result<std::unique_ptr<Transport>> MakeMqttTransportWithHint(
    const UplinkOptions& options, const TransportIdentity& identity,
    std::shared_ptr<std::atomic<int>> version_hint);

// "tcp://h:p" -> {scheme "tcp", host "h", port p}; mqtt:// and mqtts:// are
// mapped to tcp:// and ssl:// (what Paho understands).
struct BrokerUrl {
  std::string scheme;  // "tcp", "ssl", "ws" or "wss"
  std::string host;    // without brackets
  uint16_t port = 0;
  std::string path;  // ws/wss only, with its leading '/'
  bool tls() const { return scheme == "ssl" || scheme == "wss"; }
  std::string paho_uri() const;
  std::string host_port() const;
};
Result<BrokerUrl> ParseBrokerUrl(const std::string& url);

}  // namespace storegw::sync
