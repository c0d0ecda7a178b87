// journal_bench: measures the journal (storage::Journal) against the
// performance targets in README.md, in one run, beside the limits of the
// machine it runs on: the raw fsync rate of the data disk and a raw loop of
// SQLite inserts into an equivalent table.
//
// Phases (select with --only a,b,...):
//   a  fsync rate: 4 KiB write + fdatasync/fsync in a loop
//   b  raw SQLite: inserts in one transaction (WAL) and single-row commits
//      (WAL, synchronous=FULL) into an equivalent table
//   c  8 producer threads appending batches of 10 events (target >= 100,000/s)
//   d  1 producer appending single events (target >= 70% of the fsync rate)
//   e  commit latency at 1,000 events/s offered, open loop (target p99 <= 5 ms)
//   f  open time of a journal holding --events events (target <= 1 s)
//   g  peak RSS while appending --events events, in a child process forked
//      at start-up (target <= 64 MiB)
//
// It is a measurement, not a test: it exits 0 whether or not a target is
// met, and non-zero only when something fails (an Append error, a SQLite
// error, a phase that overruns its time bound, bad arguments).
#include <fcntl.h>
#include <poll.h>
#include <sqlite3.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <condition_variable>
#include <csignal>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "storegw/status.h"
#include "storegw/storage/journal.h"
#include "storegw/v1/storegw.pb.h"

namespace {

namespace fs = std::filesystem;
namespace v1 = ::storegw::v1;
using storegw::Status;
using storegw::storage::Journal;
using storegw::storage::JournalOptions;
using Clock = std::chrono::steady_clock;

constexpr double kTargetBatchedEventsPerSec = 100000.0;  // c
constexpr double kTargetSingleFractionOfFsync = 0.70;    // d
constexpr double kTargetP99Ms = 5.0;                     // e
constexpr double kTargetOpenMs = 1000.0;                 // f
constexpr double kTargetRssMiB = 64.0;                   // g
constexpr uint64_t kTargetJournalEvents = 1000000;       // f, g targets are for 1M events
constexpr int kSkus = 2000;

double Seconds(Clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

double CpuSeconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

int64_t NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
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

struct LatencySummary {
  size_t n = 0;
  double p50 = NAN, p90 = NAN, p99 = NAN, max = NAN;  // milliseconds
};

LatencySummary Summarize(std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  LatencySummary s;
  s.n = ms.size();
  if (ms.empty()) return s;
  s.p50 = Percentile(ms, 50);
  s.p90 = Percentile(ms, 90);
  s.p99 = Percentile(ms, 99);
  s.max = ms.back();
  return s;
}

std::string LatencyText(const LatencySummary& s) {
  return Fmt("p50 %.2f / p90 %.2f / p99 %.2f / max %.2f ms", s.p50, s.p90, s.p99, s.max);
}

// "VmHWM:" / "VmRSS:" of /proc/self/status, in KiB (-1 when unreadable).
long ProcStatusKiB(const char* key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  size_t key_len = strlen(key);
  while (std::getline(in, line)) {
    if (line.compare(0, key_len, key) == 0) return std::strtol(line.c_str() + key_len, nullptr, 10);
  }
  return -1;
}

// Bytes this process caused to be written to storage (/proc/self/io
// write_bytes): shows how many bytes each commit really costs the disk.
uint64_t DiskWriteBytes() {
  std::ifstream in("/proc/self/io");
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, 12, "write_bytes:") == 0)
      return std::strtoull(line.c_str() + 12, nullptr, 10);
  }
  return 0;
}

uint64_t FileSize(const fs::path& p) {
  std::error_code ec;
  auto n = fs::file_size(p, ec);
  return ec ? 0 : static_cast<uint64_t>(n);
}

// Sum of a SQLite database's files (main, -wal; -shm is an index, not data).
uint64_t DbBytes(const fs::path& db) {
  return FileSize(db) + FileSize(db.string() + "-wal");
}

// Drops the file's clean pages from the page cache, so the next open reads
// from the disk (no root needed, unlike /proc/sys/vm/drop_caches).
void DropFromPageCache(const fs::path& p) {
  int fd = open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  fdatasync(fd);
  posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  close(fd);
}

// ------------------------------------------------------------- watchdog

