// What the black-box tests of a running `storegw run` share: tills posting
// receipts for as long as a test wants (every acknowledged event_id with
// its seq kept), and the check that a journal holds each of them once.
#pragma once

#include <doctest/doctest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "test_util.h"

namespace storegw::test {

// Every acknowledged (event_id, seq) is in `events` exactly once, with that
// seq; the events' seqs are dense from 1; no event_id is there twice.
inline void CheckAcknowledged(const std::vector<v1::JournaledEvent>& events,
                              const std::map<std::string, uint64_t>& acked) {
  std::map<std::string, std::vector<uint64_t>> by_id;
  for (size_t i = 0; i < events.size(); ++i) {
    REQUIRE_MESSAGE(events[i].seq() == i + 1, "seq gap or disorder at index " << i);
    by_id[events[i].event().event_id()].push_back(events[i].seq());
  }
  size_t missing = 0, wrong = 0;
  for (const auto& [id, seq] : acked) {
    auto it = by_id.find(id);
    if (it == by_id.end()) {
      ++missing;
      continue;
    }
    if (it->second.size() != 1 || it->second[0] != seq) ++wrong;
  }
  CHECK_MESSAGE(missing == 0, missing << " acknowledged events missing from the journal");
  CHECK_MESSAGE(wrong == 0, wrong << " acknowledged events journaled twice or with another seq");
  for (const auto& [id, seqs] : by_id) CHECK_MESSAGE(seqs.size() == 1, id << " journaled twice");
}

// `clients` tills, each posting batches of 5 receipts ("<prefix>-C-N-I" on
// device till-0C, skus "<sku_prefix>I") to the daemon on `port` until
// Stop() (or destruction: a failed REQUIRE never leaves threads joinable).
class TillLoad {
 public:
  TillLoad(uint16_t port, int clients, std::string prefix, std::string sku_prefix) {
    for (int c = 0; c < clients; ++c) {
      threads_.emplace_back([this, port, c, prefix, sku_prefix] {
        httplib::Client cli("127.0.0.1", port);
        cli.set_keep_alive(true);
        cli.set_connection_timeout(std::chrono::seconds(2));
        cli.set_read_timeout(std::chrono::seconds(5));
        for (int n = 0; !stop_; ++n) {
          std::vector<std::string> events, ids;
          for (int i = 0; i < 5; ++i) {
            ids.push_back(prefix + "-" + std::to_string(c) + "-" + std::to_string(n) + "-" +
                          std::to_string(i));
            events.push_back(ReceiptJson(ids.back(), "till-0" + std::to_string(c),
                                         sku_prefix + std::to_string(i), 1));
          }
          auto res = cli.Post("/v1/events", BatchJson(events), "application/json");
          if (!res) {
            ++no_answer_;
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
            continue;
          }
          if (res->status != 200) {
            ++refused_;
            continue;
          }
          auto resp = FromJson<v1::IngestResponse>(res->body);
          if (!resp || resp->results_size() != 5) {
            ++bad_answers_;
            continue;
          }
          std::lock_guard lock(mu_);
          for (int i = 0; i < 5; ++i) {
            if (resp->results(i).event_id() != ids[static_cast<size_t>(i)]) ++bad_answers_;
            acked_[resp->results(i).event_id()] = resp->results(i).seq();
          }
        }
      });
    }
  }
  ~TillLoad() { Stop(); }
  TillLoad(const TillLoad&) = delete;
  TillLoad& operator=(const TillLoad&) = delete;

  void Stop() {
    stop_ = true;
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }
  std::map<std::string, uint64_t> acked() const {
    std::lock_guard lock(mu_);
    return acked_;
  }
  int refused() const { return refused_.load(); }      // non-200 answers (503)
  int no_answer() const { return no_answer_.load(); }  // requests without an answer
  int bad_answers() const { return bad_answers_.load(); }

 private:
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::map<std::string, uint64_t> acked_;  // guarded by mu_
  std::atomic<int> refused_{0}, no_answer_{0}, bad_answers_{0};
  std::vector<std::thread> threads_;
};

}  // namespace storegw::test
