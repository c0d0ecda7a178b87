// The replay engine behind storegw/sync/uplink.h.
//
// Threads:
//   * engine (this file's Run): connects, builds and sends batches, handles
//     acknowledgements, timeouts and back-off. It alone touches the window,
//     the batcher and the Transport.
//   * watcher: blocks in Journal::WaitForSeqAbove and wakes the engine when
//     new events are committed (live events go out right behind the
//     backlog without polling the journal).
//   * the transport's threads (Paho): only queue events for the engine
//     through SessionListener; they never touch engine state.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <utility>

#include "backoff.h"
#include "batcher.h"
#include "mqtt_transport.h"
#include "storegw/storage/journal.h"
#include "storegw/sync/uplink.h"

namespace storegw::sync {
namespace {

using SteadyClock = std::chrono::steady_clock;
using TimePoint = SteadyClock::time_point;

int64_t NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string FormatMillis(Millis d) {
  if (d.count() % 1000 == 0) return std::to_string(d.count() / 1000) + "s";
  return std::to_string(d.count()) + "ms";
}

std::string Range(uint64_t first, uint64_t last) {
  return std::to_string(first) + ".." + std::to_string(last);
}

bool ValidTopicLevel(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c == '/' || c == '+' || c == '#' || c == '\0') return false;
  }
  return true;
}

// Events acknowledged per second over the last minute (display only).
class RateMeter {
 public:
  void Add(uint64_t n, TimePoint now) {
    const int64_t sec = Sec(now);
    auto& b = buckets_[static_cast<size_t>(sec % kSlots)];
    if (b.sec != sec) b = {sec, 0};
    b.count += n;
  }
  double Rate(TimePoint now, TimePoint started) const {
    const int64_t sec = Sec(now);
    uint64_t sum = 0;
    for (const auto& b : buckets_) {
      if (b.sec > sec - kSlots && b.sec <= sec) sum += b.count;
    }
    const double span = std::clamp(std::chrono::duration<double>(now - started).count(), 1.0,
                                   static_cast<double>(kSlots));
    return static_cast<double>(sum) / span;
  }

 private:
  static constexpr int64_t kSlots = 60;
  static int64_t Sec(TimePoint t) {
    return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
  }
  struct Bucket {
    int64_t sec = -1;
    uint64_t count = 0;
  };
  std::array<Bucket, kSlots> buckets_{};
};

}  // namespace

class Uplink::Impl {
 public:
  Impl(UplinkOptions options, storage::Journal* journal, TransportFactory factory)
      : opt_(std::move(options)),
        journal_(journal),
        factory_(std::move(factory)),
        // Over HTTPS, HQ's own 2xx answer is its acknowledgement: there is
        // no separate HqAck channel, so "hq" means the same as "broker".
        hq_mode_(opt_.ack == "hq" && opt_.transport != "https"),
        batcher_(journal, opt_.store_id, opt_.gateway_id, journal->epoch(),
                 static_cast<size_t>(opt_.batch_events),
                 static_cast<size_t>(opt_.max_message_bytes)) {
    st_.endpoint = opt_.url;
    st_.link = "down";
  }

  ~Impl() { Stop(); }

  void SetStatusSource(std::function<v1::GatewayStatus()> source) {
    status_source_ = std::move(source);
  }

  void SetDownstreamSink(std::function<void(DownstreamKind, std::string)> sink) {
    downstream_sink_ = std::move(sink);
  }

  Status Start() {
    std::lock_guard lk(mu_);
    if (started_) return Status::FailedPrecondition("uplink: already started");
    started_ = true;
    started_at_ = SteadyClock::now();
    journal_last_ = journal_->Stats().last_seq;
    {
      std::lock_guard slk(status_mu_);
      st_.link = "connecting";
      st_.watermark = journal_->Stats().watermark;
    }
    engine_ = std::thread([this] { RunEngine(); });
    watcher_ = std::thread([this] { RunWatcher(); });
    return {};
  }

