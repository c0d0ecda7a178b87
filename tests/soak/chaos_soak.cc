// chaos_soak: the whole gateway under the faults remote stores see, for a
// given duration, then a check of the three invariants.
//
// It runs the real `storegw run` daemon (ack = "hq"), a real mosquitto, two
// `storegw simulate` processes (POS traffic, one posting JSON, one
// protobuf; each logs every (event_id, seq) the daemon acknowledged), a
// link-cutting TCP proxy between the daemon and the broker, and a deduping
// HQ consumer connected straight to the broker that applies each
// (gateway_id, epoch, seq) once and in order and publishes HqAck. At random
// it kills the daemon with SIGKILL and restarts it on the same journal,
// kills and restarts the broker (no persistence: whatever it held is gone),
// cuts every proxied connection, or stalls the link for a few seconds.
//
// At the end it stops the faults, lets the devices deliver what they hold,
// waits for the uplink to drain, stops the daemon with SIGTERM, runs
// `storegw journal export` and `storegw journal verify`, and checks:
//   * nothing acknowledged is lost: every (event_id, seq) a device got a 200
//     for is in the journal at that seq, and at HQ at that seq;
//   * exactly once: no event_id twice in the journal, HQ applied every seq
//     once (duplicate deliveries are counted and dropped by the dedupe);
//   * no gap, in order: journal seqs are 1..N, HQ applied 1..N in order and
//     each seq carries the journal's event.
// It prints what it did (faults by kind) and what it found, and exits 1 on
// any violation (2 on a usage error). The run's files stay when it fails.
//
//   chaos_soak --duration 120s            what CI runs (ctest -R chaos_soak)
//   chaos_soak --duration 4h --rate 400 --seed 7 --keep /var/tmp/soak
//
// Why ack = "hq": with broker acks, a broker restart without persistence
// legitimately loses batches it had PUBACKed but not yet passed on (the
// watermark has moved past them), so exactly-once at HQ across broker
// restarts is the "hq" mode's promise; its hq_ack_timeout resend is
// exercised by every lost batch or ack here.
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "../gateway/test_util.h"
#include "../sync/sync_test_util.h"
#include "../sync/tcp_proxy.h"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Millis = std::chrono::milliseconds;
namespace fs = std::filesystem;
namespace v1 = storegw::v1;
namespace gt = storegw::test;
namespace st = storegw::sync_test;

struct Options {
  Millis duration = 120s;
  double rate = 200;  // events/s over both simulators
  int lanes = 4;      // tills per simulator
  Millis mean_fault_interval = 3s;
  uint64_t seed = 0;  // 0: from the clock
  std::string keep;   // keep the run's files here (else a temp dir)
  Millis drain_timeout = 240s;
};

// "90s", "15m", "2h", "500ms", or plain seconds.
std::optional<Millis> ParseDuration(const std::string& s) {
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || v < 0) return std::nullopt;
  const std::string unit(end);
  double ms = 0;
  if (unit.empty() || unit == "s") {
    ms = v * 1000;
  } else if (unit == "ms") {
    ms = v;
  } else if (unit == "m") {
    ms = v * 60'000;
  } else if (unit == "h") {
    ms = v * 3'600'000;
  } else {
    return std::nullopt;
  }
  return Millis(static_cast<int64_t>(ms));
}

bool ParseArgs(int argc, char** argv, Options& o) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    const std::string v = argv[i + 1];
    if (a == "--duration" || a == "--fault-interval" || a == "--drain-timeout") {
      auto d = ParseDuration(v);
      if (!d) return false;
      if (a == "--duration") o.duration = *d;
      if (a == "--fault-interval") o.mean_fault_interval = *d;
      if (a == "--drain-timeout") o.drain_timeout = *d;
    } else if (a == "--rate") {
      o.rate = std::atof(v.c_str());
      if (o.rate <= 0) return false;
    } else if (a == "--lanes") {
      o.lanes = std::atoi(v.c_str());
      if (o.lanes < 1) return false;
    } else if (a == "--seed") {
      o.seed = std::strtoull(v.c_str(), nullptr, 10);
    } else if (a == "--keep") {
      o.keep = v;
    } else {
      return false;
    }
  }
  return argc % 2 == 1;
}

