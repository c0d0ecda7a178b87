// hq_e2e_bench: storegw-hq end to end on this machine, side by side with
// the raw limit of the same machine, and where the bound is.
//
// Everything real, on loopback: a private PostgreSQL 15 (fsync on,
// track_wal_io_timing on), a mosquitto, `storegw-hq run` replicas of this
// build tree (one shared subscription group), and gateways inside this
// process, each a real journal with a real uplink (ack = "hq",
// tests/hq/e2e/e2e_util.h). Phases, each into a fresh database:
//   drain1, drain2  G gateways' offline backlogs of E till sales each
//                   (default 200 x 5,000 = 1,000,000), batches of 500,
//                   deflate, drained into PostgreSQL through 1 and 2
//                   replicas: from the uplinks' start until every
//                   watermark is its last seq (HqAck after the commit);
//                   then checked: one row per (gateway, epoch, seq),
//                   applied_seq = last seq everywhere.
//   copy1, copy2    the same rows (read back from the same journals, the
//                   same batches, 64 per transaction) COPYed straight into
//                   `events` with libpq, 1 and 2 connections: JSON + COPY
//                   + COMMIT, no broker, no locks, no dedupe (the limit;
//                   hq_store_bench's raw COPY).
//   rss             one replica while R gateways (default 1,000) report:
//                   each a retained status every 5 s and its batches of 500
//                   events (synthetic MQTT publishers, 100 gateways per
//                   connection: the replica cannot tell), /v1/fleet read
//                   every second; VmHWM and VmRSS of the replica.
//   latency         L gateways (default 100) journaling R device events/s
//                   each (R/10 every 100 ms; R = 500, then 100) into 2
//                   replicas: time from the journal's commit (Append
//                   returned) to the HqAck that covers the event (seen by a
//                   subscriber of the ack topics on the same broker),
//                   p50/p99/max over 10 s after 2 s of warm-up.
// For each phase: CPU seconds of postgres (postmaster and its children),
// mosquitto, the replicas and this process (the gateways), the machine's
// busy cores (other work on the machine included), PostgreSQL's WAL
// (bytes by LSN, fsyncs and fsync time from pg_stat_wal once the clients
// are gone), and a verdict: CPU, WAL fsync or broker.
//
//   hq_e2e_bench [--gateways 200] [--events 5000] [--batch 500]
//                [--report-gateways 1000] [--report-events 1000]
//                [--latency-gateways 100] [--latency-rates 500,100] [--latency-seconds 10]
//                [--latency-replicas 2] [--gateway-procs 4]
//                [--phases drain1,drain2,copy1,copy2,rss,latency] [--quick]
//                [--hq 'max_batches_per_txn = 32']... [--replica-env NAME=VALUE]...
// (--hq adds a line to every replica's [hq] section, --replica-env a
// variable to its environment: for trying settings.)
//
// A program that prints figures, not a test (hq_e2e_bench_smoke runs
// --quick: every phase to the end, its checks, no figures that mean
// anything). It exits 1 when a check fails.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <mqtt/async_client.h>
#include <spdlog/spdlog.h>

#include "compress.h"
#include "e2e_util.h"
#include "event_json.h"
#include "event_rows.h"
#include "hq_fleet_test_util.h"
#include "pg_conn.h"
#include "storegw/hq/pg_store.h"
#include "storegw/v1/warmup.h"

namespace {

using namespace storegw;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using e2e::LocalGateway;

struct Options {
  int gateways = 200;
  int events = 5000;  // per gateway
  int batch = 500;
  int report_gateways = 1000;
  int report_events = 1000;  // per reporting gateway
  int latency_gateways = 100;
  std::vector<int> latency_rates = {500, 100};  // device events/s per gateway, one run each
  int latency_seconds = 10;
  int latency_replicas = 2;
  int gateway_procs = 4;  // worker processes the gateways run in
  std::string hq_extra;                  // more [hq] lines for every replica
  std::vector<std::string> replica_env;  // NAME=value for every replica
  std::vector<std::string> phases = {"drain1", "drain2", "copy1", "copy2", "rss", "latency"};
  bool quick = false;
};

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "hq_e2e_bench: %s\n", what.c_str());
  std::exit(1);
}

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

// 1234567 -> "1,234,567" (appending: tests/common/ids.h says why).
std::string Thousands(double v) {
  const std::string digits = std::to_string(static_cast<long long>(v + 0.5));
  std::string s;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) s += ',';
    s += digits[i];
  }
  return s;
}

std::string Fixed(double v, int decimals = 1) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", decimals, v);
  return b;
}

// ------------------------------------------------------------ /proc

// utime + stime of a process, and of its reaped children, in seconds.
struct ProcCpu {
  double self = 0, reaped = 0;
  pid_t ppid = 0;
  bool ok = false;
};
ProcCpu ReadProcCpu(pid_t pid) {
  ProcCpu c;
  const std::string s = test::ReadFile("/proc/" + std::to_string(pid) + "/stat");
  const size_t close = s.rfind(')');
  if (close == std::string::npos) return c;
  std::istringstream in(s.substr(close + 2));
  std::vector<std::string> f;  // f[k - 3] is field k of proc(5)
  for (std::string t; in >> t;) f.push_back(t);
  if (f.size() < 15) return c;
  const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  c.ppid = static_cast<pid_t>(std::stol(f[1]));
  c.self = (std::stod(f[11]) + std::stod(f[12])) / tick;
  c.reaped = (std::stod(f[13]) + std::stod(f[14])) / tick;
  c.ok = true;
  return c;
}

// PostgreSQL: the postmaster, the children it reaped, and its live
// children (backends, walwriter, checkpointer...).
double PostgresCpu(pid_t postmaster) {
  const ProcCpu pm = ReadProcCpu(postmaster);
  double total = pm.self + pm.reaped;
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    const ProcCpu c = ReadProcCpu(static_cast<pid_t>(std::stol(name)));
    if (c.ok && c.ppid == postmaster) total += c.self;
  }
  return total;
}

// The machine: busy and iowait jiffies over all CPUs.
struct MachineCpu {
  double busy = 0, iowait = 0;
};
MachineCpu ReadMachineCpu() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  double user = 0, nice = 0, sys = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
  in >> cpu >> user >> nice >> sys >> idle >> iowait >> irq >> softirq >> steal;
  const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  return {(user + nice + sys + irq + softirq + steal) / tick, iowait / tick};
}

// VmHWM and VmRSS of a process, in KiB.
struct Mem {
  uint64_t hwm_kib = 0, rss_kib = 0;
};
Mem ReadMem(pid_t pid) {
  Mem m;
  std::istringstream in(test::ReadFile("/proc/" + std::to_string(pid) + "/status"));
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("VmHWM:", 0) == 0) m.hwm_kib = std::stoull(line.substr(6));
    if (line.rfind("VmRSS:", 0) == 0) m.rss_kib = std::stoull(line.substr(6));
  }
  return m;
}

double MiB(uint64_t kib) { return static_cast<double>(kib) / 1024.0; }

// ------------------------------------------------------------ gateway workers
//
// The gateways of the drain and latency phases run in worker processes
// (this program with --worker; --gateway-procs of them, 4 by default):
// Paho C serves every client of a process with one send and one receive
// thread, so a hundred gateways in one process queue behind each other
// (and behind the benchmark's own subscribers) where separate store boxes
// never would. The benchmark and a worker talk through files in the run
// directory: the worker opens its gateways (live: also connects them) and
// prints "ready"; once `go` exists (the start, steady-clock ns: one clock
// for every process of the machine) it starts the uplinks (drain) or
// journals R/10 device events per gateway every 100 ms for 2 s + the
// measured time (live), waits until every watermark is its last seq,
// writes result-F.txt ("store gateway epoch last_seq") and commits-F.txt
// ("gateway first last ns" per append), prints "drained", and stops its
// uplinks and exits once `stop` exists.

int64_t SteadyNs(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}
Clock::time_point FromNs(int64_t ns) { return Clock::time_point(std::chrono::nanoseconds(ns)); }

struct WorkerArgs {
  fs::path dir;              // gateway i's journal in dir/i
  int first = 1, count = 0;  // gateways first..first+count-1
  std::string url, prefix;
  int batch = 500;
  int rate = 0;  // device events/s per gateway; 0: drain what is journaled
  int measure_ms = 10000;
};

void WaitForFile(const fs::path& p) {
  while (!fs::exists(p)) std::this_thread::sleep_for(2ms);
}

// Writes `text` to `path` whole (a reader never sees half of it).
void PublishFile(const fs::path& path, const std::string& text) {
  test::WriteFile(path.string() + ".tmp", text);
  fs::rename(path.string() + ".tmp", path);
}

