// Internal: validation of UplinkOptions (Uplink::Create, CreateWithTransport).
#pragma once

#include "storegw/status.h"
#include "storegw/sync/uplink.h"

namespace storegw::storage {
class Journal;
}

namespace storegw::sync {

// Checks `options` against the journal and the limits documented in
// uplink.h; kInvalidArgument names the offending "uplink.*" key, a
// store/gateway id that differs from the journal's is kFailedPrecondition.
// Fills in what defaults from the journal: store_id, gateway_id, and
// client_id ("storegw-{store_id}-{gateway_id}"). Does not look at the
// transport or its URL (see transport_factory.h).
Status ValidateUplinkOptions(UplinkOptions& options, storage::Journal* journal);

}  // namespace storegw::sync
