#include "ingest.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <exception>
#include <future>
#include <random>
#include <span>
#include <tuple>

#include "backoff.h"

namespace storegw::hq::internal {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Whole seconds, at least 1: what Retry-After says for a back-off.
std::chrono::seconds CeilSeconds(milliseconds d) {
  return std::chrono::seconds(std::max<int64_t>(1, (d.count() + 999) / 1000));
}

}  // namespace

struct Ingest::Waiter {
  std::promise<StoreAnswer> promise;
  void Answer(StoreAnswer a) {
    try {
      promise.set_value(std::move(a));
    } catch (const std::future_error&) {
      // Answered already.
    }
  }
};

Ingest::Ingest(EventStore* store, Reporter* reporter, uint32_t max_batches_per_txn,
               milliseconds max_txn_delay, size_t max_queued_bytes, size_t max_txn_bytes)
    : store_(store),
      reporter_(reporter),
      max_batches_(std::max<uint32_t>(1, max_batches_per_txn)),
      max_delay_(max_txn_delay),
      capacity_(std::max<size_t>(16, 4 * size_t{max_batches_})),
      max_queued_bytes_(max_queued_bytes),
      max_txn_bytes_(max_txn_bytes) {}

Ingest::~Ingest() { Stop(); }

void Ingest::Start() {
  std::lock_guard lk(mu_);
  if (started_ || closed_) return;
  started_ = true;
  thread_ = std::thread([this] { Run(); });
}

void Ingest::Close() {
  std::lock_guard lk(mu_);
  closed_ = true;
  FailQueuedHttpsLocked(std::chrono::seconds(1));
  work_cv_.notify_all();
  space_cv_.notify_all();
}

void Ingest::Stop() {
  Close();
  if (thread_.joinable()) thread_.join();  // after its last transaction
  std::lock_guard lk(mu_);
  queue_.clear();
  mqtt_queued_ = 0;
  mqtt_queued_bytes_ = 0;
  queued_bytes_ = 0;
}

bool Ingest::SubmitMqtt(IncomingBatch batch, std::string source) {
  const size_t bytes = batch.batch.ByteSizeLong();
  std::unique_lock lk(mu_);
  ++blocked_submits_;
  space_cv_.wait(lk, [&] {
    return closed_ || (mqtt_queued_ < capacity_ &&
                       (mqtt_queued_ == 0 || mqtt_queued_bytes_ + bytes <= max_queued_bytes_));
  });
  --blocked_submits_;
  if (closed_) return false;
  queue_.push_back(Item{std::move(batch), std::move(source), nullptr, Clock::now(), bytes});
  ++mqtt_queued_;
  mqtt_queued_bytes_ += bytes;
  queued_bytes_ += bytes;
  work_cv_.notify_one();
  return true;
}

size_t Ingest::blocked_submits() const {
  std::lock_guard lk(mu_);
  return blocked_submits_;
}

StoreAnswer Ingest::SubmitHttps(IncomingBatch batch, std::string source, milliseconds timeout) {
  const size_t bytes = batch.batch.ByteSizeLong();
  auto waiter = std::make_shared<Waiter>();
  std::future<StoreAnswer> answer = waiter->promise.get_future();
  {
    std::lock_guard lk(mu_);
    if (closed_) return StoreAnswer{};
    if (retry_after_.count() > 0) {
      // The store is failing: do not wait for the back-off.
      StoreAnswer a;
      a.retry_after = retry_after_;
      return a;
    }
    queue_.push_back(Item{std::move(batch), std::move(source), waiter, Clock::now(), bytes});
    queued_bytes_ += bytes;
    work_cv_.notify_one();
  }
  if (answer.wait_for(timeout) != std::future_status::ready) return StoreAnswer{};
  return answer.get();
}