std::string Secs(Clock::time_point since) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%7.1fs",
                std::chrono::duration<double>(Clock::now() - since).count());
  return buf;
}

std::optional<v1::GatewayStatus> DaemonStatus(uint16_t port) {
  gt::HttpResult r = gt::HttpGet(port, "/v1/status", 2s);
  if (r.status != 200) return std::nullopt;
  return gt::FromJson<v1::GatewayStatus>(r.body);
}

using ull = unsigned long long;

class Soak {
 public:
  Soak(const Options& o, const fs::path& dir)
      : o_(o), dir_(dir), rng_(o.seed), data_(dir / "data"), logs_(dir / "logs") {}

  int Run() {
    start_ = Clock::now();
    fs::create_directories(logs_);
    chmod(dir_.c_str(), 0755);  // mosquitto drops to its own user when run as root
    broker_.emplace(dir_ / "broker");
    st::HqConsumer::Options co;
    co.url = broker_->url();
    co.send_acks = true;
    hq_.emplace(co);
    link_.emplace(broker_->port());
    WriteConfig();
    daemon_port_ = gt::FreePort();
    if (!StartDaemon("start")) return Report();
    StartDevices();
    std::printf(
        "%s chaos soak: seed %llu, %lld s of faults, %.0f events/s from %d tills "
        "(JSON + protobuf), ack = hq, files in %s\n",
        Secs(start_).c_str(), ull(o_.seed), static_cast<long long>(o_.duration.count() / 1000),
        o_.rate, 2 * o_.lanes, dir_.c_str());
    std::fflush(stdout);
    Faults();
    if (violations_.empty()) Settle();
    return Report();
  }

 private:
  static std::string AcceptedLog(int k) { return "accepted-" + std::to_string(k) + ".log"; }

  void WriteConfig() {
    // Short timers so that a few seconds of faults exercise reconnects,
    // resends and HQ-ack timeouts many times over.
    config_ = dir_ / "storegw.toml";
    gt::WriteFile(config_,
                  "[gateway]\nstore_id = \"store-0001\"\ngateway_id = \"gw-01\"\n"
                  "[uplink]\nurl = \"tcp://127.0.0.1:" +
                      std::to_string(link_->port()) +
                      "\"\n"
                      "ack = \"hq\"\n"
                      "hq_ack_timeout = \"2s\"\n"
                      "ack_timeout = \"3s\"\n"
                      "connect_timeout = \"3s\"\n"
                      "batch_events = 200\n"
                      "max_inflight = 4\n"
                      "backoff_initial = \"100ms\"\n"
                      "backoff_max = \"1s\"\n");
  }

  // Two simulators, JSON and protobuf, each half the rate. They keep and
  // resend what the daemon did not acknowledge (same event_ids), for up to
  // `grace` after the run.
  void StartDevices() {
    const std::string url = "http://127.0.0.1:" + std::to_string(daemon_port_);
    for (int k = 0; k < 2; ++k) {
      std::vector<std::string> args = {"simulate",
                                       "--url",
                                       url,
                                       "--lanes",
                                       std::to_string(o_.lanes),
                                       "--rate",
                                       std::to_string(o_.rate / 2),
                                       "--duration",
                                       std::to_string(o_.duration.count()) + "ms",
                                       "--batch",
                                       k == 0 ? "5" : "20",
                                       "--seed",
                                       std::to_string(o_.seed + 1 + static_cast<uint64_t>(k)),
                                       "--run-id",
                                       "soak" + std::to_string(k),
                                       "--grace",
                                       "120s",
                                       "--accepted-log",
                                       (dir_ / AcceptedLog(k)).string()};
      if (k == 1) args.push_back("--protobuf");
      const std::string name = "sim" + std::to_string(k);
      sims_.push_back(gt::Process::Spawn(gt::StoregwArgs(args), logs_ / (name + ".out"),
                                         logs_ / (name + ".err")));
    }
  }

  bool StartDaemon(const std::string& why) {
    std::string err;
    auto d = gt::StartDaemon(data_, logs_, "storegw-" + std::to_string(++starts_), &err,
                             daemon_port_, {"--config", config_.string()});
    if (!d) {
      violations_.push_back("the daemon did not start (" + why + "): " + err);
      return false;
    }
    daemon_ = std::move(*d);
    return true;
  }

