// snapshot_bench: what applying a big HQ stock snapshot does to ingest
// (the target: a 50,000-sku snapshot must not stall ingest > 100 ms at a time).
//
// For each chunk size (the configured one, then one chunk of every line for
// comparison) it builds a fresh journal holding a receipt for every sku,
// then --events single-line sales after the snapshot's as_of_seq, and
// applies the snapshot while one producer thread appends single events
// back to back. It prints the longest and the p99 Append latency during the
// apply (and before it, as the baseline), the apply time, and the commit
// time of each chunk (submission to durable commit: max, p99, p50).
//
// It is a measurement, not a test: it exits 0 whatever the figures, and
// non-zero only when something fails (an Append or ApplySnapshot error, a
// wrong on_hand afterwards, VerifyJournal failing, bad arguments).
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "storegw/status.h"
#include "storegw/storage/journal.h"
#include "storegw/v1/storegw.pb.h"

namespace {

namespace fs = std::filesystem;
namespace v1 = ::storegw::v1;
using storegw::storage::Journal;
using storegw::storage::JournalOptions;
using Clock = std::chrono::steady_clock;

struct Args {
  std::string data_dir;
  int skus = 50000;
  int events = 100000;
  size_t chunk = 2000;
  bool quick = false;
  bool unchunked = true;
};

bool Parse(int argc, char** argv, Args* a) {
  for (int i = 1; i < argc; ++i) {
    const std::string s = argv[i];
    auto next = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    if (s == "--data-dir") {
      const char* v = next();
      if (!v) return false;
      a->data_dir = v;
    } else if (s == "--skus") {
      const char* v = next();
      if (!v) return false;
      a->skus = std::atoi(v);
    } else if (s == "--events") {
      const char* v = next();
      if (!v) return false;
      a->events = std::atoi(v);
    } else if (s == "--chunk") {
      const char* v = next();
      if (!v) return false;
      a->chunk = static_cast<size_t>(std::atoll(v));
    } else if (s == "--no-unchunked") {
      a->unchunked = false;
    } else if (s == "--quick") {
      a->quick = true;
      a->skus = 3000;
      a->events = 5000;
      a->chunk = 500;
    } else {
      return false;
    }
  }
  return a->skus > 0 && a->events >= 0 && a->chunk > 0;
}

std::string SkuName(int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "sku-%06d", i);
  return buf;
}

