// ingest_bench: the device API's performance figures against the targets in
// README.md (section Performance), measured on the REAL daemon: this program
// starts `storegw run` as a child process on a fresh data dir and a free
// loopback port, and drives it over HTTP from the same machine (daemon and
// load generator side by side, sharing the cores).
//
// Phases (each bounded in time, --seconds each, default 5):
//   a  8 client threads, each its own keep-alive connection, posting batches
//      of 20 JSON sale events as fast as they can (target >= 20,000 events/s)
//   b  8 client threads posting single JSON events over keep-alive
//      connections as fast as they can (target >= 2,000 requests/s)
//   c  single-event requests at 500 requests/s offered, open loop: a pacer
//      per connection (4 connections, staggered), latency measured from the
//      intended send time (target p99 <= 10 ms)
//   d  RSS of the idle daemon (VmRSS from /proc/PID/status), 2 s after it
//      is ready and again 2 s after the load (target <= 30 MiB)
//
// It is a measurement, not a test: it exits 0 whether or not a target is
// met, and non-zero only when something breaks (the daemon does not start
// or dies, a request fails or is refused, bad arguments). The daemon is
// stopped by PID (SIGTERM, SIGKILL after 5 s) and its temp dir removed on
// every path out of main(); it also gets SIGTERM if this program dies.
//
// Not registered with ctest: it takes ~25 s and its figures depend on
// whatever else the machine is doing.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <csignal>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr double kTargetBatchedEventsPerSec = 20000.0;  // a
constexpr double kTargetSingleRequestsPerSec = 2000.0;  // b
constexpr double kTargetP99Ms = 10.0;                   // c
constexpr double kTargetRssMiB = 30.0;                  // d
constexpr int kClients = 8;                             // a, b
constexpr int kBatch = 20;                              // a
constexpr double kOfferedRate = 500.0;                  // c
constexpr int kPacedConnections = 4;                    // c
constexpr auto kReadyTimeout = std::chrono::seconds(20);
constexpr auto kStopGrace = std::chrono::seconds(5);
constexpr auto kIdleWait = std::chrono::seconds(2);

std::atomic<bool> g_interrupted{false};

extern "C" void OnSignal(int) {
  g_interrupted.store(true);
}

double Seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}
double Ms(Clock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

std::string Fmt(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string Fmt(const char* fmt, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  return buf;
}

// 1234567.8 -> "1,234,568" (decimals = 0) or "1,234,567.8".
std::string Num(double v, int decimals = 0) {
  if (!std::isfinite(v)) return "n/a";
  std::string s = Fmt("%.*f", decimals, std::fabs(v));
  size_t dot = s.find('.');
  size_t int_end = dot == std::string::npos ? s.size() : dot;
  std::string out;
  for (size_t i = 0; i < int_end; ++i) {
    if (i > 0 && (int_end - i) % 3 == 0) out += ',';
    out += s[i];
  }
  out += s.substr(int_end);
  return v < 0 ? "-" + out : out;
}

// Nearest-rank percentile of a sorted vector.
double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return NAN;
  size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  if (rank == 0) rank = 1;
  return sorted[std::min(rank, sorted.size()) - 1];
}

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  double l1 = 0, l5 = 0, l15 = 0;
  if (!(in >> l1 >> l5 >> l15)) return "unknown";
  return Fmt("%.2f %.2f %.2f (1/5/15 min)", l1, l5, l15);
}

// A field of /proc/PID/status in KiB ("VmRSS", "VmHWM"); nullopt if absent.
std::optional<double> ProcStatusKiB(pid_t pid, const char* field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  const std::string key = std::string(field) + ":";
  while (std::getline(in, line)) {
    if (line.compare(0, key.size(), key) == 0) {
      return std::strtod(line.c_str() + key.size(), nullptr);
    }
  }
  return std::nullopt;
}

// A free loopback TCP port: bind port 0, read it back, release it.
std::optional<uint16_t> FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::nullopt;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  std::optional<uint16_t> port;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  close(fd);
  return port;
}

std::string TailOfFile(const fs::path& p, size_t max_bytes = 2000) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  if (s.size() > max_bytes) s = "..." + s.substr(s.size() - max_bytes);
  return s;
}

