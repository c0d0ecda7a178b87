// The transaction thread between the ingress (MQTT callback, HTTPS
// handlers) and the EventStore.
//
// Checked batches queue here. One thread takes what is queued (at most
// max_batches_per_txn, waiting at most max_txn_delay_ms after the first
// arrival for more) and stores it with one EventStore::ApplyBatches call,
// i.e. one transaction. Only after it returned ok:
//   * MQTT batches: the applied prefix of each (store, gateway, epoch) the
//     group touched goes to the ack sink (the MQTT ingress publishes HqAck
//     on the batch's own {prefix}/{store}/{gateway}/ack), also
//     for a batch that was all duplicates, never for a prefix of 0;
//   * HTTPS batches: the waiting handler gets the outcome (2xx with HqAck).
// When the transaction fails (the store is down), nothing is acknowledged:
// MQTT batches stay and are retried after a back-off (capped exponential,
// full jitter, 100 ms .. 10 s); HTTPS batches are answered "unavailable"
// at once (503 + Retry-After: the gateway resends), and so is every HTTPS
// batch that arrives while the back-off runs. Batches the store refuses
// (superseded epoch, conflict) are counted and logged, never acknowledged.
//
// Back-pressure: MQTT batches wait in a bounded queue: 4 transactions'
// worth of batches and at most max_queued_bytes of them (serialized
// size; at least one batch). SubmitMqtt blocks while it is full, which
// holds Paho's receive thread and so the broker's further deliveries. A
// transaction takes at most max_batches_per_txn batches and at most
// max_txn_bytes of them (at least one). The byte bounds are what bound a
// replica's memory, whatever the gateways' batch sizes: a decoded batch
// takes about 7 times its serialized size (500 till sales: 44 KB
// serialized, 330 KB in memory), and its JSON and COPY rows as much
// again while its transaction runs; with counts alone, 256 queued batches
// and 64 in a transaction of 500 events each took a replica to ~200 MB.
// Gateway statuses wait in a map (latest per (store, gateway)) and are
// recorded between transactions.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "reporter.h"
#include "storegw/hq/store.h"

namespace storegw::hq::internal {

// One HqAck to publish on {prefix}/{store_id}/{gateway_id}/ack: every seq
// of (store_id, gateway_id, epoch) up to `seq` is stored.
struct AckTarget {
  std::string store_id;
  std::string gateway_id;
  uint64_t epoch = 0;
  uint64_t seq = 0;
};

// What an HTTPS handler gets back for its batch.
struct StoreAnswer {
  enum class Kind {
    kStored,       // committed: outcome.applied_seq is the prefix
    kRefused,      // the store refused it: outcome.refused
    kUnavailable,  // not stored (store down, or the receiver stops): retry
  };
  Kind kind = Kind::kUnavailable;
  BatchOutcome outcome;
  std::chrono::seconds retry_after{1};
};

class Ingest {
 public:
  using AckSink = std::function<void(std::vector<AckTarget>)>;

  // Serialized bytes of the queued MQTT batches, at most (4 MiB: ~30 MB
  // decoded), and of one transaction's batches (256 KiB: ~6 batches of
  // 500 till sales, ~2,900 events, tens of ms of PostgreSQL's time; its
  // commit's fsync a few ms of it). Short transactions matter with
  // replicas: the broker deals every gateway's batches to all of them, and
  // a transaction holds its gateways' rows until it commits. With 2 MiB
  // (or 64 batches of 500) the replicas' backends waited for each other's
  // locks 24-29% of the time and 2 replicas drained 53,000-57,000 events/s;
  // with 256 KiB 8% and 77,000 (hq_e2e_bench drain2).
  static constexpr size_t kDefaultMaxQueuedBytes = size_t{4} << 20;
  static constexpr size_t kDefaultMaxTxnBytes = size_t{256} << 10;

