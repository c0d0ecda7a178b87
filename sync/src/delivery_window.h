// Internal: the replay engine's in-flight bookkeeping for one connection.
//
// Two views of the batches handed to the transport:
//   * the window: every batch sent and not yet acknowledged as delivered,
//     in seq order (the live lane sends newer batches before older ones
//     are all sent: they are kept in order, and wait for the gap). With
//     ack = "broker" a batch leaves it once the transport acknowledged it
//     and every seq before it; with ack = "hq" once an HqAck covers its
//     last seq. The engine moves the watermark over what leaves the
//     window, so it only ever covers a contiguous prefix.
//   * the sends: batches whose transport acknowledgement (PUBACK, HTTP
//     answer) has not come yet, by send id, with when they were sent (the
//     ack timeout) and their size (for messages).
// Engine thread only; no locking.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <iterator>
#include <map>
#include <optional>

namespace storegw::sync {

class DeliveryWindow {
 public:
  using Clock = std::chrono::steady_clock;

  // A batch awaiting the transport's acknowledgement.
  struct Send {
    Clock::time_point sent_at;
    uint64_t first = 0, last = 0;  // seq range
    size_t bytes = 0;              // payload bytes handed to the transport
    bool alone = false;            // no other send was awaited when it was sent
  };
  // Batches that left the window at once.
  struct Released {
    size_t batches = 0;
    uint64_t last_seq = 0;  // last seq of the last of them; 0 when none
  };

  // hq_mode: ack = "hq" (only HqAcks release batches, and every batch in
  // the window counts against max_inflight).
  explicit DeliveryWindow(bool hq_mode) : hq_mode_(hq_mode) {}

  // A new connection: forgets every batch and send.
  void Reset() {
    window_.clear();
    sends_.clear();
  }
  // Resending from the watermark on the same connection (ack = "hq"):
  // forgets the window; the sends still await their acknowledgement (and
  // their ack timeout still applies).
  void DropWindow() { window_.clear(); }

  // Records batch `id` (seqs first..last) as handed to the transport.
  void Add(uint64_t id, uint64_t first, uint64_t last, size_t events, size_t bytes,
           Clock::time_point now) {
    auto at = window_.end();
    while (at != window_.begin() && std::prev(at)->first > first) --at;
    window_.insert(at, {id, first, last, events, false});
    sends_[id] = {now, first, last, bytes, sends_.empty()};
  }

  // The transport answered send `id` (either way): its record, no longer
  // awaited. nullopt for an id it does not know (a duplicate callback).
  std::optional<Send> TakeSend(uint64_t id);

  // The transport acknowledged send `id` (ok): with ack = "broker" the
  // batch now only waits for the batches before it.
  void MarkTransportAcked(uint64_t id);

  // ack = "broker": releases the transport-acknowledged batches at the
  // front of the window that follow `watermark` without a gap.
  Released ReleaseAckedPrefix(uint64_t watermark);
  // ack = "hq": releases the batches whose last seq is <= `seq` (HQ stored
  // them); a batch HQ stored only part of stays.
  size_t ReleaseThrough(uint64_t seq);

  // Batches that count against max_inflight: with ack = "broker" those the
  // transport has not acknowledged yet (acknowledged ones only wait for the
  // batches before them), with ack = "hq" the whole window.
  // Only those that start before `below` (the live lane's batches do not
  // count against the backlog's window).
  size_t Unacknowledged(uint64_t below = UINT64_MAX) const;

  size_t batches() const { return window_.size(); }  // in the window
  bool empty() const { return window_.empty(); }
  size_t sends() const { return sends_.size(); }  // awaiting the transport

  // Whether a send of a batch starting below `seq` is still awaited.
  bool AnySendBefore(uint64_t seq) const;
  // The first send (lowest id) unacknowledged for `timeout` or longer at
  // `now`; nullptr when none.
  const Send* FirstOverdue(Clock::time_point now, std::chrono::milliseconds timeout) const;
  // When the next send becomes overdue, or `latest` if that is sooner (or
  // no send is awaited).
  Clock::time_point NextAckDeadline(std::chrono::milliseconds timeout,
                                    Clock::time_point latest) const;

 private:
  struct InFlight {
    uint64_t id;
    uint64_t first, last;
    size_t events;
    bool transport_acked;
  };

  const bool hq_mode_;
  std::deque<InFlight> window_;  // in seq order
  std::map<uint64_t, Send> sends_;
};

}  // namespace storegw::sync