// The daemon under test, owned by PID. The destructor stops it (SIGTERM,
// SIGKILL after kStopGrace) and removes its temp dir, on every path.
class Daemon {
 public:
  Daemon() = default;
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;
  ~Daemon() {
    Stop();
    if (!dir_.empty()) {
      std::error_code ec;
      fs::remove_all(dir_, ec);
      if (ec)
        std::fprintf(stderr, "ingest_bench: could not remove %s: %s\n", dir_.c_str(),
                     ec.message().c_str());
    }
  }

  // Returns an empty string on success, else what went wrong.
  std::string Start(const fs::path& binary) {
    char tmpl[] = "/var/tmp/ingest_bench.XXXXXX";
    if (mkdtemp(tmpl) == nullptr) return Fmt("mkdtemp under /var/tmp: %s", std::strerror(errno));
    dir_ = tmpl;
    const fs::path data = dir_ / "data";
    const fs::path config = dir_ / "storegw.toml";
    log_ = dir_ / "storegw.log";
    {
      // No uplink: the figures are the device API's, and the default MQTT
      // uplink would talk to whatever listens on 127.0.0.1:1883.
      std::ofstream c(config);
      c << "[uplink]\ntransport = \"none\"\n\n[log]\nlevel = \"warn\"\n";
      if (!c) return "cannot write " + config.string();
    }
    auto port = FreePort();
    if (!port) return Fmt("no free loopback port: %s", std::strerror(errno));
    port_ = *port;
    const std::string listen = Fmt("127.0.0.1:%u", static_cast<unsigned>(port_));

    const pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) return Fmt("fork: %s", std::strerror(errno));
    if (pid == 0) {
      // Child: die with the bench; stdout/stderr to the log file.
      prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (getppid() != parent) _exit(127);
      int fd = open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
      }
      execl(binary.c_str(), binary.c_str(), "run", "--config", config.c_str(), "--data-dir",
            data.c_str(), "--listen", listen.c_str(), static_cast<char*>(nullptr));
      std::fprintf(stderr, "exec %s: %s\n", binary.c_str(), std::strerror(errno));
      _exit(127);
    }
    pid_ = pid;

    // Wait for GET /readyz 200, bounded; notice an early exit.
    const auto deadline = Clock::now() + kReadyTimeout;
    httplib::Client cli("127.0.0.1", port_);
    cli.set_connection_timeout(1);
    cli.set_read_timeout(1);
    for (;;) {
      if (!Alive()) {
        return Fmt("the daemon exited during start-up (%s); its log:\n%s", exit_text_.c_str(),
                   TailOfFile(log_).c_str());
      }
      auto res = cli.Get("/readyz");
      if (res && res->status == 200) return "";
      if (Clock::now() > deadline) {
        return Fmt("GET /readyz did not answer 200 within %lld s; its log:\n%s",
                   static_cast<long long>(kReadyTimeout.count()), TailOfFile(log_).c_str());
      }
      if (g_interrupted.load()) return "interrupted";
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

  // True while the child runs; reaps it (and records how) once it exits.
  bool Alive() {
    if (pid_ <= 0) return false;
    int st = 0;
    pid_t r = waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
      Reaped(st);
      return false;
    }
    return true;
  }

  // SIGTERM, wait up to kStopGrace, then SIGKILL. Records how it ended.
  void Stop() {
    if (pid_ <= 0) return;
    if (!Alive()) return;
    const auto t0 = Clock::now();
    kill(pid_, SIGTERM);
    while (Clock::now() - t0 < kStopGrace) {
      if (!Alive()) {
        stop_ms_ = Ms(Clock::now() - t0);
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    kill(pid_, SIGKILL);
    int st = 0;
    if (waitpid(pid_, &st, 0) == pid_) Reaped(st);
    killed_ = true;
    stop_ms_ = Ms(Clock::now() - t0);
  }

  pid_t pid() const { return pid_; }
  uint16_t port() const { return port_; }
  const fs::path& log() const { return log_; }
  const std::string& exit_text() const { return exit_text_; }
  bool exited_zero() const { return exited_zero_; }
  bool killed() const { return killed_; }
  double stop_ms() const { return stop_ms_; }

 private:
  void Reaped(int st) {
    if (WIFEXITED(st)) {
      exit_text_ = Fmt("exit %d", WEXITSTATUS(st));
      exited_zero_ = WEXITSTATUS(st) == 0;
    } else if (WIFSIGNALED(st)) {
      exit_text_ = Fmt("killed by signal %d", WTERMSIG(st));
    }
    pid_ = -pid_;  // remember it, but never signal it again
  }

  fs::path dir_;
  fs::path log_;
  pid_t pid_ = 0;
  uint16_t port_ = 0;
  std::string exit_text_ = "running";
  bool exited_zero_ = false;
  bool killed_ = false;
  double stop_ms_ = NAN;
};

// Event bodies with UUID-like (v4 format) event_ids, unique per run.
class EventMaker {
 public:
  EventMaker(int device, uint64_t seed) : rng_(seed), device_(Fmt("till-%02d", device)) {}

  std::string Uuid() {
    const uint64_t hi = rng_(), lo = rng_();
    return Fmt("%08" PRIx64 "-%04" PRIx64 "-4%03" PRIx64 "-%04" PRIx64 "-%012" PRIx64, hi >> 32,
               (hi >> 16) & 0xffff, hi & 0x0fff, ((lo >> 48) & 0x3fff) | 0x8000,
               lo & uint64_t{0xffffffffffff});
  }

  // One sale event as proto3 JSON, with 1..3 lines.
  std::string Event() {
    ++counter_;
    const int64_t now_us = std::chrono::duration_cast<std::chrono::microseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
    const int lines = static_cast<int>(rng_() % 3) + 1;
    std::string s = "{\"event_id\":\"" + Uuid() + "\",\"device_id\":\"" + device_ +
                    "\",\"occurred_at\":\"" + std::to_string(now_us) + "\",\"sale\":{\"lines\":[";
    for (int i = 0; i < lines; ++i) {
      if (i > 0) s += ',';
      s += Fmt("{\"sku\":\"SKU-%06u\",\"qty\":\"%u\",\"unit_price\":\"%u\",\"currency\":\"EUR\"}",
               static_cast<unsigned>(rng_() % 2000), static_cast<unsigned>(rng_() % 3) + 1,
               static_cast<unsigned>(rng_() % 5000) + 49);
    }
    s += "],\"basket_id\":\"" + device_ + "-" + std::to_string(counter_) +
         "\",\"tender\":\"card\"}}";
    return s;
  }

  std::string Batch(int n) {
    std::string s = "{\"events\":[";
    for (int i = 0; i < n; ++i) {
      if (i > 0) s += ',';
      s += Event();
    }
    return s + "]}";
  }

 private:
  std::mt19937_64 rng_;
  std::string device_;
  uint64_t counter_ = 0;
};

size_t CountOf(const std::string& hay, const std::string& needle) {
  size_t n = 0;
  for (size_t p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + 1)) ++n;
  return n;
}