  void Stop() {
    {
      std::lock_guard lk(mu_);
      if (!started_) return;
      stop_ = true;
    }
    cancel_ = true;
    cv_.notify_all();
    if (engine_.joinable()) engine_.join();
    if (watcher_.joinable()) watcher_.join();
  }

  UplinkStatus status() const {
    std::lock_guard lk(status_mu_);
    UplinkStatus s = st_;
    s.send_rate = rate_.Rate(SteadyClock::now(), started_at_);
    return s;
  }

  void FillStatus(v1::GatewayStatus* gs) const {
    UplinkStatus s = status();
    gs->set_link(s.link);
    gs->set_last_error(s.last_error);
    gs->set_reconnects(s.reconnects);
    gs->set_send_rate(s.send_rate);
  }

 private:
  // ---------------------------------------------------------------- events
  enum class EvKind { kSendDone, kLinkLost, kHqAck };
  struct Ev {
    EvKind kind;
    uint64_t id = 0;              // kSendDone
    Status status;                // kSendDone, kLinkLost
    uint64_t epoch = 0, seq = 0;  // kHqAck
    std::string gateway_id;       // kHqAck
    SendFailure how;              // kSendDone (failed)
  };

  // Stamps what one connection reports with its session number, so nothing
  // from an old connection is mistaken for the current one.
  class SessionListener final : public TransportListener {
   public:
    SessionListener(Impl* impl, uint64_t session) : impl_(impl), session_(session) {}
    void OnSendDone(uint64_t id, Status status) override {
      impl_->Post(session_, Ev{EvKind::kSendDone, id, std::move(status)});
    }
    void OnSendFailed(uint64_t id, Status status, SendFailure how) override {
      Ev ev{EvKind::kSendDone, id, std::move(status)};
      if (ev.status.ok()) ev.status = Status::Unavailable("send failed");
      ev.how = how;
      impl_->Post(session_, std::move(ev));
    }
    void OnLinkLost(Status reason) override {
      impl_->Post(session_, Ev{EvKind::kLinkLost, 0, std::move(reason)});
    }
    void OnHqAck(uint64_t epoch, uint64_t seq, const std::string& gateway_id) override {
      impl_->Post(session_, Ev{EvKind::kHqAck, 0, {}, epoch, seq, gateway_id});
    }
    // Not stamped with the session: a downstream message is HQ's, whatever
    // connection brought it, so one that arrives while this connection
    // closes is still applied (its PUBACK goes out when the sink returns).
    void OnDownstream(DownstreamKind kind, std::string payload) override {
      if (impl_->downstream_sink_) impl_->downstream_sink_(kind, std::move(payload));
    }

   private:
    Impl* impl_;
    uint64_t session_;
  };

  void Post(uint64_t session, Ev ev) {
    {
      std::lock_guard lk(mu_);
      if (session != session_) return;
      events_.push_back(std::move(ev));
    }
    cv_.notify_all();
  }

  bool Stopping() {
    std::lock_guard lk(mu_);
    return stop_;
  }

  // Waits `d` or until Stop().
  void SleepUnlessStopped(Millis d) {
    std::unique_lock lk(mu_);
    cv_.wait_for(lk, d, [&] { return stop_; });
  }

  // ---------------------------------------------------------------- status
  void SetLink(const char* link) {
    std::lock_guard lk(status_mu_);
    st_.link = link;
    if (std::string_view(link) != "up") st_.connected_since_us = 0;
  }

  void RecordError(const Status& s) {
    std::lock_guard lk(status_mu_);
    st_.last_error = s.message();
    st_.last_error_at_us = NowUs();
  }

