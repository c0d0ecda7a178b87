#include "storegw/monitor/metrics.h"

#include "storegw/monitor/prom_text.h"
#include "storegw/monitor/status.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <map>

namespace storegw::gateway {
namespace {

using Writer = PromWriter;

// "oversell" for OVERSELL: the label value of an alert kind.
std::string KindLabel(v1::Alert::Kind kind) {
  std::string label = v1::Alert::Kind_Name(kind);
  std::transform(label.begin(), label.end(), label.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return label;
}

}  // namespace

std::vector<double> LatencyHistogram::DefaultBounds() {
  return {0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10};
}

LatencyHistogram::LatencyHistogram(std::vector<double> bounds) {
  std::sort(bounds.begin(), bounds.end());
  bounds.erase(std::unique(bounds.begin(), bounds.end()), bounds.end());
  s_.bounds = std::move(bounds);
  s_.counts.assign(s_.bounds.size() + 1, 0);
}

void LatencyHistogram::Observe(std::chrono::nanoseconds d) {
  double secs = std::chrono::duration<double>(d).count();
  if (!(secs >= 0)) secs = 0;  // a clock oddity never makes a negative observation
  size_t i = static_cast<size_t>(std::lower_bound(s_.bounds.begin(), s_.bounds.end(), secs) -
                                 s_.bounds.begin());
  std::lock_guard lock(mu_);
  ++s_.counts[i];
  ++s_.count;
  s_.sum_seconds += secs;
}

LatencyHistogram::Snapshot LatencyHistogram::Take() const {
  std::lock_guard lock(mu_);
  return s_;
}

std::string RenderMetrics(const MetricsInput& in) {
  const v1::GatewayStatus& s = in.status;
  const storage::JournalStats& j = in.journal;
  Writer w;

  w.Family("storegw_info", "gauge",
           "Always 1; the labels identify this gateway, its journal epoch and version.");
  w.Sample("storegw_info",
           {{"version", s.version()},
            {"store_id", s.store_id()},
            {"gateway_id", s.gateway_id()},
            {"epoch", std::to_string(j.epoch)}},
           1);
  w.Family("storegw_start_time_seconds", "gauge", "When the daemon started, Unix time.");
  w.Sample("storegw_start_time_seconds", {},
           PromNumber(static_cast<double>(in.start_time_us) / 1e6));

  // Backlog and journal.
  w.Gauge("storegw_backlog_events", "Events journaled but not yet delivered upstream.",
          j.backlog_events);
  w.Gauge("storegw_backlog_bytes", "Stored bytes of the undelivered events.", j.backlog_bytes);
  w.Gauge("storegw_oldest_undelivered_age_seconds",
          "Age of the oldest undelivered event (0 when nothing waits).",
          s.oldest_undelivered_age_s());
  w.Gauge("storegw_last_seq", "Newest journaled seq.", j.last_seq);
  w.Gauge("storegw_ack_watermark", "Every seq at or below this is delivered.", j.watermark);
  w.Gauge("storegw_journal_bytes", "Size of the journal (pages in use).", j.journal_bytes);
  w.Gauge("storegw_journal_max_bytes", "The journal's cap (journal.max_bytes).", j.max_bytes);
  w.Gauge("storegw_journal_full",
          "1 while the journal is at its cap and ingest answers 503, else 0.", j.full ? 1 : 0);
  w.Gauge("storegw_journal_wal_bytes",
          "Bytes of the journal's WAL not yet copied into the main file (the checkpointer keeps "
          "this small; it grows while the checkpointer fails).",
          j.wal_bytes);
  w.Counter("storegw_journal_checkpoint_failures_total",
            "Failed checkpoint attempts since start (the checkpointer could not open its "
            "connection, or a checkpoint returned an error).",
            j.checkpoint_failures);
  w.Gauge("storegw_journal_healthy",
          "0 while the journal reports a problem (integrity check failed, checkpointer failing; "
          "GET /v1/status journal_error says which), else 1.",
          JournalError(j).empty() ? 1 : 0);
  w.Gauge("storegw_journal_integrity_failed",
          "1 when the background integrity check of the journal file failed (the next start "
          "checks the whole file and moves a damaged one aside: deliver the backlog first), "
          "else 0.",
          j.integrity_error.empty() ? 0 : 1);
  w.Gauge("storegw_journal_integrity_checked",
          "1 once the background integrity check of the whole journal file has finished since "
          "start.",
          j.integrity_checked ? 1 : 0);
  w.Counter("storegw_journal_events_appended_total",
            "Device events journaled since start (duplicates and the gateway's own alert "
            "events not counted).",
            j.events_appended);
  w.Counter("storegw_journal_commits_total", "Group commits since start.", j.commits);

  // Device ingest.
  const devices::ApiCounters api = in.api.value_or(devices::ApiCounters{});
  w.Counter("storegw_events_ingested_total",
            "Device events newly journaled (acknowledged with a new seq) since start.",
            api.events_accepted);
  w.Counter("storegw_events_duplicate_total",
            "Device events answered duplicate=true (event_id already journaled) since start.",
            api.events_duplicate);
  w.Family("storegw_events_rejected_total", "counter",
           "Device requests refused, by reason (one per request, whatever its number of events).");
  const std::pair<const char*, uint64_t> reasons[] = {
      {"invalid", api.rejected_invalid},         {"auth", api.rejected_auth},
      {"too_large", api.rejected_too_large},     {"media_type", api.rejected_media_type},
      {"unavailable", api.rejected_unavailable}, {"internal", api.errors_internal},
      {"conflict", api.rejected_conflict},
  };
  for (const auto& [reason, n] : reasons) {
    w.Sample("storegw_events_rejected_total", {{"reason", reason}}, n);
  }

  const LatencyHistogram::Snapshot& h = in.commit_latency;
  w.Family("storegw_commit_latency_seconds", "histogram",
           "Time from handing a device request to the journal until its commit was durable "
           "(group-commit wait and fsync included).");
  uint64_t cumulative = 0;
  for (size_t i = 0; i < h.bounds.size() && i < h.counts.size(); ++i) {
    cumulative += h.counts[i];
    w.Sample("storegw_commit_latency_seconds_bucket", {{"le", PromNumber(h.bounds[i])}},
             cumulative);
  }
  w.Sample("storegw_commit_latency_seconds_bucket", {{"le", "+Inf"}}, h.count);
  w.Sample("storegw_commit_latency_seconds_sum", {}, PromNumber(h.sum_seconds));
  w.Sample("storegw_commit_latency_seconds_count", h.count);

  // Uplink.
  const sync::UplinkStatus up = in.uplink.value_or(sync::UplinkStatus{});
  w.Counter("storegw_events_sent_total", "Events published upstream since start, resends included.",
            up.events_sent);
  w.Counter("storegw_events_acked_total",
            "Events the ack watermark moved over since start (delivered).", up.events_acked);
  w.Counter("storegw_uplink_batches_sent_total", "Batches published since start, resends included.",
            up.batches_sent);
  w.Counter("storegw_uplink_bytes_sent_total", "Batch payload bytes published since start.",
            up.bytes_sent);
  w.Counter("storegw_uplink_reconnects_total",
            "Successful connections to HQ after the first, since start.",
            in.uplink ? up.reconnects : s.reconnects());
  w.Counter("storegw_uplink_connect_failures_total", "Failed connection attempts since start.",
            up.connect_failures);
  w.Gauge("storegw_uplink_inflight_batches", "Batches sent and not yet acknowledged.",
          up.inflight_batches);
  w.Gauge("storegw_link_up", "1 while the link to HQ is up, else 0.", s.link() == "up" ? 1 : 0);
  w.Family("storegw_link_state", "gauge",
           "1 for the link's current state (up, connecting, down), 0 for the others.");
  for (const char* state : {"up", "connecting", "down"}) {
    w.Sample("storegw_link_state", {{"state", state}}, s.link() == state ? 1 : 0);
  }

  // The changes feed (GET /v1/changes).
  {
    const devices::FeedStats f = in.feed.value_or(devices::FeedStats{});
    w.Gauge("storegw_changes_clients", "Clients of GET /v1/changes connected now.", f.clients);
    w.Counter("storegw_changes_clients_total", "Clients of GET /v1/changes accepted since start.",
              f.clients_total);
    w.Counter("storegw_changes_rejected_busy_total",
              "GET /v1/changes answered 503 since start: changes.max_clients were connected.",
              f.rejected_busy);
    w.Counter("storegw_changes_sent_total",
              "Changes written to feed clients (SSE events and long-poll items) since start.",
              f.changes_sent);
    w.Counter("storegw_changes_resets_total",
              "Feed clients told to resync (they resumed from a pruned id) since start.", f.resets);
    std::map<std::string, uint64_t> drops = {{"slow_client", 0}, {"write_timeout", 0}};
    for (const auto& [reason, n] : f.drops_by_reason) drops[reason] = n;
    w.Family("storegw_changes_dropped_total", "counter",
             "Feed clients dropped since start, by reason (slow_client: more than "
             "changes.max_lag behind; write_timeout: a write blocked too long).");
    for (const auto& [reason, n] : drops) {
      w.Sample("storegw_changes_dropped_total", {{"reason", reason}}, n);
    }
  }

  // Downstream (HQ snapshots, prices, store rules).
  const sync::DownstreamCounters down = in.downstream.value_or(sync::DownstreamCounters{});
  w.Family("storegw_downstream_messages_total", "counter",
           "Downstream messages from HQ handled since start, by topic kind (stock, prices, rules) and "
           "outcome (applied, stale, duplicate, refused).");
  w.Sample("storegw_downstream_messages_total", {{"kind", "stock"}, {"outcome", "applied"}},
           down.snapshots_applied);
  w.Sample("storegw_downstream_messages_total", {{"kind", "stock"}, {"outcome", "stale"}},
           down.snapshots_stale);
  w.Sample("storegw_downstream_messages_total", {{"kind", "prices"}, {"outcome", "applied"}},
           down.prices_applied);
  w.Sample("storegw_downstream_messages_total", {{"kind", "prices"}, {"outcome", "duplicate"}},
           down.prices_duplicate);
  w.Sample("storegw_downstream_messages_total", {{"kind", "rules"}, {"outcome", "applied"}},
           down.rules_applied);
  w.Counter("storegw_downstream_accepted_total",
            "Downstream messages accepted since start (applied, stale or duplicate).",
            down.accepted());
  // Every reason a test or an alert rule may look for is listed, even at 0.
  std::map<std::string, uint64_t> refused = {
      {"undecodable", 0}, {"empty", 0},       {"invalid_sku", 0},  {"invalid_qty", 0},
      {"other_store", 0}, {"other_epoch", 0}, {"journal_error", 0}};
  for (const auto& [reason, n] : down.refused) refused[reason] = n;
  w.Family("storegw_downstream_refused_total", "counter",
           "Downstream messages refused since start, by reason (see sync/README.md); each is "
           "logged with its reason.");
  for (const auto& [reason, n] : refused) {
    w.Sample("storegw_downstream_refused_total", {{"reason", reason}}, n);
  }
  w.Counter("storegw_downstream_snapshot_lines_applied_total",
            "Snapshot lines (skus) rebased on an HQ snapshot since start.",
            down.snapshot_lines_applied);
  w.Counter("storegw_downstream_snapshot_lines_stale_total",
            "Snapshot lines ignored as older than the sku's current base since start.",
            down.snapshot_lines_stale);
  w.Counter("storegw_downstream_price_updates_total",
            "HQ price updates recorded since start (duplicates not counted).", down.prices_applied);
  w.Gauge("storegw_downstream_queued", "Downstream messages received and waiting to be applied.",
          down.queued);
  w.Family("storegw_downstream_snapshot_apply_seconds", "gauge",
           "Time the last HQ snapshot took to apply (all chunks).");
  w.Sample("storegw_downstream_snapshot_apply_seconds", {},
           PromNumber(static_cast<double>(down.last_snapshot_apply.count()) / 1e6));

  // Alerts, by kind (every kind listed, so a rule can test for > 0): the
  // true counts, not the page's newest 50.
  // A status without the counts (they could not be read) falls back to
  // the list it has.
  std::map<v1::Alert::Kind, v1::AlertCount> counts;
  const auto* kinds = v1::Alert::Kind_descriptor();
  for (int i = 0; i < kinds->value_count(); ++i) {
    const auto k = static_cast<v1::Alert::Kind>(kinds->value(i)->number());
    if (k != v1::Alert::KIND_UNSPECIFIED) counts[k].set_kind(k);
  }
  if (s.alert_counts_size() > 0) {
    for (const auto& c : s.alert_counts()) counts[c.kind()] = c;
  } else {
    for (const auto& a : s.alerts()) {
      auto& c = counts[a.kind()];
      c.set_open(c.open() + 1);
      if (a.acked_seq() != 0) c.set_acknowledged(c.acknowledged() + 1);
    }
  }
  w.Family("storegw_alerts_open", "gauge",
           "Open alerts, by kind: stock (oversell, count_mismatch, snapshot_rejected, "
           "low_stock), perishables (remove_from_shelf) and cold chain "
           "(temperature_excursion, sensor_silent); acknowledged ones included.");
  for (const auto& [kind, c] : counts) {
    w.Sample("storegw_alerts_open", {{"kind", KindLabel(kind)}}, c.open());
  }
  w.Family("storegw_alerts_acknowledged", "gauge",
           "Open alerts someone acknowledged, by kind.");
  for (const auto& [kind, c] : counts) {
    w.Sample("storegw_alerts_acknowledged", {{"kind", KindLabel(kind)}}, c.acknowledged());
  }
  w.Family("storegw_skus", "gauge", "Skus in the stock ledger.");
  w.Sample("storegw_skus", {}, s.skus_total());
  w.Family("storegw_skus_untracked", "gauge",
           "Skus without a baseline yet (no snapshot, count or receipt): they raise no stock "
           "alert.");
  w.Sample("storegw_skus_untracked", {}, s.skus_untracked());

  // Perishables: production batches out at the counters.
  w.Gauge("storegw_perishable_batches_open",
          "Production batches still out (neither sold nor wasted), due or not.",
          s.batches_open());
  w.Gauge("storegw_perishable_batches_overdue",
          "Open production batches past their hold time (each has a remove_from_shelf alert).",
          s.batches_overdue());

  // Cold chain: one series per watched sensor (a store has a few dozen).
  w.Family("storegw_temperature_excursions_total", "counter",
           "Temperature excursions raised per sensor (outside its limits past the grace), "
           "ever: kept in the journal, so it survives restarts.");
  for (const auto& x : s.sensors()) {
    w.Sample("storegw_temperature_excursions_total",
             {{"sensor", x.sensor_id()}, {"location", x.location()}}, x.excursions());
  }
  w.Family("storegw_sensor_in_excursion", "gauge",
           "1 while the sensor has an open temperature_excursion alert, else 0.");
  for (const auto& x : s.sensors()) {
    w.Sample("storegw_sensor_in_excursion", {{"sensor", x.sensor_id()}},
             x.excursion_alert_seq() != 0 ? 1 : 0);
  }
  w.Family("storegw_sensor_silent", "gauge",
           "1 while the sensor has an open sensor_silent alert (no reading for its "
           "silent_after), else 0.");
  for (const auto& x : s.sensors()) {
    w.Sample("storegw_sensor_silent", {{"sensor", x.sensor_id()}},
             x.silent_alert_seq() != 0 ? 1 : 0);
  }
  w.Family("storegw_sensor_last_reading", "gauge",
           "The sensor's last reading, in the metric's unit (temp_mc: milli-degrees Celsius); "
           "no sample before its first reading.");
  for (const auto& x : s.sensors()) {
    if (x.last_at() <= 0) continue;
    w.Sample("storegw_sensor_last_reading",
             {{"sensor", x.sensor_id()}, {"metric", x.metric()}}, std::to_string(x.last_value()));
  }
  w.Family("storegw_sensor_last_reading_age_seconds", "gauge",
           "Seconds since the sensor's last reading, at the time of the scrape; no sample "
           "before its first reading.");
  for (const auto& x : s.sensors()) {
    if (x.last_at() <= 0) continue;
    const int64_t age_us = std::max<int64_t>(0, s.updated_at() - x.last_at());
    w.Sample("storegw_sensor_last_reading_age_seconds", {{"sensor", x.sensor_id()}},
             PromNumber(static_cast<double>(age_us / 1000) / 1e3));
  }

  // Devices: one label per device for the busiest max_metric_devices
  // (requests), the rest summed under device="other", so a store with
  // thousands of handhelds cannot blow up the series count.
  if (in.devices) {
    std::vector<const v1::DeviceStatus*> devs;
    for (const auto& d : in.devices->devices()) devs.push_back(&d);
    std::stable_sort(devs.begin(), devs.end(), [](auto* a, auto* b) {
      return a->requests() > b->requests();
    });
    struct Row {
      uint64_t requests = 0, accepted = 0, duplicate = 0, conflict = 0;
      std::map<std::string, uint64_t> rejected;
      int64_t last_seen_us = 0;
      bool silent = false;
    };
    std::vector<std::pair<std::string, Row>> rows;
    Row other;
    bool any_other = false;
    for (size_t i = 0; i < devs.size(); ++i) {
      const v1::DeviceStatus& d = *devs[i];
      const bool own = i < in.max_metric_devices && !d.device_id().empty() &&
                       d.device_id() != devices::DeviceRegistry::kOtherDevices;
      Row& r = own ? rows.emplace_back(d.device_id(), Row{}).second : other;
      any_other = any_other || !own;
      r.requests += d.requests();
      r.accepted += d.events_accepted();
      r.duplicate += d.events_duplicate();
      r.conflict += d.events_conflict();
      for (const auto& c : d.rejected()) r.rejected[c.reason()] += c.count();
      r.last_seen_us = std::max(r.last_seen_us, d.last_seen_at());
      r.silent = r.silent || d.silent();
    }
    if (any_other) rows.emplace_back("other", std::move(other));
    w.Gauge("storegw_devices", "Devices that have sent POST /v1/events (tracked by name).",
            static_cast<uint64_t>(in.devices->devices_size()));
    w.Gauge("storegw_devices_silent",
            "Devices silent for devices.silent_after while the store is open.",
            in.devices->silent());
    const std::pair<const char*, uint64_t Row::*> counters[] = {
        {"storegw_device_requests_total", &Row::requests},
        {"storegw_device_events_accepted_total", &Row::accepted},
        {"storegw_device_events_duplicate_total", &Row::duplicate},
        {"storegw_device_events_conflict_total", &Row::conflict},
    };
    for (const auto& [name, field] : counters) {
      w.Family(name, "counter",
               "Per device (the busiest metrics.max_devices by name, the rest as \"other\").");
      for (const auto& [id, r] : rows) w.Sample(name, {{"device", id}}, r.*field);
    }
    w.Family("storegw_device_rejected_total", "counter",
             "Refused POST /v1/events requests per device and reason.");
    for (const auto& [id, r] : rows) {
      for (const auto& [reason, n] : r.rejected) {
        w.Sample("storegw_device_rejected_total", {{"device", id}, {"reason", reason}}, n);
      }
    }
    w.Family("storegw_device_last_seen_timestamp_seconds", "gauge",
             "Unix time of the device's last request.");
    for (const auto& [id, r] : rows) {
      w.Sample("storegw_device_last_seen_timestamp_seconds", {{"device", id}},
               static_cast<uint64_t>(std::max<int64_t>(0, r.last_seen_us / 1'000'000)));
    }
    w.Family("storegw_device_silent", "gauge",
             "1 while the device is silent for devices.silent_after during opening hours.");
    for (const auto& [id, r] : rows) {
      w.Sample("storegw_device_silent", {{"device", id}}, r.silent ? 1 : 0);
    }
  }

  // HTTP.
  std::map<int, uint64_t> by_code;
  for (const auto& [code, n] : in.http_responses) by_code[code] += n;
  w.Family("storegw_http_requests_total", "counter",
           "HTTP requests answered since start, by status code (device API and status page).");
  for (const auto& [code, n] : by_code) {
    w.Sample("storegw_http_requests_total", {{"code", std::to_string(code)}}, n);
  }
  return w.Take();
}

}  // namespace storegw::gateway