// Every phase is bounded: if one overruns its budget, say which and stop
// the whole program (killing the RSS child, if any).
class Watchdog {
 public:
  Watchdog() : thread_([this] { Run(); }) {}
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      quit_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void Arm(std::string phase, double budget_s) {
    std::lock_guard<std::mutex> lk(mu_);
    phase_ = std::move(phase);
    budget_s_ = budget_s;
    deadline_ = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                   std::chrono::duration<double>(budget_s));
    armed_ = true;
    cv_.notify_all();
  }
  void Disarm() {
    std::lock_guard<std::mutex> lk(mu_);
    armed_ = false;
  }
  static std::atomic<pid_t> child_pid;
  static std::string data_dir;

 private:
  void Run() {
    std::unique_lock<std::mutex> lk(mu_);
    while (!quit_) {
      if (armed_ && Clock::now() >= deadline_) {
        fprintf(stderr,
                "journal_bench: phase %s did not finish within its %.0f s bound; aborting "
                "(data left in %s)\n",
                phase_.c_str(), budget_s_, data_dir.c_str());
        pid_t c = child_pid.load();
        if (c > 0) kill(c, SIGKILL);
        fflush(stdout);
        _exit(3);
      }
      cv_.wait_for(lk, std::chrono::milliseconds(100));
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  bool quit_ = false;
  bool armed_ = false;
  std::string phase_;
  double budget_s_ = 0;
  Clock::time_point deadline_;
  std::thread thread_;
};
std::atomic<pid_t> Watchdog::child_pid{0};
std::string Watchdog::data_dir;

// ------------------------------------------------------------- events

struct Catalogue {
  std::vector<std::string> skus;
  std::vector<int64_t> prices;  // EUR cents
  Catalogue() {
    for (int i = 0; i < kSkus; ++i) {
      skus.push_back(Fmt("SKU-%06d", 100 + i * 7));
      // 0.49 .. 49.99 EUR, in "nn9" steps like real shelf prices.
      prices.push_back(49 + static_cast<int64_t>((static_cast<uint64_t>(i) * 7919u) % 500u) * 10);
    }
  }
};
const Catalogue& Cat() {
  static const Catalogue c;
  return c;
}

// Realistic small sales from one till: a random UUIDv4 event_id (as devices
// generate them, so the unique index sees random keys), 1-3 lines, skus of a
// 2,000-sku catalogue (80% of picks from the 400 best sellers), EUR prices.
class EventGen {
 public:
  EventGen(uint64_t seed, std::string device_id) : rng_(seed), device_(std::move(device_id)) {}

  // --ids: "uuid" (UUIDv4, random: the default, what most POS software
  // sends) or "ordered" (time-ordered like UUIDv7/ULID: the unique index
  // grows at its right edge instead of taking random inserts).
  static bool ordered_ids;

  std::string Uuid() {
    if (ordered_ids) {
      uint64_t t = static_cast<uint64_t>(NowUs()) & uint64_t{0xffffffffffff};
      uint64_t c = ++ordered_ctr_;
      return Fmt("%08" PRIx64 "-%04" PRIx64 "-7%03" PRIx64 "-%04" PRIx64 "-%012" PRIx64, t >> 16,
                 t & 0xffff, c & 0xfff, 0x8000 | ((c >> 12) & 0x3fff),
                 rng_() & uint64_t{0xffffffffffff});
    }
    uint64_t a = rng_(), b = rng_();
    a = (a & 0xffffffffffff0fffull) | 0x0000000000004000ull;  // version 4
    b = (b & 0x3fffffffffffffffull) | 0x8000000000000000ull;  // variant 10
    return Fmt("%08" PRIx64 "-%04" PRIx64 "-%04" PRIx64 "-%04" PRIx64 "-%012" PRIx64, a >> 32,
               (a >> 16) & 0xffff, a & 0xffff, b >> 48, b & uint64_t{0xffffffffffff});
  }

  v1::Event Sale() {
    const Catalogue& cat = Cat();
    v1::Event e;
    e.set_event_id(Uuid());
    e.set_device_id(device_);
    e.set_occurred_at(NowUs());
    v1::Sale* s = e.mutable_sale();
    uint64_t r = rng_();
    int lines = (r % 10) < 5 ? 1 : (r % 10) < 8 ? 2 : 3;
    for (int i = 0; i < lines; ++i) {
      uint64_t x = rng_();
      size_t idx = (x % 100) < 80 ? (x >> 8) % 400 : 400 + (x >> 8) % (kSkus - 400);
      v1::SaleLine* l = s->add_lines();
      l->set_sku(cat.skus[idx]);
      l->set_qty((x >> 40) % 10 < 7 ? 1 : 2 + static_cast<int64_t>((x >> 44) % 2));
      l->set_unit_price(cat.prices[idx]);
      l->set_currency("EUR");
    }
    s->set_basket_id(Fmt("%s-%07" PRIu64, device_.c_str(), ++basket_));
    s->set_tender((r >> 8) % 3 == 0 ? "cash" : "card");
    return e;
  }

  std::vector<v1::Event> Batch(size_t n) {
    std::vector<v1::Event> v;
    v.reserve(n);
    for (size_t i = 0; i < n; ++i) v.push_back(Sale());
    return v;
  }

  // Goods in for every sku, so sales never oversell (which would add alert
  // events and ledger work that a stocked store does not have).
  std::vector<v1::Event> StockUp() {
    std::vector<v1::Event> v;
    const Catalogue& cat = Cat();
    for (int d = 0; d < kSkus / 10; ++d) {
      v1::Event e;
      e.set_event_id(Uuid());
      e.set_device_id("backroom-01");
      e.set_occurred_at(NowUs());
      v1::Receipt* rc = e.mutable_receipt();
      rc->set_delivery_id(Fmt("DN-%06d", d));
      for (int i = 0; i < 10; ++i) {
        v1::StockLine* l = rc->add_lines();
        l->set_sku(cat.skus[static_cast<size_t>(d * 10 + i)]);
        l->set_qty(10000000);
      }
      v.push_back(std::move(e));
    }
    return v;
  }

 private:
  std::mt19937_64 rng_;
  std::string device_;
  uint64_t basket_ = 0;
  uint64_t ordered_ctr_ = 0;
};
bool EventGen::ordered_ids = false;

uint64_t SeedFor(uint64_t base, uint64_t stream) {
  return base * 0x9e3779b97f4a7c15ull + stream * 0xbf58476d1ce4e5b9ull + 1;
}

// ------------------------------------------------------------- options

struct Options {
  fs::path base_dir;  // where the work dir is made
  fs::path work_dir;  // fresh, removed at the end unless --keep
  bool keep = false;
  bool quick = false;
  uint64_t events = kTargetJournalEvents;
  bool events_given = false;
  std::set<char> phases{'a', 'b', 'c', 'd', 'e', 'f', 'g'};
  uint64_t seed = 0;
  bool ordered_ids = false;
  // Durations (seconds) and bounds; --quick shrinks them.
  double fsync_s = 1.0;  // the reference variant; the two others get half
  double raw_txn_s = 2.0;
  uint64_t raw_txn_max_rows = 1000000;
  double raw_commit_s = 2.0;
  double raw_group_s = 2.0;
  double batched_s = 3.0;
  double single_s = 2.0;
  double latency_s = 5.0;
  double latency_rate = 1000.0;
  int latency_workers = 8;
  double build_limit_s = 300.0;  // f and g: give up filling after this
  bool Has(char p) const { return phases.count(p) != 0; }
};

void Usage(FILE* out) {
  fprintf(out,
          "usage: journal_bench [--data-dir DIR] [--events N] [--quick] [--only a,b,...] "
          "[--keep] [--seed N] [--ids uuid|ordered]\n"
          "  --data-dir DIR  directory on the disk to measure; the bench works in a fresh\n"
          "                  subdirectory of it, removed at the end (default: $TMPDIR or\n"
          "                  /var/tmp)\n"
          "  --events N      events in the journal of phases f and g (default 1000000)\n"
          "  --quick         small counts and short phases (smoke run, figures meaningless)\n"
          "  --only LIST     phases to run, e.g. a,b,d (default a,b,c,d,e,f,g)\n"
          "  --keep          keep the work directory\n"
          "  --seed N        seed of the event generator (default: random)\n"
          "  --ids KIND      event_id style: uuid (random UUIDv4, default) or ordered\n"
          "                  (time-ordered, like UUIDv7/ULID)\n");
}

bool ParseArgs(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](const char* name) -> const char* {
      if (i + 1 >= argc) {
        fprintf(stderr, "journal_bench: %s needs a value\n", name);
        return nullptr;
      }
      return argv[++i];
    };
    if (a == "--data-dir") {
      const char* v = value("--data-dir");
      if (!v) return false;
      o->base_dir = v;
    } else if (a == "--events") {
      const char* v = value("--events");
      if (!v) return false;
      char* end = nullptr;
      unsigned long long n = strtoull(v, &end, 10);
      if (*v == '\0' || *end != '\0' || n == 0 || n > 100000000ull) {
        fprintf(stderr, "journal_bench: --events wants a count from 1 to 100000000, got '%s'\n", v);
        return false;
      }
      o->events = n;
      o->events_given = true;
    } else if (a == "--quick") {
      o->quick = true;
    } else if (a == "--keep") {
      o->keep = true;
    } else if (a == "--seed") {
      const char* v = value("--seed");
      if (!v) return false;
      o->seed = strtoull(v, nullptr, 10);
    } else if (a == "--ids") {
      const char* v = value("--ids");
      if (!v) return false;
      std::string k = v;
      if (k != "uuid" && k != "ordered") {
        fprintf(stderr, "journal_bench: --ids wants uuid or ordered, got '%s'\n", v);
        return false;
      }
      o->ordered_ids = k == "ordered";
    } else if (a == "--only") {
      const char* v = value("--only");
      if (!v) return false;
      o->phases.clear();
      std::string list = v;
      size_t start = 0;
      while (start <= list.size()) {
        size_t comma = list.find(',', start);
        std::string item =
            list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        if (item.size() != 1 || item[0] < 'a' || item[0] > 'g') {
          fprintf(stderr, "journal_bench: --only wants phase letters a..g, got '%s'\n",
                  item.c_str());
          return false;
        }
        o->phases.insert(item[0]);
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
    } else if (a == "--help" || a == "-h") {
      Usage(stdout);
      exit(0);
    } else {
      fprintf(stderr, "journal_bench: unknown argument '%s'\n", a.c_str());
      Usage(stderr);
      return false;
    }
  }
  if (o->quick) {
    o->fsync_s = 0.2;
    o->raw_txn_s = 0.3;
    o->raw_txn_max_rows = 20000;
    o->raw_commit_s = 0.3;
    o->raw_group_s = 0.3;
    o->batched_s = 0.5;
    o->single_s = 0.3;
    o->latency_s = 0.5;
    o->build_limit_s = 60;
    if (!o->events_given) o->events = 5000;
  }
  if (o->seed == 0) o->seed = std::random_device{}() | 1;
  return true;
}

// ------------------------------------------------------------- results

struct Row {
  std::string figure, measured, target, limit, verdict;
};

struct Report {
  std::vector<Row> rows;
  std::vector<std::string> errors;
  void Add(Row r) { rows.push_back(std::move(r)); }
  void Error(const std::string& e) {
    fprintf(stderr, "journal_bench: ERROR: %s\n", e.c_str());
    errors.push_back(e);
  }
};

