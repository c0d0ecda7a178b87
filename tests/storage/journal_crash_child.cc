// Child process of the crash test (journal_crash_test.cc).
//
//   journal_crash_child DATA_DIR RUN SEED
//
// Opens the journal in DATA_DIR and appends from 4 threads: batches of 1..20
// random events (sales that move stock, receipts, counts, adjustments,
// sensor readings) whose event_ids encode run, thread and counter. After each
// Append() returns OK it writes one "EVENT_ID SEQ" line per event to stdout
// (a pipe to the parent) with a single write(2), so every line the parent
// reads is an acknowledged, durable event. Runs until killed; exits on its
// own (status 0) after 30 s at most, and dies with its parent.
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "storegw/storage/journal.h"

namespace {

using namespace storegw;           // NOLINT
using namespace storegw::storage;  // NOLINT

std::mutex out_mu;
std::atomic<bool> failed{false};

void WriteAll(const std::string& s) {
  std::lock_guard lk(out_mu);
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = write(STDOUT_FILENO, s.data() + off, s.size() - off);
    if (n <= 0) _exit(3);  // the parent is gone
    off += static_cast<size_t>(n);
  }
}

v1::Event RandomEvent(std::mt19937_64& rng, const std::string& id) {
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  v1::Event e;
  e.set_event_id(id);
  e.set_device_id("till-" + std::to_string(pick(1, 4)));
  e.set_occurred_at(1'700'000'000'000'000 + pick(0, 1'000'000));
  const std::string sku = "sku-" + std::to_string(pick(0, 7));
  const int kind = pick(0, 99);
  if (kind < 55) {
    auto* s = e.mutable_sale();
    s->set_basket_id("basket-" + id);
    s->set_tender("card");
    const int lines = pick(1, 3);
    for (int i = 0; i < lines; ++i) {
      auto* l = s->add_lines();
      l->set_sku("sku-" + std::to_string(pick(0, 7)));
      l->set_qty(pick(1, 3));
      l->set_unit_price(pick(1, 999));
      l->set_currency("EUR");
    }
  } else if (kind < 75) {
    auto* r = e.mutable_receipt();
    auto* l = r->add_lines();
    l->set_sku(sku);
    l->set_qty(pick(1, 12));
  } else if (kind < 83) {
    e.mutable_count()->set_sku(sku);
    e.mutable_count()->set_qty(pick(0, 20));
  } else if (kind < 93) {
    auto* a = e.mutable_adjustment()->add_lines();
    a->set_sku(sku);
    a->set_qty(pick(0, 1) ? -pick(1, 4) : pick(1, 4));
    a->set_reason("damage");
  } else {
    auto* s = e.mutable_sensor();
    s->set_sensor_id("fridge-1");
    s->set_metric("temp_mc");
    s->set_value(pick(-20000, 8000));
  }
  return e;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s DATA_DIR RUN SEED\n", argv[0]);
    return 2;
  }
  // Die with the parent: the test never leaves a writer behind.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() == 1) return 4;

  const std::string dir = argv[1];
  const std::string run = argv[2];
  const uint64_t seed = std::strtoull(argv[3], nullptr, 10);

  JournalOptions o;
  o.data_dir = dir;
  o.store_id = "store-crash";
  o.gateway_id = "gw-crash";
  o.maintenance_interval = std::chrono::milliseconds(50);
  auto opened = Journal::Open(o);
  if (!opened.ok()) {
    std::fprintf(stderr, "child: open: %s\n", opened.status().ToString().c_str());
    return 1;
  }
  std::unique_ptr<Journal> j = std::move(opened).value();

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(seed * 1000003u + static_cast<uint64_t>(t));
      for (uint64_t counter = 0; std::chrono::steady_clock::now() < deadline;) {
        const int n = std::uniform_int_distribution<int>(1, 20)(rng);
        std::vector<v1::Event> batch;
        for (int i = 0; i < n; ++i) {
          batch.push_back(RandomEvent(
              rng, "r" + run + "-t" + std::to_string(t) + "-" + std::to_string(counter++)));
        }
        auto r = j->Append(batch);
        if (!r.ok()) {
          std::fprintf(stderr, "child: thread %d: Append: %s\n", t, r.status().ToString().c_str());
          failed = true;
          return;
        }
        std::string lines;
        for (const auto& res : *r) {
          if (res.duplicate) {
            std::fprintf(stderr, "child: %s answered as a duplicate\n", res.event_id.c_str());
            failed = true;
            return;
          }
          lines += res.event_id + " " + std::to_string(res.seq) + "\n";
        }
        WriteAll(lines);
        // Deliveries move the watermark too (nothing is old enough to prune).
        if (t == 0) (void)j->Ack(r->back().seq / 2);
      }
    });
  }
  for (auto& th : threads) th.join();
  if (failed) return 1;
  j->Close();
  return 0;
}
