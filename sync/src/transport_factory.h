// Internal: which transport an uplink uses ("mqtt" or "https"), and the
// factory the engine calls for a fresh Transport on every connection
// attempt.
#pragma once

#include "storegw/status.h"
#include "storegw/sync/transport.h"
#include "storegw/sync/uplink.h"

namespace storegw::sync {

// options.transport is one this build can make: "mqtt" or "https".
// Anything else, "none" included (no uplink at all: the gateway does not
// create one), is kInvalidArgument naming uplink.transport.
Status CheckTransportName(const UplinkOptions& options);

// For options already validated (ValidateUplinkOptions): makes one
// transport now, so a bad URL or proxy (and for HTTPS, an option libcurl
// refuses) fails at start-up instead of on every connection attempt, and
// returns the factory. The MQTT factory remembers across connections that
// the broker refused MQTT 5.
Result<TransportFactory> MakeTransportFactory(const UplinkOptions& options,
                                              const TransportIdentity& identity);

}  // namespace storegw::sync