  int UniformInt(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  double UniformReal(double lo, double hi) {
    return std::uniform_real_distribution<double>(lo, hi)(rng_);
  }

  // The fault loop, on the main thread (children die with the thread that
  // spawned them: PR_SET_PDEATHSIG).
  void Faults() {
    const auto end = start_ + o_.duration;
    auto next_progress = Clock::now() + 30s;
    while (Clock::now() < end && violations_.empty()) {
      const Millis wait(static_cast<int64_t>(UniformReal(0.2, 1.8) *
                                             static_cast<double>(o_.mean_fault_interval.count())));
      const auto left = std::chrono::duration_cast<Millis>(end - Clock::now());
      std::this_thread::sleep_for(std::min(wait, left + 1ms));
      if (Clock::now() >= end) break;
      if (!daemon_.proc.Running()) {
        // Nobody killed it: a crash, which is a finding in itself.
        const auto e = daemon_.proc.exit_info();
        violations_.push_back("the daemon exited by itself (" +
                              (e ? gt::Describe(*e) : std::string("?")) + "); stderr:\n" +
                              daemon_.proc.Stderr());
        break;
      }
      const int pick = UniformInt(0, 99);
      if (pick < 30) {
        // kill -9 the daemon; restart it on the same journal and port after
        // 0-1.5 s (devices see connection errors and retry meanwhile).
        daemon_.proc.KillAndReap();
        ++faults_["daemon kill -9 + restart"];
        std::this_thread::sleep_for(Millis(UniformInt(0, 1500)));
        if (!StartDaemon("after kill -9")) break;
      } else if (pick < 50) {
        // The broker dies (kill -9, no persistence) and comes back after 0-2 s.
        broker_->Kill9();
        ++faults_["broker kill -9 + restart"];
        std::this_thread::sleep_for(Millis(UniformInt(0, 2000)));
        try {
          broker_->Start();
        } catch (const std::exception& e) {
          violations_.push_back(std::string("mosquitto did not restart: ") + e.what());
          break;
        }
      } else if (pick < 75) {
        link_->CutAll();  // a dropped 4G link: both ends see the connection go
        ++faults_["link cut"];
      } else {
        // A link that black-holes traffic for 0.5-6 s.
        link_->SetStalled(true);
        ++faults_["link stall"];
        std::this_thread::sleep_for(Millis(UniformInt(500, 6000)));
        link_->SetStalled(false);
      }
      if (Clock::now() >= next_progress) {
        next_progress += 30s;
        Progress();
      }
    }
  }

  void Progress() {
    auto s = DaemonStatus(daemon_port_);
    std::printf("%s faults %llu; journal last_seq %llu, watermark %llu, HQ applied %llu\n",
                Secs(start_).c_str(), ull(TotalFaults()), ull(s ? s->last_seq() : 0),
                ull(s ? s->watermark() : 0), ull(hq_->applied()));
    std::fflush(stdout);
  }

  uint64_t TotalFaults() const {
    uint64_t n = 0;
    for (const auto& [k, v] : faults_) n += v;
    return n;
  }

  // Faults off: the link and the broker are up (they are after every fault
  // above), the daemon runs; devices deliver what they hold, the uplink
  // drains, the daemon stops with SIGTERM.
  void Settle() {
    link_->SetStalled(false);
    std::printf("%s faults stopped; waiting for the devices and the drain\n", Secs(start_).c_str());
    std::fflush(stdout);
    for (size_t k = 0; k < sims_.size(); ++k) {
      auto e = sims_[k].WaitExit(200s);  // run end + grace 120 s + a request timeout
      if (!e) {
        sims_[k].KillAndReap();
        violations_.push_back("simulator " + std::to_string(k) + " did not finish");
      } else if (!e->ok()) {
        violations_.push_back("simulator " + std::to_string(k) +
                              " could not deliver everything once the faults stopped (" +
                              gt::Describe(*e) + "): " + sims_[k].Stderr());
      }
      sim_summary_.push_back(sims_[k].Stdout());
    }
    if (!daemon_.proc.Running()) {
      violations_.push_back("the daemon exited by itself during the drain; stderr:\n" +
                            daemon_.proc.Stderr());
      return;
    }
    const auto drain_start = Clock::now();
    const bool drained = gt::WaitFor(
        [&] {
          auto s = DaemonStatus(daemon_port_);
          return s && s->last_seq() > 0 && s->watermark() == s->last_seq() &&
                 hq_->applied() == s->last_seq();
        },
        o_.drain_timeout, 100ms);
    drain_seconds_ = std::chrono::duration<double>(Clock::now() - drain_start).count();
    if (!drained) {
      auto s = DaemonStatus(daemon_port_);
      violations_.push_back(
          "the uplink did not drain within " + std::to_string(o_.drain_timeout.count() / 1000) +
          " s: last_seq " + std::to_string(s ? s->last_seq() : 0) + ", watermark " +
          std::to_string(s ? s->watermark() : 0) + ", HQ applied " +
          std::to_string(hq_->applied()) + (s ? ", last error: " + s->last_error() : ""));
    }
    daemon_.proc.Signal(SIGTERM);
    auto e = daemon_.proc.WaitExit(30s);
    if (!e || !e->ok()) {
      violations_.push_back("SIGTERM: the daemon did not exit 0 within 30 s (" +
                            (e ? gt::Describe(*e) : std::string("still running")) + ")");
      daemon_.proc.KillAndReap();
    }
    Check();
  }

  void Check() {
    std::string why;
    auto exported = gt::ExportJournal(data_, &why);
    if (!exported) {
      violations_.push_back(why);
      return;
    }
    const std::vector<v1::JournaledEvent>& journal = *exported;
    journal_events_ = journal.size();
    gt::RunResult verify =
        gt::Run(gt::StoregwArgs({"journal", "verify", "--data-dir", data_.string()}), 300s);
    if (!verify.exit.ok()) {
      violations_.push_back("storegw journal verify: " + gt::Describe(verify.exit) + ": " +
                            verify.err + verify.out);
    }

    // The journal: seqs 1..N, each event_id once.
    std::map<std::string, uint64_t> seq_of;
    for (size_t i = 0; i < journal.size(); ++i) {
      const auto& je = journal[i];
      if (je.seq() != i + 1 && gaps_++ == 0) {
        violations_.push_back("journal gap: index " + std::to_string(i) + " holds seq " +
                              std::to_string(je.seq()));
      }
      if (je.event().has_alert()) ++alerts_;
      auto [it, fresh] = seq_of.emplace(je.event().event_id(), je.seq());
      if (!fresh && duplicates_++ == 0) {
        violations_.push_back("event " + it->first + " journaled twice: seqs " +
                              std::to_string(it->second) + " and " + std::to_string(je.seq()));
      }
    }

    // HQ: applied 1..N once each, in order, each seq the journal's event.
    const std::string hq = hq_->Verify(journal);
    if (!hq.empty()) violations_.push_back("HQ: " + hq);
    const auto stream = hq_->stream();
    std::set<std::string> at_hq;
    for (const auto& id : stream.event_ids) {
      if (!at_hq.insert(id).second) ++hq_duplicates_;
    }
    if (hq_duplicates_ > 0) {
      violations_.push_back("HQ applied " + std::to_string(hq_duplicates_) +
                            " events more than once");
    }
    if (stream.applied < journal.size()) gaps_ += journal.size() - stream.applied;

    // Every acknowledgement a device got: in the journal and at HQ, at its seq.
    std::map<std::string, uint64_t> acked;
    for (int k = 0; k < 2; ++k) {
      std::ifstream in(dir_ / AcceptedLog(k));
      std::string id;
      uint64_t seq = 0;
      while (in >> id >> seq) {
        ++ack_lines_;
        auto [it, fresh] = acked.emplace(id, seq);
        if (!fresh && it->second != seq) {
          ++duplicates_;
          violations_.push_back("event " + id + " acknowledged with two seqs: " +
                                std::to_string(it->second) + " and " + std::to_string(seq));
        }
      }
    }
    acked_ = acked.size();
    for (const auto& [id, seq] : acked) {
      const bool in_journal =
          seq >= 1 && seq <= journal.size() && journal[seq - 1].event().event_id() == id;
      const bool at_hq_ok =
          seq >= 1 && seq <= stream.event_ids.size() && stream.event_ids[seq - 1] == id;
      if ((!in_journal || !at_hq_ok) && ++lost_ <= 5) {
        violations_.push_back("acknowledged event " + id + " (seq " + std::to_string(seq) +
                              ") is " + (in_journal ? "not at HQ" : "not in the journal"));
      }
    }
    if (acked_ == 0) violations_.push_back("no event was acknowledged: the run proves nothing");
    for (const auto& e : hq_->errors()) violations_.push_back("HQ consumer: " + e);
  }

  int Report() {
    std::printf("%s done\n", Secs(start_).c_str());
    std::printf("faults injected: %llu\n", ull(TotalFaults()));
    for (const auto& [kind, n] : faults_) std::printf("  %-26s %llu\n", kind.c_str(), ull(n));
    for (const auto& s : sim_summary_) std::printf("%s", s.c_str());
    std::printf(
        "events journaled %llu (device events %llu, gateway alerts %llu); acknowledged to "
        "devices %llu (%llu answers incl. duplicate=true retries); HQ applied %llu\n",
        ull(journal_events_), ull(journal_events_ - alerts_), ull(alerts_), ull(acked_),
        ull(ack_lines_), ull(hq_ ? hq_->applied() : 0));
    if (hq_) {
      std::printf(
          "HQ received %llu events in %llu batches: %llu duplicate deliveries deduped, %llu "
          "arrivals past a gap dropped (resent by the gateway)\n",
          ull(hq_->events_received()), ull(hq_->batches()), ull(hq_->duplicates()),
          ull(hq_->gaps()));
    }
    std::printf("drain after the faults: %.1f s; daemon starts %d\n", drain_seconds_, starts_);
    std::printf("lost %llu, duplicates applied %llu, gaps %llu\n", ull(lost_),
                ull(duplicates_ + hq_duplicates_), ull(gaps_));
    if (violations_.empty()) {
      std::printf("chaos soak: PASS\n");
      return 0;
    }
    std::printf("chaos soak: FAIL, %zu violations:\n", violations_.size());
    for (const auto& v : violations_) std::printf("  - %s\n", v.c_str());
    std::printf("files kept in %s\n", dir_.c_str());
    return 1;
  }

  const Options o_;
  const fs::path dir_;
  std::mt19937_64 rng_;
  const fs::path data_, logs_;
  fs::path config_;
  Clock::time_point start_;
  std::optional<st::Mosquitto> broker_;
  std::optional<st::HqConsumer> hq_;
  std::optional<st::TcpProxy> link_;
  uint16_t daemon_port_ = 0;
  gt::Daemon daemon_;
  int starts_ = 0;
  std::vector<gt::Process> sims_;
  std::vector<std::string> sim_summary_;
  std::map<std::string, uint64_t> faults_;
  std::vector<std::string> violations_;
  double drain_seconds_ = 0;
  uint64_t journal_events_ = 0, alerts_ = 0, acked_ = 0, ack_lines_ = 0;
  uint64_t lost_ = 0, duplicates_ = 0, hq_duplicates_ = 0, gaps_ = 0;
};

// The run's directory: --keep, or a new one under $TMPDIR (removed when the
// run passes, kept when it fails).
fs::path RunDir(const Options& o) {
  if (!o.keep.empty()) {
    fs::create_directories(o.keep);
    return fs::absolute(o.keep);
  }
  const char* base = std::getenv("TMPDIR");
  std::string templ = std::string(base && *base ? base : "/tmp") + "/storegw-soak-XXXXXX";
  if (!mkdtemp(templ.data())) throw std::runtime_error("mkdtemp " + templ + " failed");
  return templ;
}

int Main(int argc, char** argv) {
  Options o;
  if (!ParseArgs(argc, argv, o)) {
    std::fprintf(stderr,
                 "usage: %s [--duration 120s] [--rate EVENTS_PER_S] [--lanes N]\n"
                 "          [--fault-interval 3s] [--seed N] [--keep DIR] [--drain-timeout 240s]\n",
                 argv[0]);
    return 2;
  }
  if (o.seed == 0) {
    o.seed = static_cast<uint64_t>(Clock::now().time_since_epoch().count()) % 1'000'000 + 1;
  }
  signal(SIGPIPE, SIG_IGN);
  const fs::path dir = RunDir(o);
  int rc = 0;
  {
    Soak soak(o, dir);
    rc = soak.Run();
  }
  if (rc == 0 && o.keep.empty()) {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Main(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "chaos soak: %s\n", e.what());
    return 1;
  }
}