std::string VerdictAtLeast(double measured, double target) {
  if (!std::isfinite(measured)) return "n/a";
  if (measured >= target) return "MET";
  return Fmt("MISSED (%.0f%% short)", 100.0 * (target - measured) / target);
}

std::string VerdictAtMost(double measured, double target) {
  if (!std::isfinite(measured)) return "n/a";
  if (measured <= target) return "MET";
  return Fmt("MISSED (%.1fx the target)", measured / target);
}

// Figures measured by one phase and used by another.
struct Shared {
  double fsync_rate = NAN;  // reference: append 4 KiB + fdatasync
  double raw_txn_rows_per_s = NAN;
  double raw_group80_rows_per_s = NAN;  // commits of 80 rows, FULL
  double raw_commits_per_s = NAN;
  LatencySummary raw_commit_latency;
  double raw_bytes_per_row = NAN;
  double event_bytes = NAN;  // mean serialized Event size
};

void PrintPhase(char p, const char* title) {
  printf("\n[%c] %s\n", p, title);
  fflush(stdout);
}

// ------------------------------------------------------------- a: fsync

// Writes 4 KiB and syncs, in a loop, for `seconds`. `overwrite`: cycle over
// a preallocated 1 MiB region (what a reused SQLite WAL does); otherwise
// append (the file grows, so the sync also carries metadata).
std::optional<double> FsyncRate(const fs::path& file, bool overwrite, bool full_fsync,
                                double seconds, std::string* err) {
  int fd = open(file.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    *err = Fmt("cannot create %s: %s", file.c_str(), strerror(errno));
    return std::nullopt;
  }
  std::vector<char> page(4096, 'x');
  constexpr off_t kRegion = 1 << 20;
  if (overwrite) {
    for (off_t off = 0; off < kRegion; off += 4096) {
      if (pwrite(fd, page.data(), page.size(), off) != 4096) {
        *err = Fmt("write %s: %s", file.c_str(), strerror(errno));
        close(fd);
        return std::nullopt;
      }
    }
    fsync(fd);
  }
  uint64_t n = 0;
  off_t off = 0;
  auto t0 = Clock::now();
  auto end =
      t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  while (Clock::now() < end) {
    page[n % 4096] = static_cast<char>('a' + n % 26);
    ssize_t w =
        overwrite ? pwrite(fd, page.data(), page.size(), off) : write(fd, page.data(), page.size());
    if (w != 4096 || (full_fsync ? fsync(fd) : fdatasync(fd)) != 0) {
      *err = Fmt("write+sync %s: %s", file.c_str(), strerror(errno));
      close(fd);
      return std::nullopt;
    }
    off = (off + 4096) % kRegion;
    ++n;
  }
  double el = Seconds(Clock::now() - t0);
  close(fd);
  fs::remove(file);
  return static_cast<double>(n) / el;
}

void PhaseFsync(const Options& o, Shared* sh, Report* rep) {
  PrintPhase('a', "fsync rate of the data disk (4 KiB write + sync, one thread)");
  fs::path f = o.work_dir / "fsync.probe";
  std::string err;
  auto app = FsyncRate(f, false, false, o.fsync_s, &err);
  auto over = app ? FsyncRate(f, true, false, o.fsync_s * 0.5, &err) : std::nullopt;
  auto full = over ? FsyncRate(f, false, true, o.fsync_s * 0.5, &err) : std::nullopt;
  if (!over || !app || !full) {
    rep->Error("phase a: " + err);
    return;
  }
  printf("  append 4 KiB + fdatasync       : %s /s  (the reference fsync rate for d)\n",
         Num(*app).c_str());
  printf("  overwrite in place + fdatasync : %s /s  (like a WAL reused after a checkpoint)\n",
         Num(*over).c_str());
  printf("  append 4 KiB + fsync           : %s /s\n", Num(*full).c_str());
  sh->fsync_rate = *app;
  rep->Add(
      {"a  fsync rate (append 4 KiB + fdatasync)", Num(sh->fsync_rate) + " /s", "-",
       Fmt("overwrite+fdatasync %s, append+fsync %s /s", Num(*over).c_str(), Num(*full).c_str()),
       "machine limit"});
}

// ------------------------------------------------------------- b: raw SQLite

class RawDb {
 public:
  ~RawDb() {
    if (ins_) sqlite3_finalize(ins_);
    if (db_) sqlite3_close(db_);
  }
  bool Open(const fs::path& path, std::string* err) {
    if (sqlite3_open(path.c_str(), &db_) != SQLITE_OK) {
      *err = Fmt("sqlite3_open %s: %s", path.c_str(), db_ ? sqlite3_errmsg(db_) : "out of memory");
      return false;
    }
    return Exec("PRAGMA journal_mode=WAL", err) && Exec("PRAGMA synchronous=FULL", err) &&
           Exec(
               "CREATE TABLE events(seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, "
               "body BLOB NOT NULL)",
               err) &&
           Prepare(err);
  }
  bool Exec(const char* sql, std::string* err) {
    char* msg = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &msg) != SQLITE_OK) {
      *err = Fmt("%s: %s", sql, msg ? msg : "?");
      sqlite3_free(msg);
      return false;
    }
    return true;
  }
  bool Insert(int64_t seq, const std::string& id, const std::string& body, std::string* err) {
    sqlite3_bind_int64(ins_, 1, seq);
    sqlite3_bind_text(ins_, 2, id.data(), static_cast<int>(id.size()), SQLITE_STATIC);
    sqlite3_bind_blob(ins_, 3, body.data(), static_cast<int>(body.size()), SQLITE_STATIC);
    int rc = sqlite3_step(ins_);
    sqlite3_reset(ins_);
    if (rc != SQLITE_DONE) {
      *err = Fmt("insert: %s", sqlite3_errmsg(db_));
      return false;
    }
    return true;
  }

 private:
  bool Prepare(std::string* err) {
    if (sqlite3_prepare_v2(db_, "INSERT INTO events(seq, event_id, body) VALUES(?,?,?)", -1, &ins_,
                           nullptr) != SQLITE_OK) {
      *err = Fmt("prepare: %s", sqlite3_errmsg(db_));
      return false;
    }
    return true;
  }
  sqlite3* db_ = nullptr;
  sqlite3_stmt* ins_ = nullptr;
};

