// 16 clients post batches while another client keeps retrying the same
// batches: each event_id must be journaled exactly once, and every 200
// result must name the seq the journal holds for that event_id.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <random>
#include <thread>

#include "common/ids.h"
#include "devices_test_util.h"

namespace storegw::devices {
namespace {

using namespace testing;

constexpr int kClients = 16;
constexpr int kBatchesPerClient = 12;
constexpr int kEventsPerBatch = 8;

std::string BatchBody(int client, int batch) {
  std::vector<std::string> events;
  for (int k = 0; k < kEventsPerBatch; ++k) {
    const std::string id =
        test::Id("c", client) + test::Id("-b", batch) + test::Id("-e", k);
    // Receipts and counts: stock moves, no oversell alerts in the journal.
    if (k % 4 == 3) {
      events.push_back(R"({"event_id":")" + id + R"(","device_id":"hh-)" + std::to_string(client) +
                       R"(","occurred_at":1700000000000000,"count":{"sku":"SKU-)" + std::to_string(k) + R"(","qty":7}})");
    } else {
      events.push_back(ReceiptJson(id, test::Id("SKU-", (client + k) % 10), k + 1,
                                   test::Id("hh-", client)));
    }
  }
  return Batch(events);
}

TEST_CASE("concurrent batches and retries: each event once, every 200 matches the journal") {
  ApiOptions o;
  o.threads = 24;
  TestGateway gw(o);

  std::mutex mu;
  std::map<std::string, std::set<uint64_t>>
      answered;  // event_id -> seqs seen in 200s; guarded by mu
  std::atomic<int> failures{0};
  std::atomic<int> retry_duplicates{0};

  const auto record = [&](const httplib::Result& r, int* dups) {
    if (!r || r->status != 200) {
      ++failures;
      return;
    }
    v1::IngestResponse resp;
    if (!google::protobuf::util::JsonStringToMessage(r->body, &resp).ok() ||
        resp.results_size() != kEventsPerBatch) {
      ++failures;
      return;
    }
    std::lock_guard<std::mutex> lock(mu);
    for (const auto& res : resp.results()) {
      answered[res.event_id()].insert(res.seq());
      if (dups && res.duplicate()) ++*dups;
    }
  };

  std::atomic<int> posters_done{0};
  std::vector<std::atomic<int>> progress(kClients);  // batch each poster is sending
  std::vector<std::thread> threads;
  for (int t = 0; t < kClients; ++t) {
    threads.emplace_back([&, t] {
      auto c = gw.Client();
      for (int b = 0; b < kBatchesPerClient; ++b) {
        progress[static_cast<size_t>(t)].store(b);
        record(c->Post("/v1/events", BatchBody(t, b), "application/json"), nullptr);
      }
      ++posters_done;
    });
  }
  // The retrier: resends the batch a poster is sending right now, or the one
  // just before or after it, over and over until every poster is done (so
  // the same event_ids are often in two requests at once), then a final pass
  // over all batches.
  int retries = 0;
  int retrier_first = 0;  // events the retrier landed before their poster did
  std::thread retrier([&] {
    auto c = gw.Client();
    std::mt19937 rng(42);
    int dups = 0;
    while (posters_done.load() < kClients) {
      const int t = static_cast<int>(rng() % kClients);
      const int near = progress[static_cast<size_t>(t)].load() + static_cast<int>(rng() % 3) - 1;
      const int b = std::clamp(near, 0, kBatchesPerClient - 1);
      const int dups_before = dups;
      record(c->Post("/v1/events", BatchBody(t, b), "application/json"), &dups);
      retrier_first += kEventsPerBatch - (dups - dups_before);
      ++retries;
    }
    for (int t = 0; t < kClients; ++t) {
      for (int b = 0; b < kBatchesPerClient; ++b) {
        record(c->Post("/v1/events", BatchBody(t, b), "application/json"), &dups);
        ++retries;
      }
    }
    retry_duplicates = dups;
  });
  for (auto& th : threads) th.join();
  retrier.join();

  CHECK(failures.load() == 0);
  // The final pass alone resends every batch after it was journaled.
  CHECK(retry_duplicates.load() >= kClients * kBatchesPerClient * kEventsPerBatch);
  MESSAGE("retrier sent " << retries << " batches; " << retrier_first
                          << " events landed through the retrier first");

  uint64_t total = 0;
  const auto journaled = JournaledDeviceEvents(gw.data_dir(), &total);
  CHECK(journaled.size() == static_cast<size_t>(kClients * kBatchesPerClient * kEventsPerBatch));
  CHECK(total == journaled.size());  // nothing but these events
  for (const auto& kv : journaled) {
    const auto& id = kv.first;
    const auto& seqs = kv.second;
    CAPTURE(id);
    CHECK(seqs.size() == 1);  // exactly once
  }
  std::lock_guard<std::mutex> lock(mu);
  CHECK(answered.size() == journaled.size());
  for (const auto& kv : answered) {
    const auto& id = kv.first;
    const auto& seqs = kv.second;
    CAPTURE(id);
    REQUIRE(journaled.count(id) == 1);
    CHECK(seqs == std::set<uint64_t>{journaled.at(id).front()});
  }
  // The journal's seqs are dense.
  std::set<uint64_t> all;
  for (const auto& [id, seqs] : journaled) all.insert(seqs.front());
  CHECK(*all.begin() == 1);
  CHECK(*all.rbegin() == all.size());
}

}  // namespace
}  // namespace storegw::devices
