// perishables_bench: how late REMOVE_FROM_SHELF alerts are (due time to the
// alert committed and readable) with --batches open production batches, of
// which --due come due over --window seconds, in one run side by side:
//
//   idle   nothing else happens in the journal;
//   load   --producers threads append sales (batches of 10 events) as fast
//          as the journal takes them, the whole time.
//
// Also: ingest events/s during the load run against the same load with no
// batch coming due (what the timer's transactions cost the tills), and the
// peak RSS of the process. The journal's own timer thread raises the
// alerts, on the real clock. A measurement, not a test: it exits 0 whatever
// the figures, non-zero only when something fails.
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/ids.h"
#include "storegw/storage/journal.h"
#include "storegw/v1/storegw.pb.h"

namespace {

namespace fs = std::filesystem;
namespace v1 = ::storegw::v1;
using storegw::storage::Journal;
using storegw::storage::JournalOptions;
using Clock = std::chrono::steady_clock;

struct Args {
  int batches = 10000;
  int due = 2000;
  double window_s = 20;
  int producers = 4;
  int lead_ms = 3000;  // from the batches' creation to the first due time
  std::string dir;
};

int64_t NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double Pct(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p / 100.0 * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "perishables_bench: %s\n", what.c_str());
  std::exit(1);
}

struct RunResult {
  std::vector<double> lateness_ms;
  double ingest_eps = 0;
  uint64_t alerts = 0;
};