void PhaseRaw(const Options& o, Shared* sh, Report* rep) {
  PrintPhase('b',
             "raw SQLite limit: table (seq INTEGER PRIMARY KEY, event_id TEXT UNIQUE, body BLOB)");
  // Payloads: real serialized sale events (same generator as the journal
  // phases); ids: fresh UUIDs per row.
  EventGen gen(SeedFor(o.seed, 1000), "till-01");
  std::vector<std::string> bodies;
  double total = 0;
  for (int i = 0; i < 4096; ++i) {
    bodies.push_back(gen.Sale().SerializeAsString());
    total += static_cast<double>(bodies.back().size());
  }
  sh->event_bytes = total / static_cast<double>(bodies.size());
  printf("  serialized sale event: %.1f bytes on average (protobuf Event)\n", sh->event_bytes);
  std::string err;

  // b1: one transaction.
  {
    fs::path path = o.work_dir / "raw-txn.db";
    RawDb db;
    if (!db.Open(path, &err)) return rep->Error("phase b: " + err);
    auto t0 = Clock::now();
    auto end = t0 + std::chrono::duration_cast<Clock::duration>(
                        std::chrono::duration<double>(o.raw_txn_s));
    if (!db.Exec("BEGIN", &err)) return rep->Error("phase b: " + err);
    uint64_t rows = 0;
    while (rows < o.raw_txn_max_rows) {
      // A fresh UUID per row (the generator is cheap next to the insert).
      std::string id = gen.Uuid();
      if (!db.Insert(static_cast<int64_t>(rows + 1), id, bodies[rows % bodies.size()], &err))
        return rep->Error("phase b: " + err);
      ++rows;
      if ((rows & 1023) == 0 && Clock::now() >= end) break;
    }
    if (!db.Exec("COMMIT", &err)) return rep->Error("phase b: " + err);
    double el = Seconds(Clock::now() - t0);
    sh->raw_txn_rows_per_s = static_cast<double>(rows) / el;
    if (!db.Exec("PRAGMA wal_checkpoint(TRUNCATE)", &err)) return rep->Error("phase b: " + err);
    sh->raw_bytes_per_row = static_cast<double>(DbBytes(path)) / static_cast<double>(rows);
    printf("  one transaction, WAL   : %s rows in %.2f s = %s rows/s, %.0f bytes/row on disk\n",
           Num(static_cast<double>(rows)).c_str(), el, Num(sh->raw_txn_rows_per_s).c_str(),
           sh->raw_bytes_per_row);
  }
  // b2: one commit per row, synchronous=FULL.
  {
    fs::path path = o.work_dir / "raw-commit.db";
    RawDb db;
    if (!db.Open(path, &err)) return rep->Error("phase b: " + err);
    std::vector<double> lat;
    auto t0 = Clock::now();
    auto end = t0 + std::chrono::duration_cast<Clock::duration>(
                        std::chrono::duration<double>(o.raw_commit_s));
    uint64_t rows = 0, w0 = DiskWriteBytes();
    while (Clock::now() < end) {
      std::string id = gen.Uuid();
      auto s = Clock::now();
      if (!db.Insert(static_cast<int64_t>(rows + 1), id, bodies[rows % bodies.size()], &err))
        return rep->Error("phase b: " + err);
      lat.push_back(Seconds(Clock::now() - s) * 1e3);
      ++rows;
    }
    double el = Seconds(Clock::now() - t0);
    sh->raw_commits_per_s = static_cast<double>(rows) / el;
    sh->raw_commit_latency = Summarize(std::move(lat));
    double written = static_cast<double>(DiskWriteBytes() - w0);
    printf("  one row per commit, FULL: %s commits/s; disk writes %.1f KiB/commit\n",
           Num(sh->raw_commits_per_s).c_str(),
           written / 1024.0 / static_cast<double>(std::max<uint64_t>(rows, 1)));
    printf("    commit latency %s\n", LatencyText(sh->raw_commit_latency).c_str());
  }
  // b3: commits of 80 rows, synchronous=FULL: the biggest group commit that
  // 8 producers with one batch of 10 in flight each can form (phase c).
  {
    fs::path path = o.work_dir / "raw-group.db";
    RawDb db;
    if (!db.Open(path, &err)) return rep->Error("phase b: " + err);
    auto t0 = Clock::now();
    auto end = t0 + std::chrono::duration_cast<Clock::duration>(
                        std::chrono::duration<double>(o.raw_group_s));
    uint64_t rows = 0, commits = 0, w0 = DiskWriteBytes();
    while (Clock::now() < end) {
      if (!db.Exec("BEGIN IMMEDIATE", &err)) return rep->Error("phase b: " + err);
      for (int i = 0; i < 80; ++i, ++rows) {
        if (!db.Insert(static_cast<int64_t>(rows + 1), gen.Uuid(), bodies[rows % bodies.size()],
                       &err))
          return rep->Error("phase b: " + err);
      }
      if (!db.Exec("COMMIT", &err)) return rep->Error("phase b: " + err);
      ++commits;
    }
    double el = Seconds(Clock::now() - t0);
    double written = static_cast<double>(DiskWriteBytes() - w0);
    sh->raw_group80_rows_per_s = static_cast<double>(rows) / el;
    printf("  80 rows per commit, FULL: %s rows/s (%s commits/s); disk writes %.0f KiB/commit\n",
           Num(sh->raw_group80_rows_per_s).c_str(), Num(static_cast<double>(commits) / el).c_str(),
           written / 1024.0 / static_cast<double>(std::max<uint64_t>(commits, 1)));
  }
  fs::remove(o.work_dir / "raw-txn.db");
  fs::remove(o.work_dir / "raw-commit.db");
  fs::remove(o.work_dir / "raw-group.db");
  rep->Add({"b  raw inserts, one transaction (WAL)", Num(sh->raw_txn_rows_per_s) + " rows/s", "-",
            "-", "practical limit"});
  rep->Add({"b  raw single-row commits (WAL, FULL)", Num(sh->raw_commits_per_s) + " commits/s", "-",
            Fmt("commit p99 %.2f ms", sh->raw_commit_latency.p99), "practical limit"});
  rep->Add({"b  raw 80-row commits (WAL, FULL)", Num(sh->raw_group80_rows_per_s) + " rows/s", "-",
            "-", "practical limit"});
}

// ------------------------------------------------------------- journal helpers

JournalOptions BenchJournalOptions(const fs::path& dir, uint64_t events) {
  JournalOptions jo;
  jo.data_dir = dir;
  jo.store_id = "store-0042";
  jo.gateway_id = "gw-bench";
  // Measuring throughput, not back-pressure: room for the whole run.
  jo.max_bytes = std::max<uint64_t>(jo.max_bytes, events * 2048 + (64ull << 20));
  return jo;
}

std::unique_ptr<Journal> OpenStocked(const fs::path& dir, uint64_t events, uint64_t seed,
                                     std::string* err) {
  auto j = Journal::Open(BenchJournalOptions(dir, events));
  if (!j.ok()) {
    *err = "Journal::Open " + dir.string() + ": " + j.status().ToString();
    return nullptr;
  }
  EventGen gen(seed, "backroom-01");
  auto r = (*j)->Append(gen.StockUp());
  if (!r.ok()) {
    *err = "stock-up Append: " + r.status().ToString();
    return nullptr;
  }
  return std::move(j.value());
}

struct LoadResult {
  uint64_t events = 0;  // new events journaled
  uint64_t duplicates = 0;
  uint64_t appends = 0;
  double seconds = 0;
  double cpu_s = 0;
  uint64_t disk_bytes = 0;        // written to storage by the whole process meanwhile
  std::vector<double> append_ms;  // per Append call, when recorded
  std::string error;
};

// `threads` producers each call Append with `batch` fresh sales until
// `max_events` are journaled, `max_seconds` pass, or an Append fails.
LoadResult RunProducers(Journal& j, int threads, size_t batch, uint64_t max_events,
                        double max_seconds, bool record_latency, uint64_t seed) {
  LoadResult res;
  std::atomic<uint64_t> claimed{0};
  std::atomic<bool> stop{false};
  std::mutex mu;
  auto end = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                std::chrono::duration<double>(max_seconds));
  double cpu0 = CpuSeconds();
  uint64_t w0 = DiskWriteBytes();
  auto t0 = Clock::now();
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      EventGen gen(SeedFor(seed, static_cast<uint64_t>(t)), Fmt("till-%02d", t + 1));
      uint64_t ev = 0, dup = 0, calls = 0;
      std::vector<double> lat;
      std::string error;
      while (!stop.load(std::memory_order_relaxed)) {
        uint64_t first = claimed.fetch_add(batch);
        if (first >= max_events) break;
        size_t n = static_cast<size_t>(std::min<uint64_t>(batch, max_events - first));
        auto events = gen.Batch(n);
        auto s = Clock::now();
        auto r = j.Append(std::move(events));
        auto e = Clock::now();
        if (!r.ok()) {
          error = "Append: " + r.status().ToString();
          stop = true;
          break;
        }
        if (r->size() != n) {
          error = Fmt("Append of %zu events answered %zu results", n, r->size());
          stop = true;
          break;
        }
        for (const auto& a : *r) (a.duplicate ? dup : ev)++;
        ++calls;
        if (record_latency) lat.push_back(Seconds(e - s) * 1e3);
        if (e >= end) stop = true;
      }
      std::lock_guard<std::mutex> lk(mu);
      res.events += ev;
      res.duplicates += dup;
      res.appends += calls;
      res.append_ms.insert(res.append_ms.end(), lat.begin(), lat.end());
      if (!error.empty() && res.error.empty()) res.error = error;
    });
  }
  for (auto& t : ts) t.join();
  res.seconds = Seconds(Clock::now() - t0);
  res.cpu_s = CpuSeconds() - cpu0;
  res.disk_bytes = DiskWriteBytes() - w0;
  return res;
}

