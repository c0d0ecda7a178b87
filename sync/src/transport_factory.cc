// Choosing and making the uplink's transport: see transport_factory.h.
#include "transport_factory.h"

#include <atomic>
#include <memory>

#include "https_transport.h"
#include "mqtt_transport.h"

namespace storegw::sync {

Status CheckTransportName(const UplinkOptions& options) {
  if (options.transport == "mqtt" || options.transport == "https") return {};
  return Status::InvalidArgument("uplink.transport",
                                 "\"" + options.transport +
                                     "\" is not available in this build (supported: \"mqtt\", "
                                     "\"https\")");
}

Result<TransportFactory> MakeTransportFactory(const UplinkOptions& options,
                                              const TransportIdentity& identity) {
  if (Status s = CheckTransportName(options); !s.ok()) return s;
  auto opts = std::make_shared<UplinkOptions>(options);
  if (options.transport == "https") {
    if (auto probe = MakeHttpsTransport(options, identity); !probe.ok()) return probe.status();
    if (Status s = CheckHttpsOptions(options); !s.ok()) return s;
    return TransportFactory([opts, identity]() { return MakeHttpsTransport(*opts, identity); });
  }
  if (auto probe = MakeMqttTransport(options, identity); !probe.ok()) return probe.status();
  auto version_hint = std::make_shared<std::atomic<int>>(5);
  return TransportFactory([opts, identity, version_hint]() {
    return MakeMqttTransportWithHint(*opts, identity, version_hint);
  });
}

}  // namespace storegw::sync
