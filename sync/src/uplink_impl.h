// Internal: the replay engine behind storegw/sync/uplink.h, split by job:
//   uplink.cc            the public Uplink: creation, forwarding
//   uplink_options.cc    validation of UplinkOptions
//   transport_factory.cc choosing and making the transport (mqtt, https)
//   uplink_engine.cc     the engine and watcher threads: connect, replay,
//                        acknowledgements, timeouts, back-off, Stop
//   delivery_window.*    the in-flight batches and the acked prefix
//   uplink_status.cc     UplinkStatus and the published GatewayStatus
//
// Threads:
//   * engine (RunEngine): connects, builds and sends batches, handles
//     acknowledgements, timeouts and back-off. It alone touches the window,
//     the batcher and the Transport.
//   * watcher (RunWatcher): blocks in Journal::WaitForSeqAbove and wakes the
//     engine when new events are committed (live events go out right behind
//     the backlog without polling the journal).
//   * the transport's threads (Paho, curl): queue events for the engine
//     through SessionListener and never touch engine state; the MQTT
//     receive thread also runs the downstream sink.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>

#include "backoff.h"
#include "batcher.h"
#include "delivery_window.h"
#include "link_estimator.h"
#include "storegw/sync/transport.h"
#include "storegw/sync/uplink.h"

namespace storegw::storage {
class Journal;
}

namespace storegw::sync {

namespace uplink_detail {

using SteadyClock = std::chrono::steady_clock;
using TimePoint = SteadyClock::time_point;

inline int64_t NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// "30s", "1500ms".
inline std::string FormatMillis(Millis d) {
  if (d.count() % 1000 == 0) return std::to_string(d.count() / 1000) + "s";
  return std::to_string(d.count()) + "ms";
}

// "11..20".
inline std::string SeqRange(uint64_t first, uint64_t last) {
  return std::to_string(first) + ".." + std::to_string(last);
}

// Events acknowledged per second over the last minute (display only).
class RateMeter {
 public:
  void Add(uint64_t n, TimePoint now);
  double Rate(TimePoint now, TimePoint started) const;

 private:
  static constexpr int64_t kSlots = 60;
  struct Bucket {
    int64_t sec = -1;
    uint64_t count = 0;
  };
  std::array<Bucket, kSlots> buckets_{};
};

}  // namespace uplink_detail

class Uplink::Impl {
 public:
  Impl(UplinkOptions options, storage::Journal* journal, TransportFactory factory);
  ~Impl() { Stop(); }

  void SetStatusSource(std::function<v1::GatewayStatus()> source) {
    status_source_ = std::move(source);
  }
  void SetDownstreamSink(DownstreamSink sink) { downstream_sink_ = std::move(sink); }

  Status Start();
  void Stop();

  UplinkStatus status() const;
  void FillStatus(v1::GatewayStatus* gs) const;

 private:
  using TimePoint = uplink_detail::TimePoint;

  // ------------------------------------------------ events (uplink_engine.cc)
  enum class EvKind { kSendDone, kLinkLost, kHqAck };
  struct Ev {
    EvKind kind;
    uint64_t id = 0;              // kSendDone
    Status status;                // kSendDone, kLinkLost
    uint64_t epoch = 0, seq = 0;  // kHqAck
    std::string gateway_id;       // kHqAck
    SendFailure how;              // kSendDone (failed)
  };
  class SessionListener;

  void Post(uint64_t session, Ev ev);
  bool Stopping();
  void SleepUnlessStopped(Millis d);

  // ------------------------------------------------ engine (uplink_engine.cc)
  void RunWatcher();
  void RunEngine();
  void Halt(const Status& why);
  Status ConnectAndRun(Backoff& backoff);
  Status Replay(Transport& t, Backoff& backoff);
  Status Handle(Ev& ev, Backoff& backoff);
  void AdvanceWatermark(uint64_t wm, size_t batches, Backoff& backoff);