  v1::GatewayStatus BuildStatus(bool online) {
    v1::GatewayStatus gs;
    if (status_source_) {
      try {
        gs = status_source_();
      } catch (const std::exception& e) {
        spdlog::warn("uplink: status source failed: {}", e.what());
      }
    }
    const storage::JournalStats js = journal_->Stats();
    if (gs.store_id().empty()) gs.set_store_id(opt_.store_id);
    if (gs.gateway_id().empty()) gs.set_gateway_id(opt_.gateway_id);
    if (gs.epoch() == 0) gs.set_epoch(js.epoch);
    if (gs.last_seq() == 0) gs.set_last_seq(js.last_seq);
    if (gs.watermark() == 0) gs.set_watermark(js.watermark);
    if (gs.backlog_events() == 0) gs.set_backlog_events(js.backlog_events);
    if (gs.backlog_bytes() == 0) gs.set_backlog_bytes(js.backlog_bytes);
    if (gs.journal_bytes() == 0) gs.set_journal_bytes(js.journal_bytes);
    if (gs.journal_max_bytes() == 0) gs.set_journal_max_bytes(js.max_bytes);
    if (gs.oldest_undelivered_age_s() == 0 && js.oldest_undelivered_recorded_at > 0) {
      const int64_t age = NowUs() - js.oldest_undelivered_recorded_at;
      gs.set_oldest_undelivered_age_s(age > 0 ? static_cast<uint64_t>(age / 1000000) : 0);
    }
    FillStatus(&gs);
    if (!online) gs.set_link("down");
    gs.set_online(online);
    gs.set_updated_at(NowUs());
    return gs;
  }

  std::string StatusPayload(bool online) {
    std::string out;
    BuildStatus(online).SerializeToString(&out);
    return out;
  }

  // ---------------------------------------------------------------- watcher
  void RunWatcher() {
    uint64_t seen;
    {
      std::lock_guard lk(mu_);
      seen = journal_last_;
    }
    while (!Stopping()) {
      // The timeout only bounds how long Stop() waits for this thread; new
      // events wake it at once.
      const auto t0 = SteadyClock::now();
      const uint64_t last = journal_->WaitForSeqAbove(seen, Millis(200));
      if (last > seen) {
        seen = last;
        {
          std::lock_guard lk(mu_);
          journal_last_ = last;
        }
        cv_.notify_all();
      } else if (SteadyClock::now() - t0 < Millis(100)) {
        // WaitForSeqAbove returned early without news: the journal is
        // closing. Do not spin; wait for Stop().
        SleepUnlessStopped(Millis(200));
      }
    }
  }

  // ---------------------------------------------------------------- engine
  void RunEngine() {
    std::random_device rd;
    Backoff backoff(opt_.backoff_initial, opt_.backoff_max,
                    (static_cast<uint64_t>(rd()) << 32) ^ rd() ^ static_cast<uint64_t>(NowUs()));
    // "connecting" while the first attempt after start (or after losing an
    // established link) is under way; once an attempt has failed the link
    // is "down" until one succeeds, so a days-long outage does not flicker
    // between the two on every retry.
    bool failed_since_up = false;
    while (!Stopping()) {
      if (!failed_since_up) SetLink("connecting");
      const uint64_t connects_before = status().connects;
      Status why = ConnectAndRun(backoff);
      if (Stopping()) break;
      if (halted_) {
        Halt(halt_status_);
        break;
      }
      failed_since_up = status().connects == connects_before;
      RecordError(why);
      SetLink(failed_since_up ? "down" : "connecting");
      // HQ's Retry-After is a floor under the jittered back-off (capped at
      // backoff_max, so one odd header cannot silence a store for a day).
      const Millis delay = std::max(backoff.Next(), std::min(retry_after_, opt_.backoff_max));
      retry_after_ = Millis(0);
      // A days-long outage repeats the same error: say it once, then every
      // ten minutes (each attempt still shows at debug level).
      const TimePoint now = SteadyClock::now();
      if (why.message() != last_logged_error_ ||
          now - last_logged_at_ >= std::chrono::minutes(10)) {
        spdlog::warn("uplink: {}; retrying in {}", why.message(), FormatMillis(delay));
        last_logged_error_ = why.message();
        last_logged_at_ = now;
      } else {
        spdlog::debug("uplink: {}; retrying in {}", why.message(), FormatMillis(delay));
      }
      SleepUnlessStopped(delay);
    }
    SetLink("down");
  }