std::string CpuText(double cpu_s, double wall_s) {
  unsigned cores = std::thread::hardware_concurrency();
  return Fmt("CPU %.2f of %u cores busy", cpu_s / wall_s, cores);
}

std::string DiskText(uint64_t bytes, uint64_t events, uint64_t commits) {
  double b = static_cast<double>(bytes);
  return Fmt("disk writes %.1f MiB = %.0f B/event, %.1f KiB/commit", b / 1048576.0,
             b / static_cast<double>(std::max<uint64_t>(events, 1)),
             b / 1024.0 / static_cast<double>(std::max<uint64_t>(commits, 1)));
}

// ------------------------------------------------------------- c: batched

void PhaseBatched(const Options& o, Shared* sh, Report* rep) {
  PrintPhase('c', "8 producer threads, Append of 10 events each call");
  std::string err;
  auto j = OpenStocked(o.work_dir / "c", 10000000, SeedFor(o.seed, 3000), &err);
  if (!j) return rep->Error("phase c: " + err);
  auto st0 = j->Stats();
  auto r = RunProducers(*j, 8, 10, UINT64_MAX, o.batched_s, true, SeedFor(o.seed, 3001));
  auto st1 = j->Stats();
  auto tc = Clock::now();
  j->Close();
  double close_s = Seconds(Clock::now() - tc);
  j.reset();
  fs::remove_all(o.work_dir / "c");
  if (!r.error.empty()) return rep->Error("phase c: " + r.error);
  double rate = static_cast<double>(r.events) / r.seconds;
  uint64_t commits = st1.commits - st0.commits;
  auto lat = Summarize(r.append_ms);
  printf("  %s events in %.2f s = %s events/s durable (%s duplicates)\n",
         Num(static_cast<double>(r.events)).c_str(), r.seconds, Num(rate).c_str(),
         Num(static_cast<double>(r.duplicates)).c_str());
  printf("  %s group commits = %.1f events/commit, %s commits/s; %s\n",
         Num(static_cast<double>(commits)).c_str(),
         commits ? static_cast<double>(r.events) / static_cast<double>(commits) : 0.0,
         Num(static_cast<double>(commits) / r.seconds).c_str(),
         CpuText(r.cpu_s, r.seconds).c_str());
  printf("  %s\n", DiskText(r.disk_bytes, r.events, commits).c_str());
  printf("  Append latency (batch of 10): %s; Close %.0f ms\n", LatencyText(lat).c_str(),
         close_s * 1e3);
  std::string limit =
      std::isfinite(sh->raw_txn_rows_per_s)
          ? Fmt("raw 1-txn %s rows/s (we: %.0f%%); raw 80-row commits %s rows/s (we: %.0f%%)",
                Num(sh->raw_txn_rows_per_s).c_str(), 100.0 * rate / sh->raw_txn_rows_per_s,
                Num(sh->raw_group80_rows_per_s).c_str(), 100.0 * rate / sh->raw_group80_rows_per_s)
          : "raw: phase b not run";
  rep->Add({"c  8 producers x batch of 10", Num(rate) + " events/s",
            ">= " + Num(kTargetBatchedEventsPerSec) + " /s", limit,
            VerdictAtLeast(rate, kTargetBatchedEventsPerSec) + (o.quick ? " (quick)" : "")});
}

// ------------------------------------------------------------- d: single

void PhaseSingle(const Options& o, Shared* sh, Report* rep) {
  PrintPhase('d', "1 producer, Append of 1 event each call");
  std::string err;
  // The disk is shared: its fsync rate drifts. A short probe right before
  // the phase shows whether it moved since phase a.
  auto adjacent = FsyncRate(o.work_dir / "fsync.probe", false, false, o.fsync_s * 0.5, &err);
  if (!adjacent) return rep->Error("phase d: " + err);
  auto j = OpenStocked(o.work_dir / "d", 1000000, SeedFor(o.seed, 4000), &err);
  if (!j) return rep->Error("phase d: " + err);
  auto st0 = j->Stats();
  auto r = RunProducers(*j, 1, 1, UINT64_MAX, o.single_s, true, SeedFor(o.seed, 4001));
  auto st1 = j->Stats();
  j->Close();
  j.reset();
  fs::remove_all(o.work_dir / "d");
  if (!r.error.empty()) return rep->Error("phase d: " + r.error);
  if (!std::isfinite(sh->fsync_rate)) sh->fsync_rate = *adjacent;  // phase a not run
  double rate = static_cast<double>(r.events) / r.seconds;
  uint64_t commits = st1.commits - st0.commits;
  auto lat = Summarize(r.append_ms);
  printf("  %s events in %.2f s = %s events/s, %s commits; %s\n",
         Num(static_cast<double>(r.events)).c_str(), r.seconds, Num(rate).c_str(),
         Num(static_cast<double>(commits)).c_str(), CpuText(r.cpu_s, r.seconds).c_str());
  printf("  %s\n", DiskText(r.disk_bytes, r.events, commits).c_str());
  printf("  Append latency: %s\n", LatencyText(lat).c_str());
  double frac = rate / sh->fsync_rate;
  std::string measured = Num(rate) + Fmt(" events/s = %.0f%% of fsync", 100.0 * frac);
  std::string verdict = VerdictAtLeast(frac, kTargetSingleFractionOfFsync);
  printf(
      "  = %.1f%% of the fsync rate of phase a (%s /s); %.1f%% of the one probed just before "
      "(%s /s)\n",
      100.0 * frac, Num(sh->fsync_rate).c_str(), 100.0 * rate / *adjacent, Num(*adjacent).c_str());
  std::string limit =
      Fmt("fsync %s /s (just before: %s)", Num(sh->fsync_rate).c_str(), Num(*adjacent).c_str());
  if (std::isfinite(sh->raw_commits_per_s))
    limit += Fmt("; raw commits %s /s (%.0f%% of it)", Num(sh->raw_commits_per_s).c_str(),
                 100.0 * rate / sh->raw_commits_per_s);
  rep->Add({"d  1 producer x 1 event", measured, ">= 70% of fsync rate", limit,
            verdict + (o.quick ? " (quick)" : "")});
}

// ------------------------------------------------------------- e: latency