// What went wrong in a phase (first failure kept for the operator).
struct Failures {
  std::mutex mu;
  uint64_t count = 0;
  std::string first;
  void Add(const std::string& what) {
    std::lock_guard<std::mutex> l(mu);
    if (count++ == 0) first = what;
  }
};

std::unique_ptr<httplib::Client> MakeClient(uint16_t port) {
  auto cli = std::make_unique<httplib::Client>("127.0.0.1", port);
  cli->set_keep_alive(true);
  cli->set_tcp_nodelay(true);
  cli->set_connection_timeout(2);
  cli->set_read_timeout(5);
  cli->set_write_timeout(5);
  return cli;
}

// Posts `body` holding `n` events; true when all n were accepted as new.
bool PostEvents(httplib::Client& cli, const std::string& body, size_t n, Failures& f) {
  auto res = cli.Post("/v1/events", body, "application/json");
  if (!res) {
    f.Add("no answer: " + httplib::to_string(res.error()));
    return false;
  }
  if (res->status != 200) {
    f.Add(Fmt("HTTP %d: %.300s", res->status, res->body.c_str()));
    return false;
  }
  const size_t seqs = CountOf(res->body, "\"seq\":");
  const size_t dups = CountOf(res->body, "\"duplicate\":true");
  if (seqs != n || dups != 0) {
    f.Add(Fmt("200 with %zu seqs and %zu duplicates for %zu new events: %.300s", seqs, dups, n,
              res->body.c_str()));
    return false;
  }
  return true;
}