v1::Event SaleEvent(const std::string& id, const std::string& sku, int64_t qty) {
  v1::Event e;
  e.set_event_id(id);
  e.set_device_id("till-1");
  e.set_occurred_at(1'700'000'000'000'000);
  auto* s = e.mutable_sale();
  s->set_basket_id("b-" + id);
  auto* l = s->add_lines();
  l->set_sku(sku);
  l->set_qty(qty);
  l->set_unit_price(100);
  l->set_currency("EUR");
  return e;
}

double Pct(std::vector<int64_t> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return static_cast<double>(v[std::min(i, v.size() - 1)]) / 1000.0;
}

double Max(const std::vector<int64_t>& v) {
  return v.empty() ? 0 : static_cast<double>(*std::max_element(v.begin(), v.end())) / 1000.0;
}

int Fail(const std::string& what) {
  std::fprintf(stderr, "snapshot_bench: %s\n", what.c_str());
  return 1;
}

// One run with `chunk` lines per chunk in a fresh journal under `base`.
int Run(const Args& a, size_t chunk, const fs::path& base) {
  const fs::path dir = base / ("chunk-" + std::to_string(chunk));
  JournalOptions o;
  o.data_dir = dir;
  o.store_id = "store-bench";
  o.gateway_id = "gw-bench";
  o.snapshot_chunk_lines = chunk;
  o.count_mismatch_threshold = -1;
  auto opened = Journal::Open(o);
  if (!opened.ok()) return Fail("open: " + opened.status().ToString());
  auto j = std::move(opened).value();

  // A receipt of 1,000 units for every sku, 1,000 lines an event.
  const auto t_fill = Clock::now();
  for (int b = 0; b < a.skus; b += 1000) {
    v1::Event e;
    e.set_event_id("rcpt-" + std::to_string(b));
    e.set_device_id("backoffice");
    e.set_occurred_at(1'700'000'000'000'000);
    auto* r = e.mutable_receipt();
    for (int i = b; i < std::min(a.skus, b + 1000); ++i) {
      auto* l = r->add_lines();
      l->set_sku(SkuName(i));
      l->set_qty(1000);
    }
    auto res = j->Append({e});
    if (!res.ok()) return Fail("append receipt: " + res.status().ToString());
  }
  const uint64_t as_of = j->Stats().last_seq;
  // --events sales after as_of_seq, in batches of 1,000.
  std::mt19937 rng(42);
  std::vector<int64_t> sold(static_cast<size_t>(a.skus), 0);
  for (int b = 0; b < a.events; b += 1000) {
    std::vector<v1::Event> batch;
    for (int i = b; i < std::min(a.events, b + 1000); ++i) {
      const int k = static_cast<int>(rng() % static_cast<unsigned>(a.skus));
      batch.push_back(SaleEvent("pre-" + std::to_string(i), SkuName(k), 1));
      sold[static_cast<size_t>(k)] += 1;
    }
    auto res = j->Append(std::move(batch));
    if (!res.ok()) return Fail("append sales: " + res.status().ToString());
  }
  const double fill_s = std::chrono::duration<double>(Clock::now() - t_fill).count();

  v1::StockSnapshot snap;
  snap.set_store_id("store-bench");
  snap.set_epoch(j->epoch());
  snap.set_as_of_seq(as_of);
  snap.set_hq_version(1);
  for (int i = 0; i < a.skus; ++i) {
    auto* l = snap.add_lines();
    l->set_sku(SkuName(i));
    l->set_qty(500 + i % 100);
  }

  // The producer: single events back to back, each latency stamped with
  // its start time.
  struct Sample {
    Clock::time_point start;
    int64_t us;
  };
  std::vector<Sample> samples;
  samples.reserve(200000);
  std::atomic<bool> stop{false};
  std::atomic<bool> failed{false};
  std::vector<int64_t> live_sold(static_cast<size_t>(a.skus), 0);
  std::thread producer([&] {
    for (int i = 0; !stop.load(); ++i) {
      const int k = i % a.skus;
      const auto t0 = Clock::now();
      auto r = j->Append({SaleEvent("live-" + std::to_string(i), SkuName(k), 1)});
      const auto t1 = Clock::now();
      if (!r.ok()) {
        failed = true;
        return;
      }
      live_sold[static_cast<size_t>(k)] += 1;
      samples.push_back(
          {t0, std::chrono::duration_cast<std::chrono::microseconds>(t1 - t0).count()});
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(a.quick ? 100 : 1000));
  const auto t_apply = Clock::now();
  auto res = j->ApplySnapshot(snap);
  const auto t_done = Clock::now();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  stop = true;
  producer.join();
  if (failed) return Fail("a producer Append failed");
  if (!res.ok()) return Fail("ApplySnapshot: " + res.status().ToString());
  if (res->skus_applied != static_cast<size_t>(a.skus)) return Fail("not every line applied");

  // Latency of the appends that overlapped the apply, and of those before.
  std::vector<int64_t> during, before;
  for (const auto& s : samples) {
    const auto end = s.start + std::chrono::microseconds(s.us);
    if (end < t_apply) {
      before.push_back(s.us);
    } else if (s.start <= t_done) {
      during.push_back(s.us);
    }
  }
  const double apply_ms = std::chrono::duration<double, std::milli>(t_done - t_apply).count();
  std::printf(
      "chunk %6zu: %zu chunks, apply %.0f ms (fill %.1f s)\n"
      "  chunk commit (submit -> durable): max %.1f ms, p99 %.1f ms, p50 %.1f ms\n"
      "  producer appends during the apply: %zu, longest %.1f ms, p99 %.1f ms "
      "(before: %zu, longest %.1f ms, p99 %.1f ms)\n"
      "  target (no stall > 100 ms): %s\n",
      chunk, res->chunks, apply_ms, fill_s, Max(res->chunk_micros), Pct(res->chunk_micros, 0.99),
      Pct(res->chunk_micros, 0.50), during.size(), Max(during), Pct(during, 0.99), before.size(),
      Max(before), Pct(before, 0.99), Max(during) <= 100.0 ? "met" : "NOT met");
  std::fflush(stdout);

  // The result: HQ's qty + every local delta after as_of_seq.
  for (int i = 0; i < a.skus; i += std::max(1, a.skus / 500)) {
    auto row = j->Stock(SkuName(i));
    if (!row.ok()) return Fail("Stock: " + row.status().ToString());
    const int64_t want =
        500 + i % 100 - sold[static_cast<size_t>(i)] - live_sold[static_cast<size_t>(i)];
    if (row->on_hand != want) {
      return Fail("on_hand of " + SkuName(i) + " is " + std::to_string(row->on_hand) +
                  ", expected " + std::to_string(want));
    }
  }
  j.reset();
  auto v = storegw::storage::VerifyJournal(dir);
  if (!v.ok()) return Fail("verify: " + v.status().ToString());
  std::error_code ec;
  fs::remove_all(dir, ec);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  if (!Parse(argc, argv, &a)) {
    std::fprintf(stderr,
                 "usage: snapshot_bench [--data-dir DIR] [--skus N] [--events N] [--chunk N] "
                 "[--no-unchunked] [--quick]\n");
    return 2;
  }
  if (a.data_dir.empty()) {
    const char* t = std::getenv("TMPDIR");
    a.data_dir = t && *t ? t : "/var/tmp";
  }
  std::string tmpl = a.data_dir + "/snapshot_bench.XXXXXX";
  if (!mkdtemp(tmpl.data()))
    return Fail("mkdtemp under " + a.data_dir + ": " + std::strerror(errno));
  const fs::path base = tmpl;
  struct statfs sf {};
  const bool tmpfs = statfs(base.c_str(), &sf) == 0 && sf.f_type == 0x01021994;
  std::printf("snapshot_bench: %d skus, %d events after as_of_seq, data in %s%s\n", a.skus,
              a.events, base.c_str(), tmpfs ? " (tmpfs: fsync is free, figures optimistic)" : "");
  int rc = Run(a, a.chunk, base);
  if (rc == 0 && a.unchunked && a.chunk < static_cast<size_t>(a.skus)) {
    rc = Run(a, static_cast<size_t>(a.skus), base);
  }
  std::error_code ec;
  fs::remove_all(base, ec);
  return rc;
}
