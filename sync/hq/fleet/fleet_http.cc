// FleetHttp: the fleet listener's routes on the shared HTTP layer.
#include <httplib.h>

#include "storegw/hq/fleet.h"
#include "storegw/http/server.h"

namespace storegw::hq {
namespace {

int64_t SystemNowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Our messages hold no quote or backslash except where escaped here.
std::string JsonString(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out + "\"";
}

void JsonError(httplib::Response& res, int status, std::string_view code, std::string_view msg) {
  res.status = status;
  res.set_header("Cache-Control", "no-store");
  res.set_content(
      "{\"error\":{\"code\":" + JsonString(code) + ",\"message\":" + JsonString(msg) + "}}",
      "application/json");
}

}  // namespace

FleetHttp::FleetHttp(EventStore& store, FleetHttpOptions options,
                     std::function<ReceiverStats()> receiver_stats)
    : store_(store),
      options_([&] {
        if (!options.now_us) options.now_us = SystemNowUs;
        return std::move(options);
      }()),
      start_time_us_(options_.now_us()),
      receiver_stats_(std::move(receiver_stats)) {}

void FleetHttp::SetReceiverStats(std::function<ReceiverStats()> source) {
  std::lock_guard lock(stats_mu_);
  receiver_stats_ = std::move(source);
}

ReceiverStats FleetHttp::Stats() {
  std::function<ReceiverStats()> source;
  {
    std::lock_guard lock(stats_mu_);
    source = receiver_stats_;
  }
  return source ? source() : ReceiverStats{};
}

fleet::v1::Fleet FleetHttp::Current() {
  std::lock_guard lock(read_mu_);
  const auto now = std::chrono::steady_clock::now();
  if (!cached_ || now - cached_at_ >= options_.cache) {
    std::vector<FleetRow> rows;
    Status s = store_.Fleet(&rows);
    fleet::v1::Fleet f =
        BuildFleet(s.ok() ? rows : std::vector<FleetRow>{}, options_.now_us(), options_.fleet);
    if (!s.ok()) f.set_store_error(s.message());
    f.set_version(options_.version);
    cached_ = std::move(f);
    cached_at_ = now;
  }
  fleet::v1::Fleet out = *cached_;
  const ReceiverStats stats = Stats();
  out.set_mqtt_enabled(options_.mqtt_enabled);
  out.set_mqtt_connected(stats.mqtt_connected);
  return out;
}

std::string FleetHttp::Unhealthy() {
  const fleet::v1::Fleet f = Current();
  std::string why;
  if (!f.store_error().empty()) why = "store: " + f.store_error();
  if (options_.mqtt_enabled && !f.mqtt_connected()) {
    if (!why.empty()) why += "; ";
    why += "mqtt: not connected to the broker";
  }
  return why;
}

void FleetHttp::Mount(http::Server& server) {
  server_ = &server;
  httplib::Server& svr = server.raw();
  svr.Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_header("Cache-Control", "no-cache");
    res.set_content(std::string(FleetPageHtml()), "text/html; charset=utf-8");
  });
  svr.Get("/v1/fleet", [this](const httplib::Request&, httplib::Response& res) {
    const fleet::v1::Fleet f = Current();
    // The document also when the store failed: it says why (store_error).
    res.status = f.store_error().empty() ? 200 : 503;
    res.set_header("Cache-Control", "no-store");
    res.set_content(FleetToJson(f), "application/json");
  });
  svr.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    FleetMetricsInput in;
    in.fleet = Current();
    in.receiver = Stats();
    in.http_responses = server_->ResponsesByCode();
    in.start_time_us = start_time_us_;
    res.set_header("Cache-Control", "no-store");
    res.set_content(RenderFleetMetrics(in), kFleetMetricsContentType);
  });
  svr.Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
    const std::string why = Unhealthy();
    res.status = why.empty() ? 200 : 503;
    res.set_header("Cache-Control", "no-store");
    res.set_content(why.empty() ? std::string("{\"status\":\"ok\"}")
                                : "{\"status\":\"unhealthy\",\"reason\":" + JsonString(why) + "}",
                    "application/json");
  });
  // Anything else: 404 for an unknown GET, 405 for another method.
  svr.Get(".*", [](const httplib::Request& req, httplib::Response& res) {
    JsonError(res, 404, "not_found",
              "no such endpoint: " + req.path + " (GET /, /v1/fleet, /metrics or /healthz)");
  });
  const auto not_allowed = [](const httplib::Request& req, httplib::Response& res) {
    JsonError(res, 405, "method_not_allowed",
              req.method + " is not allowed on " + req.path + ": the fleet listener is read-only");
    res.set_header("Allow", "GET, HEAD");
  };
  svr.Post(".*", not_allowed);
  svr.Put(".*", not_allowed);
  svr.Delete(".*", not_allowed);
  svr.Patch(".*", not_allowed);
}

}  // namespace storegw::hq
