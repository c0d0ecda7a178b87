// Is this store fine? One verdict from a status document, shared by
// `storegw status` (its exit code) and documented for the status page
// (which applies the same rules in its script).
//
//   healthy  (exit 0)  the daemon answers, the link to HQ is up, nothing
//                      waits longer than max_age, the journal is below
//                      max_journal_percent of its cap.
//   degraded (exit 1)  the daemon answers but at least one of: the link is
//                      "down" or "connecting" (also when the uplink is
//                      disabled: events are not leaving the store); the
//                      oldest undelivered event is older than max_age; the
//                      journal is at or above max_journal_percent of
//                      journal.max_bytes, or full (devices get 503); the
//                      journal reports a problem (journal_error: failed
//                      integrity check, failing checkpointer); the
//                      document says online=false (shutting down).
//   down     (exit 2)  the daemon does not answer, or answers with
//                      something that is not a status document.
//
// Open stock alerts (oversell, ...) are store business, not gateway health:
// they are shown, not counted.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "storegw/v1/storegw.pb.h"

namespace storegw::gateway {

enum class HealthLevel { kHealthy = 0, kDegraded = 1, kDown = 2 };

struct HealthPolicy {
  // A backlog whose oldest event waits longer than this is degraded.
  std::chrono::seconds max_age{std::chrono::minutes(10)};
  // A journal at or above this share of journal.max_bytes is degraded.
  int max_journal_percent = 80;
};

struct Health {
  HealthLevel level = HealthLevel::kHealthy;
  // Why it is not healthy, one sentence each, most urgent first.
  std::vector<std::string> reasons;
};

Health EvaluateHealth(const v1::GatewayStatus& status, const HealthPolicy& policy);

// "healthy", "degraded", "down".
const char* HealthName(HealthLevel level);

}  // namespace storegw::gateway
