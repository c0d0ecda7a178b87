// The gateway's HTTP routes for people and monitoring:
//
//   GET /                    the status page (one self-contained HTML file,
//                            status_page.html, compiled into the binary)
//   GET /kitchen             the same page in its kitchen-screen view
//                            (also /?view=kitchen): perishables only, big
//   GET /v1/status           storegw.v1.GatewayStatus as proto3 JSON
//   GET /v1/status/history   the last hour of backlog and rates, for the
//                            page's chart (?since=UNIX_MS for newer points)
//   GET /v1/devices          storegw.v1.DeviceList as proto3 JSON: every
//                            device of the device API, worst first
//   GET /metrics             Prometheus text format 0.0.4 (metrics.h)
//   POST /v1/alerts/{seq}/ack  acknowledges an open alert, body
//                            {"by": NAME, "note": TEXT}: journaled as an
//                            alert_ack event (the only route that writes)
//
// They are mounted on the device API (http.listen) through its
// ExtraHandler, or on a listener of their own (status.listen, see
// status_server.h). With status.token set, each needs
// "Authorization: Bearer TOKEN"; the page also takes "?token=TOKEN" (a
// browser cannot send a header when you type a URL) and its script then
// sends the header and removes the token from the address bar (POST takes
// the header only). The token
// is compared in constant time and never appears in an answer or a log.
//
// Threads: Handle() runs on HTTP worker threads, Sample() on the daemon's
// main loop; the Set*() hooks may be called once each, from the main
// thread, at any time (a request before a hook is set sees zeros).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "storegw/monitor/history.h"
#include "storegw/monitor/metrics.h"
#include "storegw/monitor/status.h"
#include "storegw/devices/device_api.h"
#include "storegw/storage/journal.h"
#include "storegw/sync/uplink.h"

namespace storegw::gateway {

class StatusHttp {
 public:
  // `reporter` and `journal` must outlive this object. `token` empty: no
  // token needed. `now_us` (Unix microseconds) is replaceable for tests.
  StatusHttp(StatusReporter& reporter, storage::Journal& journal, std::string token,
             std::function<int64_t()> now_us = {});

  // Answers the routes above; nullopt for any other path (the caller
  // answers 404).
  std::optional<devices::HttpResponse> Handle(const devices::HttpRequest& req);
  devices::ExtraHandler Handler() {
    return [this](const devices::HttpRequest& r) { return Handle(r); };
  }

  // For devices::ApiOptions::on_append_done: feeds the commit latency
  // histogram of /metrics (successful appends only).
  std::function<void(std::chrono::nanoseconds, bool)> AppendObserver() {
    return [this](std::chrono::nanoseconds d, bool ok) {
      if (ok) commit_latency_.Observe(d);
    };
  }

  // Sources of the /metrics numbers that live elsewhere.
  void SetApiCounters(std::function<devices::ApiCounters()> source);
  // The device table (DeviceApi::Devices) for /v1/devices and /metrics;
  // at most `max_metric_devices` devices get their own `device` label in
  // /metrics, the rest are summed under device="other".
  void SetDevices(std::function<v1::DeviceList()> source, size_t max_metric_devices);
  void SetUplinkStatus(std::function<sync::UplinkStatus()> source);
  void SetDownstreamCounters(std::function<sync::DownstreamCounters()> source);
  // The changes feed's figures (DeviceApi::feed_stats).
  void SetFeedStats(std::function<devices::FeedStats()> source);
  // Responses by HTTP code of another listener (status.listen), added to
  // storegw_http_requests_total.
  void SetExtraResponseCounts(std::function<std::vector<std::pair<int, uint64_t>>()> source);

  // Records a history point when its interval has passed (main loop, about
  // once a second).
  void Sample();

  // What /metrics renders, read now.
  MetricsInput CollectMetrics();
  const StatusHistory& history() const { return history_; }

 private:
  bool Authorized(const devices::HttpRequest& req, bool allow_query_token) const;
  devices::HttpResponse Acknowledge(const devices::HttpRequest& req, uint64_t seq);

  StatusReporter& reporter_;
  storage::Journal& journal_;
  const std::string token_;
  std::function<int64_t()> now_us_;
  const int64_t start_time_us_;
  StatusHistory history_;
  LatencyHistogram commit_latency_;

  std::mutex mu_;  // guards the sources below
  std::function<devices::ApiCounters()> api_counters_;
  std::function<v1::DeviceList()> devices_;
  size_t max_metric_devices_ = 50;
  std::function<sync::UplinkStatus()> uplink_status_;
  std::function<sync::DownstreamCounters()> downstream_counters_;
  std::function<devices::FeedStats()> feed_stats_;
  std::function<std::vector<std::pair<int, uint64_t>>()> extra_responses_;
};

}  // namespace storegw::gateway
