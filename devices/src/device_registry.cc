#include "storegw/devices/device_registry.h"

#include <algorithm>
#include <charconv>
#include <ctime>
#include <vector>

namespace storegw::devices {
namespace {

int64_t SystemNowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int LocalMinute(int64_t unix_us) {
  const std::time_t t = static_cast<std::time_t>(unix_us / 1'000'000);
  std::tm tm{};
  if (localtime_r(&t, &tm) == nullptr) return 0;
  return tm.tm_hour * 60 + tm.tm_min;
}

// "HH:MM" -> minute of the day.
Result<int> ParseClock(std::string_view whole, std::string_view s) {
  const auto bad = [&](const std::string& why) -> Status {
    return Status::InvalidArgument("", "opening hours \"" + std::string(whole) + "\": " + why +
                                           " (write \"HH:MM-HH:MM\", e.g. \"07:00-22:00\", "
                                           "or \"\" for always open)");
  };
  if (s.size() != 5 || s[2] != ':') return bad("\"" + std::string(s) + "\" is not HH:MM");
  int h = 0, m = 0;
  auto [p1, e1] = std::from_chars(s.data(), s.data() + 2, h);
  auto [p2, e2] = std::from_chars(s.data() + 3, s.data() + 5, m);
  if (e1 != std::errc() || e2 != std::errc() || p1 != s.data() + 2 || p2 != s.data() + 5) {
    return bad("\"" + std::string(s) + "\" is not HH:MM");
  }
  if (h > 23) return bad("hour " + std::to_string(h) + " is not 0..23");
  if (m > 59) return bad("minute " + std::to_string(m) + " is not 0..59");
  return h * 60 + m;
}

uint64_t RejectedTotal(const v1::DeviceStatus& d) {
  uint64_t n = 0;
  for (const auto& r : d.rejected()) n += r.count();
  return n;
}

}  // namespace

bool OpeningHours::IsOpen(int minute) const {
  if (always) return true;
  if (open_minute <= close_minute) return minute >= open_minute && minute < close_minute;
  return minute >= open_minute || minute < close_minute;  // across midnight
}

Result<OpeningHours> ParseOpeningHours(std::string_view text) {
  OpeningHours h;
  if (text.empty()) return h;
  const size_t dash = text.find('-');
  if (dash == std::string_view::npos) {
    return Status::InvalidArgument("", "opening hours \"" + std::string(text) +
                                           "\": no \"-\" (write \"HH:MM-HH:MM\", e.g. "
                                           "\"07:00-22:00\", or \"\" for always open)");
  }
  auto open = ParseClock(text, text.substr(0, dash));
  if (!open.ok()) return open.status();
  auto close = ParseClock(text, text.substr(dash + 1));
  if (!close.ok()) return close.status();
  if (*open == *close) {
    return Status::InvalidArgument("", "opening hours \"" + std::string(text) +
                                           "\": opens and closes at the same minute (\"\" is "
                                           "always open)");
  }
  h.always = false;
  h.open_minute = *open;
  h.close_minute = *close;
  return h;
}

DeviceRegistry::DeviceRegistry(DeviceRegistryOptions options) : o_(std::move(options)) {
  if (!o_.now_us) o_.now_us = SystemNowUs;
  if (!o_.local_minute) o_.local_minute = LocalMinute;
}

Status DeviceRegistry::Load(storage::Journal& journal) {
  auto rows = journal.LoadDevices();
  if (!rows.ok()) return rows.status();
  std::lock_guard lk(mu_);
  for (const auto& [id, blob] : *rows) {
    v1::DeviceStatus d;
    if (!d.ParseFromString(blob) || d.device_id() != id) continue;  // not ours: start over
    if (!devices_.count(id) && devices_.size() >= o_.max_devices) continue;
    devices_[id] = std::move(d);
  }
  return {};
}

void DeviceRegistry::Record(const RequestOutcome& r) {
  const int64_t now = o_.now_us();
  std::lock_guard lk(mu_);
  std::string id = r.device;
  if (!devices_.count(id) && devices_.size() >= o_.max_devices) id = std::string(kOtherDevices);
  v1::DeviceStatus& d = devices_[id];
  if (d.first_seen_at() == 0) {
    d.set_device_id(id);
    d.set_first_seen_at(now);
  }
  d.set_last_seen_at(now);
  d.set_requests(d.requests() + 1);
  d.set_events_accepted(d.events_accepted() + r.accepted);
  d.set_events_duplicate(d.events_duplicate() + r.duplicate);
  d.set_events_conflict(d.events_conflict() + r.conflicts);
  if (r.status == 200) {
    d.set_last_accepted_at(now);
  } else {
    v1::RejectCount* slot = nullptr;
    for (auto& c : *d.mutable_rejected()) {
      if (c.reason() == r.reason) slot = &c;
    }
    if (slot == nullptr) {
      slot = d.add_rejected();
      slot->set_reason(r.reason);
    }
    slot->set_count(slot->count() + 1);
    d.set_last_error(r.error_body.substr(0, 512));
    d.set_last_error_at(now);
  }
  dirty_.insert(id);
}

Status DeviceRegistry::Save(storage::Journal& journal) {
  std::vector<std::pair<std::string, std::string>> rows;
  {
    std::lock_guard lk(mu_);
    rows.reserve(dirty_.size());
    for (const std::string& id : dirty_) {
      rows.emplace_back(id, devices_[id].SerializeAsString());
    }
    dirty_.clear();
  }
  Status s = journal.SaveDevices(rows);
  if (!s.ok()) {
    std::lock_guard lk(mu_);
    for (auto& [id, blob] : rows) dirty_.insert(id);  // next time
  }
  return s;
}

bool DeviceRegistry::IsSilent(const v1::DeviceStatus& d, int64_t now) const {
  if (d.device_id() == kOtherDevices || d.device_id().empty()) return false;
  const int64_t quiet_us = now - d.last_seen_at();
  return quiet_us > o_.silent_after.count() * 1'000'000 &&
         o_.opening_hours.IsOpen(o_.local_minute(now));
}

v1::DeviceList DeviceRegistry::List() const {
  const int64_t now = o_.now_us();
  v1::DeviceList out;
  std::vector<v1::DeviceStatus> all;
  {
    std::lock_guard lk(mu_);
    all.reserve(devices_.size());
    for (const auto& [id, d] : devices_) all.push_back(d);
  }
  uint64_t silent = 0;
  for (auto& d : all) {
    d.set_silent(IsSilent(d, now));
    silent += d.silent();
  }
  std::sort(all.begin(), all.end(), [](const v1::DeviceStatus& a, const v1::DeviceStatus& b) {
    if (a.silent() != b.silent()) return a.silent();
    const uint64_t ra = RejectedTotal(a), rb = RejectedTotal(b);
    if (ra != rb) return ra > rb;
    if (a.last_seen_at() != b.last_seen_at()) return a.last_seen_at() < b.last_seen_at();
    return a.device_id() < b.device_id();
  });
  for (auto& d : all) *out.add_devices() = std::move(d);
  out.set_silent(silent);
  out.set_at(now);
  out.set_silent_after_s(o_.silent_after.count());
  if (!o_.opening_hours.always) {
    const auto hhmm = [](int minute) {
      std::string s = std::to_string(minute / 60 + 100).substr(1);
      s += ':';
      s += std::to_string(minute % 60 + 100).substr(1);
      return s;
    };
    out.set_opening_hours(hhmm(o_.opening_hours.open_minute) + "-" +
                          hhmm(o_.opening_hours.close_minute));
  }
  return out;
}

}  // namespace storegw::devices
