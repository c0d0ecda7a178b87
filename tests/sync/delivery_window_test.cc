// Unit tests of the engine's in-flight bookkeeping (sync/src/
// delivery_window.h) on its own: the watermark only ever moves over a
// contiguous acknowledged prefix, what counts against max_inflight in each
// ack mode, HQ acks that cover part of a batch, duplicate transport
// callbacks, the ack timeout, and a resend from the watermark that keeps
// the sends still awaited.
#include <doctest/doctest.h>

#include <chrono>

#include "delivery_window.h"

namespace storegw::sync {
namespace {

using namespace std::chrono_literals;
using Clock = DeliveryWindow::Clock;

// Batches of ten events: id n covers seqs 10n-9..10n.
void AddBatches(DeliveryWindow& w, uint64_t from_id, uint64_t to_id, Clock::time_point at) {
  for (uint64_t id = from_id; id <= to_id; ++id) {
    w.Add(id, 10 * id - 9, 10 * id, 10, 100 * id, at);
  }
}

TEST_CASE("delivery window: ack=broker releases only the contiguous acknowledged prefix") {
  DeliveryWindow w(/*hq_mode=*/false);
  const auto t0 = Clock::now();
  AddBatches(w, 1, 4, t0);
  CHECK(w.batches() == 4);
  CHECK(w.sends() == 4);
  CHECK(w.Unacknowledged() == 4);

  // Batch 2 acknowledged first: it leaves the count of unacknowledged
  // batches (a slot is free) but not the window.
  auto two = w.TakeSend(2);
  REQUIRE(two.has_value());
  CHECK(two->first == 11);
  CHECK(two->last == 20);
  CHECK(two->bytes == 200);
  CHECK(two->sent_at == t0);
  w.MarkTransportAcked(2);
  CHECK(w.Unacknowledged() == 3);
  DeliveryWindow::Released r = w.ReleaseAckedPrefix(0);
  CHECK(r.batches == 0);
  CHECK(r.last_seq == 0);
  CHECK(w.batches() == 4);

  // Batch 1: both go, the watermark may move to 20.
  REQUIRE(w.TakeSend(1).has_value());
  w.MarkTransportAcked(1);
  r = w.ReleaseAckedPrefix(0);
  CHECK(r.batches == 2);
  CHECK(r.last_seq == 20);
  CHECK(w.batches() == 2);
  CHECK(w.sends() == 2);
  CHECK(w.Unacknowledged() == 2);

  // Batch 4 acknowledged while 3 is not: nothing more is released.
  REQUIRE(w.TakeSend(4).has_value());
  w.MarkTransportAcked(4);
  r = w.ReleaseAckedPrefix(20);
  CHECK(r.batches == 0);
  CHECK(w.batches() == 2);
  CHECK(w.Unacknowledged() == 1);
}

TEST_CASE("delivery window: a live batch sent past a gap waits for the gap") {
  DeliveryWindow w(false);
  const auto t0 = Clock::now();
  w.Add(1, 1, 10, 10, 100, t0);
  w.Add(2, 100, 110, 11, 50, t0);  // the live lane, ahead of the backlog
  w.Add(3, 11, 20, 10, 100, t0);
  REQUIRE(w.TakeSend(2).has_value());
  w.MarkTransportAcked(2);
  CHECK(w.ReleaseAckedPrefix(0).batches == 0);
  REQUIRE(w.TakeSend(1).has_value());
  w.MarkTransportAcked(1);
  REQUIRE(w.TakeSend(3).has_value());
  w.MarkTransportAcked(3);
  // 1 and 3 are contiguous (the window keeps seq order); 21..99 is not sent.
  DeliveryWindow::Released r = w.ReleaseAckedPrefix(0);
  CHECK(r.batches == 2);
  CHECK(r.last_seq == 20);
  CHECK(w.batches() == 1);
  w.Add(4, 21, 99, 79, 700, t0);
  CHECK(w.ReleaseAckedPrefix(20).batches == 0);
  REQUIRE(w.TakeSend(4).has_value());
  w.MarkTransportAcked(4);
  r = w.ReleaseAckedPrefix(20);
  CHECK(r.batches == 2);
  CHECK(r.last_seq == 110);
  CHECK(w.empty());
}

TEST_CASE("delivery window: ack = hq releases in seq order across the live lane") {
  DeliveryWindow w(true);
  const auto t0 = Clock::now();
  w.Add(1, 1, 10, 10, 100, t0);
  w.Add(2, 50, 60, 11, 50, t0);
  w.Add(3, 11, 49, 39, 100, t0);
  CHECK(w.ReleaseThrough(10) == 1);
  CHECK(w.ReleaseThrough(49) == 1);
  CHECK(w.batches() == 1);
  CHECK(w.ReleaseThrough(60) == 1);
  CHECK(w.empty());
}

TEST_CASE("delivery window: a send answered twice is known once") {
  DeliveryWindow w(false);
  AddBatches(w, 1, 2, Clock::now());
  REQUIRE(w.TakeSend(1).has_value());
  CHECK_FALSE(w.TakeSend(1).has_value());   // a duplicate callback
  CHECK_FALSE(w.TakeSend(99).has_value());  // never sent
  CHECK(w.sends() == 1);
}

TEST_CASE("delivery window: ack=hq counts the whole window and releases what HQ stored") {
  DeliveryWindow w(/*hq_mode=*/true);
  AddBatches(w, 1, 3, Clock::now());
  // Broker acknowledgements free no slot in hq mode.
  for (uint64_t id = 1; id <= 3; ++id) {
    REQUIRE(w.TakeSend(id).has_value());
    w.MarkTransportAcked(id);
  }
  CHECK(w.sends() == 0);
  CHECK(w.Unacknowledged() == 3);
  // HQ stored up to seq 15: batch 1 goes, batch 2 (11..20) stays.
  CHECK(w.ReleaseThrough(15) == 1);
  CHECK(w.batches() == 2);
  CHECK(w.Unacknowledged() == 2);
  CHECK(w.ReleaseThrough(15) == 0);
  CHECK(w.ReleaseThrough(30) == 2);
  CHECK(w.empty());
}

TEST_CASE("delivery window: overdue sends and the next ack deadline") {
  DeliveryWindow w(false);
  const auto t0 = Clock::now();
  w.Add(1, 1, 10, 10, 100, t0);
  w.Add(2, 11, 20, 10, 100, t0 + 100ms);
  const auto latest = t0 + 1h;
  CHECK(w.NextAckDeadline(1s, latest) == t0 + 1s);
  CHECK(w.NextAckDeadline(1s, t0 + 10ms) == t0 + 10ms);  // an earlier deadline wins
  CHECK(w.FirstOverdue(t0 + 999ms, 1s) == nullptr);
  const DeliveryWindow::Send* late = w.FirstOverdue(t0 + 1s, 1s);
  REQUIRE(late != nullptr);
  CHECK(late->first == 1);
  // Answered (even with a failure), a send is no longer timed.
  REQUIRE(w.TakeSend(1).has_value());
  CHECK(w.FirstOverdue(t0 + 1s, 1s) == nullptr);
  CHECK(w.NextAckDeadline(1s, latest) == t0 + 1100ms);
  REQUIRE(w.TakeSend(2).has_value());
  CHECK(w.NextAckDeadline(1s, latest) == latest);
}

TEST_CASE("delivery window: a resend from the watermark keeps the sends awaited, Reset does not") {
  DeliveryWindow w(true);
  AddBatches(w, 1, 3, Clock::now());
  CHECK(w.AnySendBefore(11));
  CHECK_FALSE(w.AnySendBefore(1));
  w.DropWindow();
  CHECK(w.empty());
  CHECK(w.Unacknowledged() == 0);
  CHECK(w.sends() == 3);  // still timed, still matched to their callbacks
  CHECK(w.AnySendBefore(21));
  REQUIRE(w.TakeSend(2).has_value());
  w.MarkTransportAcked(2);  // no longer in the window: nothing to mark
  CHECK(w.empty());
  w.Reset();
  CHECK(w.sends() == 0);
  CHECK_FALSE(w.AnySendBefore(100));
}

}  // namespace
}  // namespace storegw::sync