  // HQ refused a batch for good: resending it would fail the same way, and
  // skipping it would leave a gap HQ can never fill. Stop sending, keep
  // the watermark below it, say so on the status until a restart.
  void Halt(const Status& why) {
    const Status shown(why.code(), "uplink stopped: " + why.message() + "; nothing after seq " +
                                       std::to_string(wm_) + " is sent until storegw is restarted");
    RecordError(shown);
    {
      std::lock_guard lk(status_mu_);
      st_.halted = true;
    }
    SetLink("down");
    spdlog::error("uplink: {}", shown.message());
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return stop_; });
  }

  // One connection: connect, replay until it breaks (or Stop), close.
  // Returns why it ended.
  Status ConnectAndRun(Backoff& backoff) {
    if (Status s = CheckTlsFiles(opt_.tls); !s.ok()) {
      CountConnectFailure();
      return Status(s.code(), s.field() + ": " + s.message());
    }
    auto made = factory_();
    if (!made.ok()) {
      CountConnectFailure();
      return made.status();
    }
    std::unique_ptr<Transport> t = std::move(*made);
    uint64_t session;
    {
      std::lock_guard lk(mu_);
      session = ++session_;
      events_.clear();
    }
    SessionListener listener(this, session);
    ConnectRequest req;
    req.will_payload = StatusPayload(false);
    req.want_hq_acks = hq_mode_;
    req.want_downstream = static_cast<bool>(downstream_sink_);
    req.cancel = &cancel_;
    if (Status s = t->Connect(&listener, req); !s.ok()) {
      t->Close(std::nullopt);
      CountConnectFailure();
      return s;
    }
    {
      std::lock_guard lk(status_mu_);
      st_.link = "up";
      st_.connected_since_us = NowUs();
      st_.protocol_version = t->protocol_version();
      if (st_.connects++ > 0) ++st_.reconnects;
    }
    spdlog::info("uplink: connected to {} ({}); replaying from seq {}", opt_.url, t->protocol(),
                 std::max(wm_, journal_->Stats().watermark) + 1);
    if (t->protocol_version() == 4 && !hq_mode_ && !warned_v311_) {
      warned_v311_ = true;
      spdlog::warn(
          "uplink: the broker speaks only MQTT 3.1.1, whose PUBACK cannot say that a "
          "message was refused (e.g. too large): set uplink.ack = \"hq\" for "
          "end-to-end confirmation");
    }
    const TimePoint session_start = SteadyClock::now();
    Status why = Replay(*t, backoff);
    // A connection that stayed up through a keep-alive period was healthy:
    // the next failure starts the back-off from the beginning.
    if (SteadyClock::now() - session_start >= opt_.keep_alive) backoff.Reset();
    const bool stopping = Stopping();
    t->Close(stopping ? std::optional<std::string>(StatusPayload(false)) : std::nullopt);
    {
      std::lock_guard lk(mu_);
      ++session_;  // anything still queued belongs to a dead connection
      events_.clear();
    }
    {
      std::lock_guard lk(status_mu_);
      st_.inflight_batches = 0;
    }
    return why;
  }

  void CountConnectFailure() {
    std::lock_guard lk(status_mu_);
    ++st_.connect_failures;
  }

  struct InFlight {
    uint64_t id;
    uint64_t first, last;
    size_t events;
    bool transport_acked = false;
  };
  struct Pending {
    TimePoint sent_at;
    uint64_t first, last;
    size_t bytes;
  };

  // Moves the watermark to `wm` (never back) and tells the journal.
  void AdvanceWatermark(uint64_t wm, size_t batches, Backoff& backoff) {
    if (wm <= wm_) return;
    const uint64_t n = wm - wm_;
    wm_ = wm;
    if (Status s = journal_->Ack(wm); !s.ok()) {
      spdlog::error("uplink: journal refused ack of seq {}: {}", wm, s.ToString());
    }
    backoff.Reset();  // this connection delivers
    const TimePoint now = SteadyClock::now();
    std::lock_guard lk(status_mu_);
    st_.watermark = wm;
    st_.events_acked += n;
    st_.batches_acked += batches;
    rate_.Add(n, now);
  }

  // Handles one transport event; a non-ok return ends the connection.
  Status Handle(Ev& ev, Backoff& backoff) {
    switch (ev.kind) {
      case EvKind::kLinkLost:
        return ev.status;
      case EvKind::kSendDone: {
        auto p = pending_.find(ev.id);
        if (p == pending_.end()) return {};  // duplicate callback (Paho C #1341)
        const Pending pend = p->second;
        pending_.erase(p);
        if (!ev.status.ok()) {
          if (ev.how.permanent) {
            // Stop sending, but let the batches before this one finish
            // (Replay returns once they are resolved), so the watermark
            // ends right below the refused batch.
            if (!halted_ || pend.first < halt_first_) {
              halt_first_ = pend.first;
              halt_status_ =
                  Status(ev.status.code(), "batch seq " + Range(pend.first, pend.last) + " (" +
                                               std::to_string(pend.bytes) +
                                               " bytes) not delivered: " + ev.status.message());
            }
            halted_ = true;
            return {};
          }
          retry_after_ = std::max(retry_after_, ev.how.retry_after);
          if (ev.status.code() == StatusCode::kResourceExhausted && pend.bytes > 0) {
            // The broker's message limit is below max_message_bytes: halve
            // the batches until they fit (down to one event per batch).
            const size_t smaller = std::max<size_t>(1024, pend.bytes / 2);
            if (smaller < batcher_.max_bytes()) {
              spdlog::warn(
                  "uplink: broker refused a {}-byte batch as too large; sending "
                  "batches of at most {} bytes (set uplink.max_message_bytes below "
                  "the broker's limit)",
                  pend.bytes, smaller);
              batcher_.set_limits(batcher_.max_events(), smaller);
            }
          }
          return Status(ev.status.code(), "batch seq " + Range(pend.first, pend.last) + " (" +
                                              std::to_string(pend.bytes) +
                                              " bytes) not delivered: " + ev.status.message());
        }
        for (auto& f : window_) {
          if (f.id == ev.id) f.transport_acked = true;
        }
        if (!hq_mode_) {
          uint64_t wm = wm_;
          size_t batches = 0;
          while (!window_.empty() && window_.front().transport_acked) {
            wm = window_.front().last;
            window_.pop_front();
            ++batches;
          }
          AdvanceWatermark(wm, batches, backoff);
        }
        return {};
      }
      case EvKind::kHqAck: {
        if (!hq_mode_) return {};
        if (ev.epoch != journal_->epoch() ||
            (!ev.gateway_id.empty() && ev.gateway_id != opt_.gateway_id)) {
          spdlog::warn(
              "uplink: ignoring HqAck for epoch {:016x} gateway '{}' (this journal is "
              "epoch {:016x}, gateway '{}')",
              ev.epoch, ev.gateway_id, journal_->epoch(), opt_.gateway_id);
          return {};
        }
        const uint64_t last = journal_->Stats().last_seq;
        const uint64_t seq = std::min(ev.seq, last);
        if (seq <= wm_) return {};
        size_t batches = 0;
        while (!window_.empty() && window_.front().last <= seq) {
          window_.pop_front();
          ++batches;
        }
        AdvanceWatermark(seq, batches, backoff);
        last_hq_progress_ = SteadyClock::now();
        if (next_seq_ <= wm_) {
          // HQ is ahead of this connection (it got them on an earlier one).
          next_seq_ = wm_ + 1;
          window_.clear();
        }
        return {};
      }
    }
    return {};
  }

  // Batches that count against max_inflight: not yet acknowledged by the
  // broker (ack = "broker"; acknowledged ones wait in the window only until
  // the batches before them are acknowledged too), or not yet by HQ.
  size_t Unacknowledged() const {
    if (hq_mode_) return window_.size();
    return static_cast<size_t>(std::count_if(window_.begin(), window_.end(),
                                             [](const InFlight& f) { return !f.transport_acked; }));
  }

  // Replays from the watermark until the connection breaks or Stop().
  Status Replay(Transport& t, Backoff& backoff) {
    window_.clear();
    pending_.clear();
    batcher_.Reset();
    wm_ = std::max(wm_, journal_->Stats().watermark);
    next_seq_ = wm_ + 1;
    last_hq_progress_ = SteadyClock::now();
    TimePoint next_status = SteadyClock::now();
    const size_t max_window = static_cast<size_t>(opt_.max_inflight);
    const size_t max_pending = std::max<size_t>(1, t.max_pending_sends());

    for (;;) {
      std::deque<Ev> evs;
      {
        std::lock_guard lk(mu_);
        if (stop_) return Status::Unavailable("uplink stopping");
        evs.swap(events_);
      }
      for (Ev& ev : evs) {
        if (Status s = Handle(ev, backoff); !s.ok()) return s;
      }
      if (halted_ && std::none_of(pending_.begin(), pending_.end(),
                                  [&](const auto& p) { return p.second.first < halt_first_; })) {
        return halt_status_;
      }

      TimePoint now = SteadyClock::now();
      // A batch the transport has not acknowledged in time: broken link.
      for (const auto& [id, p] : pending_) {
        if (now - p.sent_at >= opt_.ack_timeout) {
          return Status::Unavailable("no acknowledgement for batch seq " + Range(p.first, p.last) +
                                     " within " + FormatMillis(opt_.ack_timeout) +
                                     ": link considered broken");
        }
      }
      if (hq_mode_ && !window_.empty() && now - last_hq_progress_ >= opt_.hq_ack_timeout) {
        spdlog::warn(
            "uplink: no HqAck moved the watermark (seq {}) for {} with {} batches "
            "outstanding; resending from seq {}",
            wm_, FormatMillis(opt_.hq_ack_timeout), window_.size(), wm_ + 1);
        window_.clear();
        batcher_.Reset();
        next_seq_ = wm_ + 1;
        last_hq_progress_ = now;
        std::lock_guard lk(status_mu_);
        ++st_.hq_resends;
      }

      // Fill the window.
      bool journal_empty = false;
      while (!halted_ && Unacknowledged() < max_window && pending_.size() < max_pending) {
        auto b = batcher_.Build(next_seq_);
        if (!b.ok()) return b.status();
        if (!b->has_value()) {
          journal_empty = true;
          break;
        }
        Batch& batch = **b;
        const uint64_t id = ++next_id_;
        const size_t bytes = batch.payload.size();
        if (bytes > opt_.max_message_bytes) {
          spdlog::warn(
              "uplink: event seq {} alone is {} bytes, over max_message_bytes {}; "
              "sending it alone",
              batch.first_seq, bytes, opt_.max_message_bytes);
        }
        if (Status s = t.SendBatch(id, std::move(batch.payload), {batch.first_seq, batch.last_seq});
            !s.ok()) {
          return s;
        }
        if (window_.empty()) last_hq_progress_ = SteadyClock::now();
        window_.push_back({id, batch.first_seq, batch.last_seq, batch.events});
        pending_[id] = {SteadyClock::now(), batch.first_seq, batch.last_seq, bytes};
        next_seq_ = batch.last_seq + 1;
        std::lock_guard lk(status_mu_);
        ++st_.batches_sent;
        st_.events_sent += batch.events;
        st_.bytes_sent += bytes;
        st_.inflight_batches = window_.size();
      }
      {
        std::lock_guard lk(status_mu_);
        st_.inflight_batches = window_.size();
      }

      now = SteadyClock::now();
      if (now >= next_status) {
        if (Status s = t.PublishStatus(StatusPayload(true)); !s.ok()) {
          spdlog::warn("uplink: status not published: {}", s.message());
        }
        next_status = now + opt_.status_interval;
      }

      // Sleep until something happens.
      TimePoint deadline = next_status;
      for (const auto& [id, p] : pending_) {
        deadline = std::min(deadline, p.sent_at + opt_.ack_timeout);
      }
      if (hq_mode_ && !window_.empty()) {
        deadline = std::min(deadline, last_hq_progress_ + opt_.hq_ack_timeout);
      }
      const bool room = !halted_ && Unacknowledged() < max_window && pending_.size() < max_pending;
      std::unique_lock lk(mu_);
      // The reader returned nothing although the watcher saw a newer seq:
      // cannot happen with the journal's publish-after-commit, but if it
      // ever does, look again in a moment instead of spinning.
      const bool reread_later = journal_empty && journal_last_ >= next_seq_;
      if (reread_later) deadline = std::min(deadline, SteadyClock::now() + Millis(5));
      cv_.wait_until(lk, deadline, [&] {
        return stop_ || !events_.empty() || (room && !reread_later && journal_last_ >= next_seq_);
      });
    }
  }

  // ---------------------------------------------------------------- members
  const UplinkOptions opt_;
  storage::Journal* const journal_;
  const TransportFactory factory_;
  const bool hq_mode_;
  std::function<v1::GatewayStatus()> status_source_;                  // set before Start
  std::function<void(DownstreamKind, std::string)> downstream_sink_;  // set before Start

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
  Batcher batcher_;
  std::deque<InFlight> window_;          // in seq order
  std::map<uint64_t, Pending> pending_;  // sends awaiting the transport's ack
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
  RateMeter rate_;
};

