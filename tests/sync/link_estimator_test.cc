// LinkEstimator: the adaptive batch size and window, from acknowledgements
// with made-up times (no clock, no sleeps).
#include <doctest/doctest.h>

#include "link_estimator.h"

namespace storegw::sync {
namespace {

using namespace std::chrono_literals;
using Clock = LinkEstimator::Clock;

// A link of `rate` bytes/s and `delay` one way plus ack: batches of `bytes`
// sent back to back, each acknowledged when its last byte is through and
// the delay has passed.
void Drive(LinkEstimator& e, double rate, std::chrono::microseconds delay, size_t bytes, int n) {
  const auto t0 = Clock::time_point{} + 1h;
  auto link_free = t0;
  for (int i = 0; i < n; ++i) {
    // Back to back: only the first is sent on an idle link.
    const auto sent = t0 + std::chrono::microseconds(static_cast<int64_t>(i) * 1000);
    const auto start = std::max(sent, link_free);
    link_free = start + std::chrono::microseconds(static_cast<int64_t>(static_cast<double>(bytes) / rate * 1e6));
    e.OnAck(sent, link_free + delay, bytes, start == sent);
  }
}

}  // namespace

TEST_CASE("link estimator: nothing known yet gives a first batch and the configured window") {
  LinkEstimator e;
  CHECK(e.rate() == 0);
  CHECK(e.BatchBytes(size_t{8} << 20) == LinkEstimator::kFirstBatch);
  CHECK(e.BatchBytes(16 << 10) == (16 << 10));  // never above the configured maximum
  CHECK(e.Window(LinkEstimator::kFirstBatch, 8) == 8);
}

TEST_CASE("link estimator: a thin link with a long round trip gets large batches and a window of 2") {
  LinkEstimator e;
  // 1.5 MB/s of payload before compression (about 1 Mbit/s on the wire at
  // 12:1), 300 ms round trip.
  Drive(e, 1.5e6, 300ms, 256 << 10, 40);
  CHECK(e.rate() == doctest::Approx(1.5e6).epsilon(0.05));
  CHECK(e.rtt() == doctest::Approx(0.3).epsilon(0.05));
  const size_t batch = e.BatchBytes(size_t{64} << 20);
  CHECK(batch == doctest::Approx(6.0e6).epsilon(0.05));  // 4 s of link
  CHECK(e.BatchBytes(size_t{1} << 20) == (size_t{1} << 20));
  CHECK(e.Window(batch, 8) == 2);
  // Small batches on the same link: enough of them to cover the round trip.
  CHECK(e.Window(32 << 10, 100) == 15);  // ceil(1.5e6 * 0.3 / 32768) + 1
  CHECK(e.Window(32 << 10, 8) == 8);
}

TEST_CASE("link estimator: a fast link is capped by the configured limits") {
  LinkEstimator e;
  Drive(e, 200e6, 200us, 256 << 10, 40);
  CHECK(e.rate() > 100e6);
  CHECK(e.BatchBytes(256 << 10) == (256 << 10));
  CHECK(e.Window(256 << 10, 8) >= 2);
  CHECK(e.Window(256 << 10, 8) <= 8);
}

}  // namespace storegw::sync