int RunWorker(const WorkerArgs& w) {
  sync::UplinkOptions uo = e2e::FleetUplinkOptions(w.url, w.batch, 8, 30s);
  uo.topic_prefix = w.prefix;
  uo.ack_timeout = 30s;
  std::vector<std::unique_ptr<LocalGateway>> gws(static_cast<size_t>(w.count));
  e2e::ParallelFor(w.count, 4, [&](int k) {
    gws[static_cast<size_t>(k)] =
        e2e::OpenLocalGateway(w.dir / std::to_string(w.first + k), w.first + k, uo);
  });
  auto start_all = [&] {
    for (auto& g : gws) {
      if (!g->uplink->Start().ok()) Die("worker: uplink start");
    }
  };
  if (w.rate > 0) {
    start_all();
    const bool up = test::WaitFor(
        [&] {
          for (const auto& g : gws) {
            if (g->uplink->status().link != "up") return false;
          }
          return true;
        },
        120s);
    if (!up) Die("worker: uplinks not connected");
  }
  std::printf("ready\n");
  std::fflush(stdout);
  WaitForFile(w.dir / "go");
  const Clock::time_point start = FromNs(std::stoll(test::ReadFile(w.dir / "go")));
  std::vector<std::string> commits(gws.size());
  if (w.rate == 0) {
    start_all();
  } else {
    // One thread per gateway on a fixed schedule (a late append is
    // followed by the next at once).
    const int per_tick = std::max(1, w.rate / 10);
    const auto end = start + 2s + std::chrono::milliseconds(w.measure_ms);
    std::atomic<bool> failed{false};
    std::vector<std::thread> ts;
    for (size_t i = 0; i < gws.size(); ++i) {
      ts.emplace_back([&, i] {
        uint64_t n = 0;
        for (auto next = start; next < end; next += 100ms) {
          std::this_thread::sleep_until(next);
          std::vector<v1::Event> evs;
          for (int k = 0; k < per_tick; ++k) evs.push_back(sync_test::SaleEvent(++n));
          auto r = gws[i]->journal->Append(std::move(evs));
          const int64_t now = SteadyNs(Clock::now());
          if (!r.ok() || r->empty()) {
            failed = true;
            return;
          }
          commits[i] += gws[i]->gateway_id + " " + std::to_string(r->front().seq) + " " +
                        std::to_string(r->back().seq) + " " + std::to_string(now) + "\n";
        }
      });
    }
    for (auto& t : ts) t.join();
    if (failed) Die("worker: an append failed");
  }
  const bool drained = test::WaitFor(
      [&] {
        for (const auto& g : gws) {
          if (!g->drained()) return false;
        }
        return true;
      },
      30min, 5ms);
  if (!drained) Die("worker: not drained in 30 min");
  std::string result, all_commits;
  for (size_t i = 0; i < gws.size(); ++i) {
    result += gws[i]->store_id + " " + gws[i]->gateway_id + " " +
              std::to_string(static_cast<int64_t>(gws[i]->journal->epoch())) + " " +
              std::to_string(gws[i]->last_seq()) + "\n";
    all_commits += commits[i];
  }
  const std::string f = std::to_string(w.first);
  PublishFile(w.dir / ("result-" + f + ".txt"), result);
  PublishFile(w.dir / ("commits-" + f + ".txt"), all_commits);
  std::printf("drained\n");
  std::fflush(stdout);
  WaitForFile(w.dir / "stop");
  e2e::ParallelFor(w.count, 8, [&](int k) { gws[static_cast<size_t>(k)]->uplink->Stop(); });
  return 0;
}

// ------------------------------------------------------------ the bench

// One phase's figures.
struct Figures {
  std::string key;  // the phase: drain1, copy2, ...
  std::string name;
  uint64_t events = 0;
  double wall = 0;
  double cpu_pg = 0, cpu_broker = 0, cpu_replicas = 0, cpu_gateways = 0;
  double machine_busy = 0, machine_iowait = 0;  // core-seconds
  double wal_bytes = 0, wal_syncs = 0, wal_sync_s = 0, wal_write_s = 0;
  uint64_t duplicates = 0;  // events HQ received again
  std::string note;
  double rate() const { return wall > 0 ? static_cast<double>(events) / wall : 0; }
};

// Where the replicas' PostgreSQL backends spend their time: every 20 ms,
// from pg_stat_activity on a connection of its own, the state and wait
// event of each backend of application_name storegw-hq. A backend that
// was in a transaction at least once is a replica's ingest connection
// (the fleet view's stays idle); its samples are counted as: running
// (active, no wait), lock (waiting for a lock: the other replica holds
// the gateway), wal/io (WALSync, WALWrite, data files), copy-in (active,
// ClientRead: receiving COPY rows), replica (idle in transaction: waiting
// for the replica's next statement), idle (no transaction: the replica
// gathers, decodes or has nothing).
class WaitSampler {
 public:
  explicit WaitSampler(const std::string& conninfo) : sql_(conninfo) {
    thread_ = std::thread([this] { Run(); });
  }
  ~WaitSampler() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  // "running 31%, lock 22%, ..." over the ingest backends' samples.
  std::string Summary() {
    Stop();
    std::map<std::string, uint64_t> total;
    uint64_t n = 0;
    for (const auto& [pid, counts] : by_pid_) {
      if (counts.count("idle") && counts.size() == 1) continue;  // never in a transaction
      for (const auto& [k, v] : counts) {
        total[k] += v;
        n += v;
      }
    }
    if (n == 0) return "no samples";
    std::string out;
    for (const char* k : {"running", "copy-in", "lock", "wal/io", "replica", "idle", "other"}) {
      if (!total.count(k)) continue;
      if (!out.empty()) out += ", ";
      out += std::string(k) + " " + Fixed(100.0 * static_cast<double>(total[k]) / static_cast<double>(n), 0) + "%";
    }
    return out;
  }

 private:
  void Run() {
    while (!stop_) {
      try {
        for (const auto& r : sql_("SELECT pid, state, coalesce(wait_event_type, ''), "
                                  "coalesce(wait_event, '') FROM pg_stat_activity WHERE "
                                  "application_name = 'storegw-hq'")) {
          std::string k;
          if (r[1] == "idle") {
            k = "idle";
          } else if (r[1] == "idle in transaction") {
            k = "replica";
          } else if (r[2].empty()) {
            k = "running";
          } else if (r[2] == "Lock") {
            k = "lock";
          } else if (r[2] == "IO" || r[3].rfind("WAL", 0) == 0) {
            k = "wal/io";
          } else if (r[2] == "Client" && r[3] == "ClientRead") {
            k = "copy-in";
          } else {
            k = "other";
          }
          ++by_pid_[r[0]][k];
        }
      } catch (const std::exception&) {
      }
      std::this_thread::sleep_for(20ms);
    }
  }

  e2e::Sql sql_;
  std::atomic<bool> stop_{false};
  std::map<std::string, std::map<std::string, uint64_t>> by_pid_;  // the sampling thread's
  std::thread thread_;
};

class Bench {
 public:
  explicit Bench(Options o) : o_(std::move(o)), tmp_({}, "storegw-hq-e2e-bench") {
    test::PostgresOptions po;
    po.extra_conf = "track_wal_io_timing = on\n";
    pg_ = std::make_unique<test::Postgres>(po);
    sync_test::BrokerOptions bo;
    bo.max_queued_messages = 10'000'000;
    if (std::getenv("BENCH_NODELAY")) bo.extra = "set_tcp_nodelay true\n";
    broker_ = std::make_unique<sync_test::Mosquitto>(tmp_ / "broker", bo);
    ncores_ = static_cast<int>(std::thread::hardware_concurrency());
  }

  int Run() {
    double load[3] = {0, 0, 0};
    getloadavg(load, 3);
    std::printf(
        "hq_e2e_bench: %d cores, load average %.1f at start; PostgreSQL 15 (fsync on, "
        "synchronous_commit on), mosquitto, storegw-hq replicas of this build\n",
        ncores_, load[0]);
    std::fflush(stdout);
    for (const auto& p : o_.phases) {
      if (p == "drain1" || p == "drain2" || p == "copy1" || p == "copy2") BuildTemplate();
      if (p == "drain1") results_.push_back(Drain(1));
      if (p == "drain2") results_.push_back(Drain(2));
      if (p == "copy1") results_.push_back(Copy(1));
      if (p == "copy2") results_.push_back(Copy(2));
      if (p == "rss") results_.push_back(Rss());
      if (p == "latency") {
        for (int rate : o_.latency_rates) results_.push_back(Latency(rate));
      }
      if (p == "hqlatency") {
        for (int rate : o_.latency_rates) results_.push_back(HqLatency(rate));
      }
    }
    Report();
    return 0;
  }