// ------------------------------------------------------------------ Uplink

namespace {

Status ValidateOptions(UplinkOptions& o, storage::Journal* journal) {
  if (!journal) return Status::InvalidArgument("journal", "uplink needs a journal");
  if (o.store_id.empty()) o.store_id = journal->store_id();
  if (o.gateway_id.empty()) o.gateway_id = journal->gateway_id();
  if (o.store_id != journal->store_id() || o.gateway_id != journal->gateway_id()) {
    return Status::FailedPrecondition("uplink: store/gateway id " + o.store_id + "/" +
                                      o.gateway_id + " differ from the journal's " +
                                      journal->store_id() + "/" + journal->gateway_id());
  }
  if (!ValidTopicLevel(o.store_id) || !ValidTopicLevel(o.gateway_id)) {
    return Status::InvalidArgument("gateway.store_id",
                                   "store_id and gateway_id must not contain '/', '+' or '#'");
  }
  if (o.topic_prefix.empty() || o.topic_prefix.find_first_of("+#") != std::string::npos ||
      o.topic_prefix.front() == '/' || o.topic_prefix.back() == '/') {
    return Status::InvalidArgument("uplink.topic_prefix",
                                   "\"" + o.topic_prefix +
                                       "\" must be non-empty, without '+', '#' or a leading or "
                                       "trailing '/'");
  }
  if (o.ack != "broker" && o.ack != "hq") {
    return Status::InvalidArgument("uplink.ack",
                                   "must be \"broker\" or \"hq\", got \"" + o.ack + "\"");
  }
  if (o.max_inflight < 1 || o.max_inflight > 100) {
    return Status::InvalidArgument("uplink.max_inflight",
                                   "must be 1..100, got " + std::to_string(o.max_inflight));
  }
  if (o.batch_events < 1 || o.batch_events > 100000) {
    return Status::InvalidArgument("uplink.batch_events",
                                   "must be 1..100000, got " + std::to_string(o.batch_events));
  }
  if (o.max_message_bytes < 1024 || o.max_message_bytes > (256u << 20)) {
    return Status::InvalidArgument(
        "uplink.max_message_bytes",
        "must be 1024..268435456, got " + std::to_string(o.max_message_bytes));
  }
  if (o.compression != "deflate" && o.compression != "none") {
    return Status::InvalidArgument(
        "uplink.compression", "must be \"deflate\" or \"none\", got \"" + o.compression + "\"");
  }
  if (o.backoff_initial.count() <= 0 || o.backoff_initial > o.backoff_max) {
    return Status::InvalidArgument("uplink.backoff_initial",
                                   "must be > 0 and <= uplink.backoff_max");
  }
  if (o.hq_ack_timeout.count() <= 0) {
    return Status::InvalidArgument("uplink.hq_ack_timeout", "must be > 0");
  }
  if (o.ack_timeout.count() <= 0)
    return Status::InvalidArgument("uplink.ack_timeout", "must be > 0");
  if (o.connect_timeout < std::chrono::seconds(1)) {
    return Status::InvalidArgument("uplink.connect_timeout", "must be at least 1s");
  }
  if (o.keep_alive < std::chrono::seconds(1)) {
    return Status::InvalidArgument("uplink.keep_alive", "must be at least 1s");
  }
  if (o.request_timeout < std::chrono::seconds(1)) {
    return Status::InvalidArgument("uplink.request_timeout", "must be at least 1s");
  }
  if (o.status_interval.count() <= 0) {
    return Status::InvalidArgument("uplink.status_interval", "must be > 0");
  }
  if (o.tls.cert_file.empty() != o.tls.key_file.empty()) {
    return Status::InvalidArgument(
        o.tls.cert_file.empty() ? "uplink.tls.cert_file" : "uplink.tls.key_file",
        "uplink.tls.cert_file and uplink.tls.key_file go together (mutual TLS needs both)");
  }
  if (o.session_expiry.count() < 0 || o.session_expiry > std::chrono::seconds(0xFFFFFFFEu)) {
    return Status::InvalidArgument("uplink.session_expiry",
                                   "must be between 0s and 49710d (MQTT's limit)");
  }
  if (o.client_id.empty()) o.client_id = "storegw-" + o.store_id + "-" + o.gateway_id;
  return {};
}

}  // namespace

