// https_uplink_bench: how fast the HTTPS uplink drains a journal backlog
// to head office on loopback (target: >= 50,000 events/s with batches of
// 500). A program that prints figures, not a timed test.
//
//   journal (N-event backlog) -> uplink over HTTPS (a child process: its
//   own RSS) -> counting TCP proxy -> HQ (cpp-httplib SSLServer in this
//   process: checks each Idempotency-Key, dedupes, applies in seq order)
//
// Measured: drain rate at HQ (first POST arriving to the N-th event
// applied), bytes on the link per event (both directions, TLS included,
// counted by the proxy), requests/s, and the uplink process's peak RSS
// (VmHWM). At the end HQ's applied stream is checked against the journal.
//
// Usage: https_uplink_bench [--events N] [--batch-events N]
//                           [--max-inflight N] [--compression deflate|none]
// Internal role (the bench runs itself): --role drain --data DIR --url URL --ca FILE ...
#include <spdlog/spdlog.h>

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>

#include "https_test_util.h"
#include "storegw/storage/journal.h"
#include "storegw/sync/uplink.h"
#include "sync_test_util.h"
#include "tcp_proxy.h"

namespace {

using namespace std::chrono_literals;
using storegw::https_test::Clock;
using storegw::https_test::HqServer;
using storegw::sync_test::TcpProxy;
namespace fs = std::filesystem;

struct Args {
  std::string role;
  std::string data, url, ca, out;
  uint64_t events = 200000;
  int batch_events = 500;
  int max_inflight = 8;
  std::string compression = "deflate";
};

Args Parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "https_uplink_bench: %s needs a value\n", k.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (k == "--role") {
      a.role = next();
    } else if (k == "--data") {
      a.data = next();
    } else if (k == "--url") {
      a.url = next();
    } else if (k == "--ca") {
      a.ca = next();
    } else if (k == "--out") {
      a.out = next();
    } else if (k == "--events") {
      a.events = std::stoull(next());
    } else if (k == "--batch-events") {
      a.batch_events = std::stoi(next());
    } else if (k == "--max-inflight") {
      a.max_inflight = std::stoi(next());
    } else if (k == "--compression") {
      a.compression = next();
    } else {
      std::fprintf(stderr,
                   "usage: https_uplink_bench [--events N] [--batch-events N] "
                   "[--max-inflight N] [--compression deflate|none]\n");
      std::exit(2);
    }
  }
  return a;
}

uint64_t ProcKb(pid_t pid, const char* key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) == 0) return std::stoull(line.substr(std::strlen(key)));
  }
  return 0;
}

// The child: drain the journal over HTTPS, then report VmHWM.
int Drain(const Args& a) {
  spdlog::set_level(spdlog::level::warn);
  auto j = storegw::storage::Journal::Open(storegw::sync_test::TestJournalOptions(a.data));
  if (!j.ok()) {
    std::fprintf(stderr, "drain: %s\n", j.status().ToString().c_str());
    return 1;
  }
  const uint64_t last = (*j)->Stats().last_seq;
  storegw::sync::UplinkOptions o;
  o.transport = "https";
  o.url = a.url;
  o.tls.ca_file = a.ca;
  o.batch_events = a.batch_events;
  o.max_inflight = a.max_inflight;
  o.compression = a.compression;
  o.backoff_initial = 50ms;
  o.backoff_max = 1s;
  auto up = storegw::sync::Uplink::Create(o, j->get());
  if (!up.ok()) {
    std::fprintf(stderr, "drain: %s\n", up.status().ToString().c_str());
    return 1;
  }
  if (!(*up)->Start().ok()) return 1;
  const auto deadline = Clock::now() + 10min;
  while ((*j)->Stats().watermark < last && Clock::now() < deadline) {
    std::this_thread::sleep_for(2ms);
  }
  const auto st = (*up)->status();
  (*up)->Stop();
  const bool ok = (*j)->Stats().watermark == last;
  (*j)->Close();
  std::ofstream(a.out) << ProcKb(getpid(), "VmHWM:") << " " << st.reconnects << " "
                       << st.batches_sent << "\n";
  if (!ok) std::fprintf(stderr, "drain: stopped at %s\n", st.last_error.c_str());
  return ok ? 0 : 1;
}