 private:
  // ---------------------------------------------------------- shared

  std::string FreshDatabase(const std::string& name) {
    return pg_->CreateDatabase(name + "_" + std::to_string(++dbs_));
  }

  // `n` replicas of storegw-hq on `conninfo`, healthy.
  // Each phase has a topic prefix and share group of its own
  // ("bench/<phase>"): nothing of an earlier phase reaches it (retained
  // statuses; and mosquitto keeps handing a shared subscription's
  // messages to the sessions of replicas that stopped, see sync/README.md).
  static std::string Prefix(const std::string& tag) { return "bench/" + tag; }

  static std::vector<pid_t> Pids(const std::vector<test::HqDaemon>& hq) {
    std::vector<pid_t> pids;
    for (const auto& r : hq) pids.push_back(r.proc.pid());
    return pids;
  }
  static std::string Replicas(int n) {
    return std::to_string(n) + (n == 1 ? " replica" : " replicas");
  }
  // "LABEL, 2 replicas, 100 x 500 events/s": the name of a latency phase.
  std::string LatencyName(const std::string& label, int rate) const {
    return label + ", " + Replicas(o_.latency_replicas) + ", " + Thousands(o_.latency_gateways) +
           " x " + Thousands(rate) + " events/s";
  }

  std::vector<test::HqDaemon> StartReplicas(int n, const std::string& conninfo,
                                            const std::string& tag) {
    std::vector<fs::path> configs;
    std::vector<std::string> names;
    for (int k = 0; k < n; ++k) {
      e2e::HqReplicaConfig c;
      c.conninfo = conninfo;
      c.mqtt_url = broker_->url();
      c.client_id = "bench-" + tag + "-" + std::to_string(k);
      c.topic_prefix = Prefix(tag);
      c.share_group = "bench-" + tag;
      c.hq_extra = o_.hq_extra;
      configs.push_back(e2e::WriteHqConfig(tmp_ / (c.client_id + ".toml"), c));
      names.push_back(c.client_id);
    }
    std::string why;
    std::vector<test::HqDaemon> out =
        e2e::StartHqReplicas(configs, names, tmp_ / "logs", &why, o_.replica_env);
    if (out.empty()) Die("storegw-hq: " + why);
    for (auto& d : out) {
      if (!test::WaitFor([&] { return test::HttpGet(d.port, "/healthz").status == 200; }, 60s)) {
        Die("storegw-hq not healthy: " + test::HttpGet(d.port, "/healthz").body);
      }
    }
    return out;
  }

  // SIGTERM, a clean exit (its backends exit too: their WAL statistics
  // are flushed).
  void StopReplicas(std::vector<test::HqDaemon>& rs) {
    for (auto& r : rs) r.proc.Signal(SIGTERM);
    for (auto& r : rs) {
      auto e = r.proc.WaitExit(60s);
      if (!e || !e->ok()) Die("storegw-hq did not stop cleanly: " + r.proc.Stderr());
    }
  }

  double ReplicaMetric(const test::HqDaemon& r, const std::string& name) {
    const test::HttpResult m = test::HttpGet(r.port, "/metrics");
    return m.status == 200 ? e2e::MetricValue(m.body, name).value_or(0) : 0;
  }

  // CPU and WAL counters at the start of a measured span.
  struct Mark {
    Clock::time_point t;
    double pg = 0, broker = 0, self = 0;
    std::vector<double> replicas, workers;
    MachineCpu machine;
    std::string lsn;
  };
  // `workers`: gateway worker processes (their CPU counts as the
  // gateways', with this process's).
  Mark Begin(const std::vector<pid_t>& replicas, e2e::Sql& sql,
             const std::vector<pid_t>& workers = {}) {
    sql("SELECT pg_stat_reset_shared('wal')");
    Mark m;
    m.lsn = sql.Value("SELECT pg_current_wal_lsn()::text");
    m.pg = PostgresCpu(pg_->pid());
    m.broker = ReadProcCpu(broker_->pid()).self;
    m.self = ReadProcCpu(getpid()).self;
    for (pid_t p : replicas) m.replicas.push_back(ReadProcCpu(p).self);
    for (pid_t p : workers) m.workers.push_back(ReadProcCpu(p).self);
    m.machine = ReadMachineCpu();
    m.t = Clock::now();
    return m;
  }
  // The span's CPU; the WAL bytes by LSN.
  void End(const Mark& m, const std::vector<pid_t>& replicas, e2e::Sql& sql, Figures* f,
           const std::vector<pid_t>& workers = {}) {
    f->wall = Seconds(m.t);
    f->cpu_pg = PostgresCpu(pg_->pid()) - m.pg;
    f->cpu_broker = ReadProcCpu(broker_->pid()).self - m.broker;
    f->cpu_gateways = ReadProcCpu(getpid()).self - m.self;
    for (size_t i = 0; i < replicas.size(); ++i) {
      f->cpu_replicas += ReadProcCpu(replicas[i]).self - m.replicas[i];
    }
    for (size_t i = 0; i < workers.size(); ++i) {
      f->cpu_gateways += ReadProcCpu(workers[i]).self - m.workers[i];
    }
    const MachineCpu mc = ReadMachineCpu();
    f->machine_busy = mc.busy - m.machine.busy;
    f->machine_iowait = mc.iowait - m.machine.iowait;
    f->wal_bytes =
        std::stod(sql.Value("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)", {m.lsn}));
  }
  // fsyncs and their time, once the clients that did them are gone.
  void WalStats(e2e::Sql& sql, Figures* f) {
    auto r = sql("SELECT wal_sync, wal_sync_time, wal_write_time FROM pg_stat_wal");
    f->wal_syncs = std::stod(r[0][0]);
    f->wal_sync_s = std::stod(r[0][1]) / 1000.0;
    f->wal_write_s = std::stod(r[0][2]) / 1000.0;
  }

  void Progress(const std::string& what) {
    std::printf("  .. %s\n", what.c_str());
    std::fflush(stdout);
  }

  // ---------------------------------------------------------- backlogs

  // The offline backlogs, journaled once (closed), copied for each drain.
  void BuildTemplate() {
    if (!template_dir_.empty()) return;
    template_dir_ = tmp_ / "template";
    const auto t0 = Clock::now();
    e2e::ParallelFor(o_.gateways, 8, [&](int i) {
      storage::JournalOptions jo;
      jo.data_dir = template_dir_ / std::to_string(i + 1);
      jo.store_id = e2e::StoreId(i + 1);
      jo.gateway_id = e2e::GatewayId(i + 1);
      auto j = storage::Journal::Open(jo);
      if (!j.ok()) Die(j.status().ToString());
      e2e::AppendSales(**j, 1, static_cast<uint64_t>(o_.events), 500);
      std::lock_guard lk(mu_);
      template_events_ += (*j)->Stats().last_seq;  // with the oversell alerts
    });
    Progress(Thousands(static_cast<double>(o_.gateways)) + " journals of " +
             Thousands(o_.events) + " sales (" + Thousands(static_cast<double>(template_events_)) +
             " events with the oversell alerts) built in " + Fixed(Seconds(t0)) + " s");
  }

  // ---------------------------------------------------------- workers

  // `total` gateways first.. in `dir`, split over o_.gateway_procs worker
  // processes (see RunWorker), each ready when this returns.
  struct Workers {
    fs::path dir;
    std::vector<test::Process> procs;
    std::vector<pid_t> pids() const {
      std::vector<pid_t> out;
      for (const auto& p : procs) out.push_back(p.pid());
      return out;
    }
  };
  Workers StartWorkers(const fs::path& dir, int first, int total, const std::string& prefix,
                       int rate) {
    Workers w;
    w.dir = dir;
    fs::create_directories(dir);
    const int n = std::max(1, std::min(o_.gateway_procs, total));
    for (int k = 0, at = first; k < n; ++k) {
      const int count = total / n + (k < total % n ? 1 : 0);
      std::vector<std::string> argv = {
          fs::read_symlink("/proc/self/exe").string(), "--worker", "--dir", dir.string(),
          "--first", std::to_string(at), "--count", std::to_string(count), "--url",
          broker_->url(), "--prefix", prefix, "--batch", std::to_string(o_.batch), "--rate",
          std::to_string(rate), "--measure-ms", std::to_string(o_.latency_seconds * 1000)};
      w.procs.push_back(test::Process::Spawn(argv, dir / test::Id("worker-", at).append(".out"),
                                             dir / test::Id("worker-", at).append(".err")));
      at += count;
    }
    WaitWorkers(w, "ready", 10min);
    return w;
  }
  // Until every worker has printed `word`; dies when one exits first.
  void WaitWorkers(Workers& w, const std::string& word, std::chrono::milliseconds timeout) {
    for (auto& p : w.procs) {
      const bool ok = test::WaitFor(
          [&] { return !p.Running() || p.Stdout().find(word) != std::string::npos; }, timeout,
          5ms);
      if (!ok || !p.Running()) {
        Die("gateway worker " + std::to_string(p.pid()) + " did not say " + word + ": " +
            p.Stderr());
      }
    }
  }
  void Go(const Workers& w, Clock::time_point start) {
    PublishFile(w.dir / "go", std::to_string(SteadyNs(start)));
  }
  void StopWorkers(Workers& w) {
    test::WriteFile(w.dir / "stop", "");
    for (auto& p : w.procs) {
      auto e = p.WaitExit(5min);
      if (!e || !e->ok()) Die("gateway worker failed: " + p.Stderr());
    }
  }
  // What the workers' gateways journaled: "store gateway epoch last_seq".
  struct Journaled {
    std::string store_id, gateway_id;
    int64_t epoch = 0;
    uint64_t last_seq = 0;
  };
  std::vector<Journaled> Results(const Workers& w) {
    std::vector<Journaled> out;
    for (const auto& e : fs::directory_iterator(w.dir)) {
      if (e.path().filename().string().rfind("result-", 0) != 0) continue;
      std::istringstream in(test::ReadFile(e.path()));
      for (Journaled j; in >> j.store_id >> j.gateway_id >> j.epoch >> j.last_seq;) {
        out.push_back(j);
      }
    }
    return out;
  }

