// Downstream messages from HQ: see storegw/sync/downstream.h.
//
// The daemon applies each message on the MQTT receive thread (Submit): Paho
// C 1.3 sends the PUBACK when the message callback returns, so the broker
// keeps (and redelivers) a message until its change is committed. The cost
// is that the receive thread is busy meanwhile (about 0.3 s for a
// 50,000-line snapshot: the uplink's PUBACKs wait that long, far from the
// keep-alive); journal retries are bounded for the same reason, and end
// early when the uplink stops (Submit's stop token). Enqueue and the worker
// are the non-blocking alternative (PUBACK at once).
#include "storegw/sync/downstream.h"

#include <spdlog/spdlog.h>

#include <climits>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <stop_token>
#include <thread>
#include <utility>

#include "storegw/storage/journal.h"
#include "storegw/v1/storegw.pb.h"

namespace storegw::sync {

std::string_view DownstreamKindName(DownstreamKind kind) {
  switch (kind) {
    case DownstreamKind::kStock:
      return "stock";
    case DownstreamKind::kPrices:
      return "prices";
    case DownstreamKind::kRules:
      return "rules";
  }
  return "unknown";
}

namespace {

using SteadyClock = std::chrono::steady_clock;

// "lines[3].qty" -> "invalid_qty"; "store_id" -> "other_store".
std::string ReasonForField(const std::string& field) {
  std::string leaf = field;
  if (auto dot = leaf.rfind('.'); dot != std::string::npos) leaf = leaf.substr(dot + 1);
  if (auto br = leaf.find('['); br != std::string::npos) leaf = leaf.substr(0, br);
  if (leaf == "store_id") return "other_store";
  if (leaf.empty()) return "invalid";
  return "invalid_" + leaf;
}

bool Transient(const Status& s) {
  return s.code() == StatusCode::kResourceExhausted || s.code() == StatusCode::kIoError;
}

}  // namespace

class Downstream::Impl {
 public:
  Impl(storage::Journal* journal, DownstreamOptions options)
      : journal_(journal), opt_(std::move(options)) {}

  ~Impl() { Stop(); }

  Status Handle(DownstreamKind kind, std::string_view payload, bool last_attempt) {
    try {
      switch (kind) {
        case DownstreamKind::kStock:
          return HandleStock(payload, last_attempt);
        case DownstreamKind::kPrices:
          return HandlePrice(payload, last_attempt);
        case DownstreamKind::kRules:
          return HandleRules(payload, last_attempt);
      }
      return Refuse(kind, payload.size(), "internal",
                    Status::FailedPrecondition("internal error: unknown downstream kind"));
    } catch (const std::exception& e) {
      return Refuse(
          kind, payload.size(), "internal",
          Status(StatusCode::kFailedPrecondition, std::string("internal error: ") + e.what()));
    } catch (...) {
      return Refuse(kind, payload.size(), "internal",
                    Status(StatusCode::kFailedPrecondition, "internal error"));
    }
  }

  void Enqueue(DownstreamKind kind, std::string payload) {
    std::string reason;
    {
      std::lock_guard lk(mu_);
      if (stopping_) {
        reason = "shutting_down";
      } else if (queued_bytes_ + payload.size() > opt_.max_queued_bytes) {
        reason = "overflow";
      } else {
        queued_bytes_ += payload.size();
        queue_.push_back({kind, std::move(payload)});
      }
    }
    if (!reason.empty()) {
      (void)Refuse(
          kind, payload.size(), reason,
          Status::Unavailable(reason == "overflow"
                                  ? "the downstream queue holds over " +
                                        std::to_string(opt_.max_queued_bytes) +
                                        " bytes; HQ must resend this message"
                                  : "the gateway is stopping; HQ must resend this message"));
      return;
    }
    cv_.notify_all();
  }

  Status Start() {
    std::lock_guard lk(mu_);
    if (started_) return Status::FailedPrecondition("downstream: already started");
    started_ = true;
    worker_ = std::thread([this] { Run(); });
    return {};
  }

