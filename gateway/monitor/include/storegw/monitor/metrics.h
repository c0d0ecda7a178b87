// GET /metrics: the gateway in Prometheus text exposition format 0.0.4.
// Every name starts with storegw_ and has HELP and TYPE lines; counters end
// in _total. RenderMetrics() is a pure function of a snapshot so that tests
// can parse its output strictly and compare it with /v1/status.
//
// Threads: LatencyHistogram is thread-safe (HTTP workers observe, the
// /metrics handler reads). RenderMetrics() is pure.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "storegw/devices/device_api.h"
#include "storegw/storage/journal.h"
#include "storegw/sync/downstream.h"
#include "storegw/sync/uplink.h"
#include "storegw/v1/storegw.pb.h"

namespace storegw::gateway {

// A fixed-bucket histogram of durations, in seconds (Prometheus style:
// upper bounds, the +Inf bucket implied).
class LatencyHistogram {
 public:
  struct Snapshot {
    std::vector<double> bounds;    // upper bounds in seconds, ascending
    std::vector<uint64_t> counts;  // per bucket, NOT cumulative; bounds.size() + 1 (last: +Inf)
    double sum_seconds = 0;
    uint64_t count = 0;  // == sum of counts
  };

  // Default bounds: 0.5 ms .. 10 s, suited to fsync'd group commits.
  static std::vector<double> DefaultBounds();

  explicit LatencyHistogram(std::vector<double> bounds = DefaultBounds());
  void Observe(std::chrono::nanoseconds d);
  Snapshot Take() const;

 private:
  mutable std::mutex mu_;
  Snapshot s_;  // guarded by mu_
};

// Everything /metrics shows, read at one moment.
struct MetricsInput {
  v1::GatewayStatus status;                  // StatusReporter::Build()
  storage::JournalStats journal;             // Journal::Stats()
  std::optional<devices::ApiCounters> api;   // nullopt before the device API runs
  std::optional<sync::UplinkStatus> uplink;  // nullopt: no uplink configured
  // nullopt: no downlink (uplink not MQTT); the families then show zeros.
  std::optional<sync::DownstreamCounters> downstream;
  // The changes feed (nullopt: no device API yet; the families show zeros).
  std::optional<devices::FeedStats> feed;
  // The device table (nullopt: no device API yet); the first
  // max_metric_devices devices by requests get their own `device` label,
  // the rest are summed under device="other".
  std::optional<v1::DeviceList> devices;
  size_t max_metric_devices = 50;
  LatencyHistogram::Snapshot commit_latency;
  // HTTP responses by status code, over every listener of the daemon.
  std::vector<std::pair<int, uint64_t>> http_responses;
  int64_t start_time_us = 0;  // when the daemon started (Unix us)
};

std::string RenderMetrics(const MetricsInput& in);

// The content type of RenderMetrics()'s output.
inline constexpr const char* kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace storegw::gateway