int Bench(const Args& a) {
  storegw::sync_test::TempDir dir;
  storegw::sync_test::Pki pki(dir / "pki");
  const fs::path data = dir / "data";
  uint64_t last = 0;
  {
    auto j = storegw::storage::Journal::Open(storegw::sync_test::TestJournalOptions(data));
    if (!j.ok()) {
      std::fprintf(stderr, "%s\n", j.status().ToString().c_str());
      return 1;
    }
    const auto t0 = Clock::now();
    if (auto e = storegw::sync_test::AppendSales(**j, 1, a.events); !e.empty()) {
      std::fprintf(stderr, "fill: %s\n", e.c_str());
      return 1;
    }
    last = (*j)->Stats().last_seq;
    (*j)->Close();
    std::printf("journal: %" PRIu64 " events (%" PRIu64 " sales + oversell alerts) in %.1f s\n",
                last, a.events, std::chrono::duration<double>(Clock::now() - t0).count());
  }

  HqServer::Options ho;
  ho.cert_file = pki.server_crt.string();
  ho.key_file = pki.server_key.string();
  HqServer hq(ho);
  Clock::time_point first_post{}, done_at{};
  std::mutex mu;
  hq.set_hook([&](uint64_t, const storegw::v1::EventBatch&) {
    std::lock_guard lk(mu);
    if (first_post == Clock::time_point{}) first_post = Clock::now();
    return HqServer::Action{};
  });
  TcpProxy link(hq.port());

  const fs::path out = dir / "drain.out";
  auto drain = storegw::sync_test::Process::SpawnCombined(
      {"/proc/self/exe", "--role", "drain", "--data", data.string(), "--url", hq.url(link.port()),
       "--ca", pki.ca_crt.string(), "--out", out.string(), "--batch-events",
       std::to_string(a.batch_events), "--max-inflight", std::to_string(a.max_inflight),
       "--compression", a.compression},
      dir / "drain.log");
  // /proc/self/exe is resolved by execv in the child: this very program.
  const auto deadline = Clock::now() + 10min;
  uint64_t max_rss = 0;
  while (hq.applied() < last && Clock::now() < deadline && drain.Running()) {
    max_rss = std::max(max_rss, ProcKb(drain.pid(), "VmRSS:"));
    std::this_thread::sleep_for(1ms);
  }
  done_at = Clock::now();
  const uint64_t applied = hq.applied();
  for (int i = 0; i < 5000 && drain.Running(); ++i) std::this_thread::sleep_for(2ms);
  drain.KillAndReap();
  if (applied < last) {
    std::fprintf(stderr, "HQ applied %" PRIu64 " of %" PRIu64 "; drain log:\n%s\n", applied, last,
                 storegw::sync_test::ReadFile(dir / "drain.log").c_str());
    return 1;
  }
  std::string verdict;
  {
    auto j = storegw::storage::Journal::Open(storegw::sync_test::TestJournalOptions(data));
    if (!j.ok()) return 1;
    verdict = hq.Verify(**j);
  }
  uint64_t vmhwm = 0, reconnects = 0, batches = 0;
  std::ifstream(out) >> vmhwm >> reconnects >> batches;

  const double secs = std::chrono::duration<double>(done_at - first_post).count();
  const double eps = static_cast<double>(last) / secs;
  const double wire = static_cast<double>(link.up_bytes() + link.down_bytes());
  std::printf("https drain: %" PRIu64
              " events, batches of %d, max_inflight %d, compression %s\n"
              "  %.0f events/s (%.2f s), %.0f requests/s (%" PRIu64 " POSTs, %" PRIu64
              " duplicates, %" PRIu64
              " reconnects)\n"
              "  %.1f bytes/event on the link (TLS, both directions; %.1f payload bytes/event "
              "uncompressed)\n"
              "  uplink process peak RSS %.1f MiB (VmHWM; sampled VmRSS max %.1f MiB)\n"
              "  connections %zu; every Idempotency-Key right: %s; HQ check: %s\n",
              last, a.batch_events, a.max_inflight, a.compression.c_str(), eps, secs,
              static_cast<double>(hq.posts()) / secs, hq.posts(), hq.duplicates(), reconnects,
              wire / static_cast<double>(last),
              static_cast<double>(hq.payload_bytes()) / static_cast<double>(last),
              static_cast<double>(vmhwm) / 1024.0, static_cast<double>(max_rss) / 1024.0,
              hq.remote_ports().size(), hq.keys_ok() == hq.posts() ? "yes" : "NO",
              verdict.empty() ? "ok" : verdict.c_str());
  std::printf("target >= 50,000 events/s: %s\n", eps >= 50000 ? "met" : "MISSED");
  return verdict.empty() && hq.keys_ok() == hq.posts() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = Parse(argc, argv);
  if (a.role == "drain") return Drain(a);
  return Bench(a);
}