// One run on a fresh journal. due == 0: no batch comes due (the baseline).
RunResult Run(const Args& a, const std::string& name, int due, int producers) {
  const fs::path dir = fs::path(a.dir) / name;
  fs::remove_all(dir);
  JournalOptions o;
  o.data_dir = dir;
  o.store_id = "store-bench";
  o.gateway_id = "gw-bench";
  o.default_hold = std::chrono::hours(1);
  o.escalate_after = std::chrono::hours(24);
  auto opened = Journal::Open(o);
  if (!opened.ok()) Die(opened.status().ToString());
  std::unique_ptr<Journal> j = std::move(*opened);

  // The open batches: `due` of them due over the window from start + 3 s,
  // the rest hours later. The hold clock starts at occurred_at, so a batch
  // due at T is put out at T - 1 h.
  const int64_t start = NowUs() + int64_t{a.lead_ms} * 1000;
  const int64_t hold = 3600LL * 1'000'000;
  std::vector<v1::Event> chunk;
  for (int i = 0; i < a.batches; ++i) {
    int64_t due_at;
    if (i < due) {
      due_at = start + static_cast<int64_t>(a.window_s * 1e6 * i / std::max(1, due));
    } else {
      due_at = start + hold + static_cast<int64_t>(i) * 1'000'000;
    }
    v1::Event e;
    e.set_event_id(storegw::test::Id("prod-", i));
    e.set_device_id("kitchen-1");
    e.set_occurred_at(due_at - hold);
    auto* p = e.mutable_production();
    p->set_sku(storegw::test::Id("hot-", i % 200));
    p->set_qty(6);
    p->set_location(storegw::test::Id("hot counter ", i % 4 + 1));
    chunk.push_back(std::move(e));
    if (chunk.size() == 500) {
      if (auto r = j->Append(std::move(chunk)); !r.ok()) Die(r.status().ToString());
      chunk.clear();
    }
  }
  if (!chunk.empty()) {
    if (auto r = j->Append(std::move(chunk)); !r.ok()) Die(r.status().ToString());
  }

  // The observer: reads every new event as soon as it is committed and
  // takes the lateness of each REMOVE_FROM_SHELF alert.
  RunResult out;
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::thread observer([&] {
    uint64_t seen = j->Stats().last_seq;
    while (!stop.load()) {
      const uint64_t last = j->WaitForSeqAbove(seen, std::chrono::milliseconds(50));
      while (seen < last) {
        auto evs = j->ReadEvents(seen + 1, 1000, 1 << 20);
        if (!evs.ok()) Die(evs.status().ToString());
        const int64_t now = NowUs();
        for (const auto& je : *evs) {
          seen = je.seq();
          if (je.event().has_alert() &&
              je.event().alert().kind() == v1::Alert::REMOVE_FROM_SHELF) {
            std::lock_guard lk(mu);
            out.lateness_ms.push_back(static_cast<double>(now - je.event().alert().since()) /
                                      1000.0);
          }
        }
      }
    }
  });

  std::atomic<uint64_t> appended{0};
  std::vector<std::thread> tills;
  const auto t0 = Clock::now();
  const auto end = t0 + std::chrono::microseconds(start - NowUs()) +
                   std::chrono::milliseconds(static_cast<int64_t>(a.window_s * 1000) + a.lead_ms / 2);
  for (int p = 0; p < producers; ++p) {
    tills.emplace_back([&, p] {
      uint64_t n = 0;
      while (Clock::now() < end) {
        std::vector<v1::Event> evs;
        for (int k = 0; k < 10; ++k, ++n) {
          v1::Event e;
          e.set_event_id(storegw::test::Id(storegw::test::Id("t", p) + "-", static_cast<long long>(n)));
          e.set_device_id(storegw::test::Id("till-", p));
          e.set_occurred_at(NowUs());
          auto* l = e.mutable_sale()->add_lines();
          l->set_sku(storegw::test::Id("dry-", static_cast<long long>(n % 5000)));
          l->set_qty(1);
          l->set_unit_price(199);
          l->set_currency("EUR");
          evs.push_back(std::move(e));
        }
        if (auto r = j->Append(std::move(evs)); !r.ok()) Die(r.status().ToString());
        appended += 10;
      }
    });
  }
  if (producers == 0) std::this_thread::sleep_until(end);
  for (auto& t : tills) t.join();
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  out.ingest_eps = static_cast<double>(appended.load()) / secs;
  // Every due batch must have its alert (the bench fails otherwise).
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  for (;;) {
    {
      std::lock_guard lk(mu);
      if (static_cast<int>(out.lateness_ms.size()) >= due) break;
    }
    if (Clock::now() > deadline) Die(name + ": not every due batch raised its alert in time");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  stop = true;
  observer.join();
  out.alerts = out.lateness_ms.size();
  if (static_cast<int>(out.alerts) != due) {
    Die(name + ": " + std::to_string(out.alerts) + " alerts for " + std::to_string(due) +
        " due batches");
  }
  auto v = j->Perishables(10);
  if (!v.ok()) Die(v.status().ToString());
  if (static_cast<int>(v->batches_open) != a.batches) Die(name + ": open batches changed");
  j.reset();
  fs::remove_all(dir);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) Die("missing value after " + k);
      return argv[++i];
    };
    if (k == "--batches") {
      a.batches = std::atoi(next().c_str());
    } else if (k == "--due") {
      a.due = std::atoi(next().c_str());
    } else if (k == "--window") {
      a.window_s = std::atof(next().c_str());
    } else if (k == "--producers") {
      a.producers = std::atoi(next().c_str());
    } else if (k == "--dir") {
      a.dir = next();
    } else if (k == "--quick") {
      a.batches = 200;
      a.due = 50;
      a.window_s = 1;
      a.producers = 1;
      a.lead_ms = 400;
    } else {
      Die("unknown argument " + k +
          " (--batches N --due N --window S --producers N --dir DIR --quick)");
    }
  }
  if (a.batches < 1 || a.due < 1 || a.due > a.batches || a.window_s <= 0 || a.producers < 1) {
    Die("need 1 <= --due <= --batches, --window > 0, --producers >= 1");
  }
  if (a.dir.empty()) {
    a.dir = (fs::temp_directory_path() / ("perishables_bench." + std::to_string(getpid())))
                .string();
  }
  fs::create_directories(a.dir);
  std::printf("perishables_bench: %d open batches, %d due over %.0f s; %d producer threads "
              "(sales, batches of 10) in the load runs; journal in %s\n",
              a.batches, a.due, a.window_s, a.producers, a.dir.c_str());
  const RunResult idle = Run(a, "idle", a.due, 0);
  const RunResult load = Run(a, "load", a.due, a.producers);
  const RunResult base = Run(a, "baseline", 0, a.producers);
  std::printf("\nREMOVE_FROM_SHELF lateness (due time -> alert committed and read), ms:\n");
  std::printf("  %-34s %8s %8s %8s %8s\n", "run", "alerts", "p50", "p99", "max");
  for (auto [n, r] : {std::pair<const char*, const RunResult*>{"idle journal", &idle},
                      {"tills appending at full rate", &load}}) {
    std::printf("  %-34s %8llu %8.1f %8.1f %8.1f\n", n,
                static_cast<unsigned long long>(r->alerts), Pct(r->lateness_ms, 50),
                Pct(r->lateness_ms, 99), Pct(r->lateness_ms, 100));
  }
  std::printf("\ningest while the alerts come due: %.0f events/s; same load, nothing due: "
              "%.0f events/s (ratio %.2f)\n",
              load.ingest_eps, base.ingest_eps,
              base.ingest_eps > 0 ? load.ingest_eps / base.ingest_eps : 0.0);
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  std::printf("peak RSS %.1f MiB\n", static_cast<double>(ru.ru_maxrss) / 1024.0);
  fs::remove_all(a.dir);
  return 0;
}
