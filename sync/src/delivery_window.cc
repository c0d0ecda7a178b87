// The replay engine's in-flight bookkeeping: see delivery_window.h.
#include "delivery_window.h"

#include <algorithm>

namespace storegw::sync {

std::optional<DeliveryWindow::Send> DeliveryWindow::TakeSend(uint64_t id) {
  auto it = sends_.find(id);
  if (it == sends_.end()) return std::nullopt;
  Send s = it->second;
  sends_.erase(it);
  return s;
}

void DeliveryWindow::MarkTransportAcked(uint64_t id) {
  for (auto& f : window_) {
    if (f.id == id) f.transport_acked = true;
  }
}

DeliveryWindow::Released DeliveryWindow::ReleaseAckedPrefix(uint64_t watermark) {
  Released r;
  while (!window_.empty() && window_.front().transport_acked &&
         window_.front().first == (r.batches ? r.last_seq : watermark) + 1) {
    r.last_seq = window_.front().last;
    window_.pop_front();
    ++r.batches;
  }
  return r;
}

size_t DeliveryWindow::ReleaseThrough(uint64_t seq) {
  size_t batches = 0;
  while (!window_.empty() && window_.front().last <= seq) {
    window_.pop_front();
    ++batches;
  }
  return batches;
}

size_t DeliveryWindow::Unacknowledged(uint64_t below) const {
  return static_cast<size_t>(std::count_if(window_.begin(), window_.end(), [&](const InFlight& f) {
    return f.first < below && (hq_mode_ || !f.transport_acked);
  }));
}

bool DeliveryWindow::AnySendBefore(uint64_t seq) const {
  return std::any_of(sends_.begin(), sends_.end(),
                     [&](const auto& s) { return s.second.first < seq; });
}

const DeliveryWindow::Send* DeliveryWindow::FirstOverdue(Clock::time_point now,
                                                         std::chrono::milliseconds timeout) const {
  for (const auto& [id, s] : sends_) {
    if (now - s.sent_at >= timeout) return &s;
  }
  return nullptr;
}

DeliveryWindow::Clock::time_point DeliveryWindow::NextAckDeadline(std::chrono::milliseconds timeout,
                                                                  Clock::time_point latest) const {
  Clock::time_point deadline = latest;
  for (const auto& [id, s] : sends_) deadline = std::min(deadline, s.sent_at + timeout);
  return deadline;
}

}  // namespace storegw::sync