Uplink::Uplink(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Uplink::~Uplink() {
  Stop();
}

Result<std::unique_ptr<Uplink>> Uplink::Create(UplinkOptions options, storage::Journal* journal) {
  if (options.transport != "mqtt" && options.transport != "https") {
    return Status::InvalidArgument("uplink.transport",
                                   "\"" + options.transport +
                                       "\" is not available in this build (supported: \"mqtt\", "
                                       "\"https\")");
  }
  if (Status s = ValidateOptions(options, journal); !s.ok()) return s;
  TransportIdentity id{options.store_id, options.gateway_id, journal->epoch()};
  if (options.transport == "https") {
    // Validate the URL and proxy once now, so a typo fails at start-up.
    if (auto probe = MakeHttpsTransport(options, id); !probe.ok()) return probe.status();
    auto opts = std::make_shared<UplinkOptions>(options);
    TransportFactory factory = [opts, id]() { return MakeHttpsTransport(*opts, id); };
    return std::unique_ptr<Uplink>(
        new Uplink(std::make_unique<Impl>(std::move(options), journal, std::move(factory))));
  }
  // Validate the URL once now, so a typo fails at start-up, not in the log.
  if (auto probe = MakeMqttTransport(options, id); !probe.ok()) return probe.status();
  auto opts = std::make_shared<UplinkOptions>(options);
  // Remembers across connections that the broker refused MQTT 5.
  auto version_hint = std::make_shared<std::atomic<int>>(5);
  TransportFactory factory = [opts, id, version_hint]() {
    return MakeMqttTransportWithHint(*opts, id, version_hint);
  };
  return std::unique_ptr<Uplink>(
      new Uplink(std::make_unique<Impl>(std::move(options), journal, std::move(factory))));
}

Result<std::unique_ptr<Uplink>> Uplink::CreateWithTransport(UplinkOptions options,
                                                            storage::Journal* journal,
                                                            TransportFactory factory) {
  if (!factory) return Status::InvalidArgument("transport", "no transport factory");
  if (Status s = ValidateOptions(options, journal); !s.ok()) return s;
  return std::unique_ptr<Uplink>(
      new Uplink(std::make_unique<Impl>(std::move(options), journal, std::move(factory))));
}

void Uplink::SetStatusSource(std::function<v1::GatewayStatus()> source) {
  impl_->SetStatusSource(std::move(source));
}
void Uplink::SetDownstreamSink(std::function<void(DownstreamKind, std::string)> sink) {
  impl_->SetDownstreamSink(std::move(sink));
}
Status Uplink::Start() {
  return impl_->Start();
}
void Uplink::Stop() {
  if (impl_) impl_->Stop();
}
UplinkStatus Uplink::status() const {
  return impl_->status();
}
void Uplink::FillStatus(v1::GatewayStatus* status) const {
  impl_->FillStatus(status);
}

}  // namespace storegw::sync
