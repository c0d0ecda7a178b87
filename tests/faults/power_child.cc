// Child process of the power-loss test (power_loss_test.cc).
//
//   faults_power_child DATA_DIR VFS_LOG RUN SEED CLOCK_BASE_US
//
// Installs the fault VFS (fault_vfs.h) as SQLite's default, so every
// connection of the journal (writer, readers, checkpointer, background
// check) goes through it, then opens the journal in DATA_DIR and, until it
// is killed, does everything a gateway does to its journal:
//   * 3 threads append batches of 1..20 random events; after each Append()
//     returns OK, one line "A EVENT_ID SEQ" per event (one write(2) per
//     batch) goes to stdout, a pipe to the parent;
//   * thread 0 acknowledges deliveries: it writes "K SEQ" BEFORE calling
//     Ack(SEQ) (so the parent knows the highest seq that may have been
//     pruned), and after its first batch and every 40 batches applies an
//     HQ stock snapshot, reported as "S SEQ" once ApplySnapshot() returned;
//   * one thread runs retention passes (PruneNow) back to back; the journal
//     clock runs 1000x faster than real time from CLOCK_BASE_US and
//     retention is 10 s, so delivered events are pruned within ~10 ms;
//   * WAL checkpoints happen on their own, run by the journal's
//     checkpointer thread (the journal's WAL hook turns SQLite's
//     auto-checkpoint off), many of them since commits are cheap (no real
//     fsync; each simulated one takes 300 us).
// Exits on its own after 20 s at most and dies with its parent.
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

#include "fault_vfs.h"
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
    for (int i = pick(1, 3); i > 0; --i) {
      auto* l = s->add_lines();
      l->set_sku("sku-" + std::to_string(pick(0, 7)));
      l->set_qty(pick(1, 3));
      l->set_unit_price(pick(1, 999));
      l->set_currency("EUR");
    }
  } else if (kind < 75) {
    auto* l = e.mutable_receipt()->add_lines();
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
  if (argc != 6) {
    std::fprintf(stderr, "usage: %s DATA_DIR VFS_LOG RUN SEED CLOCK_BASE_US\n", argv[0]);
    return 2;
  }
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() == 1) return 4;

  const std::string dir = argv[1];
  const std::string run = argv[3];
  const uint64_t seed = std::strtoull(argv[4], nullptr, 10);
  const int64_t clock_base = std::strtoll(argv[5], nullptr, 10);

  // Each sync takes 300 us, like a fast SSD's fsync.
  if (Status s = faults::InstallFaultVfs(argv[2], dir, 300); !s.ok()) {
    std::fprintf(stderr, "child: %s\n", s.ToString().c_str());
    return 1;
  }

  const auto t0 = std::chrono::steady_clock::now();
  JournalOptions o;
  o.data_dir = dir;
  o.store_id = "store-power";
  o.gateway_id = "gw-power";
  o.maintenance_interval = std::chrono::milliseconds(20);
  o.retention = std::chrono::seconds(10);
  o.now_us = [t0, clock_base] {
    const auto real =
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0)
            .count();
    return clock_base + 1000 * real;
  };
  auto opened = Journal::Open(o);
  if (!opened.ok()) {
    std::fprintf(stderr, "child: open: %s\n", opened.status().ToString().c_str());
    return 1;
  }
  std::unique_ptr<Journal> j = std::move(opened).value();

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  std::atomic<bool> done{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(seed * 1000003u + static_cast<uint64_t>(t));
      uint64_t hq_version = 0;
      for (uint64_t counter = 0, batches = 0; std::chrono::steady_clock::now() < deadline;
           ++batches) {
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
          lines += "A " + res.event_id + " " + std::to_string(res.seq) + "\n";
        }
        WriteAll(lines);
        if (t != 0) continue;
        // Deliveries: HQ has everything but the newest few events.
        const uint64_t last = r->back().seq;
        const uint64_t lag = std::uniform_int_distribution<uint64_t>(0, 30)(rng);
        if (last > lag) {
          WriteAll("K " + std::to_string(last - lag) + "\n");
          if (Status s = j->Ack(last - lag); !s.ok()) {
            std::fprintf(stderr, "child: Ack: %s\n", s.ToString().c_str());
            failed = true;
            return;
          }
        }
        // Also right after each run's first batch: a slow build (TSan on a
        // loaded machine) is cut within a handful of batches, and the cuts
        // must land around snapshots too.
        if (batches % 40 == 39 || batches == 0) {
          v1::StockSnapshot snap;
          snap.set_store_id("store-power");
          snap.set_epoch(j->epoch());
          snap.set_as_of_seq(last);
          snap.set_hq_version(++hq_version +
                              static_cast<uint64_t>(std::atol(run.c_str())) * 100000);
          for (int k = 0; k < 4; ++k) {
            auto* l = snap.add_lines();
            l->set_sku("sku-" + std::to_string(k));
            l->set_qty(100);
          }
          auto s = j->ApplySnapshot(snap);
          if (!s.ok()) {
            std::fprintf(stderr, "child: ApplySnapshot: %s\n", s.status().ToString().c_str());
            failed = true;
            return;
          }
          WriteAll("S " + std::to_string(s->seq) + "\n");
        }
      }
    });
  }
  threads.emplace_back([&] {
    while (!done.load() && std::chrono::steady_clock::now() < deadline) {
      auto n = j->PruneNow();
      if (!n.ok()) {
        std::fprintf(stderr, "child: PruneNow: %s\n", n.status().ToString().c_str());
        failed = true;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });
  for (size_t i = 0; i < 3; ++i) threads[i].join();
  done = true;
  threads[3].join();
  if (failed) return 1;
  j->Close();
  return 0;
}