  // ------------------------------------------------ status (uplink_status.cc)
  void SetLink(const char* link);
  void RecordError(const Status& s);
  // A failed connection attempt: the count and the reason together, under
  // one lock, so a reader never sees the count without the reason.
  void RecordConnectFailure(const Status& why);
  void SetErrorLocked(const Status& s);  // last_error and its time; status_mu_ held
  void RecordConnected(int protocol_version);
  void RecordSent(size_t events, size_t bytes, size_t inflight);
  void RecordInflight(size_t inflight);
  void RecordDelivered(uint64_t watermark, uint64_t events, size_t batches, TimePoint now);
  void RecordHqResend();
  void RecordHalted();
  uint64_t connects() const;
  v1::GatewayStatus BuildStatus(bool online);
  std::string StatusPayload(bool online);

  // ---------------------------------------------------------------- members
  const UplinkOptions opt_;
  storage::Journal* const journal_;
  const TransportFactory factory_;
  const bool hq_mode_;
  std::function<v1::GatewayStatus()> status_source_;  // set before Start
  DownstreamSink downstream_sink_;                    // set before Start
  // Requested when Stop() begins: a downstream apply under way gives up
  // its retries instead of holding Stop() up (see SetDownstreamSink).
  std::stop_source downstream_stop_;

  std::mutex mu_;  // guards the members below up to cv_
  std::condition_variable cv_;
  bool started_ = false;
  bool stop_ = false;
  uint64_t session_ = 0;             // current connection; events of others are dropped
  std::deque<Ev> events_;            // from the transport, for the engine
  uint64_t journal_last_ = 0;        // newest committed seq the watcher saw
  std::atomic<bool> cancel_{false};  // abandons a Connect() in progress

  std::thread engine_, watcher_;
  TimePoint started_at_{};

  // Engine thread only.
  const bool adaptive_;   // uplink.batch_sizing = "adaptive"
  const bool live_lane_;  // uplink.live_lane = "auto"
  Batcher batcher_;       // the backlog, in seq order
  Batcher live_batcher_;  // the live lane (its own read-ahead)
  DeliveryWindow window_;
  LinkEstimator link_;    // kept across connections
  // The broker refused a batch this large as too large (0: never).
  size_t broker_limit_ = 0;
  // The live lane: while live_from_ != 0 the backlog lane stops before
  // live_from_ and the live lane sends live_next_.., a batch at most every
  // kLiveEvery (live_at_: the last). Reset with every connection.
  static constexpr Millis kLiveEvery{250};
  uint64_t live_from_ = 0;
  uint64_t live_next_ = 0;
  TimePoint live_at_{};
  size_t last_batch_events_ = 0;  // events of the last backlog batch sent
  void ResetLiveLane() { live_from_ = live_next_ = 0; }
  // New events wait for the live lane, and kLiveEvery has passed.
  bool LiveDue(uint64_t journal_last) const;
  // Hands `batch` to `t` and records it in the window.
  Status Send(Transport& t, Batch& batch);
  // What the window may hold now, and sets the batcher's limits (adaptive
  // sizing).
  size_t SizeForLink();
  uint64_t next_id_ = 0;
  uint64_t next_seq_ = 1;
  uint64_t wm_ = 0;  // highest seq acknowledged as delivered
  TimePoint last_hq_progress_{};
  bool halted_ = false;      // a batch was refused for good (Halt)
  uint64_t halt_first_ = 0;  // first seq of the refused batch
  Status halt_status_;       // why, for the status page
  Millis retry_after_{0};    // HQ's Retry-After of this connection's failures
  bool warned_v311_ = false;
  std::string last_logged_error_;
  TimePoint last_logged_at_{};

  mutable std::mutex status_mu_;  // guards st_ and rate_
  UplinkStatus st_;
  uplink_detail::RateMeter rate_;
};

}  // namespace storegw::sync