void PhaseLatency(const Options& o, Shared* sh, Report* rep) {
  PrintPhase('e', "commit latency, open loop at 1,000 events/s offered (single-event Appends)");
  std::string err;
  auto j = OpenStocked(o.work_dir / "e", 1000000, SeedFor(o.seed, 5000), &err);
  if (!j) return rep->Error("phase e: " + err);
  auto st0 = j->Stats();

  std::mutex mu;
  std::condition_variable cv;
  std::deque<Clock::time_point> queue;  // intended send times
  bool pacer_done = false;
  size_t max_depth = 0;
  double max_pacer_late_ms = 0;
  std::vector<double> lat;  // ms, from the intended send time
  std::string error;
  const auto interval = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(1.0 / o.latency_rate));
  const uint64_t total = static_cast<uint64_t>(o.latency_s * o.latency_rate);

  double cpu0 = CpuSeconds();
  uint64_t w0 = DiskWriteBytes();
  auto start = Clock::now() + std::chrono::milliseconds(20);
  std::vector<std::thread> workers;
  for (int w = 0; w < o.latency_workers; ++w) {
    workers.emplace_back([&, w] {
      EventGen gen(SeedFor(o.seed, 5100 + static_cast<uint64_t>(w)), Fmt("till-%02d", w + 1));
      std::vector<double> mine;
      std::string my_error;
      for (;;) {
        Clock::time_point intended;
        {
          std::unique_lock<std::mutex> lk(mu);
          cv.wait(lk, [&] { return !queue.empty() || pacer_done; });
          if (queue.empty()) break;
          intended = queue.front();
          queue.pop_front();
        }
        std::vector<v1::Event> one;
        one.push_back(gen.Sale());
        auto r = j->Append(std::move(one));
        auto done = Clock::now();
        if (!r.ok()) {
          if (my_error.empty()) my_error = "Append: " + r.status().ToString();
          continue;
        }
        mine.push_back(Seconds(done - intended) * 1e3);
      }
      std::lock_guard<std::mutex> lk(mu);
      lat.insert(lat.end(), mine.begin(), mine.end());
      if (error.empty()) error = my_error;
    });
  }
  std::thread pacer([&] {
    for (uint64_t i = 0; i < total; ++i) {
      auto t = start + interval * static_cast<int64_t>(i);
      std::this_thread::sleep_until(t);
      double late = Seconds(Clock::now() - t) * 1e3;
      std::lock_guard<std::mutex> lk(mu);
      max_pacer_late_ms = std::max(max_pacer_late_ms, late);
      queue.push_back(t);
      max_depth = std::max(max_depth, queue.size());
      cv.notify_one();
    }
    std::lock_guard<std::mutex> lk(mu);
    pacer_done = true;
    cv.notify_all();
  });
  pacer.join();
  for (auto& w : workers) w.join();
  double wall = Seconds(Clock::now() - start);
  double cpu = CpuSeconds() - cpu0;
  uint64_t written = DiskWriteBytes() - w0;
  auto st1 = j->Stats();
  j->Close();
  j.reset();
  fs::remove_all(o.work_dir / "e");
  if (!error.empty()) return rep->Error("phase e: " + error);
  auto s = Summarize(lat);
  uint64_t commits = st1.commits - st0.commits;
  printf("  %s events offered at %s/s by a pacer thread to %d worker threads, over %.2f s\n",
         Num(static_cast<double>(total)).c_str(), Num(o.latency_rate).c_str(), o.latency_workers,
         wall);
  printf("  latency from intended send time: %s\n", LatencyText(s).c_str());
  printf("  %s commits (%.2f events/commit); max queue depth %zu; pacer at most %.2f ms late; %s\n",
         Num(static_cast<double>(commits)).c_str(),
         commits ? static_cast<double>(s.n) / static_cast<double>(commits) : 0.0, max_depth,
         max_pacer_late_ms, CpuText(cpu, wall).c_str());
  printf("  %s\n", DiskText(written, s.n, commits).c_str());
  std::string limit = std::isfinite(sh->raw_commit_latency.p99)
                          ? Fmt("raw commit p50 %.2f / p99 %.2f ms", sh->raw_commit_latency.p50,
                                sh->raw_commit_latency.p99)
                          : "raw: phase b not run";
  rep->Add({"e  latency @1,000/s p50/p90/p99/max",
            Fmt("%.2f / %.2f / %.2f / %.2f ms", s.p50, s.p90, s.p99, s.max), "p99 <= 5 ms", limit,
            VerdictAtMost(s.p99, kTargetP99Ms) + (o.quick ? " (quick)" : "")});
}

// ------------------------------------------------------------- f: open time

// sqlite3_open + PRAGMA quick_check + close of the same file: the floor of
// an open that checks the whole file's integrity. `small_tables_only`:
// quick_check(T) of every table but `events` instead (a diagnostic: what an
// open costs that leaves the big table to a background check).
std::optional<double> RawQuickCheck(const fs::path& db, bool small_tables_only, std::string* err) {
  auto t0 = Clock::now();
  sqlite3* h = nullptr;
  if (sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    *err = Fmt("sqlite3_open %s: %s", db.c_str(), h ? sqlite3_errmsg(h) : "?");
    sqlite3_close(h);
    return std::nullopt;
  }
  auto collect = [](void* out, int, char** v, char**) {
    static_cast<std::vector<std::string>*>(out)->push_back(v[0] ? v[0] : "");
    return 0;
  };
  std::vector<std::string> checks;
  char* msg = nullptr;
  int rc = SQLITE_OK;
  if (small_tables_only) {
    std::vector<std::string> tables;
    rc = sqlite3_exec(h,
                      "SELECT name FROM sqlite_schema WHERE type = 'table' AND name <> 'events' "
                      "AND name NOT LIKE 'sqlite_%'",
                      collect, &tables, &msg);
    for (size_t i = 0; rc == SQLITE_OK && i < tables.size(); ++i)
      checks.push_back("PRAGMA quick_check(\"" + tables[i] + "\")");
  } else {
    checks.push_back("PRAGMA quick_check");
  }
  for (size_t i = 0; rc == SQLITE_OK && i < checks.size(); ++i) {
    std::vector<std::string> result;
    rc = sqlite3_exec(h, checks[i].c_str(), collect, &result, &msg);
    if (rc == SQLITE_OK && (result.size() != 1 || result[0] != "ok")) {
      *err = Fmt("%s on %s: %s", checks[i].c_str(), db.c_str(),
                 result.empty() ? "no answer" : result[0].c_str());
      sqlite3_close(h);
      return std::nullopt;
    }
  }
  sqlite3_close(h);
  if (rc != SQLITE_OK) {
    *err = Fmt("quick_check %s: %s", db.c_str(), msg ? msg : "?");
    sqlite3_free(msg);
    return std::nullopt;
  }
  return Seconds(Clock::now() - t0) * 1e3;
}