struct Throughput {
  uint64_t requests = 0;
  uint64_t events = 0;
  double seconds = 0;
  uint64_t failures = 0;
  std::string first_failure;
  std::vector<double> latencies_ms;
};

// a and b: kClients threads, closed loop, `batch` events a request, until
// `seconds` have passed (plus at most one request timeout).
Throughput RunClosedLoop(uint16_t port, int batch, double seconds, uint64_t seed) {
  Failures f;
  std::vector<std::thread> threads;
  std::vector<uint64_t> reqs(kClients, 0), events(kClients, 0);
  std::vector<std::vector<double>> lat(kClients);
  const auto t0 = Clock::now();
  const auto deadline =
      t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] {
      auto cli = MakeClient(port);
      EventMaker maker(i + 1, seed * 1000003 + static_cast<uint64_t>(i));
      while (Clock::now() < deadline && !g_interrupted.load()) {
        const std::string body = batch == 1 ? maker.Event() : maker.Batch(batch);
        const auto s = Clock::now();
        const bool ok = PostEvents(*cli, body, static_cast<size_t>(batch), f);
        lat[i].push_back(Ms(Clock::now() - s));
        ++reqs[i];
        if (!ok) break;  // a failure ends this client: it is reported, not hidden
        events[i] += static_cast<uint64_t>(batch);
      }
    });
  }
  for (auto& t : threads) t.join();
  Throughput r;
  r.seconds = Seconds(Clock::now() - t0);
  for (int i = 0; i < kClients; ++i) {
    r.requests += reqs[i];
    r.events += events[i];
    r.latencies_ms.insert(r.latencies_ms.end(), lat[i].begin(), lat[i].end());
  }
  std::sort(r.latencies_ms.begin(), r.latencies_ms.end());
  r.failures = f.count;
  r.first_failure = f.first;
  return r;
}

// c: kOfferedRate requests/s in total, open loop. Connection i sends request
// k at t0 + (k * kPacedConnections + i) / rate whatever happened before; the
// latency runs from that intended time to the answer, so a stall shows up
// in every request queued behind it.
struct Paced {
  std::vector<double> latencies_ms;  // sorted
  uint64_t offered = 0;
  uint64_t late_sends = 0;  // sent more than 1 ms after their intended time
  double seconds = 0;
  uint64_t failures = 0;
  std::string first_failure;
};

Paced RunOpenLoop(uint16_t port, double seconds, uint64_t seed) {
  Failures f;
  const auto interval = std::chrono::duration<double>(1.0 / kOfferedRate);
  const uint64_t total = static_cast<uint64_t>(kOfferedRate * seconds);
  std::vector<std::vector<double>> lat(kPacedConnections);
  std::vector<uint64_t> late(kPacedConnections, 0);
  std::vector<std::thread> threads;
  const auto t0 = Clock::now() + std::chrono::milliseconds(100);
  for (int i = 0; i < kPacedConnections; ++i) {
    threads.emplace_back([&, i] {
      auto cli = MakeClient(port);
      EventMaker maker(20 + i, seed * 7919 + static_cast<uint64_t>(i));
      for (uint64_t k = static_cast<uint64_t>(i); k < total; k += kPacedConnections) {
        if (g_interrupted.load()) break;
        const auto intended =
            t0 + std::chrono::duration_cast<Clock::duration>(interval * static_cast<double>(k));
        const std::string body = maker.Event();
        std::this_thread::sleep_until(intended);
        if (Clock::now() - intended > std::chrono::milliseconds(1)) ++late[i];
        const bool ok = PostEvents(*cli, body, 1, f);
        lat[i].push_back(Ms(Clock::now() - intended));
        if (!ok) break;
      }
    });
  }
  for (auto& t : threads) t.join();
  Paced r;
  r.seconds = Seconds(Clock::now() - t0);
  r.offered = total;
  for (int i = 0; i < kPacedConnections; ++i) {
    r.latencies_ms.insert(r.latencies_ms.end(), lat[i].begin(), lat[i].end());
    r.late_sends += late[i];
  }
  std::sort(r.latencies_ms.begin(), r.latencies_ms.end());
  r.failures = f.count;
  r.first_failure = f.first;
  return r;
}

