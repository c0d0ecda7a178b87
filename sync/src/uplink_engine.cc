// The replay engine's threads: see uplink_impl.h and storegw/sync/uplink.h.
#include <spdlog/spdlog.h>

#include <random>
#include <utility>

#include "storegw/storage/journal.h"
#include "uplink_impl.h"

namespace storegw::sync {

using uplink_detail::FormatMillis;
using uplink_detail::NowUs;
using uplink_detail::SeqRange;
using uplink_detail::SteadyClock;

Uplink::Impl::Impl(UplinkOptions options, storage::Journal* journal, TransportFactory factory)
    : opt_(std::move(options)),
      journal_(journal),
      factory_(std::move(factory)),
      // Over HTTPS, HQ's own 2xx answer is its acknowledgement: there is
      // no separate HqAck channel, so "hq" means the same as "broker".
      hq_mode_(opt_.ack == "hq" && opt_.transport != "https"),
      adaptive_(opt_.batch_sizing == "adaptive"),
      live_lane_(opt_.live_lane == "auto"),
      batcher_(journal, opt_.store_id, opt_.gateway_id, journal->epoch(),
               static_cast<size_t>(opt_.batch_events), static_cast<size_t>(opt_.max_message_bytes)),
      live_batcher_(journal, opt_.store_id, opt_.gateway_id, journal->epoch(),
                    static_cast<size_t>(opt_.batch_events),
                    static_cast<size_t>(opt_.max_message_bytes)),
      window_(hq_mode_) {
  st_.endpoint = opt_.url;
  st_.link = "down";
}

Status Uplink::Impl::Start() {
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

void Uplink::Impl::Stop() {
  {
    std::lock_guard lk(mu_);
    if (!started_) return;
    stop_ = true;
  }
  // First, so that a downstream message being applied on the MQTT receive
  // thread gives up its retries: until it returns, Paho C (its threads and
  // its lock are shared by every client of the process) cannot send our
  // final status or the DISCONNECT, and the engine may be blocked in a
  // publish.
  downstream_stop_.request_stop();
  cancel_ = true;
  cv_.notify_all();
  if (engine_.joinable()) engine_.join();
  if (watcher_.joinable()) watcher_.join();
}

// ------------------------------------------------------------------ events

// Stamps what one connection reports with its session number, so nothing
// from an old connection is mistaken for the current one.
class Uplink::Impl::SessionListener final : public TransportListener {
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
    if (impl_->downstream_sink_) {
      impl_->downstream_sink_(kind, std::move(payload), impl_->downstream_stop_.get_token());
    }
  }

 private:
  Impl* impl_;
  uint64_t session_;
};

void Uplink::Impl::Post(uint64_t session, Ev ev) {
  {
    std::lock_guard lk(mu_);
    if (session != session_) return;
    events_.push_back(std::move(ev));
  }
  cv_.notify_all();
}

bool Uplink::Impl::Stopping() {
  std::lock_guard lk(mu_);
  return stop_;
}

// Waits `d` or until Stop().
void Uplink::Impl::SleepUnlessStopped(Millis d) {
  std::unique_lock lk(mu_);
  cv_.wait_for(lk, d, [&] { return stop_; });
}

// ------------------------------------------------------------------ watcher

void Uplink::Impl::RunWatcher() {
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

// ------------------------------------------------------------------ engine

void Uplink::Impl::RunEngine() {
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
    const uint64_t connects_before = connects();
    Status why = ConnectAndRun(backoff);
    if (Stopping()) break;
    if (halted_) {
      Halt(halt_status_);
      break;
    }
    failed_since_up = connects() == connects_before;
    RecordError(why);
    SetLink(failed_since_up ? "down" : "connecting");
    // HQ's Retry-After is a floor under the jittered back-off (capped at
    // backoff_max, so one odd header cannot silence a store for a day).
    const Millis delay = std::max(backoff.Next(), std::min(retry_after_, opt_.backoff_max));
    retry_after_ = Millis(0);
    // A days-long outage repeats the same error: say it once, then every
    // ten minutes (each attempt still shows at debug level).
    const TimePoint now = SteadyClock::now();
    if (why.message() != last_logged_error_ || now - last_logged_at_ >= std::chrono::minutes(10)) {
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
// skipping it would leave a gap HQ can never fill. Stop sending, keep the
// watermark below it, say so on the status until a restart.
void Uplink::Impl::Halt(const Status& why) {
  const Status shown(why.code(), "uplink stopped: " + why.message() + "; nothing after seq " +
                                     std::to_string(wm_) + " is sent until storegw is restarted");
  RecordError(shown);
  RecordHalted();
  SetLink("down");
  spdlog::error("uplink: {}", shown.message());
  std::unique_lock lk(mu_);
  cv_.wait(lk, [&] { return stop_; });
}

// One connection: connect, replay until it breaks (or Stop), close.
// Returns why it ended.
Status Uplink::Impl::ConnectAndRun(Backoff& backoff) {
  if (Status s = CheckTlsFiles(opt_.tls); !s.ok()) {
    Status why(s.code(), s.field() + ": " + s.message());
    RecordConnectFailure(why);
    return why;
  }
  auto made = factory_();
  if (!made.ok()) {
    RecordConnectFailure(made.status());
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
    RecordConnectFailure(s);
    return s;
  }
  RecordConnected(t->protocol_version());
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
  RecordInflight(0);
  return why;
}

// Moves the watermark to `wm` (never back) and tells the journal.
void Uplink::Impl::AdvanceWatermark(uint64_t wm, size_t batches, Backoff& backoff) {
  if (wm <= wm_) return;
  const uint64_t n = wm - wm_;
  wm_ = wm;
  if (Status s = journal_->Ack(wm); !s.ok()) {
    spdlog::error("uplink: journal refused ack of seq {}: {}", wm, s.ToString());
  }
  backoff.Reset();  // this connection delivers
  RecordDelivered(wm, n, batches, SteadyClock::now());
}

// Handles one transport event; a non-ok return ends the connection.
Status Uplink::Impl::Handle(Ev& ev, Backoff& backoff) {
  switch (ev.kind) {
    case EvKind::kLinkLost:
      return ev.status;
    case EvKind::kSendDone: {
      // Unknown: a duplicate callback (Paho C can report one publish twice).
      const std::optional<DeliveryWindow::Send> sent = window_.TakeSend(ev.id);
      if (!sent) return {};
      const DeliveryWindow::Send& pend = *sent;
      if (!ev.status.ok()) {
        if (ev.how.permanent) {
          // Stop sending, but let the batches before this one finish
          // (Replay returns once they are resolved), so the watermark
          // ends right below the refused batch.
          if (!halted_ || pend.first < halt_first_) {
            halt_first_ = pend.first;
            halt_status_ =
                Status(ev.status.code(), "batch seq " + SeqRange(pend.first, pend.last) + " (" +
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
            broker_limit_ = smaller;  // SizeForLink applies it to both batchers
          }
        }
        return Status(ev.status.code(), "batch seq " + SeqRange(pend.first, pend.last) + " (" +
                                            std::to_string(pend.bytes) +
                                            " bytes) not delivered: " + ev.status.message());
      }
      link_.OnAck(pend.sent_at, SteadyClock::now(), pend.bytes, pend.alone);
      window_.MarkTransportAcked(ev.id);
      if (!hq_mode_) {
        const DeliveryWindow::Released r = window_.ReleaseAckedPrefix(wm_);
        AdvanceWatermark(r.batches > 0 ? r.last_seq : wm_, r.batches, backoff);
      }
      return {};
    }
    case EvKind::kHqAck: {
      if (!hq_mode_) return {};
      if (ev.epoch != journal_->epoch() ||
          (!ev.gateway_id.empty() && ev.gateway_id != opt_.gateway_id)) {
        spdlog::warn(
            "uplink: ignoring HqAck for epoch {} gateway '{}' (this journal is "
            "epoch {}, gateway '{}')",
            ev.epoch, ev.gateway_id, journal_->epoch(), opt_.gateway_id);
        return {};
      }
      const uint64_t last = journal_->Stats().last_seq;
      const uint64_t seq = std::min(ev.seq, last);
      if (seq <= wm_) return {};
      const size_t batches = window_.ReleaseThrough(seq);
      AdvanceWatermark(seq, batches, backoff);
      last_hq_progress_ = SteadyClock::now();
      if (next_seq_ <= wm_) {
        // HQ is ahead of this connection (it got them on an earlier one).
        next_seq_ = wm_ + 1;
        window_.DropWindow();
        ResetLiveLane();
      }
      return {};
    }
  }
  return {};
}

// The window for now; sets the batchers' limits. "fixed": the options.
// "adaptive": LinkEstimator's batch size and window, within them.
size_t Uplink::Impl::SizeForLink() {
  size_t max_bytes = static_cast<size_t>(opt_.max_message_bytes);
  if (broker_limit_ != 0) max_bytes = std::min(max_bytes, broker_limit_);
  const auto max_events = static_cast<size_t>(opt_.batch_events);
  const auto max_window = static_cast<size_t>(opt_.max_inflight);
  live_batcher_.set_limits(max_events, max_bytes);
  if (!adaptive_) {
    batcher_.set_limits(max_events, max_bytes);
    return max_window;
  }
  const size_t batch_bytes = link_.BatchBytes(max_bytes);
  batcher_.set_limits(max_events, batch_bytes);
  return link_.Window(batch_bytes, max_window);
}

bool Uplink::Impl::LiveDue(uint64_t journal_last) const {
  return live_from_ != 0 && journal_last >= live_next_ &&
         SteadyClock::now() - live_at_ >= kLiveEvery;
}

// Hands `batch` to the transport and records it in the window.
Status Uplink::Impl::Send(Transport& t, Batch& batch) {
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
  window_.Add(id, batch.first_seq, batch.last_seq, batch.events, bytes, SteadyClock::now());
  RecordSent(batch.events, bytes, window_.batches());
  return {};
}

// Replays from the watermark until the connection breaks or Stop().
Status Uplink::Impl::Replay(Transport& t, Backoff& backoff) {
  window_.Reset();
  batcher_.Reset();
  live_batcher_.Reset();
  ResetLiveLane();
  wm_ = std::max(wm_, journal_->Stats().watermark);
  next_seq_ = wm_ + 1;
  last_hq_progress_ = SteadyClock::now();
  TimePoint next_status = SteadyClock::now();
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
    if (halted_ && !window_.AnySendBefore(halt_first_)) return halt_status_;

    TimePoint now = SteadyClock::now();
    // A batch the transport has not acknowledged in time: broken link.
    if (const DeliveryWindow::Send* late = window_.FirstOverdue(now, opt_.ack_timeout)) {
      return Status::Unavailable("no acknowledgement for batch seq " +
                                 SeqRange(late->first, late->last) + " within " +
                                 FormatMillis(opt_.ack_timeout) + ": link considered broken");
    }
    if (hq_mode_ && !window_.empty() && now - last_hq_progress_ >= opt_.hq_ack_timeout) {
      spdlog::warn(
          "uplink: no HqAck moved the watermark (seq {}) for {} with {} batches "
          "outstanding; resending from seq {}",
          wm_, FormatMillis(opt_.hq_ack_timeout), window_.batches(), wm_ + 1);
      window_.DropWindow();
      batcher_.Reset();
      ResetLiveLane();
      next_seq_ = wm_ + 1;
      last_hq_progress_ = now;
      RecordHqResend();
    }

    // Fill the window.
    const size_t max_window = SizeForLink();
    uint64_t journal_last = 0;
    {
      std::lock_guard lk(mu_);
      journal_last = journal_last_;
    }
    // A backlog of more than 4 batches: what is journaled from now on goes
    // on the live lane, ahead of it.
    // (In batches as they are now: adaptive sizing cuts them by bytes.)
    const size_t batch_now = std::min(batcher_.max_events(), std::max<size_t>(last_batch_events_, 256));
    if (live_lane_ && live_from_ == 0 && !halted_ && journal_last >= next_seq_ &&
        journal_last - next_seq_ + 1 > 4 * batch_now) {
      live_from_ = live_next_ = journal_last + 1;
      spdlog::info("uplink: backlog of {} events from seq {}; events from seq {} go ahead of it",
                   journal_last - next_seq_ + 1, next_seq_, live_from_);
    }
    // The live lane: a batch of what is new at most every kLiveEvery,
    // beside the window (each waits only for the backlog bytes already
    // handed to the connection).
    if (!halted_ && LiveDue(journal_last) && window_.sends() < max_pending) {
      auto b = live_batcher_.Build(live_next_);
      if (!b.ok()) return b.status();
      if (b->has_value()) {
        const uint64_t last = (*b)->last_seq;
        if (Status s = Send(t, **b); !s.ok()) return s;
        live_at_ = SteadyClock::now();
        live_next_ = last + 1;
      }
    }
    bool journal_empty = false;
    // The live lane's batches do not count against the backlog's window.
    const auto backlog_inflight = [&] {
      return window_.Unacknowledged(live_from_ != 0 ? live_from_ : UINT64_MAX);
    };
    while (!halted_ && backlog_inflight() < max_window && window_.sends() < max_pending) {
      if (live_from_ != 0 && next_seq_ >= live_from_) {
        // The backlog is out: the lanes join where the live one is.
        next_seq_ = live_next_;
        ResetLiveLane();
        batcher_.Reset();
      }
      if (live_from_ != 0) {
        batcher_.set_limits(
            std::min<size_t>(batcher_.max_events(), static_cast<size_t>(live_from_ - next_seq_)),
            batcher_.max_bytes());
      }
      auto b = batcher_.Build(next_seq_);
      if (!b.ok()) return b.status();
      if (!b->has_value()) {
        journal_empty = true;
        break;
      }
      const uint64_t last = (*b)->last_seq;
      const size_t events = (*b)->events;
      if (Status s = Send(t, **b); !s.ok()) return s;
      next_seq_ = last + 1;
      last_batch_events_ = events;
    }
    RecordInflight(window_.batches());

    now = SteadyClock::now();
    if (now >= next_status) {
      if (Status s = t.PublishStatus(StatusPayload(true)); !s.ok()) {
        spdlog::warn("uplink: status not published: {}", s.message());
      }
      next_status = now + opt_.status_interval;
    }

    // Sleep until something happens.
    TimePoint deadline = window_.NextAckDeadline(opt_.ack_timeout, next_status);
    if (live_from_ != 0) deadline = std::min(deadline, live_at_ + kLiveEvery);
    if (hq_mode_ && !window_.empty()) {
      deadline = std::min(deadline, last_hq_progress_ + opt_.hq_ack_timeout);
    }
    const bool room = !halted_ && backlog_inflight() < max_window && window_.sends() < max_pending;
    std::unique_lock lk(mu_);
    // The reader returned nothing although the watcher saw a newer seq:
    // cannot happen with the journal's publish-after-commit, but if it
    // ever does, look again in a moment instead of spinning.
    const bool reread_later = journal_empty && journal_last_ >= next_seq_;
    if (reread_later) deadline = std::min(deadline, SteadyClock::now() + Millis(5));
    cv_.wait_until(lk, deadline, [&] {
      return stop_ || !events_.empty() || (room && !reread_later && journal_last_ >= next_seq_) ||
             LiveDue(journal_last_);
    });
  }
}

}  // namespace storegw::sync