  Ingest(EventStore* store, Reporter* reporter, uint32_t max_batches_per_txn,
         std::chrono::milliseconds max_txn_delay,
         size_t max_queued_bytes = kDefaultMaxQueuedBytes,
         size_t max_txn_bytes = kDefaultMaxTxnBytes);
  ~Ingest();  // Stop()
  Ingest(const Ingest&) = delete;
  Ingest& operator=(const Ingest&) = delete;

  // Where acks of MQTT batches go (called on the transaction thread; must
  // not block). Set before Start().
  void SetAckSink(AckSink sink) { ack_sink_ = std::move(sink); }

  void Start();
  // Wakes every blocked SubmitMqtt (they return false) and answers waiting
  // HTTPS batches "unavailable"; nothing is queued after it. Idempotent.
  void Close();
  // Close(), then joins the thread once it has stored what was queued
  // (one more transaction per max_batches_per_txn batches; none when the
  // store is failing: those batches are dropped unacknowledged and the
  // gateways resend them). The acks of those transactions are handed to
  // the ack sink before it returns.
  void Stop();

  // Queues an MQTT batch; blocks while the queue is full. False when
  // closed (the batch is dropped: unacknowledged).
  bool SubmitMqtt(IncomingBatch batch, std::string source);
  // Queues an HTTPS batch and waits for its transaction, at most `timeout`
  // (then kUnavailable; the batch may still be stored later, which the
  // gateway's resend finds as duplicates).
  StoreAnswer SubmitHttps(IncomingBatch batch, std::string source,
                          std::chrono::milliseconds timeout);
  // The gateway's latest status; recorded between transactions.
  void SubmitStatus(v1::GatewayStatus status, int64_t received_at_us);

  size_t queue_capacity() const { return capacity_; }
  size_t max_queued_bytes() const { return max_queued_bytes_; }
  size_t max_txn_bytes() const { return max_txn_bytes_; }
  // SubmitMqtt calls waiting for room in the queue now (tests, diagnostics).
  size_t blocked_submits() const;

 private:
  struct Waiter;  // an HTTPS handler waiting for its answer
  struct Item {
    IncomingBatch batch;
    std::string source;
    std::shared_ptr<Waiter> waiter;  // null: MQTT
    std::chrono::steady_clock::time_point arrived;
    size_t bytes = 0;  // serialized size of the batch
  };

  void Run();
  // Answers every queued HTTPS item "unavailable" (caller holds mu_).
  void FailQueuedHttpsLocked(std::chrono::seconds retry_after);
  // One transaction over `group`; false when it failed (the MQTT items are
  // then left in `group` for the retry, the HTTPS ones answered).
  bool Apply(std::vector<Item>& group, std::chrono::seconds retry_after);
  // False when the store failed (what is left waits for the next round).
  bool RecordStatuses();

  EventStore* const store_;
  Reporter* const reporter_;
  const size_t max_batches_;
  const std::chrono::milliseconds max_delay_;
  const size_t capacity_;  // MQTT items queued at most
  const size_t max_queued_bytes_;  // their serialized bytes at most (one item always fits)
  const size_t max_txn_bytes_;     // a transaction's batches' bytes at most (at least one)
  AckSink ack_sink_;

  mutable std::mutex mu_;  // guards the members below
  std::condition_variable work_cv_;   // an item or a status arrived, or closing
  std::condition_variable space_cv_;  // the queue has room, or closing
  std::deque<Item> queue_;
  size_t mqtt_queued_ = 0;
  size_t mqtt_queued_bytes_ = 0;
  size_t queued_bytes_ = 0;  // every queued item's (MQTT and HTTPS)
  size_t blocked_submits_ = 0;
  std::map<std::pair<std::string, std::string>, std::pair<v1::GatewayStatus, int64_t>> statuses_;
  bool closed_ = false;
  bool started_ = false;
  std::chrono::seconds retry_after_{0};  // > 0 while a failed transaction waits for its retry

  std::thread thread_;
};

}  // namespace storegw::hq::internal