  void Stop() {
    {
      std::lock_guard lk(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (worker_.joinable()) worker_.join();
  }

  DownstreamCounters counters() const {
    std::lock_guard lk(mu_);
    DownstreamCounters c = c_;
    c.queued = queue_.size();
    c.queued_bytes = queued_bytes_;
    return c;
  }

 private:
  struct Item {
    DownstreamKind kind;
    std::string payload;
  };

  void Run() {
    for (;;) {
      Item item;
      {
        std::unique_lock lk(mu_);
        cv_.wait(lk, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stopping, and everything applied
        item = std::move(queue_.front());
        queue_.pop_front();
        queued_bytes_ -= item.payload.size();
      }
      (void)ApplyWithRetries(item.kind, item.payload, {});
    }
  }

 public:
  // A journal failure that may pass (full disk, I/O error) is retried with
  // a doubling delay, within max_retry_time; while stopping (Stop(), or
  // `stop` requested), not at all: the attempt under way is the last.
  Status ApplyWithRetries(DownstreamKind kind, std::string_view payload, std::stop_token stop) {
    std::lock_guard serial(handle_mu_);
    const auto deadline = SteadyClock::now() + opt_.max_retry_time;
    auto delay = opt_.retry_initial;
    for (int attempt = 0;; ++attempt) {
      const bool last = attempt >= opt_.journal_retries || Stopping() || stop.stop_requested() ||
                        SteadyClock::now() + delay > deadline;
      Status s = Handle(kind, payload, last);
      if (s.ok() || !Transient(s) || last) return s;
      spdlog::warn("downstream: {} message not applied ({}); retrying in {} ms",
                   DownstreamKindName(kind), s.message(), delay.count());
      std::unique_lock lk(mu_);
      cv_.wait_for(lk, stop, delay, [&] { return stopping_; });
      delay *= 2;
    }
  }

  Status Submit(DownstreamKind kind, std::string_view payload, std::stop_token stop) {
    if (Stopping()) {
      return Refuse(kind, payload.size(), "shutting_down",
                    Status::Unavailable("the gateway is stopping; HQ must resend this message"));
    }
    return ApplyWithRetries(kind, payload, std::move(stop));
  }

 private:
  bool Stopping() {
    std::lock_guard lk(mu_);
    return stopping_;
  }

  Status HandleStock(std::string_view payload, bool last_attempt) {
    const auto kind = DownstreamKind::kStock;
    if (payload.empty()) {
      return Refuse(kind, 0, "empty",
                    Status::InvalidArgument("payload", "empty message (expected a StockSnapshot)"));
    }
    v1::StockSnapshot snap;
    if (payload.size() > INT_MAX ||
        !snap.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
      return Refuse(kind, payload.size(), "undecodable",
                    Status::InvalidArgument("payload", "not a StockSnapshot protobuf message"));
    }
    if (Status v = storage::ValidateSnapshot(snap); !v.ok()) {
      return Refuse(kind, payload.size(), ReasonForField(v.field()), v);
    }
    // For the label only: the journal decides, and journals the alert.
    std::string why_rejected = "rejected";
    if (snap.store_id() != journal_->store_id()) {
      why_rejected = "other_store";
    } else if (snap.epoch() != journal_->epoch()) {
      why_rejected = "other_epoch";
    }
    const auto t0 = SteadyClock::now();
    auto r = journal_->ApplySnapshot(snap);
    const auto took =
        std::chrono::duration_cast<std::chrono::microseconds>(SteadyClock::now() - t0);
    if (!r.ok()) {
      const Status& s = r.status();
      if (s.code() == StatusCode::kInvalidArgument) {
        return Refuse(kind, payload.size(), ReasonForField(s.field()), s);
      }
      if (last_attempt || !Transient(s)) {
        (void)Refuse(kind, payload.size(), "journal_error", s);
      }
      return s;
    }
    switch (r->outcome) {
      case storage::SnapshotResult::Outcome::kRejected:
        return Refuse(
            kind, payload.size(), why_rejected,
            Status::FailedPrecondition(
                "snapshot hq_version " + std::to_string(snap.hq_version()) + " for store " +
                snap.store_id() + " epoch " + std::to_string(snap.epoch()) + " rejected (" +
                r->reason + "); this journal is store " + journal_->store_id() + " epoch " +
                std::to_string(journal_->epoch()) + "; a SNAPSHOT_REJECTED alert was journaled"));
      case storage::SnapshotResult::Outcome::kStale: {
        std::lock_guard lk(mu_);
        ++c_.snapshots_stale;
        c_.snapshot_lines_stale += r->skus_stale;
        Timing(took);
        spdlog::info(
            "downstream: snapshot hq_version {} (as_of_seq {}, {} lines) is older than the "
            "current base: ignored ({})",
            snap.hq_version(), snap.as_of_seq(), snap.lines_size(), r->reason);
        return {};
      }
      case storage::SnapshotResult::Outcome::kApplied: {
        std::lock_guard lk(mu_);
        ++c_.snapshots_applied;
        c_.snapshot_lines_applied += r->skus_applied;
        c_.snapshot_lines_stale += r->skus_stale;
        Timing(took);
        spdlog::info(
            "downstream: snapshot hq_version {} applied (as_of_seq {}): {} skus rebased, {} "
            "stale, {} ms, seq {}",
            snap.hq_version(), snap.as_of_seq(), r->skus_applied, r->skus_stale,
            took.count() / 1000, r->seq);
        return {};
      }
    }
    return {};
  }

  void Timing(std::chrono::microseconds took) {  // mu_ held
    c_.last_snapshot_apply = took;
    if (took > c_.max_snapshot_apply) c_.max_snapshot_apply = took;
  }

  // The payload as a `Msg` (named `name` in the refusal), or the refusal:
  // an empty message and undecodable bytes are refused and counted here.
  template <typename Msg>
  Status Decode(DownstreamKind kind, std::string_view payload, const char* name, Msg* out) {
    if (payload.empty()) {
      return Refuse(kind, 0, "empty",
                    Status::InvalidArgument(
                        "payload", std::string("empty message (expected a ") + name + ")"));
    }
    if (payload.size() > INT_MAX ||
        !out->ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
      return Refuse(kind, payload.size(), "undecodable",
                    Status::InvalidArgument(
                        "payload", std::string("not a ") + name + " protobuf message"));
    }
    return {};
  }

  // What a failed journal apply becomes: a refusal when the journal found
  // the message invalid; else the error itself (retried when transient),
  // counted as journal_error on the last attempt or when it is not transient.
  Status ApplyFailed(DownstreamKind kind, size_t bytes, const Status& s, bool last_attempt) {
    if (s.code() == StatusCode::kInvalidArgument) {
      return Refuse(kind, bytes, ReasonForField(s.field()), s);
    }
    if (last_attempt || !Transient(s)) (void)Refuse(kind, bytes, "journal_error", s);
    return s;
  }

  Status HandlePrice(std::string_view payload, bool last_attempt) {
    const auto kind = DownstreamKind::kPrices;
    v1::PriceUpdate up;
    if (Status d = Decode(kind, payload, "PriceUpdate", &up); !d.ok()) return d;
    if (Status v = storage::ValidatePriceUpdate(up); !v.ok()) {
      return Refuse(kind, payload.size(), ReasonForField(v.field()), v);
    }
    if (up.store_id() != journal_->store_id()) {
      return Refuse(kind, payload.size(), "other_store",
                    Status::InvalidArgument("store_id", "price update for store \"" +
                                                            up.store_id() + "\", this is store \"" +
                                                            journal_->store_id() + "\""));
    }
    auto r = journal_->ApplyPriceUpdate(up);
    if (!r.ok()) return ApplyFailed(kind, payload.size(), r.status(), last_attempt);
    std::lock_guard lk(mu_);
    if (r->duplicate) {
      ++c_.prices_duplicate;
      spdlog::debug("downstream: price update for {} from {} already recorded (seq {})", up.sku(),
                    up.effective_from(), r->seq);
    } else {
      ++c_.prices_applied;
      spdlog::info("downstream: price of {} = {} {} from {} (us) recorded, seq {}", up.sku(),
                   up.price(), up.currency(), up.effective_from(), r->seq);
    }
    return {};
  }

  Status HandleRules(std::string_view payload, bool last_attempt) {
    const auto kind = DownstreamKind::kRules;
    v1::StoreRules rules;
    if (Status d = Decode(kind, payload, "StoreRules", &rules); !d.ok()) return d;
    if (Status v = storage::ValidateStoreRules(rules); !v.ok()) {
      return Refuse(kind, payload.size(), ReasonForField(v.field()), v);
    }
    if (rules.store_id() != journal_->store_id()) {
      return Refuse(kind, payload.size(), "other_store",
                    Status::InvalidArgument(
                        "store_id", "store rules for store \"" + rules.store_id() +
                                        "\", this is store \"" + journal_->store_id() + "\""));
    }
    auto r = journal_->ApplyStoreRules(rules);
    if (!r.ok()) return ApplyFailed(kind, payload.size(), r.status(), last_attempt);
    std::lock_guard lk(mu_);
    ++c_.rules_applied;
    spdlog::info("downstream: store rules applied ({} hold times, {} sensor limits), seq {}",
                 r->hold_times, r->sensor_limits, r->seq);
    return {};
  }

  // Counts and logs a refusal; returns `why` (with its field kept).
  Status Refuse(DownstreamKind kind, size_t bytes, const std::string& reason, Status why) {
    bool log = true;
    uint64_t suppressed = 0;
    {
      std::lock_guard lk(mu_);
      ++c_.refused[reason];
      // A flood of bad messages must not flood the log: at most 20 lines a
      // minute, then one line saying how many were left out.
      const auto now = SteadyClock::now();
      if (now - log_window_start_ >= std::chrono::minutes(1)) {
        suppressed = log_suppressed_;
        log_suppressed_ = 0;
        log_window_start_ = now;
        log_lines_ = 0;
      }
      if (log_lines_ >= 20) {
        ++log_suppressed_;
        log = false;
      } else {
        ++log_lines_;
      }
    }
    if (suppressed > 0) {
      spdlog::warn("downstream: {} more refused messages were not logged (see /metrics)",
                   suppressed);
    }
    if (log) {
      const std::string field = why.field().empty() ? "" : why.field() + ": ";
      spdlog::warn("downstream: refused a {} message ({} bytes): {}: {}{}",
                   DownstreamKindName(kind), bytes, reason, field, why.message());
    }
    if (why.ok()) return Status::FailedPrecondition(reason);
    return why;
  }

  storage::Journal* const journal_;
  const DownstreamOptions opt_;

  std::mutex handle_mu_;   // one message at a time (Submit, worker)
  mutable std::mutex mu_;  // guards everything below
  // _any: the retry wait also wakes on Submit's stop token.
  std::condition_variable_any cv_;
  std::deque<Item> queue_;
  size_t queued_bytes_ = 0;
  bool started_ = false;
  bool stopping_ = false;
  DownstreamCounters c_;
  SteadyClock::time_point log_window_start_{};
  int log_lines_ = 0;
  uint64_t log_suppressed_ = 0;
  std::thread worker_;
};

Downstream::Downstream(storage::Journal* journal, DownstreamOptions options)
    : impl_(std::make_unique<Impl>(journal, std::move(options))) {}
Downstream::~Downstream() {
  Stop();
}
Status Downstream::Handle(DownstreamKind kind, std::string_view payload) {
  return impl_->Handle(kind, payload, true);
}
Status Downstream::Submit(DownstreamKind kind, std::string_view payload, std::stop_token stop) {
  return impl_->Submit(kind, payload, std::move(stop));
}
void Downstream::Enqueue(DownstreamKind kind, std::string payload) {
  impl_->Enqueue(kind, std::move(payload));
}
Status Downstream::Start() {
  return impl_->Start();
}
void Downstream::Stop() {
  if (impl_) impl_->Stop();
}
DownstreamCounters Downstream::counters() const {
  return impl_->counters();
}

}  // namespace storegw::sync
