#include "storegw/monitor/status.h"

#include <google/protobuf/util/json_util.h>

#include "version.h"

namespace storegw::gateway {
namespace {

constexpr size_t kMaxAlerts = 50;
constexpr size_t kNextDue = 10;  // GatewayStatus.due_next
constexpr auto kRateWindow = std::chrono::seconds(60);

}  // namespace

std::string JournalError(const storage::JournalStats& st) {
  if (!st.integrity_error.empty()) return st.integrity_error;
  if (!st.checkpoint_error.empty()) {
    return "journal checkpointer failing (" + std::to_string(st.checkpoint_failures) +
           " failures): " + st.checkpoint_error;
  }
  return "";
}

int64_t UnixNowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

StatusReporter::StatusReporter(storage::Journal& journal, const Config& config,
                               std::function<int64_t()> now_us, SteadyNow steady_now)
    : journal_(journal),
      transport_(config.uplink.transport),
      now_us_(now_us ? std::move(now_us) : UnixNowUs),
      steady_now_(steady_now ? std::move(steady_now) : std::chrono::steady_clock::now) {}

void StatusReporter::SetUplinkFields(std::function<void(v1::GatewayStatus*)> fill) {
  uplink_fields_ = std::move(fill);
}

void StatusReporter::Sample() {
  auto now = steady_now_();
  uint64_t appended = journal_.Stats().events_appended;
  std::lock_guard lock(mu_);
  samples_.emplace_back(now, appended);
  while (samples_.size() > 2 && now - samples_.front().first > kRateWindow) samples_.pop_front();
}

double StatusReporter::IngestRate() {
  std::lock_guard lock(mu_);
  if (samples_.size() < 2) return 0;
  const auto& [t0, n0] = samples_.front();
  const auto& [t1, n1] = samples_.back();
  double secs = std::chrono::duration<double>(t1 - t0).count();
  return secs > 0 ? static_cast<double>(n1 - n0) / secs : 0;
}

v1::GatewayStatus StatusReporter::Build() {
  storage::JournalStats st = journal_.Stats();
  int64_t now = now_us_();
  v1::GatewayStatus s;
  s.set_store_id(journal_.store_id());
  s.set_gateway_id(journal_.gateway_id());
  s.set_epoch(st.epoch);
  s.set_last_seq(st.last_seq);
  s.set_watermark(st.watermark);
  s.set_backlog_events(st.backlog_events);
  s.set_backlog_bytes(st.backlog_bytes);
  if (st.oldest_undelivered_recorded_at > 0 && now > st.oldest_undelivered_recorded_at) {
    s.set_oldest_undelivered_age_s(
        static_cast<uint64_t>((now - st.oldest_undelivered_recorded_at) / 1000000));
  }
  if (uplink_fields_) {
    uplink_fields_(&s);
  } else {
    // No uplink runs: say so rather than pretend.
    s.set_link("down");
    s.set_last_error(transport_ == "none"
                         ? "uplink disabled (uplink.transport = \"none\"); events stay in the "
                           "journal"
                         : "uplink \"" + transport_ +
                               "\" not available in this build; events stay in the journal");
  }
  s.set_journal_bytes(st.journal_bytes);
  s.set_journal_max_bytes(st.max_bytes);
  s.set_journal_full(st.full);
  s.set_journal_error(JournalError(st));
  s.set_journal_wal_bytes(st.wal_bytes);
  if (auto alerts = journal_.OpenAlerts(kMaxAlerts); alerts.ok()) {
    for (auto& a : *alerts) *s.add_alerts() = std::move(a);
  } else {
    s.set_last_error("status: reading alerts failed: " + alerts.status().message());
    s.set_last_error_at(now);
  }
  if (auto sum = journal_.Alerts(); sum.ok()) {
    for (auto& c : sum->counts) *s.add_alert_counts() = std::move(c);
    s.set_alerts_open_total(sum->open_total);
    s.set_skus_total(sum->skus_total);
    s.set_skus_untracked(sum->skus_untracked);
  } else {
    s.set_last_error("status: counting alerts failed: " + sum.status().message());
    s.set_last_error_at(now);
  }
  // Perishables: open batches, the next kNextDue by due time (overdue
  // first) and the watched cold-chain sensors.
  if (auto p = journal_.Perishables(kNextDue); p.ok()) {
    s.set_batches_open(p->batches_open);
    s.set_batches_overdue(p->batches_overdue);
    for (auto& b : p->due_next) *s.add_due_next() = std::move(b);
    for (auto& x : p->sensors) *s.add_sensors() = std::move(x);
  } else {
    s.set_last_error("status: reading perishables failed: " + p.status().message());
    s.set_last_error_at(now);
  }
  s.set_online(true);
  s.set_updated_at(now);
  s.set_ingest_rate(IngestRate());
  s.set_version(kVersion);
  return s;
}

std::string StatusReporter::Json() {
  google::protobuf::util::JsonPrintOptions opts;
  opts.preserve_proto_field_names = true;
  opts.always_print_primitive_fields = true;
  std::string out;
  auto st = google::protobuf::util::MessageToJsonString(Build(), &out, opts);
  if (!st.ok())
    return "{\"error\":{\"code\":\"internal\",\"message\":\"status: JSON encoding failed\"}}";
  return out;
}

}  // namespace storegw::gateway
