// Capped exponential back-off with full jitter, the rule for every retry
// of a network connection in storegw (as fluent-bit's backoff_full_jitter):
// after the n-th consecutive failure wait a uniformly random delay in
// [initial, min(max, initial * 2^n)]. The randomness spreads
// 500 stores that lost the same HQ link so they do not reconnect in lock
// step; the cap bounds how stale a recovered link can stay.
#pragma once

#include <chrono>
#include <cstdint>
#include <random>

namespace storegw::sync {

class Backoff {
 public:
  using Millis = std::chrono::milliseconds;
  Backoff(Millis initial, Millis max, uint64_t seed);

  // The delay to wait after one more failure.
  Millis Next();
  // After a connection that made progress.
  void Reset() { failures_ = 0; }
  int failures() const { return failures_; }
  // min(max, initial * 2^n), without overflow.
  Millis Ceiling(int n) const;

 private:
  Millis initial_, max_;
  int failures_ = 0;
  std::mt19937_64 rng_;
};

}  // namespace storegw::sync