void PhaseOpen(const Options& o, Shared* sh, Report* rep) {
  PrintPhase('f', Fmt("open time of a journal holding %s events",
                      Num(static_cast<double>(o.events)).c_str())
                      .c_str());
  fs::path dir = o.work_dir / "f";
  std::string err;
  fs::path db;
  uint64_t last_seq = 0;
  {
    auto j = OpenStocked(dir, o.events, SeedFor(o.seed, 6000), &err);
    if (!j) return rep->Error("phase f: " + err);
    db = j->path();
    // Build with big batches from 2 threads (one generates while the other
    // commits).
    uint64_t commits0 = j->Stats().commits;
    auto r = RunProducers(*j, 2, 1000, o.events, o.build_limit_s, false, SeedFor(o.seed, 6001));
    if (!r.error.empty()) return rep->Error("phase f (build): " + r.error);
    last_seq = j->Stats().last_seq;
    uint64_t build_commits = j->Stats().commits - commits0;
    printf(
        "  built: %s events in %.1f s (%s events/s, batches of 1,000 from 2 threads)%s\n",
        Num(static_cast<double>(r.events)).c_str(), r.seconds,
        Num(static_cast<double>(r.events) / r.seconds).c_str(),
        r.events < o.events ? Fmt(" -- STOPPED at the %.0f s bound", o.build_limit_s).c_str() : "");
    printf("  build: %s; %s\n", CpuText(r.cpu_s, r.seconds).c_str(),
           DiskText(r.disk_bytes, r.events, build_commits).c_str());
    auto tc = Clock::now();
    j->Close();
    printf("  Close after build: %.0f ms\n", Seconds(Clock::now() - tc) * 1e3);
  }
  uint64_t bytes = DbBytes(db);
  double per_event =
      static_cast<double>(bytes) / static_cast<double>(std::max<uint64_t>(last_seq, 1));
  printf("  journal files: %s bytes (journal.db %s + wal %s) = %.0f bytes/event (last_seq %s)\n",
         Num(static_cast<double>(bytes)).c_str(), Num(static_cast<double>(FileSize(db))).c_str(),
         Num(static_cast<double>(FileSize(db.string() + "-wal"))).c_str(), per_event,
         Num(static_cast<double>(last_seq)).c_str());

  // Cold: the journal's files dropped from the page cache first.
  double open_ms[2] = {NAN, NAN}, close_ms[2] = {NAN, NAN};
  for (int pass = 0; pass < 2; ++pass) {
    if (pass == 0) {
      DropFromPageCache(db);
      DropFromPageCache(db.string() + "-wal");
    }
    auto t0 = Clock::now();
    auto j = Journal::Open(BenchJournalOptions(dir, o.events));
    auto t1 = Clock::now();
    if (!j.ok()) return rep->Error("phase f: reopen: " + j.status().ToString());
    uint64_t seen = (*j)->Stats().last_seq;
    (*j)->Close();
    auto t2 = Clock::now();
    if (seen != last_seq)
      return rep->Error(Fmt("phase f: reopened journal has last_seq %" PRIu64 ", expected %" PRIu64,
                            seen, last_seq));
    open_ms[pass] = Seconds(t1 - t0) * 1e3;
    close_ms[pass] = Seconds(t2 - t1) * 1e3;
    printf("  %s open: Journal::Open %.0f ms + Close %.0f ms\n", pass == 0 ? "cold" : "warm",
           open_ms[pass], close_ms[pass]);
  }
  // ms: warm full check, cold full check, cold check of the small tables.
  double raw_ms[3];
  for (int k = 0; k < 3; ++k) {
    if (k > 0) {
      DropFromPageCache(db);
      DropFromPageCache(db.string() + "-wal");
    }
    auto ms = RawQuickCheck(db, k == 2, &err);
    if (!ms) return rep->Error("phase f: " + err);
    raw_ms[k] = *ms;
  }
  const double raw_warm = raw_ms[0], raw_cold = raw_ms[1], small_cold = raw_ms[2];
  printf("  raw sqlite3_open + PRAGMA quick_check + close: warm %.0f ms, cold %.0f ms\n", raw_warm,
         raw_cold);
  printf(
      "  raw open + quick_check(T) of every table but `events`, cold: %.0f ms (what an open\n"
      "    that leaves the big table's check to the background would cost)\n",
      small_cold);
  fs::remove_all(dir);

  bool comparable = o.events == kTargetJournalEvents && last_seq >= o.events;
  std::string note = comparable ? ""
                                : Fmt(" (%s events, target is for 1,000,000)",
                                      Num(static_cast<double>(last_seq)).c_str());
  rep->Add({"f  open, 1M events, cold cache",
            Fmt("%.0f ms (+ close %.0f ms)", open_ms[0], close_ms[0]), "<= 1,000 ms",
            Fmt("raw open+quick_check %.0f ms", raw_cold),
            comparable ? VerdictAtMost(open_ms[0] + close_ms[0], kTargetOpenMs) : "n/a" + note});
  rep->Add({"f  open, 1M events, warm cache",
            Fmt("%.0f ms (+ close %.0f ms)", open_ms[1], close_ms[1]), "<= 1,000 ms",
            Fmt("raw open+quick_check %.0f ms", raw_warm),
            comparable ? VerdictAtMost(open_ms[1] + close_ms[1], kTargetOpenMs) : "n/a" + note});
  rep->Add({"   bytes per event on disk", Fmt("%.0f B", per_event), "-",
            std::isfinite(sh->raw_bytes_per_row)
                ? Fmt("raw table %.0f B/row (body %.0f B)", sh->raw_bytes_per_row, sh->event_bytes)
                : "-",
            "info"});
}

// ------------------------------------------------------------- g: peak RSS

// The child is forked at start-up, while the process is still small and
// single-threaded, and waits for the go signal: its ru_maxrss then counts
// only what it inherited at that point plus the journal's own use, not the
// memory of earlier phases (Linux carries the parent's high-water mark into
// a child forked later).
struct RssResult {
  int ok = 0;
  uint64_t events = 0;
  uint64_t duplicates = 0;
  double seconds = 0;
  long start_rss_kib = 0;  // VmRSS when the child started working
  long maxrss_kib = 0;     // getrusage(RUSAGE_SELF).ru_maxrss
  long vmhwm_kib = 0;      // /proc/self/status VmHWM
  uint64_t commits = 0;
  double cpu_s = 0;
  uint64_t disk_bytes = 0;
  char error[512] = {};
};

struct RssChild {
  pid_t pid = -1;
  int go_fd = -1;      // parent writes 'g' (run) or closes (quit)
  int result_fd = -1;  // child writes RssResult
};

bool WriteAll(int fd, const void* p, size_t n) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    ssize_t w = write(fd, c, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    c += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

[[noreturn]] void RssChildMain(const Options& o, int go_fd, int result_fd) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  char cmd = 0;
  ssize_t n;
  do {
    n = read(go_fd, &cmd, 1);
  } while (n < 0 && errno == EINTR);
  if (n != 1 || cmd != 'g') _exit(0);
  RssResult res;
  res.start_rss_kib = ProcStatusKiB("VmRSS:");
  std::string err;
  auto j = OpenStocked(o.work_dir / "g", o.events, SeedFor(o.seed, 7000), &err);
  if (j) {
    auto st0 = j->Stats();
    auto r = RunProducers(*j, 8, 10, o.events, o.build_limit_s, false, SeedFor(o.seed, 7001));
    res.commits = j->Stats().commits - st0.commits;
    j->Close();
    j.reset();
    res.events = r.events;
    res.duplicates = r.duplicates;
    res.seconds = r.seconds;
    res.cpu_s = r.cpu_s;
    res.disk_bytes = r.disk_bytes;
    err = r.error;
  }
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  res.maxrss_kib = ru.ru_maxrss;
  res.vmhwm_kib = ProcStatusKiB("VmHWM:");
  res.ok = err.empty();
  snprintf(res.error, sizeof res.error, "%s", err.c_str());
  WriteAll(result_fd, &res, sizeof res);
  _exit(0);
}

RssChild ForkRssChild(const Options& o) {
  int go[2], result[2];
  if (pipe2(go, O_CLOEXEC) != 0 || pipe2(result, O_CLOEXEC) != 0) return {};
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) return {};
  if (pid == 0) {
    close(go[1]);
    close(result[0]);
    RssChildMain(o, go[0], result[1]);
  }
  close(go[0]);
  close(result[1]);
  Watchdog::child_pid = pid;
  return {pid, go[1], result[0]};
}

