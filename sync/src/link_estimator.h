// Internal: what the replay engine knows of its link, from the batches the
// transport acknowledged, and the batch size and window it derives.
//
// * rate: payload bytes (before compression) acknowledged per second over
//   the last acknowledgements (at most kSamples, at most 30 s old);
// * round trip: the least (ack time - send time - the batch's own
//   transmission time at that rate) of the batches sent while nothing
//   else was in flight (the first of a connection, live events on an idle
//   link): what a batch meets besides itself and the batches before it
//   (counting those would grow the window with its own queue);
// * batch size: what the link carries in kBatchTime (4 s), between kMinBatch
//   and the configured maximum, so that a thin link gets large batches
//   (which compress better) and a fast one is not held up by small ones;
// * window: enough batches in flight to cover a round trip at that rate
//   plus the one being sent (the bandwidth-delay product), at least 2.
//
// It outlives connections: a short outage does not throw away what was
// learnt (a new connection starts with the last batch size and window).
// Engine thread only.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <deque>

namespace storegw::sync {

class LinkEstimator {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr size_t kSamples = 32;
  static constexpr double kBatchTime = 4.0;            // seconds of link per batch
  static constexpr size_t kMinBatch = size_t{32} << 10;  // bytes
  static constexpr size_t kFirstBatch = size_t{64} << 10;

  // `alone`: nothing else was in flight when it was sent.
  void OnAck(Clock::time_point sent, Clock::time_point acked, size_t bytes, bool alone) {
    samples_.push_back({acked, bytes});
    while (samples_.size() > kSamples ||
           (samples_.size() > 2 && acked - samples_.front().at > std::chrono::seconds(30))) {
      samples_.pop_front();
    }
    if (samples_.size() >= 3) {
      const double span = std::chrono::duration<double>(samples_.back().at - samples_.front().at).count();
      if (span > 0.005) {
        size_t sum = 0;
        for (size_t i = 1; i < samples_.size(); ++i) sum += samples_[i].bytes;
        rate_ = static_cast<double>(sum) / span;
      }
    }
    if (alone) {
      alone_.push_back({std::chrono::duration<double>(acked - sent).count(), bytes});
      if (alone_.size() > kSamples) alone_.pop_front();
    }
    if (rate_ > 0 && !alone_.empty()) {
      double least = 1e9;
      for (const auto& a : alone_) {
        least = std::min(least, a.delay - static_cast<double>(a.bytes) / rate_);
      }
      rtt_ = std::max(0.001, least);
    }
  }

  double rate() const { return rate_; }  // bytes/s; 0 while unknown
  double rtt() const { return rtt_; }    // seconds; 0 while unknown

  // Payload bytes per batch, at most max_bytes.
  size_t BatchBytes(size_t max_bytes) const {
    if (rate_ <= 0) return std::min(max_bytes, kFirstBatch);
    const double want = std::max(rate_ * kBatchTime, static_cast<double>(kMinBatch));
    return want >= static_cast<double>(max_bytes) ? max_bytes : static_cast<size_t>(want);
  }

  // Batches in flight for batches of batch_bytes, 2..max_window (max_window
  // while nothing is known).
  size_t Window(size_t batch_bytes, size_t max_window) const {
    if (rate_ <= 0 || rtt_ <= 0 || batch_bytes == 0) return max_window;
    const double bdp = rate_ * rtt_;
    const auto n = static_cast<size_t>(std::ceil(bdp / static_cast<double>(batch_bytes))) + 1;
    return std::clamp<size_t>(n, std::min<size_t>(2, max_window), max_window);
  }

 private:
  struct Sample {
    Clock::time_point at;
    size_t bytes;
  };
  std::deque<Sample> samples_;
  struct Alone {
    double delay;  // ack - send, seconds
    size_t bytes;
  };
  std::deque<Alone> alone_;
  double rate_ = 0;
  double rtt_ = 0;
};

}  // namespace storegw::sync
