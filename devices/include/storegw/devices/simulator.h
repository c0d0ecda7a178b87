// POS traffic generator: `storegw simulate`. Drives a running gateway's
// device API the way a store's tills, scales and handhelds would.
//
// Each lane is one till with its own device_id and its own keep-alive
// connection. Events are generated open-loop: lane i produces rate/lanes
// events per second on a fixed schedule whatever the gateway's answers, and
// queues them like a till that keeps selling while the back office is slow.
// Traffic: sales with 1..30 lines (most 1..5) over a catalogue of 2,000 skus
// ("SKU-000123") with Zipf-like popularity and EUR prices; about 3% returns,
// 2% deliveries (receipts that replenish, popular skus most), 1% cycle counts
// and 1% adjustments (shrink, damage, waste, found).
//
// Retries: a request that times out, fails to connect or gets a 5xx (503:
// after Retry-After) is sent again with the very same body and event_ids,
// with capped exponential back-off and full jitter, until it is accepted or
// the run ends. A 4xx answer rejects its events (not retried). Every
// accepted (event_id, seq), including ones answered duplicate=true because
// an earlier attempt had landed, is reported.
//
// Bounded: new events stop at `duration` (or when stop() returns true); then
// lanes have at most `grace` to deliver what they hold, so a run lasts at
// most duration + grace + one request timeout (5 s).
//
// Threads: RunSimulation blocks; it runs one thread per lane and polls
// stop() from the calling thread only.
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
  int lanes = 4;                              // tills, each its own device_id and connection
  double rate = 10;                           // events per second, all lanes together
  std::chrono::milliseconds duration{10000};  // 0: until stop() returns true
  std::filesystem::path token_file;           // "DEVICE_ID TOKEN" lines; lane i uses line i
  uint64_t seed = 1;
  int batch = 1;               // events per request
  std::string accepted_log;    // when set: one "event_id seq" line per accepted event
  std::function<bool()> stop;  // polled; true ends the run early
  // After the end of event generation, lanes keep (re)sending the events they
  // hold for at most this long.
  std::chrono::milliseconds grace{5000};
  // Part of every event_id ("sim-RUNID-till-01-000042"). Empty: derived from
  // the start time and seed, so that two runs never share event_ids.
  std::string run_id;
  bool protobuf = false;  // send application/x-protobuf instead of JSON
};

struct SimReport {
  uint64_t sent = 0;         // distinct events attempted
  uint64_t accepted = 0;     // answered 200 (new or duplicate)
  uint64_t duplicates = 0;   // answered duplicate=true (retries that had landed)
  uint64_t retries = 0;      // requests resent (same body, same event_ids) after a timeout/5xx
  uint64_t rejected = 0;     // 4xx: not accepted, not retried
  uint64_t unavailable = 0;  // 503 answers seen (retried after Retry-After)
  std::vector<std::pair<std::string, uint64_t>> accepted_events;  // event_id, seq
  double seconds = 0;
  uint64_t failed = 0;             // attempted but not accepted when the run ended
  uint64_t unsent = 0;             // due but never attempted (gateway too slow or down;
                                   // a lane holds at most 20,000 waiting events)
  uint64_t requests = 0;           // HTTP requests made, retries included
  uint64_t connection_errors = 0;  // requests without an answer (refused, timeout, reset)
  uint64_t protocol_errors = 0;    // 200 answers that did not match the request
  double latency_p50_ms = 0;       // of answered requests
  double latency_p99_ms = 0;
  double latency_max_ms = 0;
  std::string last_error;  // the last rejection or failure, for the operator
};

Result<SimReport> RunSimulation(const SimOptions& options);

}  // namespace storegw::devices