  // ---------------------------------------------------------- drain

  Figures Drain(int replicas) {
    Figures f;
    f.key = "drain" + std::to_string(replicas);
    f.name = "drain, " + Replicas(replicas);
    const std::string conninfo = FreshDatabase("drain");
    e2e::Sql sql(conninfo);
    const std::string tag = "drain" + std::to_string(replicas);
    auto hq = StartReplicas(replicas, conninfo, tag);
    const std::vector<pid_t> pids = Pids(hq);

    const fs::path run = tmp_ / ("run-drain" + std::to_string(replicas));
    fs::copy(template_dir_, run, fs::copy_options::recursive);
    Workers w = StartWorkers(run, 1, o_.gateways, Prefix(tag), /*rate=*/0);
    const Mark m = Begin(pids, sql, w.pids());
    WaitSampler waits(conninfo);
    Go(w, Clock::now());
    WaitWorkers(w, "drained", 30min);
    End(m, pids, sql, &f, w.pids());
    f.note = "replicas' PostgreSQL backends: " + waits.Summary();
    for (const auto& r : hq) {
      f.duplicates +=
          static_cast<uint64_t>(ReplicaMetric(r, "storegw_hq_events_duplicate_total"));
    }
    StopWorkers(w);
    const std::vector<Journaled> gws = Results(w);
    if (gws.size() != static_cast<size_t>(o_.gateways)) Die("drain: gateway results missing");
    for (const auto& g : gws) f.events += g.last_seq;
    CheckStored(sql, gws, f.events);
    StopReplicas(hq);
    WalStats(sql, &f);
    fs::remove_all(run);
    Line(f);
    return f;
  }

  // One row per event, every applied_seq at its gateway's last seq.
  void CheckStored(e2e::Sql& sql, const std::vector<Journaled>& gws, uint64_t total) {
    const auto r =
        sql("SELECT count(*), count(DISTINCT (store_id, gateway_id, epoch, seq)) FROM events");
    const std::string want = std::to_string(total);
    if (r[0][0] != want || r[0][1] != want) {
      Die("events holds " + r[0][0] + " rows, " + r[0][1] + " distinct; expected " + want);
    }
    std::vector<std::string> stores, ids, epochs, lasts;
    for (const auto& g : gws) {
      stores.push_back(g.store_id);
      ids.push_back(g.gateway_id);
      epochs.push_back(std::to_string(g.epoch));
      lasts.push_back(std::to_string(g.last_seq));
    }
    const std::string bad = sql.Value(
        "SELECT count(*) FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[]) AS "
        "x(s, g, e, l) LEFT JOIN gateway_epochs ge ON ge.store_id = x.s AND ge.gateway_id = x.g "
        "AND ge.epoch = x.e WHERE ge.applied_seq IS DISTINCT FROM x.l",
        {e2e::ArrayLiteral(stores), e2e::ArrayLiteral(ids), e2e::ArrayLiteral(epochs),
         e2e::ArrayLiteral(lasts)});
    if (bad != "0") Die(bad + " gateways with applied_seq short of their last seq");
  }

  // ---------------------------------------------------------- raw COPY

