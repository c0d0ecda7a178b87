// GET /metrics of storegw-hq: per gateway (labels store, gateway) and the
// receiver's counters. Every family has HELP and TYPE, names start with
// storegw_hq_, counters end in _total (the project's rules, checked by
// tests/statuspage/prom_parser.h).
#include <map>

#include "storegw/hq/fleet.h"
#include "storegw/monitor/prom_text.h"

namespace storegw::hq {

std::string RenderFleetMetrics(const FleetMetricsInput& in) {
  using gateway::PromNumber;
  gateway::PromWriter w;
  const fleet::v1::Fleet& f = in.fleet;

  w.Family("storegw_hq_info", "gauge", "Always 1; the label is storegw-hq's version.");
  w.Sample("storegw_hq_info", {{"version", f.version()}}, 1);
  w.Family("storegw_hq_start_time_seconds", "gauge", "When storegw-hq started, Unix time.");
  w.Sample("storegw_hq_start_time_seconds", {},
           PromNumber(static_cast<double>(in.start_time_us) / 1e6));
  w.Gauge("storegw_hq_store_up",
          "1 when the last read of the fleet from PostgreSQL succeeded, else 0.",
          f.store_error().empty() ? 1 : 0);
  w.Gauge("storegw_hq_mqtt_connected",
          "1 while the MQTT ingress is connected to the broker, else 0 (also without MQTT).",
          in.receiver.mqtt_connected ? 1 : 0);

  // The fleet.
  w.Family("storegw_hq_gateways", "gauge", "Gateways known to HQ, by state (online, offline).");
  w.Sample("storegw_hq_gateways", {{"state", "online"}}, f.summary().online());
  w.Sample("storegw_hq_gateways", {{"state", "offline"}}, f.summary().offline());

  struct PerGateway {
    const char* name;
    const char* help;
    std::string (*value)(const fleet::v1::FleetGateway&);
  };
  static const PerGateway kFamilies[] = {
      {"storegw_hq_gateway_online",
       "1 while the gateway is online, 0 when it reported itself offline or was silent for "
       "fleet.offline_after.",
       [](const fleet::v1::FleetGateway& g) { return std::string(g.online() ? "1" : "0"); }},
      {"storegw_hq_gateway_backlog_events",
       "Events journaled at the gateway and not yet delivered, from its last status.",
       [](const fleet::v1::FleetGateway& g) { return std::to_string(g.backlog_events()); }},
      {"storegw_hq_gateway_lag_seconds",
       "Age of the gateway's oldest undelivered event now (its last status plus the time since "
       "it was received; 0 without a backlog).",
       [](const fleet::v1::FleetGateway& g) { return std::to_string(g.lag_s()); }},
      {"storegw_hq_gateway_applied_seq",
       "HQ's contiguous applied prefix of the gateway's current epoch.",
       [](const fleet::v1::FleetGateway& g) { return std::to_string(g.applied_seq()); }},
      {"storegw_hq_gateway_pending_events",
       "Events of the gateway stored past a gap, not yet contiguous.",
       [](const fleet::v1::FleetGateway& g) { return std::to_string(g.pending_events()); }},
      {"storegw_hq_gateway_open_alerts", "Open stock alerts in the gateway's last status.",
       [](const fleet::v1::FleetGateway& g) { return std::to_string(g.open_alerts()); }},
      {"storegw_hq_gateway_epochs", "Epochs (journals) seen from the gateway; > 1: replaced.",
       [](const fleet::v1::FleetGateway& g) { return std::to_string(g.epochs_seen()); }},
      {"storegw_hq_gateway_last_seen_timestamp_seconds",
       "When HQ last received a status or batch from the gateway, Unix time (0: never).",
       [](const fleet::v1::FleetGateway& g) {
         return gateway::PromNumber(static_cast<double>(g.last_seen()) / 1e6);
       }},
  };
  for (const PerGateway& fam : kFamilies) {
    w.Family(fam.name, "gauge", fam.help);
    for (const auto& g : f.gateways()) {
      w.Sample(fam.name, {{"store", g.store_id()}, {"gateway", g.gateway_id()}}, fam.value(g));
    }
  }

  // The receiver.
  const ReceiverStats& r = in.receiver;
  w.Counter("storegw_hq_batches_received_total",
            "Batches received (MQTT and HTTPS) since start, duplicates and refusals included.",
            r.batches_received);
  w.Counter("storegw_hq_batches_stored_total",
            "Batches whose transaction committed since start (duplicates included).",
            r.batches_stored);
  w.Counter("storegw_hq_events_stored_total", "Events newly stored since start.", r.events_stored);
  w.Counter("storegw_hq_events_duplicate_total",
            "Events received again after they were stored (normal after reconnects) since start.",
            r.events_duplicate);
  // Every reason listed, even at 0, so an alert rule can test for > 0.
  std::map<std::string, uint64_t> refused;
  for (RefuseReason reason :
       {RefuseReason::kUndecodable, RefuseReason::kNotContiguous, RefuseReason::kInvalidEvent,
        RefuseReason::kTopicMismatch, RefuseReason::kSupersededEpoch, RefuseReason::kConflict}) {
    refused[RefuseReasonName(reason)] = 0;
  }
  for (const auto& [reason, count] : r.refused) refused[reason] = count;
  w.Family("storegw_hq_batches_refused_total", "counter",
           "Batches refused (never stored, never acknowledged) since start, by reason.");
  for (const auto& [reason, count] : refused) {
    w.Sample("storegw_hq_batches_refused_total", {{"reason", reason}}, count);
  }
  w.Counter("storegw_hq_acks_published_total", "HqAcks published after a commit since start.",
            r.acks_published);
  w.Counter("storegw_hq_statuses_received_total", "Gateway statuses received since start.",
            r.statuses_received);
  w.Counter("storegw_hq_store_errors_total",
            "Store transactions that failed (and were retried) since start.", r.store_errors);

  // HTTP.
  std::map<int, uint64_t> by_code;
  for (const auto& [code, count] : in.http_responses) by_code[code] += count;
  w.Family("storegw_hq_http_requests_total", "counter",
           "HTTP requests answered by the fleet listener since start, by status code.");
  for (const auto& [code, count] : by_code) {
    w.Sample("storegw_hq_http_requests_total", {{"code", std::to_string(code)}}, count);
  }
  return w.Take();
}

}  // namespace storegw::hq