void Ingest::SubmitStatus(v1::GatewayStatus status, int64_t received_at_us) {
  std::lock_guard lk(mu_);
  if (closed_) return;
  auto key = std::make_pair(status.store_id(), status.gateway_id());
  statuses_[std::move(key)] = {std::move(status), received_at_us};
  work_cv_.notify_one();
}

void Ingest::FailQueuedHttpsLocked(std::chrono::seconds retry_after) {
  for (auto it = queue_.begin(); it != queue_.end();) {
    if (it->waiter) {
      StoreAnswer a;
      a.retry_after = retry_after;
      it->waiter->Answer(a);
      queued_bytes_ -= it->bytes;
      it = queue_.erase(it);
    } else {
      ++it;
    }
  }
}

void Ingest::Run() {
  sync::Backoff backoff(milliseconds(100), std::chrono::seconds(10), std::random_device{}());
  std::vector<Item> retry;  // MQTT items of a failed transaction
  Clock::time_point retry_at{};
  Clock::time_point status_retry_at{};
  for (;;) {
    std::vector<Item> group;
    bool statuses_waiting = false;
    {
      std::unique_lock lk(mu_);
      if (!retry.empty()) {
        // Back-off: HTTPS batches are answered at once meanwhile.
        for (;;) {
          const auto now = Clock::now();
          if (closed_ || now >= retry_at) break;
          retry_after_ = CeilSeconds(std::chrono::duration_cast<milliseconds>(retry_at - now));
          FailQueuedHttpsLocked(retry_after_);
          work_cv_.wait_until(lk, retry_at);
        }
        retry_after_ = std::chrono::seconds(0);
      } else {
        // Statuses wait for their own back-off after a failure.
        while (!closed_ && queue_.empty()) {
          if (statuses_.empty()) {
            work_cv_.wait(lk);
          } else if (Clock::now() < status_retry_at) {
            work_cv_.wait_until(lk, status_retry_at);
          } else {
            break;
          }
        }
        if (!queue_.empty()) {
          // Gather: until the group is full (batches or bytes) or
          // max_txn_delay after the first arrival.
          const auto deadline = queue_.front().arrived + max_delay_;
          work_cv_.wait_until(lk, deadline, [&] {
            return closed_ || queue_.size() >= max_batches_ || queued_bytes_ >= max_txn_bytes_;
          });
        }
      }
      // Closed: what is queued is still stored (its messages count as
      // delivered at the broker), unless the store is failing.
      if (closed_ && (queue_.empty() || !retry.empty())) break;
      group = std::move(retry);
      retry.clear();
      size_t group_bytes = 0;
      for (const Item& it : group) group_bytes += it.bytes;
      while (group.size() < max_batches_ && !queue_.empty() &&
             (group.empty() || group_bytes + queue_.front().bytes <= max_txn_bytes_)) {
        const size_t bytes = queue_.front().bytes;
        if (!queue_.front().waiter) {
          --mqtt_queued_;
          mqtt_queued_bytes_ -= bytes;
        }
        queued_bytes_ -= bytes;
        group_bytes += bytes;
        group.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      statuses_waiting = !statuses_.empty();
      space_cv_.notify_all();
    }
    if (!group.empty()) {
      const milliseconds wait = backoff.Ceiling(backoff.failures());
      if (Apply(group, CeilSeconds(wait))) {
        backoff.Reset();
      } else {
        retry = std::move(group);  // the MQTT items only (Apply answered the rest)
        retry_at = Clock::now() + backoff.Next();
        if (retry.empty()) retry_at = Clock::now();
      }
    }
    if (statuses_waiting && retry.empty() && Clock::now() >= status_retry_at &&
        !RecordStatuses()) {
      status_retry_at = Clock::now() + backoff.Next();
    }
  }
  spdlog::debug("hq: transaction thread stops ({} MQTT batches not stored, not acknowledged)",
                retry.size());
}

bool Ingest::Apply(std::vector<Item>& group, std::chrono::seconds retry_after) {
  std::vector<IncomingBatch> batches;
  batches.reserve(group.size());
  for (auto& it : group) batches.push_back(std::move(it.batch));
  std::vector<BatchOutcome> outcomes;
  Status st;
  try {
    st = store_->ApplyBatches(std::span<const IncomingBatch>(batches), &outcomes);
  } catch (const std::exception& e) {
    st = Status::Unavailable(std::string("store threw: ") + e.what());
  }
  if (st.ok() && outcomes.size() != batches.size()) {
    st = Status::Unavailable("store answered " + std::to_string(outcomes.size()) +
                             " outcomes for " + std::to_string(batches.size()) + " batches");
  }
  for (size_t i = 0; i < group.size(); ++i) group[i].batch = std::move(batches[i]);

  if (!st.ok()) {
    reporter_->StoreError(st.ToString());
    std::vector<Item> keep;
    for (auto& it : group) {
      if (it.waiter) {
        StoreAnswer a;
        a.retry_after = retry_after;
        it.waiter->Answer(a);
      } else {
        keep.push_back(std::move(it));
      }
    }
    group = std::move(keep);
    return false;
  }

  // The applied prefix per (store, gateway, epoch) of the MQTT batches.
  std::map<std::tuple<std::string, std::string, uint64_t>, uint64_t> acks;
  uint64_t stored = 0, events = 0, dups = 0;
  for (size_t i = 0; i < group.size(); ++i) {
    const Item& it = group[i];
    const BatchOutcome& o = outcomes[i];
    const v1::EventBatch& b = it.batch.batch;
    if (o.refused) {
      reporter_->Refused(*o.refused, it.source,
                         "batch " + std::to_string(b.first_seq()) + ".." +
                             std::to_string(b.last_seq()) + " of epoch " +
                             std::to_string(b.epoch()) + ": " + o.refuse_detail);
      if (it.waiter) {
        StoreAnswer a;
        a.kind = StoreAnswer::Kind::kRefused;
        a.outcome = o;
        it.waiter->Answer(std::move(a));
      }
      continue;
    }
    ++stored;
    events += o.events_stored;
    dups += o.events_duplicate;
    if (it.waiter) {
      StoreAnswer a;
      a.kind = StoreAnswer::Kind::kStored;
      a.outcome = o;
      it.waiter->Answer(std::move(a));
    } else if (o.applied_seq > 0) {
      uint64_t& seq = acks[{b.store_id(), b.gateway_id(), b.epoch()}];
      seq = std::max(seq, o.applied_seq);
    }
  }
  reporter_->Update([&](ReceiverStats& s) {
    s.batches_stored += stored;
    s.events_stored += events;
    s.events_duplicate += dups;
  });
  if (!acks.empty() && ack_sink_) {
    std::vector<AckTarget> out;
    out.reserve(acks.size());
    for (const auto& [k, seq] : acks) {
      out.push_back(AckTarget{std::get<0>(k), std::get<1>(k), std::get<2>(k), seq});
    }
    ack_sink_(std::move(out));
  }
  return true;
}

bool Ingest::RecordStatuses() {
  decltype(statuses_) todo;
  {
    std::lock_guard lk(mu_);
    todo.swap(statuses_);
  }
  for (auto it = todo.begin(); it != todo.end();) {
    Status st;
    try {
      st = store_->RecordStatus(it->second.first, it->second.second);
    } catch (const std::exception& e) {
      st = Status::Unavailable(std::string("store threw: ") + e.what());
    }
    if (!st.ok()) {
      reporter_->StoreError("recording the status of store " + it->first.first + " gateway " +
                            it->first.second + ": " + st.ToString());
      break;  // the rest waits for the next round
    }
    it = todo.erase(it);
  }
  if (todo.empty()) return true;
  std::lock_guard lk(mu_);
  for (auto& [k, v] : todo) statuses_.try_emplace(k, std::move(v));  // newer ones win
  return false;
}

}  // namespace storegw::hq::internal
