// The transaction thread's byte bounds (sync/hq/receiver/src/ingest.h),
// what keeps a replica's memory bounded whatever the gateways' batch
// sizes: MQTT batches queue up to max_queued_bytes (serialized), a
// transaction takes up to max_txn_bytes of them, and a batch larger than
// either still goes through, alone. Against a store that records each
// transaction's batches and can hold the first one.
#include <doctest/doctest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "batch_util.h"
#include "ingest.h"
#include "reporter.h"

namespace storegw::hq {
namespace {

using namespace std::chrono_literals;
using internal::Ingest;
using internal::Reporter;
using sync_test::WaitUntil;

class GateStore final : public EventStore {
 public:
  explicit GateStore(bool hold_first) : open_(!hold_first) {}
  Status ApplyBatches(std::span<const IncomingBatch> batches,
                      std::vector<BatchOutcome>* outcomes) override {
    std::unique_lock lk(mu_);
    groups_.push_back(batches.size());
    cv_.wait(lk, [&] { return open_; });
    outcomes->assign(batches.size(), BatchOutcome{});
    for (size_t i = 0; i < batches.size(); ++i) {
      (*outcomes)[i].events_stored = static_cast<uint64_t>(batches[i].batch.events_size());
      (*outcomes)[i].applied_seq = batches[i].batch.last_seq();
    }
    return {};
  }
  Status RecordStatus(const v1::GatewayStatus&, int64_t) override { return {}; }
  Status AppliedSeq(const std::string&, const std::string&, uint64_t, uint64_t* seq) override {
    *seq = 0;
    return {};
  }
  Status Fleet(std::vector<FleetRow>*) override { return {}; }

  void Release() {
    std::lock_guard lk(mu_);
    open_ = true;
    cv_.notify_all();
  }
  std::vector<size_t> groups() const {
    std::lock_guard lk(mu_);
    return groups_;
  }
  size_t batches() const {
    size_t n = 0;
    for (size_t g : groups()) n += g;
    return n;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool open_;
  std::vector<size_t> groups_;
};

// Releases the store before the Ingest declared before it stops (its
// thread may be inside the store).
struct ReleaseAtEnd {
  GateStore& store;
  ~ReleaseAtEnd() { store.Release(); }
};

// Batches of the same size: 100 till sales of gateway gw-N (N one digit).
IncomingBatch Batch(int n) {
  IncomingBatch b;
  b.batch = hq_test::MakeBatch("s1", "gw-" + std::to_string(n), 7, 1, 100);
  return b;
}

TEST_CASE("ingest: a transaction takes at most max_txn_bytes of batches") {
  const size_t b = Batch(1).batch.ByteSizeLong();
  REQUIRE(Batch(4).batch.ByteSizeLong() == b);
  GateStore store(/*hold_first=*/false);
  Reporter reporter;
  // A long max_txn_delay: only the byte bound closes a transaction early.
  Ingest ingest(&store, &reporter, /*max_batches_per_txn=*/64, /*max_txn_delay=*/60s,
                /*max_queued_bytes=*/100 * b, /*max_txn_bytes=*/2 * b);
  ReleaseAtEnd release{store};
  ingest.Start();
  for (int n = 1; n <= 4; ++n) REQUIRE(ingest.SubmitMqtt(Batch(n), "test"));
  REQUIRE(WaitUntil([&] { return store.batches() == 4; }, 60s));
  CHECK(store.groups() == std::vector<size_t>{2, 2});
  ingest.Stop();
}

TEST_CASE("ingest: MQTT batches queue up to max_queued_bytes, then the submit waits for room") {
  const size_t b = Batch(1).batch.ByteSizeLong();
  GateStore store(/*hold_first=*/true);
  Reporter reporter;
  Ingest ingest(&store, &reporter, /*max_batches_per_txn=*/64, /*max_txn_delay=*/0ms,
                /*max_queued_bytes=*/2 * b, /*max_txn_bytes=*/b);
  ReleaseAtEnd release{store};
  ingest.Start();
  // The first batch is taken by a transaction the store holds; two more
  // fill the queue's bytes (far below its batch count).
  REQUIRE(ingest.SubmitMqtt(Batch(1), "test"));
  REQUIRE(WaitUntil([&] { return store.groups().size() == 1; }, 60s));
  REQUIRE(ingest.SubmitMqtt(Batch(2), "test"));
  REQUIRE(ingest.SubmitMqtt(Batch(3), "test"));
  std::atomic<int> fourth{-1};
  std::thread t([&] { fourth = ingest.SubmitMqtt(Batch(4), "test") ? 1 : 0; });
  REQUIRE(WaitUntil([&] { return ingest.blocked_submits() == 1; }, 60s));
  CHECK(fourth == -1);
  store.Release();
  t.join();
  CHECK(fourth == 1);  // room once the transaction is done
  REQUIRE(WaitUntil([&] { return store.batches() == 4; }, 60s));
  CHECK(store.groups() == std::vector<size_t>{1, 1, 1, 1});  // max_txn_bytes: one each
  ingest.Stop();
}

TEST_CASE("ingest: a batch larger than both byte bounds goes through alone") {
  const size_t b = Batch(1).batch.ByteSizeLong();
  GateStore store(/*hold_first=*/false);
  Reporter reporter;
  Ingest ingest(&store, &reporter, 64, 0ms, /*max_queued_bytes=*/b / 2, /*max_txn_bytes=*/b / 2);
  ReleaseAtEnd release{store};
  ingest.Start();
  for (int n = 1; n <= 3; ++n) REQUIRE(ingest.SubmitMqtt(Batch(n), "test"));
  REQUIRE(WaitUntil([&] { return store.batches() == 3; }, 60s));
  CHECK(store.groups() == std::vector<size_t>{1, 1, 1});
  ingest.Stop();
}

}  // namespace
}  // namespace storegw::hq