struct Row {
  std::string figure, measured, target, verdict;
};

std::string Verdict(bool measured, bool met) {
  if (!measured) return "not measured";
  return met ? "met" : "MISSED";
}

void PrintTable(const std::vector<Row>& rows) {
  size_t w[4] = {6, 8, 6, 7};
  for (const auto& r : rows) {
    w[0] = std::max(w[0], r.figure.size());
    w[1] = std::max(w[1], r.measured.size());
    w[2] = std::max(w[2], r.target.size());
    w[3] = std::max(w[3], r.verdict.size());
  }
  auto line = [&](const std::string& a, const std::string& b, const std::string& c,
                  const std::string& d) {
    std::printf("  %-*s | %*s | %-*s | %s\n", static_cast<int>(w[0]), a.c_str(),
                static_cast<int>(w[1]), b.c_str(), static_cast<int>(w[2]), c.c_str(), d.c_str());
  };
  line("figure", "measured", "target", "verdict");
  std::printf("  %s-+-%s-+-%s-+-%s\n", std::string(w[0], '-').c_str(),
              std::string(w[1], '-').c_str(), std::string(w[2], '-').c_str(),
              std::string(w[3], '-').c_str());
  for (const auto& r : rows) line(r.figure, r.measured, r.target, r.verdict);
}

fs::path DefaultDaemonPath() {
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return "storegw";
  return (self.parent_path() / ".." / ".." / "gateway" / "storegw").lexically_normal();
}

void Usage(FILE* out) {
  std::fprintf(out,
               "usage: ingest_bench [--storegw PATH] [--seconds S]\n"
               "  --storegw PATH  the daemon binary (default: <dir of this program>/"
               "../../gateway/storegw)\n"
               "  --seconds S     length of each load phase, 1..60 (default 5)\n");
}