void PhaseRss(const Options& o, RssChild& child, Report* rep) {
  PrintPhase('g',
             Fmt("peak RSS while appending %s events (8 producers x batch of 10, forked child)",
                 Num(static_cast<double>(o.events)).c_str())
                 .c_str());
  if (child.pid <= 0) return rep->Error("phase g: could not fork the child process");
  char go = 'g';
  RssResult res;
  bool got = false;
  if (WriteAll(child.go_fd, &go, 1)) {
    pollfd p{child.result_fd, POLLIN, 0};
    int timeout_ms = static_cast<int>((o.build_limit_s + 120) * 1000);
    if (poll(&p, 1, timeout_ms) == 1) {
      size_t have = 0;
      char* dst = reinterpret_cast<char*>(&res);
      while (have < sizeof res) {
        ssize_t r = read(child.result_fd, dst + have, sizeof res - have);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        have += static_cast<size_t>(r);
      }
      got = have == sizeof res;
    }
  }
  close(child.go_fd);
  close(child.result_fd);
  child.go_fd = child.result_fd = -1;
  if (!got) kill(child.pid, SIGKILL);
  int status = 0;
  waitpid(child.pid, &status, 0);
  Watchdog::child_pid = 0;
  child.pid = -1;
  rusage ru{};
  getrusage(RUSAGE_CHILDREN, &ru);
  fs::remove_all(o.work_dir / "g");
  if (!got) return rep->Error(Fmt("phase g: the child sent no result (wait status %d)", status));
  if (!res.ok) return rep->Error(Fmt("phase g: %s", res.error));
  double mib = static_cast<double>(ru.ru_maxrss) / 1024.0;
  printf(
      "  %s events in %.1f s (%s events/s, %s commits)%s\n",
      Num(static_cast<double>(res.events)).c_str(), res.seconds,
      Num(static_cast<double>(res.events) / res.seconds).c_str(),
      Num(static_cast<double>(res.commits)).c_str(),
      res.events < o.events ? Fmt(" -- STOPPED at the %.0f s bound", o.build_limit_s).c_str() : "");
  printf("  %s; %s\n", CpuText(res.cpu_s, res.seconds).c_str(),
         DiskText(res.disk_bytes, res.events, res.commits).c_str());
  printf(
      "  child RSS at start %.1f MiB; peak: ru_maxrss %.1f MiB (parent's RUSAGE_CHILDREN %.1f "
      "MiB), VmHWM %.1f MiB\n",
      static_cast<double>(res.start_rss_kib) / 1024.0, static_cast<double>(res.maxrss_kib) / 1024.0,
      mib, static_cast<double>(res.vmhwm_kib) / 1024.0);
  bool comparable = o.events == kTargetJournalEvents && res.events >= o.events;
  rep->Add({"g  peak RSS appending 1M events",
            Fmt("%.1f MiB (VmHWM %.1f)", mib, static_cast<double>(res.vmhwm_kib) / 1024.0),
            "<= 64 MiB",
            Fmt("process at start %.1f MiB", static_cast<double>(res.start_rss_kib) / 1024.0),
            comparable ? VerdictAtMost(mib, kTargetRssMiB)
                       : Fmt("n/a (%s events, target is for 1,000,000)",
                             Num(static_cast<double>(res.events)).c_str())});
}

// ------------------------------------------------------------- main

void PrintTable(const Report& rep) {
  const char* head[] = {"figure", "measured", "target", "raw limit", "verdict"};
  size_t w[5];
  for (int i = 0; i < 5; ++i) w[i] = strlen(head[i]);
  for (const auto& r : rep.rows) {
    const std::string* c[] = {&r.figure, &r.measured, &r.target, &r.limit, &r.verdict};
    for (int i = 0; i < 5; ++i) w[i] = std::max(w[i], c[i]->size());
  }
  auto line = [&](const std::string* c[5]) {
    for (int i = 0; i < 5; ++i)
      printf("%s%-*s", i ? " | " : "", i == 4 ? 0 : static_cast<int>(w[i]), c[i]->c_str());
    printf("\n");
  };
  std::string hs[5];
  for (int i = 0; i < 5; ++i) hs[i] = head[i];
  const std::string* hp[] = {&hs[0], &hs[1], &hs[2], &hs[3], &hs[4]};
  printf("\n");
  line(hp);
  size_t total = 0;
  for (size_t x : w) total += x;
  printf("%s\n", std::string(total + 12, '-').c_str());
  for (const auto& r : rep.rows) {
    const std::string* c[] = {&r.figure, &r.measured, &r.target, &r.limit, &r.verdict};
    line(c);
  }
}

// "0.52 0.61 0.70" from /proc/loadavg: other work on the box skews figures.
std::string LoadAvg() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

std::string FsType(const fs::path& p) {
  struct statfs s {};
  if (statfs(p.c_str(), &s) != 0) return "?";
  switch (static_cast<unsigned long>(s.f_type)) {
    case 0xEF53:
      return "ext2/3/4";
    case 0x58465342:
      return "xfs";
    case 0x9123683E:
      return "btrfs";
    case 0x01021994:
      return "tmpfs (fsync is free here: durability figures mean nothing)";
    case 0x794c7630:
      return "overlayfs";
    case 0xF2F52010:
      return "f2fs";
    default:
      return Fmt("0x%lx", static_cast<unsigned long>(s.f_type));
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!ParseArgs(argc, argv, &o)) return 2;
  signal(SIGPIPE, SIG_IGN);

  if (o.base_dir.empty()) {
    const char* t = getenv("TMPDIR");
    o.base_dir = t && *t ? t : "/var/tmp";
  }
  std::error_code ec;
  fs::create_directories(o.base_dir, ec);
  std::string tmpl = (o.base_dir / "journal_bench.XXXXXX").string();
  if (!mkdtemp(tmpl.data())) {
    fprintf(stderr, "journal_bench: cannot create a work directory under %s: %s\n",
            o.base_dir.c_str(), strerror(errno));
    return 2;
  }
  o.work_dir = tmpl;
  Watchdog::data_dir = o.work_dir.string();
  Cat();  // build the catalogue before forking
  EventGen::ordered_ids = o.ordered_ids;

  // Fork the RSS child first, while this process is small and has no threads.
  RssChild child;
  if (o.Has('g')) child = ForkRssChild(o);

  utsname u{};
  uname(&u);
  printf("journal_bench: storegw journal vs. the machine's limits\n");
  printf("  host %s, %s %s, %u cores; SQLite %s; data dir %s (%s)%s\n", u.nodename, u.sysname,
         u.release, std::thread::hardware_concurrency(), sqlite3_libversion(), o.work_dir.c_str(),
         FsType(o.work_dir).c_str(), o.quick ? "; QUICK run: figures are not comparable" : "");
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  printf("  WARNING: sanitizer build: figures are not representative\n");
#endif
#ifndef NDEBUG
  printf("  note: assertions enabled (not an optimized release build?)\n");
#endif
  printf("  load average at start: %s (1/5/15 min; the disk and cores are shared)\n",
         LoadAvg().c_str());
  printf("  events: sales of 1-3 lines from a %d-sku catalogue, EUR, %s event_ids; seed %" PRIu64
         "\n",
         kSkus, o.ordered_ids ? "time-ordered" : "random UUIDv4", o.seed);

  Report rep;
  Shared sh;
  {
    Watchdog dog;
    auto run = [&](char p, double budget_s, auto fn) {
      if (!o.Has(p)) return;
      dog.Arm(std::string(1, p), budget_s);
      try {
        fn();
      } catch (const std::exception& e) {
        rep.Error(Fmt("phase %c: exception: %s", p, e.what()));
      }
      dog.Disarm();
      fflush(stdout);
    };
    run('a', 30 + 2 * o.fsync_s, [&] { PhaseFsync(o, &sh, &rep); });
    run('b', 60 + o.raw_txn_s + o.raw_commit_s, [&] { PhaseRaw(o, &sh, &rep); });
    run('c', 120 + o.batched_s, [&] { PhaseBatched(o, &sh, &rep); });
    run('d', 120 + o.single_s, [&] { PhaseSingle(o, &sh, &rep); });
    run('e', 120 + o.latency_s, [&] { PhaseLatency(o, &sh, &rep); });
    run('f', 300 + o.build_limit_s, [&] { PhaseOpen(o, &sh, &rep); });
    run('g', 300 + o.build_limit_s, [&] { PhaseRss(o, child, &rep); });
  }

  if (child.pid > 0) {  // phase g never ran (an earlier failure): let the child go
    close(child.go_fd);
    close(child.result_fd);
    waitpid(child.pid, nullptr, 0);
  }

  PrintTable(rep);
  printf("\nload average at end: %s\n", LoadAvg().c_str());
  if (o.keep) {
    printf("\nwork directory kept: %s\n", o.work_dir.c_str());
  } else {
    fs::remove_all(o.work_dir, ec);
  }
  if (!rep.errors.empty()) {
    printf("\n%zu error(s):\n", rep.errors.size());
    for (const auto& e : rep.errors) printf("  %s\n", e.c_str());
    return 1;
  }
  return 0;
}
