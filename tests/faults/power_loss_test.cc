// Power-loss test: the journal runs in a child process (faults_power_child)
// on top of the fault VFS (fault_vfs.h) while it appends, acknowledges,
// applies snapshots, prunes and checkpoints. The parent SIGKILLs it at a
// random moment and then makes the "disk" forget what was never synced:
//   * mode discard: every write since each file's last xSync is undone;
//   * mode torn: the same, but the last unsynced page of each file is left
//     half written.
// After every cut, on the same data directory as the cut before: the journal
// opens (no file moved aside, same epoch), every Append() the child saw
// return is there with its seq unless retention pruned it after delivery
// (then its seq is <= the highest ack the child issued), every applied
// snapshot's seq is there, seqs are dense with no gap, no event_id twice,
// nothing that was there before the cut vanished, and VerifyJournal passes.
//
// STOREGW_POWER_CUTS (per mode, default 110) and STOREGW_POWER_SEED
// override the number of cuts and the seed.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "fault_vfs.h"
#include "test_util.h"

#ifndef FAULTS_POWER_CHILD
#error "FAULTS_POWER_CHILD must name the child executable"
#endif

namespace storegw::faults {
namespace {

using namespace storegw::storage;           // NOLINT
using namespace storegw::storage::testing;  // NOLINT
using Clock = std::chrono::steady_clock;

// One child process and the read end of its stdout pipe; killed and reaped
// when this goes out of scope, whatever happens in the test.
class Child {
 public:
  Child(const std::vector<std::string>& args, const fs::path& stderr_file) {
    int fds[2];
    REQUIRE(pipe2(fds, O_CLOEXEC) == 0);
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    const std::string err = stderr_file.string();
    pid_ = fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      dup2(fds[1], STDOUT_FILENO);
      int efd = open(err.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
      if (efd >= 0) dup2(efd, STDERR_FILENO);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(fds[1]);
    fd_ = fds[0];
  }
  ~Child() {
    Kill();
    Reap();
    if (fd_ >= 0) close(fd_);
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  // Reads what is available until `until`; false at EOF (the child is gone).
  bool ReadUntil(Clock::time_point until, std::string& out) {
    char buf[65536];
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
      if (left.count() <= 0) return true;
      pollfd p{fd_, POLLIN, 0};
      int rc = poll(&p, 1, static_cast<int>(left.count()));
      if (rc < 0 && errno == EINTR) continue;
      if (rc <= 0) return true;
      ssize_t n = read(fd_, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      out.append(buf, static_cast<size_t>(n));
    }
  }
  void Drain(std::string& out) {
    char buf[65536];
    for (;;) {
      ssize_t n = read(fd_, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;
      out.append(buf, static_cast<size_t>(n));
    }
  }
  void Kill() {
    if (pid_ > 0 && !reaped_) kill(pid_, SIGKILL);
  }
  int Reap() {
    if (pid_ <= 0 || reaped_) return status_;
    while (waitpid(pid_, &status_, 0) < 0 && errno == EINTR) {
    }
    reaped_ = true;
    return status_;
  }

 private:
  pid_t pid_ = -1;
  int fd_ = -1;
  bool reaped_ = false;
  int status_ = 0;
};

uint64_t EnvOr(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoull(v, nullptr, 10) : fallback;
}

std::string ReadText(const fs::path& p) {
  std::error_code ec;
  return fs::exists(p, ec) ? FileBytes(p) : std::string();
}

struct Totals {
  int cuts = 0;
  uint64_t acked = 0, snapshots = 0, pruned_seen = 0;
  uint64_t cuts_with_lost_writes = 0, undone_writes = 0, undone_truncates = 0, torn_pages = 0;
  uint64_t last_seq = 0;
  double seconds = 0;
};

Totals RunPowerCuts(CutMode mode, int cuts, uint64_t seed) {
  std::mt19937_64 rng(seed);
  TempDir tmp(RamDirOrDefault());
  const fs::path data = tmp / "data";
  fs::create_directories(data);
  const fs::path vfs_log = tmp / "vfs.log";
  const fs::path child_err = tmp / "child-stderr.txt";

  std::map<std::string, uint64_t> acked;  // every acknowledged event, all runs
  std::set<uint64_t> snapshot_seqs;
  uint64_t max_ack_intent = 0;  // highest seq the child may have acked
  uint64_t epoch = 0, prev_last = 0;
  int64_t clock_base = 1'800'000'000'000'000;  // 2027; +1 h per run
  Totals t;

  JournalOptions o;
  o.data_dir = data;
  o.store_id = "store-power";
  o.gateway_id = "gw-power";
  o.maintenance_interval = std::chrono::hours(1);
  o.now_us = [] { return int64_t{1}; };  // the checker never prunes

  const auto started = Clock::now();
  for (int run = 0; run < cuts; ++run) {
    CAPTURE(run);
    clock_base += int64_t{3600} * 1'000'000;
    const bool after_first_ack = run % 3 != 0;
    const int delay_ms = std::uniform_int_distribution<int>(after_first_ack ? 0 : 2, 120)(rng);
    CAPTURE(delay_ms);
    std::string out;
    int status = 0;
    {
      Child child({FAULTS_POWER_CHILD, data.string(), vfs_log.string(), std::to_string(run),
                   std::to_string(rng()), std::to_string(clock_base)},
                  child_err);
      bool alive = true;
      if (after_first_ack) {
        const auto give_up = Clock::now() + std::chrono::seconds(15);
        while (alive && out.find('\n') == std::string::npos && Clock::now() < give_up) {
          alive =
              child.ReadUntil(std::min(give_up, Clock::now() + std::chrono::milliseconds(20)), out);
        }
        REQUIRE_MESSAGE(out.find('\n') != std::string::npos,
                        "the child acknowledged nothing within 15 s; stderr:\n"
                            << ReadText(child_err));
      }
      if (alive) alive = child.ReadUntil(Clock::now() + std::chrono::milliseconds(delay_ms), out);
      child.Kill();
      status = child.Reap();
      child.Drain(out);
      REQUIRE_MESSAGE(alive, "the child exited before the power cut; stderr:\n"
                                 << ReadText(child_err));
    }
    REQUIRE_MESSAGE((WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL),
                    "child status " << status << "; stderr:\n"
                                    << ReadText(child_err));

    // The power goes: each file falls back to what was synced.
    // (STOREGW_POWER_NO_CUT=1: a plain SIGKILL, to tell journal bugs from
    // power-loss bugs when something fails.)
    auto cut = EnvOr("STOREGW_POWER_NO_CUT", 0) ? Result<CutReport>(CutReport{})
                                                : ApplyPowerCut(vfs_log, mode);
    REQUIRE_MESSAGE(cut.ok(), cut.status().ToString());
    t.cuts_with_lost_writes += cut->undone_writes + cut->undone_truncates > 0;
    t.undone_writes += cut->undone_writes;
    t.undone_truncates += cut->undone_truncates;
    t.torn_pages += cut->torn_pages;

    // What the child saw: complete lines only (one write(2) per batch).
    std::istringstream in(out.substr(0, out.rfind('\n') + 1));
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream ls(line);
      char kind = 0;
      ls >> kind;
      if (kind == 'A') {
        std::string id;
        uint64_t seq = 0;
        ls >> id >> seq;
        auto [it, inserted] = acked.emplace(id, seq);
        REQUIRE_MESSAGE(inserted,
                        id << " acknowledged twice (seq " << it->second << " and " << seq << ")");
      } else if (kind == 'K') {
        uint64_t seq = 0;
        ls >> seq;
        max_ack_intent = std::max(max_ack_intent, seq);
      } else if (kind == 'S') {
        uint64_t seq = 0;
        ls >> seq;
        snapshot_seqs.insert(seq);
      } else {
        FAIL("unexpected line from the child: " << line);
      }
    }

    // What a restarted gateway sees.
    auto opened = Journal::Open(o);
    REQUIRE_MESSAGE(opened.ok(), "reopen after the power cut: " << opened.status().ToString());
    auto j = std::move(opened).value();
    REQUIRE_MESSAGE(
        j->open_report().corrupt_moved_to.empty(),
        "the journal was declared corrupt after a power cut: " << j->open_report().corrupt_reason);
    if (epoch == 0) {
      epoch = j->epoch();
    } else {
      REQUIRE_MESSAGE(j->epoch() == epoch, "the epoch changed after a power cut");
    }
    const JournalStats st = j->Stats();
    REQUIRE(st.watermark <= st.last_seq);
    REQUIRE_MESSAGE(st.last_seq >= prev_last,
                    "last seq went back from " << prev_last << " to " << st.last_seq);
    prev_last = st.last_seq;
    // The oldest retained seq (last_seq + 1 when everything was pruned).
    // Retention only ever removes delivered events.
    const uint64_t first = st.first_seq ? st.first_seq : st.last_seq + 1;
    if (first > 1) {
      REQUIRE_MESSAGE(first - 1 <= max_ack_intent,
                      "events up to seq " << first - 1 << " were pruned but at most seq "
                                          << max_ack_intent << " was ever delivered");
    }

    auto all = ReadAll(*j);
    std::map<std::string, uint64_t> present;
    std::set<uint64_t> snapshot_present;
    for (size_t i = 0; i < all.size(); ++i) {
      if (all[i].seq() != first + i) {
        FAIL("seq gap: expected " << first + i << ", found " << all[i].seq());
      }
      if (all[i].event().has_stock_snapshot()) snapshot_present.insert(all[i].seq());
      if (!present.emplace(all[i].event().event_id(), all[i].seq()).second) {
        FAIL(all[i].event().event_id() << " is journaled twice");
      }
    }
    REQUIRE(all.size() == st.last_seq + 1 - first);
    for (const auto& [eid, s] : acked) {
      if (s < first) {
        if (s > max_ack_intent) FAIL("undelivered " << eid << " (seq " << s << ") was pruned");
        continue;
      }
      auto it = present.find(eid);
      if (it == present.end()) FAIL("acknowledged " << eid << " (seq " << s << ") is lost");
      if (it->second != s)
        FAIL(eid << " acknowledged with seq " << s << ", journal has " << it->second);
    }
    for (uint64_t s : snapshot_seqs) {
      if (s >= first && !snapshot_present.count(s)) {
        FAIL("applied snapshot at seq " << s << " is lost");
      }
    }
    j.reset();
    auto v = VerifyJournal(data);
    REQUIRE_MESSAGE(v.ok(), "verify after the power cut: " << v.status().ToString());
    REQUIRE(FilesWithPrefix(data, "journal.db.corrupt-").empty());
    if (first > 1) ++t.pruned_seen;
    ++t.cuts;
  }
  t.seconds =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count() /
      1000.0;
  t.acked = acked.size();
  t.snapshots = snapshot_seqs.size();
  t.last_seq = prev_last;
  CHECK(ReadText(child_err).empty());
  return t;
}

void Report(const std::string& mode, const Totals& t) {
  MESSAGE("power cuts (" << mode << "): " << t.cuts << " survived in " << t.seconds << " s; "
                         << t.cuts_with_lost_writes << " cuts discarded unsynced writes ("
                         << t.undone_writes << " writes, " << t.undone_truncates
                         << " truncates rolled back, " << t.torn_pages << " torn pages); "
                         << t.acked << " acknowledged events, " << t.snapshots
                         << " snapshots, last seq " << t.last_seq << ", " << t.pruned_seen
                         << " checks after pruning");
}

TEST_CASE("power loss: unsynced writes discarded at random cuts lose nothing acknowledged") {
  const uint64_t seed =
      EnvOr("STOREGW_POWER_SEED", static_cast<uint64_t>(Clock::now().time_since_epoch().count()));
  INFO("seed " << seed << " (set STOREGW_POWER_SEED to replay)");
  const int cuts = static_cast<int>(EnvOr("STOREGW_POWER_CUTS", 110));
  Totals t = RunPowerCuts(CutMode::kDiscardUnsynced, cuts, seed);
  Report("discard unsynced", t);
  CHECK(t.cuts == cuts);
  // The cuts really landed between writes and syncs, and after pruning.
  CHECK(t.cuts_with_lost_writes > 0);
  CHECK(t.pruned_seen > 0);
  CHECK(t.snapshots > 0);
}

TEST_CASE("power loss: a torn last page at random cuts loses nothing acknowledged") {
  const uint64_t seed =
      EnvOr("STOREGW_POWER_SEED", static_cast<uint64_t>(Clock::now().time_since_epoch().count())) +
      1;
  INFO("seed " << seed << " (set STOREGW_POWER_SEED to replay)");
  const int cuts = static_cast<int>(EnvOr("STOREGW_POWER_CUTS", 110));
  Totals t = RunPowerCuts(CutMode::kTornPage, cuts, seed);
  Report("torn page", t);
  CHECK(t.cuts == cuts);
  CHECK(t.torn_pages > 0);
  CHECK(t.pruned_seen > 0);
}

}  // namespace
}  // namespace storegw::faults
