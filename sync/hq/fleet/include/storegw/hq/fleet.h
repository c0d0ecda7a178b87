// The fleet view of storegw-hq: which gateways are online, how far behind
// they are, what HQ has applied. Three pure functions and one HTTP piece:
//
//   BuildFleet()          the store's FleetRows at a moment -> storegw.fleet.v1.Fleet
//                         (online/offline and since when, lag, worst first)
//   FleetToJson()         GET /v1/fleet's body (proto3 JSON)
//   RenderFleetMetrics()  GET /metrics (Prometheus text format 0.0.4)
//   FleetHttp             GET /, /v1/fleet, /metrics, /healthz on an
//                         http::Server (storegw_http), reading the store
//                         at most once per `cache` however many ask
//
// The page (fleet_page.html) is compiled in: no file on disk, nothing from
// the network. Rules and field meanings: storegw/fleet/v1/fleet.proto and
// docs/hq.md.
//
// Threads: the functions are pure. FleetHttp's handlers run on the HTTP
// server's workers; it serialises its reads of the store.
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

#include "storegw/fleet/v1/fleet.pb.h"
#include "storegw/hq/receiver.h"
#include "storegw/hq/store.h"

namespace storegw::http {
class Server;
}

namespace storegw::hq {

struct FleetOptions {
  // A gateway whose last status says online is offline ("silent") once no
  // status and no batch came from it for this long.
  std::chrono::milliseconds offline_after{std::chrono::seconds(90)};
};

// The fleet at `now_us` (HQ clock, Unix microseconds), worst first, with
// its summary. `version`, `store_error` and the MQTT fields are left for
// the caller.
fleet::v1::Fleet BuildFleet(const std::vector<FleetRow>& rows, int64_t now_us,
                            const FleetOptions& options);

// proto3 JSON, field names as in fleet.proto, every field present.
std::string FleetToJson(const fleet::v1::Fleet& fleet);

// Everything GET /metrics shows, read at one moment.
struct FleetMetricsInput {
  fleet::v1::Fleet fleet;
  ReceiverStats receiver;
  // HTTP responses by status code (the fleet listener).
  std::vector<std::pair<int, uint64_t>> http_responses;
  int64_t start_time_us = 0;
};
std::string RenderFleetMetrics(const FleetMetricsInput& in);

// The content type of RenderFleetMetrics()'s output.
inline constexpr const char* kFleetMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

// The fleet page (fleet_page.html, embedded at build time).
std::string_view FleetPageHtml();

struct FleetHttpOptions {
  FleetOptions fleet;
  std::string version;        // storegw-hq's, shown on the page and in /metrics
  bool mqtt_enabled = false;  // /healthz wants MQTT connected only then
  // The store is read at most once per this; requests in between get the
  // last reading (the page polls every few seconds, from every browser).
  std::chrono::milliseconds cache{1000};
  // Unix microseconds; replaceable for tests.
  std::function<int64_t()> now_us;
};

class FleetHttp {
 public:
  // `store` must outlive this object; `receiver_stats` may be empty (zeros)
  // and may be set later with SetReceiverStats.
  FleetHttp(EventStore& store, FleetHttpOptions options,
            std::function<ReceiverStats()> receiver_stats = {});

  // Registers the routes on `server` (before server.Start()); its answers
  // are counted for /metrics. `server` must outlive the requests.
  void Mount(http::Server& server);

  void SetReceiverStats(std::function<ReceiverStats()> source);

  // The fleet as the routes show it: read from the store, or the reading of
  // less than `cache` ago.
  fleet::v1::Fleet Current();

  // "" when healthy; else why not ("store: ...", "mqtt: not connected").
  std::string Unhealthy();

 private:
  ReceiverStats Stats();

  EventStore& store_;
  const FleetHttpOptions options_;
  const int64_t start_time_us_;
  http::Server* server_ = nullptr;

  std::mutex read_mu_;  // one store read at a time; guards the cache
  std::optional<fleet::v1::Fleet> cached_;
  std::chrono::steady_clock::time_point cached_at_;

  std::mutex stats_mu_;
  std::function<ReceiverStats()> receiver_stats_;
};

}  // namespace storegw::hq