  Figures Copy(int connections) {
    Figures f;
    f.key = "copy" + std::to_string(connections);
    f.name = "raw COPY, " + std::to_string(connections) +
             (connections == 1 ? " connection" : " connections");
    if (txns_.empty()) ReadTemplateBatches();
    const std::string conninfo = FreshDatabase("copy");
    {
      auto s = hq::PgStore::Open(conninfo);  // the schema and its partitions
      if (!s.ok()) Die(s.status().ToString());
    }
    e2e::Sql sql(conninfo);
    sql("SELECT storegw_events_partition(now())");
    auto target = hq::pg::ParseConninfo(conninfo);
    if (!target.ok()) Die(target.status().ToString());
    std::vector<std::unique_ptr<hq::pg::Conn>> conns;
    for (int i = 0; i < connections; ++i) {
      auto c = hq::pg::Conn::Connect(conninfo, *target);
      if (!c.ok()) Die(c.status().ToString());
      conns.push_back(std::move(*c));
    }
    for (const auto& t : txns_) {
      for (const auto& b : t) f.events += static_cast<uint64_t>(b.events_size());
    }
    const Mark m = Begin({}, sql);
    std::vector<std::thread> ts;
    for (int t = 0; t < connections; ++t) {
      ts.emplace_back([&, t] {
        hq::pg::Conn& c = *conns[static_cast<size_t>(t)];
        std::string data, json;
        for (size_t i = static_cast<size_t>(t); i < txns_.size();
             i += static_cast<size_t>(connections)) {
          data.clear();
          hq::pg::AppendCopyHeader(&data);
          for (const auto& b : txns_[i]) {
            for (const auto& e : b.events()) {
              json.clear();
              hq::pg::AppendProtoJson(e.event(), &json);
              hq::pg::AppendCopyRow(b, e, json, &data);
            }
          }
          hq::pg::AppendCopyTrailer(&data);
          Status st = c.Exec("BEGIN");
          if (st.ok()) st = c.CopyIn(hq::pg::kCopyEventsSql, data);
          if (st.ok()) st = c.Exec("COMMIT");
          if (!st.ok()) Die(st.ToString());
        }
      });
    }
    for (auto& t : ts) t.join();
    End(m, {}, sql, &f);
    // This process is the client here: its CPU is JSON + COPY encoding.
    conns.clear();
    const std::string rows = sql.Value("SELECT count(*) FROM events");
    if (rows != std::to_string(f.events)) Die("COPY stored " + rows + " rows");
    // The backends are gone: their WAL statistics are in.
    test::WaitFor(
        [&] {
          return sql.Value("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                           "'storegw-hq'") == "0";
        },
        10s);
    WalStats(sql, &f);
    f.note = "client: JSON + COPY encoding in this process";
    Line(f);
    return f;
  }

  // The template journals' events as the uplinks batch them (batches of
  // o_.batch), 64 batches of different gateways per transaction, as the
  // receiver gathers them.
  void ReadTemplateBatches() {
    std::vector<std::vector<v1::EventBatch>> per_gw(static_cast<size_t>(o_.gateways));
    e2e::ParallelFor(o_.gateways, 4, [&](int i) {
      storage::JournalOptions jo;
      jo.data_dir = template_dir_ / std::to_string(i + 1);
      jo.store_id = e2e::StoreId(i + 1);
      jo.gateway_id = e2e::GatewayId(i + 1);
      auto j = storage::Journal::Open(jo);
      if (!j.ok()) Die(j.status().ToString());
      std::vector<v1::JournaledEvent> all = e2e::ReadAll(**j);
      auto& out = per_gw[static_cast<size_t>(i)];
      for (size_t k = 0; k < all.size(); k += static_cast<size_t>(o_.batch)) {
        v1::EventBatch b;
        b.set_store_id(jo.store_id);
        b.set_gateway_id(jo.gateway_id);
        b.set_epoch((*j)->epoch());
        const size_t end = std::min(all.size(), k + static_cast<size_t>(o_.batch));
        b.set_first_seq(all[k].seq());
        b.set_last_seq(all[end - 1].seq());
        for (size_t x = k; x < end; ++x) {
          v1::JournaledEvent* e = b.add_events();
          *e->mutable_event() = all[x].event();
          e->set_seq(all[x].seq());
          e->set_recorded_at(all[x].recorded_at());
        }
        out.push_back(std::move(b));
      }
    });
    txns_.emplace_back();
    for (size_t k = 0;; ++k) {
      bool any = false;
      for (auto& g : per_gw) {
        if (k >= g.size()) continue;
        any = true;
        if (txns_.back().size() == 64) txns_.emplace_back();
        txns_.back().push_back(std::move(g[k]));
      }
      if (!any) break;
    }
  }

  // ---------------------------------------------------------- rss

  // Collects, per gateway, what reaches the broker on a topic of ours and
  // when: every HqAck (its seq), or with `batches` every EventBatch the
  // gateways publish (its last_seq; a plain subscription beside the
  // replicas' shared one).
  class AckSpy {
   public:
    struct Ack {
      uint64_t seq;
      Clock::time_point at;
    };
    AckSpy(const std::string& url, const std::string& prefix, bool batches = false) {
      mqtt::create_options co(MQTTVERSION_5);
      cli_ = std::make_unique<mqtt::async_client>(
          url, std::string(batches ? "bench-batch-spy-" : "bench-ack-spy-") +
                   std::to_string(getpid()),
          co, nullptr);
      cli_->set_message_callback([this, batches](mqtt::const_message_ptr m) {
        const auto now = Clock::now();
        std::string gw;
        uint64_t seq = 0;
        if (batches) {
          std::string body = m->get_payload_str();
          if (!body.empty() && static_cast<unsigned char>(body[0]) == 0x78) {
            auto z = sync::Inflate(body);
            if (!z.ok()) return;
            body = std::move(*z);
          }
          v1::EventBatch b;
          if (!b.ParseFromString(body)) return;
          gw = b.gateway_id();
          seq = b.last_seq();
        } else {
          v1::HqAck a;
          if (!a.ParseFromString(m->get_payload_str())) return;
          gw = a.gateway_id();
          seq = a.seq();
        }
        std::lock_guard lk(mu_);
        acks_[gw].push_back({seq, now});
      });
      auto opts =
          mqtt::connect_options_builder().mqtt_version(MQTTVERSION_5).clean_start(true).finalize();
      if (!cli_->connect(opts)->wait_for(20s)) Die("spy: connect timed out");
      if (!cli_->subscribe(prefix + (batches ? "/+/+/events" : "/+/+/ack"), 1)->wait_for(20s)) {
        Die("spy: subscribe");
      }
    }
    ~AckSpy() {
      try {
        cli_->disconnect(0)->wait_for(2s);
      } catch (...) {
      }
    }
    std::map<std::string, std::vector<Ack>> acks() const {
      std::lock_guard lk(mu_);
      return acks_;
    }
    // Gateways whose acks reached `seq`.
    size_t AckedUpTo(uint64_t seq) const {
      std::lock_guard lk(mu_);
      size_t n = 0;
      for (const auto& [gw, a] : acks_) {
        for (const Ack& x : a) {
          if (x.seq >= seq) {
            ++n;
            break;
          }
        }
      }
      return n;
    }

   private:
    std::unique_ptr<mqtt::async_client> cli_;
    mutable std::mutex mu_;
    std::map<std::string, std::vector<Ack>> acks_;
  };

  // MQTT publishers standing in for `gateways` gateways: a retained
  // status per gateway every 5 s, and their batches (deflated, with the
  // MQTT 5 properties, as the uplink sends them).
  class Reporters {
   public:
    Reporters(const std::string& url, std::string prefix, int gateways, int events, int batch)
        : prefix_(std::move(prefix)) {
      std::mt19937_64 rng(42);
      for (int i = 0; i < gateways; ++i) {
        Gw g;
        g.store = e2e::StoreId(10000 + i);
        g.gw = e2e::GatewayId(10000 + i);
        g.epoch = rng();
        g.events = static_cast<uint64_t>(events);
        gws_.push_back(g);
      }
      const int per_client = 100;
      for (int c = 0; c * per_client < gateways; ++c) {
        mqtt::create_options co(MQTTVERSION_5);
        auto cli = std::make_unique<mqtt::async_client>(
            url, "bench-reporter-" + std::to_string(getpid()) + "-" + std::to_string(c), co,
            nullptr);
        auto opts = mqtt::connect_options_builder()
                        .mqtt_version(MQTTVERSION_5)
                        .clean_start(true)
                        .finalize();
        if (!cli->connect(opts)->wait_for(20s)) Die("reporter: connect timed out");
        clients_.push_back(std::move(cli));
      }
      batch_ = batch;
    }
    ~Reporters() {
      for (auto& c : clients_) {
        try {
          c->disconnect(0)->wait_for(2s);
        } catch (...) {
        }
      }
    }
    uint64_t total_events() const {
      uint64_t n = 0;
      for (const auto& g : gws_) n += g.events;
      return n;
    }
    // Sends everything: statuses first, then batch k of every gateway,
    // then k+1...; statuses again every 5 s. At most 64 publishes
    // outstanding per connection.
    void Send() {
      std::vector<std::deque<mqtt::delivery_token_ptr>> out(clients_.size());
      auto publish = [&](size_t i, const std::string& topic, std::string payload, bool deflated,
                         bool retained) {
        const size_t c = i / 100;
        auto& q = out[c];
        while (q.size() >= 64) {
          if (!q.front()->wait_for(60s)) Die("reporter: no PUBACK in 60 s");
          q.pop_front();
        }
        auto msg = mqtt::make_message(topic, payload, 1, retained);
        if (deflated) {
          mqtt::properties props;
          props.add({mqtt::property::CONTENT_TYPE, std::string(sync::kBatchContentType)});
          props.add({mqtt::property::USER_PROPERTY, std::string(sync::kContentEncodingKey),
                     std::string(sync::kDeflate)});
          msg->set_properties(props);
        }
        q.push_back(clients_[c]->publish(msg));
      };
      auto statuses = [&](bool final_round) {
        for (size_t i = 0; i < gws_.size(); ++i) {
          const Gw& g = gws_[i];
          v1::GatewayStatus s;
          s.set_store_id(g.store);
          s.set_gateway_id(g.gw);
          s.set_epoch(g.epoch);
          s.set_last_seq(g.events);
          s.set_watermark(final_round ? g.events : g.sent);
          s.set_backlog_events(g.events - s.watermark());
          s.set_link("up");
          s.set_online(true);
          s.set_version("bench");
          s.set_updated_at(std::chrono::duration_cast<std::chrono::microseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count());
          publish(i, prefix_ + "/" + g.store + "/" + g.gw + "/status", s.SerializeAsString(),
                  false, true);
        }
      };
      statuses(false);
      auto next_status = Clock::now() + 5s;
      for (bool more = true; more;) {
        more = false;
        for (size_t i = 0; i < gws_.size(); ++i) {
          Gw& g = gws_[i];
          if (g.sent >= g.events) continue;
          more = true;
          const uint64_t n = std::min<uint64_t>(static_cast<uint64_t>(batch_), g.events - g.sent);
          v1::EventBatch b;
          b.set_store_id(g.store);
          b.set_gateway_id(g.gw);
          b.set_epoch(g.epoch);
          b.set_first_seq(g.sent + 1);
          b.set_last_seq(g.sent + n);
          for (uint64_t s = g.sent + 1; s <= g.sent + n; ++s) {
            v1::JournaledEvent* je = b.add_events();
            *je->mutable_event() = sync_test::SaleEvent(s);
            je->set_seq(s);
            je->set_recorded_at(std::chrono::duration_cast<std::chrono::microseconds>(
                                    std::chrono::system_clock::now().time_since_epoch())
                                    .count());
          }
          auto z = sync::Deflate(b.SerializeAsString());
          if (!z.ok()) Die("deflate");
          publish(i, prefix_ + "/" + g.store + "/" + g.gw + "/events", std::move(*z), true, false);
          g.sent += n;
          if (Clock::now() >= next_status) {
            statuses(false);
            next_status = Clock::now() + 5s;
          }
        }
      }
      statuses(true);
      for (auto& q : out) {
        for (auto& t : q) {
          if (!t->wait_for(60s)) Die("reporter: no PUBACK in 60 s");
        }
      }
    }

   private:
    struct Gw {
      std::string store, gw;
      uint64_t epoch = 0, events = 0, sent = 0;
    };
    std::string prefix_;
    std::vector<Gw> gws_;
    std::vector<std::unique_ptr<mqtt::async_client>> clients_;
    int batch_ = 500;
  };

  Figures Rss() {
    Figures f;
    f.key = "rss";
    f.name = "rss, 1 replica, " + Thousands(o_.report_gateways) + " gateways";
    const std::string conninfo = FreshDatabase("rss");
    e2e::Sql sql(conninfo);
    auto hq = StartReplicas(1, conninfo, "rss");
    const pid_t pid = hq[0].proc.pid();
    const Mem at_start = ReadMem(pid);
    AckSpy spy(broker_->url(), Prefix("rss"));
    Reporters rep(broker_->url(), Prefix("rss"), o_.report_gateways, o_.report_events, o_.batch);
    f.events = rep.total_events();
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> fleet_reads{0};
    uint64_t max_rss = 0;
    std::thread poller([&] {
      while (!stop) {
        if (test::HttpGet(hq[0].port, "/v1/fleet", 30s).status == 200) ++fleet_reads;
        for (int i = 0; i < 5 && !stop; ++i) {
          max_rss = std::max(max_rss, ReadMem(pid).rss_kib);
          std::this_thread::sleep_for(200ms);
        }
      }
    });
    const Mark m = Begin({pid}, sql);
    rep.Send();
    // Done when every gateway's last seq is acknowledged (on the broker: no
    // polling of the replica, whose /metrics for 1,000 gateways is work).
    const bool stored = test::WaitFor(
        [&] {
          return spy.AckedUpTo(static_cast<uint64_t>(o_.report_events)) ==
                 static_cast<size_t>(o_.report_gateways);
        },
        30min, 20ms);
    End(m, {pid}, sql, &f);
    // The fleet view of all of them, as an operator's browser reads it.
    const bool fleet = test::WaitFor(
        [&] {
          auto fl = test::GetFleet(hq[0].port);
          return fl && fl->gateways_size() == o_.report_gateways;
        },
        60s);
    stop = true;
    poller.join();
    const Mem at_end = ReadMem(pid);
    if (!stored) Die(f.name + ": not everything stored");
    if (!fleet) Die(f.name + ": /v1/fleet does not list every gateway");
    const std::string rows = sql.Value("SELECT count(*) FROM events");
    if (rows != std::to_string(f.events)) Die("rss: events holds " + rows);
    StopReplicas(hq);
    WalStats(sql, &f);
    rss_hwm_kib_ = at_end.hwm_kib;
    f.note = "replica VmHWM " + Fixed(MiB(at_end.hwm_kib)) + " MiB, VmRSS " +
             Fixed(MiB(at_end.rss_kib)) + " MiB at the end (" + Fixed(MiB(at_start.rss_kib)) +
             " MiB before any gateway, sampled max " + Fixed(MiB(max_rss)) + " MiB); " +
             std::to_string(fleet_reads.load()) + " reads of /v1/fleet";
    Line(f);
    return f;
  }

  // ---------------------------------------------------------- latency

  Figures Latency(int rate) {
    Figures f;
    f.key = "latency" + std::to_string(rate);
    f.name = LatencyName("latency", rate);
    const std::string tag = "latency" + std::to_string(rate);
    const std::string conninfo = FreshDatabase("latency");
    e2e::Sql sql(conninfo);
    auto hq = StartReplicas(o_.latency_replicas, conninfo, tag);
    const std::vector<pid_t> pids = Pids(hq);
    AckSpy spy(broker_->url(), Prefix(tag));
    AckSpy sent(broker_->url(), Prefix(tag), /*batches=*/true);
    // Fresh journals, uplinks connected; each worker journals R/10 device
    // events per gateway every 100 ms from `start` on (RunWorker).
    Workers w = StartWorkers(tmp_ / ("run-" + tag), 20001, o_.latency_gateways, Prefix(tag), rate);
    const int per_tick = std::max(1, rate / 10);
    const auto warmup = 2s;
    const auto measure = std::chrono::seconds(o_.latency_seconds);
    const auto start = Clock::now() + 200ms;
    const Mark m = Begin(pids, sql, w.pids());
    WaitSampler waits(conninfo);
    Go(w, start);
    WaitWorkers(w, "drained", 30min);
    End(m, pids, sql, &f, w.pids());
    const std::string backends = waits.Summary();
    for (const auto& r : hq) {
      f.duplicates +=
          static_cast<uint64_t>(ReplicaMetric(r, "storegw_hq_events_duplicate_total"));
    }
    StopWorkers(w);
    const std::vector<Journaled> gws = Results(w);
    if (gws.size() != static_cast<size_t>(o_.latency_gateways)) Die("latency: results missing");
    // The workers' appends: "gateway first last ns" (Append returned).
    struct Commit {
      uint64_t first, last;  // journal seqs (the device's events and any alerts they raised)
      Clock::time_point at;  // committed
    };
    std::map<std::string, std::vector<Commit>> commits;
    Clock::time_point fed_until = start;
    for (const auto& e : fs::directory_iterator(w.dir)) {
      if (e.path().filename().string().rfind("commits-", 0) != 0) continue;
      std::istringstream in(test::ReadFile(e.path()));
      std::string gw;
      for (Commit c; in >> gw >> c.first >> c.last;) {
        int64_t ns = 0;
        in >> ns;
        c.at = FromNs(ns);
        fed_until = std::max(fed_until, c.at);
        commits[gw].push_back(c);
      }
    }
    const double feed_wall = std::chrono::duration<double>(fed_until - start).count();
    // The measured window: appends committed between the end of the
    // warm-up and the end of the schedule (feeders that fall behind the
    // schedule commit fewer in it: the achieved rate says so). Per
    // journaled event of those: the first ack whose seq covers it; the
    // events of an append (and the oversell alerts they raised) share its
    // commit time. The same for the first batch carrying it to the broker.
    const auto from = start + warmup, to = start + warmup + measure;
    const auto acks = spy.acks();
    const auto batches = sent.acks();
    std::vector<double> ms, gw_ms, hq_ms;
    uint64_t device_events = 0;
    // The first arrival in `a` (seq order per gateway) covering seq s,
    // walking forward with s.
    struct Cursor {
      const std::vector<AckSpy::Ack>* a;
      size_t k = 0;
      uint64_t covered = 0;
      const AckSpy::Ack* Cover(uint64_t s) {
        while (covered < s && k < a->size()) covered = std::max(covered, (*a)[k++].seq);
        return covered >= s ? &(*a)[k - 1] : nullptr;
      }
    };
    for (const auto& g : gws) {
      auto ai = acks.find(g.gateway_id);
      auto bi = batches.find(g.gateway_id);
      if (ai == acks.end() || bi == batches.end()) Die("latency: nothing seen for " + g.gateway_id);
      Cursor ack{&ai->second}, batch{&bi->second};
      for (const Commit& c : commits[g.gateway_id]) {
        if (c.at < from || c.at > to) continue;
        device_events += static_cast<uint64_t>(per_tick);
        for (uint64_t s = c.first; s <= c.last; ++s) {
          const AckSpy::Ack* a = ack.Cover(s);
          const AckSpy::Ack* b = batch.Cover(s);
          if (!a || !b) {
            Die("latency: seq " + std::to_string(s) + " of " + g.gateway_id +
                " never seen acked on the broker");
          }
          using Ms = std::chrono::duration<double, std::milli>;
          ms.push_back(Ms(a->at - c.at).count());
          gw_ms.push_back(Ms(b->at - c.at).count());
          hq_ms.push_back(Ms(a->at - b->at).count());
        }
      }
    }
    auto pct = [](std::vector<double>& v, double q) {
      if (v.empty()) return 0.0;
      std::sort(v.begin(), v.end());
      return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
    };
    LatencyResult lr;
    lr.rate = rate;
    lr.p50 = pct(ms, 0.50);
    lr.p99 = pct(ms, 0.99);
    lr.max = ms.empty() ? 0 : ms.back();
    const double gw50 = pct(gw_ms, 0.5), gw99 = pct(gw_ms, 0.99), hq50 = pct(hq_ms, 0.5),
                 hq99 = pct(hq_ms, 0.99);
    const double measured_s = std::chrono::duration<double>(measure).count();
    lr.achieved = static_cast<double>(device_events) / measured_s / static_cast<double>(gws.size());
    latency_.push_back(lr);
    for (const auto& g : gws) f.events += g.last_seq;
    CheckStored(sql, gws, f.events);
    StopReplicas(hq);
    WalStats(sql, &f);
    fs::remove_all(w.dir);
    f.note = "commit -> HqAck p50 " + Fixed(lr.p50) + " ms, p99 " + Fixed(lr.p99) + " ms, max " +
             Fixed(lr.max) + " ms over " + Thousands(static_cast<double>(ms.size())) +
             " journaled events; devices achieved " + Fixed(lr.achieved, 0) +
             " events/s per gateway (the schedule's " + Fixed(measured_s + 2, 0) +
             " s took the feeders " + Fixed(feed_wall) + " s); of it commit -> batch at the broker " +
             "p50 " + Fixed(gw50) + " ms, p99 " + Fixed(gw99) + " ms (the gateways), batch -> HqAck " +
             "p50 " + Fixed(hq50) + " ms, p99 " + Fixed(hq99) + " ms (HQ); replicas' PostgreSQL " +
             "backends: " + backends;
    Line(f);
    return f;
  }

  // ---------------------------------------------------------- HQ alone

  // The latency phase's load without the gateways' journals and uplinks:
  // publishers stand in for the L gateways (10 per MQTT connection, one
  // thread each) and publish each gateway's R/10 events every 100 ms as
  // one batch, as its uplink would; the time from the publish to the
  // HqAck covering it is HQ's own (broker, replica, PostgreSQL, the ack
  // back through the broker).
  Figures HqLatency(int rate) {
    Figures f;
    f.key = "hqlatency" + std::to_string(rate);
    f.name = LatencyName("HQ alone", rate);
    const std::string tag = "hqlatency" + std::to_string(rate);
    const std::string conninfo = FreshDatabase("hqlatency");
    e2e::Sql sql(conninfo);
    auto hq = StartReplicas(o_.latency_replicas, conninfo, tag);
    const std::vector<pid_t> pids = Pids(hq);
    AckSpy spy(broker_->url(), Prefix(tag));
    const int gateways = o_.latency_gateways, per_client = 10;
    const int clients = (gateways + per_client - 1) / per_client;
    std::vector<std::unique_ptr<mqtt::async_client>> cli;
    for (int c = 0; c < clients; ++c) {
      mqtt::create_options co(MQTTVERSION_5);
      cli.push_back(std::make_unique<mqtt::async_client>(
          broker_->url(), "bench-hqlat-" + std::to_string(getpid()) + "-" + std::to_string(c), co,
          nullptr));
      auto opts =
          mqtt::connect_options_builder().mqtt_version(MQTTVERSION_5).clean_start(true).finalize();
      if (!cli.back()->connect(opts)->wait_for(20s)) Die("hqlatency: connect timed out");
    }
    const int per_tick = std::max(1, rate / 10);
    const auto warmup = 2s;
    const auto measure = std::chrono::seconds(o_.latency_seconds);
    const auto start = Clock::now() + 200ms;
    struct Sent {
      uint64_t last;
      Clock::time_point at;
    };
    std::vector<std::vector<Sent>> sent(static_cast<size_t>(gateways));
    std::vector<uint64_t> epochs(static_cast<size_t>(gateways));
    std::mt19937_64 rng(11);
    for (auto& e : epochs) e = rng();
    const Mark m = Begin(pids, sql);
    WaitSampler waits(conninfo);
    std::vector<std::thread> ts;
    std::atomic<bool> failed{false};
    for (int c = 0; c < clients; ++c) {
      ts.emplace_back([&, c] {
        std::deque<mqtt::delivery_token_ptr> out;
        std::vector<uint64_t> seq(static_cast<size_t>(per_client), 0);
        for (auto next = start; next < start + warmup + measure; next += 100ms) {
          std::this_thread::sleep_until(next);
          for (int k = 0; k < per_client; ++k) {
            const int g = c * per_client + k;
            if (g >= gateways) break;
            const std::string store = e2e::StoreId(30001 + g), gw = e2e::GatewayId(30001 + g);
            v1::EventBatch b;
            b.set_store_id(store);
            b.set_gateway_id(gw);
            b.set_epoch(epochs[static_cast<size_t>(g)]);
            uint64_t& s = seq[static_cast<size_t>(k)];
            b.set_first_seq(s + 1);
            b.set_last_seq(s + static_cast<uint64_t>(per_tick));
            const int64_t now_us = std::chrono::duration_cast<std::chrono::microseconds>(
                                       std::chrono::system_clock::now().time_since_epoch())
                                       .count();
            for (int e = 0; e < per_tick; ++e) {
              v1::JournaledEvent* je = b.add_events();
              *je->mutable_event() = sync_test::SaleEvent(++s);
              je->set_seq(s);
              je->set_recorded_at(now_us);
            }
            auto z = sync::Deflate(b.SerializeAsString());
            if (!z.ok()) Die("deflate");
            auto msg = mqtt::make_message(Prefix(tag) + "/" + store + "/" + gw + "/events",
                                          std::move(*z), 1, false);
            mqtt::properties props;
            props.add({mqtt::property::CONTENT_TYPE, std::string(sync::kBatchContentType)});
            props.add({mqtt::property::USER_PROPERTY, std::string(sync::kContentEncodingKey),
                       std::string(sync::kDeflate)});
            msg->set_properties(props);
            sent[static_cast<size_t>(g)].push_back({s, Clock::now()});
            try {
              out.push_back(cli[static_cast<size_t>(c)]->publish(msg));
            } catch (const std::exception&) {
              failed = true;
              return;
            }
            while (out.size() > 64) {
              out.front()->wait_for(60s);
              out.pop_front();
            }
          }
        }
        for (auto& t : out) t->wait_for(60s);
      });
    }
    for (auto& t : ts) t.join();
    if (failed) Die("hqlatency: a publish failed");
    uint64_t last = 0;
    for (const auto& v : sent) last = v.empty() ? last : v.back().last;
    const bool acked = test::WaitFor(
        [&] { return spy.AckedUpTo(last) == static_cast<size_t>(gateways); }, 10min, 5ms);
    End(m, pids, sql, &f);
    const std::string backends = waits.Summary();
    if (!acked) Die("hqlatency: not everything acknowledged");
    for (const auto& v : sent) f.events += v.empty() ? 0 : v.back().last;
    const auto acks = spy.acks();
    const auto from = start + warmup, to = start + warmup + measure;
    std::vector<double> ms;
    for (int g = 0; g < gateways; ++g) {
      auto it = acks.find(e2e::GatewayId(30001 + g));
      if (it == acks.end()) Die("hqlatency: no ack for a gateway");
      const auto& a = it->second;
      size_t k = 0;
      uint64_t covered = 0;
      for (const Sent& x : sent[static_cast<size_t>(g)]) {
        while (covered < x.last && k < a.size()) covered = std::max(covered, a[k++].seq);
        if (covered < x.last) Die("hqlatency: a batch never acknowledged");
        if (x.at < from || x.at > to) continue;
        for (int e = 0; e < per_tick; ++e) {
          ms.push_back(std::chrono::duration<double, std::milli>(a[k - 1].at - x.at).count());
        }
      }
    }
    std::sort(ms.begin(), ms.end());
    auto pct = [&](double q) {
      return ms.empty() ? 0.0
                        : ms[std::min(ms.size() - 1,
                                      static_cast<size_t>(q * static_cast<double>(ms.size())))];
    };
    for (auto& c : cli) {
      try {
        c->disconnect(0)->wait_for(2s);
      } catch (...) {
      }
    }
    StopReplicas(hq);
    WalStats(sql, &f);
    f.note = "publish -> HqAck p50 " + Fixed(pct(0.5)) + " ms, p99 " + Fixed(pct(0.99)) +
             " ms, max " + Fixed(ms.empty() ? 0 : ms.back()) + " ms over " +
             Thousands(static_cast<double>(ms.size())) + " events; replicas' PostgreSQL backends: " +
             backends;
    Line(f);
    return f;
  }

  // ---------------------------------------------------------- output

  // Where the bound is, from one phase's figures.
  std::string Verdict(const Figures& f) const {
    const double cores = static_cast<double>(ncores_);
    const double busy = f.machine_busy / f.wall;
    const double ours = (f.cpu_pg + f.cpu_broker + f.cpu_replicas + f.cpu_gateways) / f.wall;
    const double sync_share = f.wal_sync_s / f.wall;
    const double broker = f.cpu_broker / f.wall;
    std::vector<std::pair<double, std::string>> who = {{f.cpu_pg, "postgres"},
                                                       {f.cpu_broker, "mosquitto"},
                                                       {f.cpu_replicas, "storegw-hq"},
                                                       {f.cpu_gateways, "gateways"}};
    std::sort(who.rbegin(), who.rend());
    std::string v;
    if (busy >= 0.9 * cores) {
      v = "CPU: the machine's " + std::to_string(ncores_) + " cores were " +
          Fixed(100 * busy / cores, 0) + "% busy (this run's processes " + Fixed(ours, 2) +
          " cores; " + who[0].second + " the most, " + Fixed(who[0].first / f.wall, 2) + " cores)";
    } else if (broker >= 0.9) {
      v = "broker: mosquitto (one thread) " + Fixed(broker, 2) + " cores";
    } else if (sync_share >= 0.5) {
      v = "WAL fsync: " + Fixed(f.wal_sync_s, 1) + " s of fsync in " + Fixed(f.wall, 1) +
          " s";
    } else {
      v = "neither CPU (" + Fixed(busy, 2) + " of " + std::to_string(ncores_) +
          " cores busy) nor WAL fsync (" + Fixed(100 * sync_share, 0) +
          "% of the time) nor the broker: waiting (round trips, batching delays)";
    }
    return v;
  }

  void Line(const Figures& f) {
    std::printf("  %-40s %8.2f s %10s events/s  cpu: pg %.1f, mosquitto %.1f, hq %.1f, "
                "gateways %.1f s; machine %.2f cores busy, iowait %.2f; WAL %.0f MB, %s fsyncs "
                "(%.1f s)\n",
                f.name.c_str(), f.wall, Thousands(f.rate()).c_str(), f.cpu_pg, f.cpu_broker,
                f.cpu_replicas, f.cpu_gateways, f.machine_busy / f.wall, f.machine_iowait / f.wall,
                f.wal_bytes / 1e6, Thousands(f.wal_syncs).c_str(), f.wal_sync_s);
    if (!f.note.empty()) std::printf("  %-40s %s\n", "", f.note.c_str());
    std::fflush(stdout);
  }

  void Report() {
    std::printf("\n%-40s %9s %13s %9s %9s %9s %9s %9s %8s %9s %9s\n", "", "wall s", "events/s",
                "pg cores", "mosq", "hq", "gateways", "machine", "WAL MB", "fsyncs/s",
                "fsync %");
    for (const auto& f : results_) {
      std::printf("%-40s %9.2f %13s %9.2f %9.2f %9.2f %9.2f %9.2f %8.0f %9.0f %8.0f%%\n",
                  f.name.c_str(), f.wall, Thousands(f.rate()).c_str(), f.cpu_pg / f.wall,
                  f.cpu_broker / f.wall, f.cpu_replicas / f.wall, f.cpu_gateways / f.wall,
                  f.machine_busy / f.wall, f.wal_bytes / 1e6, f.wal_syncs / f.wall,
                  100 * f.wal_sync_s / f.wall);
    }
    std::map<std::string, double> rates;
    for (const auto& f : results_) rates[f.key] = f.rate();
    const double d1 = rates["drain1"], d2 = rates["drain2"], c1 = rates["copy1"],
                 c2 = rates["copy2"];
    std::printf("\nratios (this run):");
    if (d1 > 0 && d2 > 0) std::printf(" drain 2 replicas / 1 replica %.2f;", d2 / d1);
    if (d1 > 0 && c1 > 0) std::printf(" drain 1 replica / raw COPY 1 connection %.2f;", d1 / c1);
    if (d2 > 0 && c2 > 0) std::printf(" drain 2 replicas / raw COPY 2 connections %.2f;", d2 / c2);
    if (c1 > 0 && c2 > 0) std::printf(" raw COPY 2 / 1 connections %.2f;", c2 / c1);
    std::printf("\n\ntargets:\n");
    if (d2 > 0) {
      std::printf("  >= 100,000 events/s with 2 replicas: %s events/s, %s\n",
                  Thousands(d2).c_str(), d2 >= 100000 ? "met" : "MISSED");
    }
    if (rss_hwm_kib_ > 0) {
      std::printf("  <= 128 MiB per replica with %d gateways: VmHWM %.1f MiB, %s\n",
                  o_.report_gateways, MiB(rss_hwm_kib_),
                  MiB(rss_hwm_kib_) <= 128 ? "met" : "MISSED");
    }
    for (const auto& l : latency_) {
      std::printf("  ack p99 <= 250 ms at %d events/s per gateway: p99 %.1f ms (p50 %.1f, max "
                  "%.1f; achieved %.0f events/s per gateway), %s\n",
                  l.rate, l.p99, l.p50, l.max, l.achieved, l.p99 <= 250 ? "met" : "MISSED");
    }
    std::printf("\nwhere the bound is:\n");
    for (const auto& f : results_) std::printf("  %-40s %s\n", f.name.c_str(), Verdict(f).c_str());
    std::fflush(stdout);
  }

  Options o_;
  test::TempDir tmp_;
  std::unique_ptr<test::Postgres> pg_;
  std::unique_ptr<sync_test::Mosquitto> broker_;
  int ncores_ = 1;
  int dbs_ = 0;
  std::mutex mu_;
  fs::path template_dir_;
  uint64_t template_events_ = 0;
  std::vector<std::vector<v1::EventBatch>> txns_;
  std::vector<Figures> results_;
  uint64_t rss_hwm_kib_ = 0;
  struct LatencyResult {
    int rate = 0;  // scheduled device events/s per gateway
    double p50 = 0, p99 = 0, max = 0;  // ms
    double achieved = 0;               // device events/s per gateway committed in the window
  };
  std::vector<LatencyResult> latency_;
};

}  // namespace