int Main(int argc, char** argv) {
  fs::path binary = DefaultDaemonPath();
  double seconds = 5;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--storegw" && i + 1 < argc) {
      binary = argv[++i];
    } else if (a == "--seconds" && i + 1 < argc) {
      char* end = nullptr;
      seconds = std::strtod(argv[++i], &end);
      if (end == argv[i] || *end != '\0' || !(seconds >= 1 && seconds <= 60)) {
        std::fprintf(stderr, "ingest_bench: --seconds wants a number from 1 to 60, got '%s'\n",
                     argv[i]);
        return 2;
      }
    } else if (a == "--help" || a == "-h") {
      Usage(stdout);
      return 0;
    } else {
      std::fprintf(stderr, "ingest_bench: unknown or incomplete argument '%s'\n", a.c_str());
      Usage(stderr);
      return 2;
    }
  }
  if (access(binary.c_str(), X_OK) != 0) {
    std::fprintf(stderr,
                 "ingest_bench: the daemon binary %s is not an executable (%s); build the "
                 "storegw target or pass --storegw PATH\n",
                 binary.c_str(), std::strerror(errno));
    return 2;
  }

  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);

  utsname u{};
  uname(&u);
  const uint64_t seed =
      static_cast<uint64_t>(std::random_device{}()) << 32 ^
      static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
  std::printf("ingest_bench: the device API of the real daemon, against the README's targets\n");
  std::printf("  daemon     : %s\n", binary.c_str());
  std::printf("  machine    : %s %s, %u hardware threads (daemon and load generator share them)\n",
              u.sysname, u.release, std::thread::hardware_concurrency());
  const std::string load_start = LoadAverage();
  std::printf("  load avg   : %s at start\n", load_start.c_str());
  std::printf("  NOTE: this machine is shared with other work; the figures move with its load.\n");
  std::fflush(stdout);

  Daemon d;
  const auto start_t0 = Clock::now();
  if (std::string err = d.Start(binary); !err.empty()) {
    std::fprintf(stderr, "ingest_bench: could not start the daemon: %s\n", err.c_str());
    return 1;
  }
  std::printf(
      "  started    : pid %d on 127.0.0.1:%u, ready after %.0f ms (data dir under "
      "/var/tmp, uplink none)\n\n",
      static_cast<int>(d.pid()), static_cast<unsigned>(d.port()), Ms(Clock::now() - start_t0));
  std::fflush(stdout);

  bool broken = false;
  auto check_alive = [&](const char* when) {
    if (d.Alive()) return true;
    std::fprintf(stderr, "ingest_bench: the daemon died %s (%s); its log:\n%s\n", when,
                 d.exit_text().c_str(), TailOfFile(d.log()).c_str());
    broken = true;
    return false;
  };

  // d (first half): idle after start.
  std::this_thread::sleep_for(kIdleWait);
  const auto rss_start = ProcStatusKiB(d.pid(), "VmRSS");
  std::printf("[d] idle RSS 2 s after ready: %s KiB\n",
              rss_start ? Num(*rss_start).c_str() : "n/a");

  std::vector<Row> rows;
  auto report_failures = [&](const char* phase, uint64_t n, const std::string& first) {
    if (n == 0) return;
    std::fprintf(stderr, "ingest_bench: phase %s: %" PRIu64 " request(s) failed; first: %s\n",
                 phase, n, first.c_str());
    broken = true;
  };

  // a
  std::optional<Throughput> a;
  if (check_alive("before phase a") && !g_interrupted.load()) {
    std::printf("[a] %d clients x batches of %d JSON events, closed loop, %.0f s ...\n", kClients,
                kBatch, seconds);
    std::fflush(stdout);
    a = RunClosedLoop(d.port(), kBatch, seconds, seed);
    const double eps = static_cast<double>(a->events) / a->seconds;
    std::printf(
        "    %s events in %s requests in %.2f s: %s events/s, %s requests/s; "
        "request p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
        Num(static_cast<double>(a->events)).c_str(), Num(static_cast<double>(a->requests)).c_str(),
        a->seconds, Num(eps).c_str(), Num(static_cast<double>(a->requests) / a->seconds).c_str(),
        Percentile(a->latencies_ms, 50), Percentile(a->latencies_ms, 99),
        a->latencies_ms.empty() ? NAN : a->latencies_ms.back());
    report_failures("a", a->failures, a->first_failure);
    check_alive("during phase a");
  }

  // b
  std::optional<Throughput> b;
  if (!broken && !g_interrupted.load()) {
    std::printf("[b] %d clients x single JSON events over keep-alive, closed loop, %.0f s ...\n",
                kClients, seconds);
    std::fflush(stdout);
    b = RunClosedLoop(d.port(), 1, seconds, seed + 1);
    std::printf(
        "    %s requests in %.2f s: %s requests/s; request p50 %.2f ms, p99 %.2f ms, "
        "max %.2f ms\n",
        Num(static_cast<double>(b->requests)).c_str(), b->seconds,
        Num(static_cast<double>(b->requests) / b->seconds).c_str(), Percentile(b->latencies_ms, 50),
        Percentile(b->latencies_ms, 99), b->latencies_ms.empty() ? NAN : b->latencies_ms.back());
    report_failures("b", b->failures, b->first_failure);
    check_alive("during phase b");
  }

  // c
  std::optional<Paced> c;
  if (!broken && !g_interrupted.load()) {
    std::printf(
        "[c] single JSON events at %.0f requests/s offered, open loop over %d "
        "connections, %.0f s ...\n",
        kOfferedRate, kPacedConnections, seconds);
    std::fflush(stdout);
    c = RunOpenLoop(d.port(), seconds, seed + 2);
    const auto& l = c->latencies_ms;
    std::printf("    %zu of %" PRIu64 " offered answered in %.2f s (%" PRIu64
                " sent > 1 ms late); from intended send time: p50 %.2f ms, p90 %.2f ms, "
                "p99 %.2f ms, max %.2f ms\n",
                l.size(), c->offered, c->seconds, c->late_sends, Percentile(l, 50),
                Percentile(l, 90), Percentile(l, 99), l.empty() ? NAN : l.back());
    report_failures("c", c->failures, c->first_failure);
    check_alive("during phase c");
  }

  // d (second half): idle after the load (keep-alive connections closed by
  // now: the clients are gone and the daemon's keep-alive timeout is 2 s).
  std::optional<double> rss_after, hwm;
  if (!broken && !g_interrupted.load()) {
    std::this_thread::sleep_for(kIdleWait);
    rss_after = ProcStatusKiB(d.pid(), "VmRSS");
    hwm = ProcStatusKiB(d.pid(), "VmHWM");
    std::printf("[d] idle RSS 2 s after the load: %s KiB (peak VmHWM %s KiB)\n",
                rss_after ? Num(*rss_after).c_str() : "n/a", hwm ? Num(*hwm).c_str() : "n/a");
  }

  // Stop the daemon now, to report how it stopped.
  d.Stop();
  std::printf("[-] daemon stopped by SIGTERM: %s after %.0f ms%s\n\n", d.exit_text().c_str(),
              d.stop_ms(), d.killed() ? " (needed SIGKILL)" : "");
  if (!d.exited_zero()) {
    std::fprintf(stderr, "ingest_bench: the daemon did not exit 0 on SIGTERM; its log:\n%s\n",
                 TailOfFile(d.log()).c_str());
    broken = true;
  }

  const double a_eps = a ? static_cast<double>(a->events) / a->seconds : NAN;
  const double b_rps = b ? static_cast<double>(b->requests) / b->seconds : NAN;
  const double c_p99 = c ? Percentile(c->latencies_ms, 99) : NAN;
  auto mib = [](std::optional<double> kib) { return kib ? *kib / 1024.0 : NAN; };
  rows.push_back({"a) events/s, 8 clients x batches of 20", Num(a_eps),
                  ">= " + Num(kTargetBatchedEventsPerSec),
                  Verdict(a.has_value(), a_eps >= kTargetBatchedEventsPerSec)});
  rows.push_back({"b) requests/s, 8 clients x single events", Num(b_rps),
                  ">= " + Num(kTargetSingleRequestsPerSec),
                  Verdict(b.has_value(), b_rps >= kTargetSingleRequestsPerSec)});
  rows.push_back({"c) p50 latency at 500 req/s offered",
                  c ? Fmt("%.2f ms", Percentile(c->latencies_ms, 50)) : "n/a", "-", "info"});
  rows.push_back({"c) p90 latency at 500 req/s offered",
                  c ? Fmt("%.2f ms", Percentile(c->latencies_ms, 90)) : "n/a", "-", "info"});
  rows.push_back({"c) p99 latency at 500 req/s offered", c ? Fmt("%.2f ms", c_p99) : "n/a",
                  Fmt("<= %.0f ms", kTargetP99Ms), Verdict(c.has_value(), c_p99 <= kTargetP99Ms)});
  rows.push_back({"c) max latency at 500 req/s offered",
                  c && !c->latencies_ms.empty() ? Fmt("%.2f ms", c->latencies_ms.back()) : "n/a",
                  "-", "info"});
  rows.push_back({"d) RSS idle, after start", rss_start ? Fmt("%.1f MiB", mib(rss_start)) : "n/a",
                  Fmt("<= %.0f MiB", kTargetRssMiB),
                  Verdict(rss_start.has_value(), mib(rss_start) <= kTargetRssMiB)});
  rows.push_back({"d) RSS idle, after the load",
                  rss_after ? Fmt("%.1f MiB", mib(rss_after)) : "n/a",
                  Fmt("<= %.0f MiB", kTargetRssMiB),
                  Verdict(rss_after.has_value(), mib(rss_after) <= kTargetRssMiB)});
  rows.push_back(
      {"d) peak RSS (VmHWM) during the run", hwm ? Fmt("%.1f MiB", mib(hwm)) : "n/a", "-", "info"});
  PrintTable(rows);
  std::printf("\n  load avg   : %s at start, %s at end\n", load_start.c_str(),
              LoadAverage().c_str());
  std::printf(
      "  NOTE: shared %u-thread machine, load generator on the same cores as the "
      "daemon: missed targets may be the machine's, not the daemon's.\n",
      std::thread::hardware_concurrency());
  if (g_interrupted.load()) {
    std::fprintf(stderr, "ingest_bench: interrupted\n");
    return 1;
  }
  return broken ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  return Main(argc, argv);
}
