// The gateway's status document (storegw.v1.GatewayStatus): what
// GET /v1/status answers and what the uplink publishes, retained, on the
// MQTT status topic.
//
// Threads: Sample() is called by the main loop about once a second;
// Build() and Json() may be called from any thread (HTTP workers) at the
// same time.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <utility>

#include "storegw/config/config.h"
#include "storegw/storage/journal.h"
#include "storegw/v1/storegw.pb.h"

namespace storegw::gateway {

// Microseconds since 1970 on the system clock: the default `now_us` of the
// status document and its routes.
int64_t UnixNowUs();

// What GatewayStatus.journal_error says for these stats: the integrity
// check's failure, else the checkpointer's; "" when the journal is healthy.
std::string JournalError(const storage::JournalStats& st);

class StatusReporter {
 public:
  using SteadyNow = std::function<std::chrono::steady_clock::time_point()>;
  // `journal` must outlive the reporter. `now_us` (microseconds since the
  // Unix epoch, for ages and updated_at) and `steady_now` (for rates) are
  // replaceable for tests; empty means the real clocks.
  StatusReporter(storage::Journal& journal, const Config& config,
                 std::function<int64_t()> now_us = {}, SteadyNow steady_now = {});

  // Records the journal's append counter for the ingest rate.
  void Sample();

  // Where the uplink's fields (link, last_error, reconnects, send_rate)
  // come from. Set once, before Build() runs on other threads. Without it
  // link is "down" and last_error says why.
  void SetUplinkFields(std::function<void(v1::GatewayStatus*)> fill);

  // The current status.
  v1::GatewayStatus Build();

  // Build() as proto3 JSON with field names as in the .proto (snake_case)
  // and zero values printed.
  std::string Json();

 private:
  double IngestRate();

  storage::Journal& journal_;
  const std::string transport_;
  std::function<int64_t()> now_us_;
  SteadyNow steady_now_;
  std::function<void(v1::GatewayStatus*)> uplink_fields_;
  std::mutex mu_;
  // (steady time, events_appended) over the last minute. Guarded by mu_.
  std::deque<std::pair<std::chrono::steady_clock::time_point, uint64_t>> samples_;
};

}  // namespace storegw::gateway
