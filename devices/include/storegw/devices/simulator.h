// POS traffic generator: `storegw simulate`. Drives a running gateway's
// device API the way a store's tills, scales and handhelds would.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "storegw/status.h"

namespace storegw::devices {

struct SimOptions {
  std::string url = "http://127.0.0.1:8080";  // base URL of the gateway
  int lanes = 4;              // tills, each its own device_id and connection
  double rate = 10;           // events per second, all lanes together
  std::chrono::milliseconds duration{10000};  // 0: until stop() returns true
  std::filesystem::path token_file;  // "DEVICE_ID TOKEN" lines; lane i uses line i
  uint64_t seed = 1;
  int batch = 1;              // events per request
  std::string accepted_log;   // when set: one "event_id seq" line per accepted event
  std::function<bool()> stop; // polled; true ends the run early
};

struct SimReport {
  uint64_t sent = 0;          // distinct events attempted
  uint64_t accepted = 0;      // answered 200 (new or duplicate)
  uint64_t duplicates = 0;    // answered duplicate=true (retries that had landed)
  uint64_t retries = 0;       // resends of the same event_id after a timeout/5xx
  uint64_t rejected = 0;      // 4xx: not accepted, not retried
  uint64_t unavailable = 0;   // 503 answers seen (retried after Retry-After)
  std::vector<std::pair<std::string, uint64_t>> accepted_events;  // event_id, seq
  double seconds = 0;
};

Result<SimReport> RunSimulation(const SimOptions& options);

}  // namespace storegw::devices
