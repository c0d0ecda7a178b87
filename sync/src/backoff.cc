#include "backoff.h"

#include <algorithm>

namespace storegw::sync {

Backoff::Backoff(Millis initial, Millis max, uint64_t seed)
    : initial_(std::max(initial, Millis(1))), max_(std::max(max, initial_)), rng_(seed) {}

Backoff::Millis Backoff::Ceiling(int n) const {
  int64_t c = initial_.count();
  for (int i = 0; i < n && c < max_.count(); ++i) c *= 2;
  return Millis(std::min(c, static_cast<int64_t>(max_.count())));
}

Backoff::Millis Backoff::Next() {
  const Millis hi = Ceiling(failures_);
  if (failures_ < 62) ++failures_;
  std::uniform_int_distribution<int64_t> d(initial_.count(), hi.count());
  return Millis(d(rng_));
}

}  // namespace storegw::sync
