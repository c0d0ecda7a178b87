#include "storegw/monitor/health.h"

#include "storegw/monitor/humanize.h"

namespace storegw::gateway {

Health EvaluateHealth(const v1::GatewayStatus& s, const HealthPolicy& policy) {
  Health h;
  auto degrade = [&](std::string why) {
    h.level = HealthLevel::kDegraded;
    h.reasons.push_back(std::move(why));
  };
  if (!s.online()) degrade("the gateway says it is offline (shutting down)");
  if (s.journal_full()) {
    degrade("the journal is FULL (" + FormatBytes(s.journal_bytes()) + " of " +
            FormatBytes(s.journal_max_bytes()) +
            "): devices are refused with 503 until events are delivered");
  } else if (s.journal_max_bytes() > 0 &&
             static_cast<long double>(s.journal_bytes()) * 100.0L >=
                 static_cast<long double>(s.journal_max_bytes()) * policy.max_journal_percent) {
    degrade("the journal is " + FormatPercent(s.journal_bytes(), s.journal_max_bytes()) +
            " full (" + FormatBytes(s.journal_bytes()) + " of " +
            FormatBytes(s.journal_max_bytes()) + ", limit " +
            std::to_string(policy.max_journal_percent) + "%)");
  }
  if (!s.journal_error().empty()) degrade("the journal has a problem: " + s.journal_error());
  if (s.link() != "up") {
    std::string why = "the link to HQ is " + (s.link().empty() ? std::string("unknown") : s.link());
    if (!s.last_error().empty()) why += " (" + s.last_error() + ")";
    degrade(std::move(why));
  }
  if (s.backlog_events() > 0 &&
      s.oldest_undelivered_age_s() > static_cast<uint64_t>(policy.max_age.count())) {
    degrade("the oldest undelivered event is " + FormatAge(s.oldest_undelivered_age_s()) +
            " old (limit " + FormatAge(static_cast<uint64_t>(policy.max_age.count())) + "); " +
            FormatCount(s.backlog_events()) + " events wait");
  }
  return h;
}

const char* HealthName(HealthLevel level) {
  switch (level) {
    case HealthLevel::kHealthy:
      return "healthy";
    case HealthLevel::kDegraded:
      return "degraded";
    case HealthLevel::kDown:
      return "down";
  }
  return "down";
}

}  // namespace storegw::gateway
