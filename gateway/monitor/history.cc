#include "storegw/monitor/history.h"

#include <cmath>
#include <cstdio>

namespace storegw::gateway {
namespace {

double Rate(uint64_t from, uint64_t to, double seconds) {
  // A counter that went backwards (cannot happen within one journal) reads
  // as no progress rather than a huge number.
  if (to <= from || seconds <= 0) return 0;
  return static_cast<double>(to - from) / seconds;
}

void AppendNumber(std::string& out, double v) {
  if (!std::isfinite(v)) v = 0;
  char buf[32];
  // Three decimals are plenty for a chart of events per second.
  int n = std::snprintf(buf, sizeof buf, "%.3f", v);
  std::string s(buf, static_cast<size_t>(n));
  while (s.size() > 1 && s.find('.') != std::string::npos && (s.back() == '0' || s.back() == '.')) {
    bool dot = s.back() == '.';
    s.pop_back();
    if (dot) break;
  }
  out += s;
}

}  // namespace

StatusHistory::StatusHistory(std::chrono::milliseconds interval, size_t capacity)
    : interval_(interval.count() > 0 ? interval : std::chrono::milliseconds(1)),
      capacity_(capacity > 0 ? capacity : 1) {
  ring_.reserve(capacity_);
}

void StatusHistory::Sample(const storage::JournalStats& st, int64_t unix_ms, SteadyTime now) {
  std::lock_guard lock(mu_);
  HistoryPoint p;
  p.t_ms = unix_ms;
  p.backlog_events = st.backlog_events;
  p.backlog_bytes = st.backlog_bytes;
  if (last_) {
    if (now - last_->at < interval_) return;
    double secs = std::chrono::duration<double>(now - last_->at).count();
    p.ingest_rate = Rate(last_->appended, st.events_appended, secs);
    p.send_rate = Rate(last_->watermark, st.watermark, secs);
  }
  last_ = Last{now, st.events_appended, st.watermark};
  if (ring_.size() < capacity_) {
    ring_.push_back(p);
  } else {
    ring_[head_] = p;
    head_ = (head_ + 1) % capacity_;
  }
}

std::vector<HistoryPoint> StatusHistory::Points(int64_t since_ms) const {
  std::lock_guard lock(mu_);
  std::vector<HistoryPoint> out;
  out.reserve(ring_.size());
  for (size_t i = 0; i < ring_.size(); ++i) {
    const HistoryPoint& p = ring_[(head_ + i) % ring_.size()];
    if (p.t_ms > since_ms) out.push_back(p);
  }
  return out;
}

std::string StatusHistory::Json(int64_t since_ms) const {
  std::vector<HistoryPoint> points = Points(since_ms);
  std::string out = "{\"interval_ms\":" + std::to_string(interval_.count()) +
                    ",\"capacity\":" + std::to_string(capacity_) + ",\"points\":[";
  out.reserve(out.size() + points.size() * 48);
  for (size_t i = 0; i < points.size(); ++i) {
    const HistoryPoint& p = points[i];
    if (i) out += ',';
    out += '[';
    out += std::to_string(p.t_ms);
    out += ',';
    out += std::to_string(p.backlog_events);
    out += ',';
    out += std::to_string(p.backlog_bytes);
    out += ',';
    AppendNumber(out, p.ingest_rate);
    out += ',';
    AppendNumber(out, p.send_rate);
    out += ']';
  }
  out += "]}";
  return out;
}

}  // namespace storegw::gateway
