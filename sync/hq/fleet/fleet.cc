// BuildFleet and FleetToJson: the fleet view's rules (fleet.proto says what
// each field means, docs/hq.md why).
#include <algorithm>
#include <tuple>

#include <google/protobuf/util/json_util.h>

#include "storegw/hq/fleet.h"

namespace storegw::hq {
namespace {

uint64_t SecondsBetween(int64_t from_us, int64_t to_us) {
  return to_us > from_us ? static_cast<uint64_t>((to_us - from_us) / 1000000) : 0;
}

fleet::v1::FleetGateway Evaluate(const FleetRow& row, int64_t now_us, const FleetOptions& o) {
  fleet::v1::FleetGateway g;
  g.set_store_id(row.store_id);
  g.set_gateway_id(row.gateway_id);
  g.set_epoch(row.epoch);
  g.set_epochs_seen(row.epochs_seen);
  g.set_applied_seq(row.applied_seq);
  g.set_pending_events(row.pending_events);
  g.set_last_batch_at(row.last_batch_at_us);

  const bool has_status = row.status.has_value();
  const int64_t last_seen =
      std::max(row.last_batch_at_us, has_status ? row.status_received_at_us : 0);
  g.set_last_seen(last_seen);
  const int64_t offline_after_us =
      std::chrono::duration_cast<std::chrono::microseconds>(o.offline_after).count();

  if (has_status) {
    const v1::GatewayStatus& s = *row.status;
    g.set_has_status(true);
    g.set_status_received_at(row.status_received_at_us);
    g.set_backlog_events(s.backlog_events());
    g.set_backlog_bytes(s.backlog_bytes());
    g.set_last_seq(s.last_seq());
    g.set_link(s.link());
    g.set_last_error(s.last_error());
    g.set_version(s.version());
    g.set_journal_full(s.journal_full());
    g.set_journal_error(s.journal_error());
    g.set_open_alerts(static_cast<uint32_t>(s.alerts_size()));
    *g.mutable_alerts() = s.alerts();
    // The backlog keeps ageing after the status was sent.
    if (s.backlog_events() > 0) {
      g.set_lag_s(s.oldest_undelivered_age_s() + SecondsBetween(row.status_received_at_us, now_us));
    }
  }

  const bool silent = last_seen == 0 || now_us - last_seen > offline_after_us;
  if (has_status && !row.status->online()) {
    // Its last will, or the status of a clean stop.
    g.set_online(false);
    g.set_offline_reason("reported");
    g.set_since(row.online_since_us ? row.online_since_us : row.status_received_at_us);
  } else if (silent) {
    g.set_online(false);
    g.set_offline_reason("silent");
    g.set_since(last_seen);
  } else {
    g.set_online(true);
    // Online since its status said so; without a status channel (HTTPS)
    // only the batches are known, which says nothing about since when.
    g.set_since(has_status ? row.online_since_us : 0);
  }
  g.set_for_s(g.since() > 0 ? SecondsBetween(g.since(), now_us) : 0);
  return g;
}

// Worst first: offline before online, the longest offline first (an
// unknown start counts as the longest), then lag, backlog, open alerts,
// and finally by name so the order is stable.
bool Worse(const fleet::v1::FleetGateway& a, const fleet::v1::FleetGateway& b) {
  if (a.online() != b.online()) return !a.online();
  if (!a.online() && a.since() != b.since()) return a.since() < b.since();
  auto key = [](const fleet::v1::FleetGateway& g) {
    return std::make_tuple(g.lag_s(), g.backlog_events(), g.open_alerts());
  };
  if (key(a) != key(b)) return key(a) > key(b);
  return std::tie(a.store_id(), a.gateway_id()) < std::tie(b.store_id(), b.gateway_id());
}

}  // namespace

fleet::v1::Fleet BuildFleet(const std::vector<FleetRow>& rows, int64_t now_us,
                            const FleetOptions& options) {
  fleet::v1::Fleet f;
  f.set_generated_at(now_us);
  f.set_offline_after_s(static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::seconds>(options.offline_after).count()));
  std::vector<fleet::v1::FleetGateway> gws;
  gws.reserve(rows.size());
  for (const FleetRow& r : rows) gws.push_back(Evaluate(r, now_us, options));
  std::sort(gws.begin(), gws.end(), Worse);
  fleet::v1::FleetSummary* sum = f.mutable_summary();
  for (auto& g : gws) {
    sum->set_gateways(sum->gateways() + 1);
    if (g.online()) {
      sum->set_online(sum->online() + 1);
    } else {
      sum->set_offline(sum->offline() + 1);
    }
    sum->set_backlog_events(sum->backlog_events() + g.backlog_events());
    sum->set_max_lag_s(std::max(sum->max_lag_s(), g.lag_s()));
    sum->set_open_alerts(sum->open_alerts() + g.open_alerts());
    if (g.epochs_seen() > 1) sum->set_new_epochs(sum->new_epochs() + 1);
    *f.add_gateways() = std::move(g);
  }
  return f;
}

std::string FleetToJson(const fleet::v1::Fleet& fleet) {
  google::protobuf::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  o.always_print_primitive_fields = true;
  std::string out;
  if (!google::protobuf::util::MessageToJsonString(fleet, &out, o).ok()) {
    return "{\"error\":{\"code\":\"internal\",\"message\":\"the fleet could not be printed as "
           "JSON\"}}";
  }
  return out;
}

}  // namespace storegw::hq
