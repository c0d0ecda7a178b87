// The receiver's counters (ReceiverStats) and its refusal log, shared by
// the MQTT and HTTPS ingress and the transaction thread.
//
// Refusals are logged at a bounded rate: at most one line per reason per
// period (10 s), and the next line for that reason says how many were
// left out meanwhile. A gateway that resends a bad batch in a loop, or a
// stranger posting garbage, cannot flood the log; every refusal is still
// counted (storegw_hq_batches_refused_total{reason}).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "storegw/hq/receiver.h"
#include "storegw/hq/store.h"

namespace storegw::hq::internal {

// The rate rule on its own (the clock is a parameter, for tests).
class RateLimitedLog {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr size_t kKeys = 8;  // RefuseReason values, and room for others

  explicit RateLimitedLog(std::chrono::milliseconds period = std::chrono::seconds(10))
      : period_(period) {}

  // The line to log for `key` now, or nullopt when it is left out (then
  // counted, and reported by the next line of that key).
  std::optional<std::string> Admit(size_t key, std::string line, Clock::time_point now);

 private:
  struct Slot {
    Clock::time_point last{};
    bool used = false;
    uint64_t suppressed = 0;
  };
  const std::chrono::milliseconds period_;
  std::array<Slot, kKeys> slots_{};
};

// Keeps secrets out of text that came from elsewhere (a store's error):
// "password=..." in a libpq connection string and the password of a URI's
// user info ("postgresql://user:secret@host") become "***".
std::string ScrubSecrets(std::string text);

class Reporter {
 public:
  explicit Reporter(std::chrono::milliseconds log_period = std::chrono::seconds(10))
      : log_(log_period) {}

  // Counts a refused batch and logs it (rate-limited). `source` names where
  // it came from ("topic retail/v1/s1/gw-01/events", "https 10.0.0.7").
  void Refused(RefuseReason reason, std::string_view source, std::string_view detail);

  // A GatewayStatus that cannot be recorded (undecodable, another
  // gateway's): logged at most once per period, not counted.
  void BadStatus(std::string_view source, std::string_view detail);

  // A failed transaction: counted, remembered as last_error (scrubbed),
  // logged at most once per period.
  void StoreError(const std::string& error);
  void SetLastError(const std::string& error);

  template <typename F>
  void Update(F&& f) {
    std::lock_guard lk(mu_);
    f(stats_);
  }
  ReceiverStats Get() const {
    std::lock_guard lk(mu_);
    return stats_;
  }

 private:
  mutable std::mutex mu_;  // guards everything below
  ReceiverStats stats_;
  RateLimitedLog log_;
};

}  // namespace storegw::hq::internal