int main(int argc, char** argv) {
  v1::WarmUpProtobuf();
  // The uplinks' own log lines (a connect per gateway) would drown the
  // figures: errors only.
  spdlog::set_level(spdlog::level::err);
  if (argc > 1 && std::string(argv[1]) == "--worker") {
    WorkerArgs w;
    for (int i = 2; i + 1 < argc; i += 2) {
      const std::string a = argv[i], v = argv[i + 1];
      if (a == "--dir") w.dir = v;
      if (a == "--first") w.first = std::atoi(v.c_str());
      if (a == "--count") w.count = std::atoi(v.c_str());
      if (a == "--url") w.url = v;
      if (a == "--prefix") w.prefix = v;
      if (a == "--batch") w.batch = std::atoi(v.c_str());
      if (a == "--rate") w.rate = std::atoi(v.c_str());
      if (a == "--measure-ms") w.measure_ms = std::atoi(v.c_str());
    }
    return RunWorker(w);
  }
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> int {
      if (i + 1 >= argc) Die(a + " needs a value");
      const int v = std::atoi(argv[++i]);
      if (v < 1) Die(a + " must be >= 1");
      return v;
    };
    if (a == "--gateways") {
      o.gateways = next();
    } else if (a == "--events") {
      o.events = next();
    } else if (a == "--batch") {
      o.batch = next();
    } else if (a == "--report-gateways") {
      o.report_gateways = next();
    } else if (a == "--report-events") {
      o.report_events = next();
    } else if (a == "--latency-gateways") {
      o.latency_gateways = next();
    } else if (a == "--latency-rates") {
      if (i + 1 >= argc) Die("--latency-rates needs a value");
      o.latency_rates.clear();
      std::string list = std::string(argv[++i]) + ",";
      for (size_t p = 0, q; (q = list.find(',', p)) != std::string::npos; p = q + 1) {
        const int r = std::atoi(list.substr(p, q - p).c_str());
        if (r < 10) Die("--latency-rates: each rate must be >= 10 events/s");
        o.latency_rates.push_back(r);
      }
    } else if (a == "--hq") {
      if (i + 1 >= argc) Die("--hq needs a value");
      o.hq_extra += std::string(argv[++i]) + "\n";
    } else if (a == "--replica-env") {
      if (i + 1 >= argc) Die("--replica-env needs a value");
      o.replica_env.push_back(argv[++i]);
    } else if (a == "--gateway-procs") {
      o.gateway_procs = next();
    } else if (a == "--latency-replicas") {
      o.latency_replicas = next();
    } else if (a == "--latency-seconds") {
      o.latency_seconds = next();
    } else if (a == "--phases") {
      if (i + 1 >= argc) Die("--phases needs a value");
      o.phases.clear();
      std::string list = std::string(argv[++i]) + ",";
      for (size_t p = 0, q; (q = list.find(',', p)) != std::string::npos; p = q + 1) {
        const std::string ph = list.substr(p, q - p);
        if (ph != "drain1" && ph != "drain2" && ph != "copy1" && ph != "copy2" && ph != "rss" &&
            ph != "latency" && ph != "hqlatency") {
          Die("--phases: unknown phase " + ph +
              " (drain1, drain2, copy1, copy2, rss, latency, hqlatency)");
        }
        o.phases.push_back(ph);
      }
    } else if (a == "--quick") {
      o.quick = true;
      o.gateways = 4;
      o.events = 300;
      o.batch = 100;
      o.report_gateways = 30;
      o.report_events = 200;
      o.latency_gateways = 4;
      o.latency_rates = {100};
      o.latency_seconds = 1;
    } else {
      Die("unknown argument " + a +
          " (--gateways N --events N --batch N --report-gateways N --report-events N "
          "--latency-gateways N --latency-rates R,R --latency-seconds N --latency-replicas N "
          "--gateway-procs N --phases LIST "
          "--hq 'KEY = VALUE' --replica-env NAME=VALUE --quick)");
    }
  }
  // Journals, sockets and the replicas' connections: far more than 1,024
  // descriptors with 1,000 gateways.
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  Bench b(o);
  return b.Run();
}
