// Crash test with real processes: a child (journal_crash_child) appends from
// 4 threads and reports every acknowledged (event_id, seq) through a pipe;
// the parent SIGKILLs it at a random moment, at least 30 times in a row on
// the same data directory. After each kill: every acknowledged event is in
// the journal exactly once with the acknowledged seq, seqs are dense from 1,
// the epoch never changes, no file was moved aside as corrupt, and
// VerifyJournal passes.
//
// STOREGW_CRASH_SEED and STOREGW_CRASH_RUNS override seed and run count.
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
#include <sstream>
#include <string>
#include <vector>

#include "test_util.h"

#ifndef JOURNAL_CRASH_CHILD
#error "JOURNAL_CRASH_CHILD must name the child executable"
#endif

namespace storegw::storage {
namespace {

using namespace testing;  // NOLINT
using Clock = std::chrono::steady_clock;

// Owns one child process and the read end of its stdout pipe. Whatever
// happens in the test (a failed REQUIRE throws), the child is killed and
// reaped when this goes out of scope.
class Child {
 public:
  Child(const fs::path& data_dir, int run, uint64_t seed, const fs::path& stderr_file) {
    int fds[2];
    REQUIRE(pipe2(fds, O_CLOEXEC) == 0);
    const std::string exe = JOURNAL_CRASH_CHILD;
    const std::string dir = data_dir.string(), run_s = std::to_string(run),
                      seed_s = std::to_string(seed), err = stderr_file.string();
    pid_ = fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      // Child: stdout -> pipe, stderr -> file, then exec. Only
      // async-signal-safe calls from here.
      dup2(fds[1], STDOUT_FILENO);
      int efd = open(err.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
      if (efd >= 0) dup2(efd, STDERR_FILENO);
      execl(exe.c_str(), exe.c_str(), dir.c_str(), run_s.c_str(), seed_s.c_str(),
            static_cast<char*>(nullptr));
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
  // After the child is dead: everything left in the pipe.
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
  // Waits for the child; returns its wait status.
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

TEST_CASE("crash: SIGKILL at random moments never loses or reorders an acknowledged event") {
  const uint64_t seed =
      EnvOr("STOREGW_CRASH_SEED", static_cast<uint64_t>(Clock::now().time_since_epoch().count()));
  const int runs = static_cast<int>(EnvOr("STOREGW_CRASH_RUNS", 30));
  INFO("seed " << seed << " (set STOREGW_CRASH_SEED to replay the kill times)");
  std::mt19937_64 rng(seed);

  TempDir tmp;
  const fs::path data = tmp / "data";
  const fs::path child_err = tmp / "child-stderr.txt";
  std::map<std::string, uint64_t> acked;  // every acknowledged event, all runs
  uint64_t epoch = 0;
  uint64_t prev_last = 0;
  std::vector<size_t> acked_per_run;
  JournalOptions o;
  o.data_dir = data;
  o.store_id = "store-crash";
  o.gateway_id = "gw-crash";
  o.maintenance_interval = std::chrono::hours(1);

  const auto started = Clock::now();
  for (int run = 0; run < runs; ++run) {
    CAPTURE(run);
    const int kill_after_ms = std::uniform_int_distribution<int>(10, 300)(rng);
    CAPTURE(kill_after_ms);
    std::string out;
    int status = 0;
    {
      Child child(data, run, rng(), child_err);
      bool alive = true;
      if (run % 2 == 1) {
        // Odd runs count the delay from the first acknowledged batch, so at
        // least half the kills land while appends are in flight; even runs
        // count from the spawn and may also hit Open() itself.
        const auto give_up = Clock::now() + std::chrono::seconds(20);
        while (alive && out.find('\n') == std::string::npos && Clock::now() < give_up) {
          alive =
              child.ReadUntil(std::min(give_up, Clock::now() + std::chrono::milliseconds(50)), out);
        }
        REQUIRE_MESSAGE(out.find('\n') != std::string::npos,
                        "the child acknowledged nothing within 20 s; stderr:\n"
                            << ReadText(child_err));
      }
      if (alive) {
        alive = child.ReadUntil(Clock::now() + std::chrono::milliseconds(kill_after_ms), out);
      }
      child.Kill();
      status = child.Reap();
      child.Drain(out);
      REQUIRE_MESSAGE(alive, "the child exited before it was killed; its stderr:\n"
                                 << ReadText(child_err));
    }
    REQUIRE_MESSAGE((WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL),
                    "child status " << status << "; stderr:\n"
                                    << ReadText(child_err));

    // Parse complete lines; the last one may be cut by the kill only if the
    // child died inside write(2), which one write per batch makes atomic up
    // to PIPE_BUF, so a partial tail is ignored, never half-counted.
    size_t this_run = 0;
    std::istringstream in(out.substr(0, out.rfind('\n') + 1));
    std::string id;
    uint64_t seq = 0;
    while (in >> id >> seq) {
      auto [it, inserted] = acked.emplace(id, seq);
      REQUIRE_MESSAGE(inserted,
                      id << " acknowledged twice (seq " << it->second << " and " << seq << ")");
      ++this_run;
    }

    // What a restarted daemon sees.
    auto opened = Journal::Open(o);
    REQUIRE_MESSAGE(opened.ok(), "reopen after kill: " << opened.status().ToString());
    auto j = std::move(opened).value();
    CHECK(j->open_report().corrupt_moved_to.empty());
    if (epoch == 0) {
      epoch = j->epoch();
    } else {
      REQUIRE_MESSAGE(j->epoch() == epoch, "the epoch changed after a kill");
    }
    const JournalStats st = j->Stats();
    CHECK(st.watermark <= st.last_seq);
    REQUIRE(st.last_seq >= prev_last);  // nothing that was there vanished
    prev_last = st.last_seq;

    auto all = ReadAll(*j);
    REQUIRE(all.size() == st.last_seq);
    std::map<std::string, uint64_t> present;
    for (size_t i = 0; i < all.size(); ++i) {
      if (all[i].seq() != i + 1) FAIL("seq gap or disorder at index " << i);
      if (!present.emplace(all[i].event().event_id(), all[i].seq()).second) {
        FAIL(all[i].event().event_id() << " is journaled twice");
      }
    }
    for (const auto& [eid, s] : acked) {
      auto it = present.find(eid);
      if (it == present.end()) FAIL("acknowledged " << eid << " (seq " << s << ") is lost");
      if (it->second != s) {
        FAIL(eid << " acknowledged with seq " << s << ", journal has " << it->second);
      }
    }
    j.reset();

    auto v = VerifyJournal(data);
    REQUIRE_MESSAGE(v.ok(), "verify after kill: " << v.status().ToString());
    CHECK(v->full_replay);
    CHECK(v->last_seq == prev_last);
    REQUIRE(FilesWithPrefix(data, "journal.db.corrupt-").empty());
    acked_per_run.push_back(this_run);
  }
  const auto secs =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count() /
      1000.0;
  size_t runs_with_acks = 0;
  for (size_t n : acked_per_run) runs_with_acks += n > 0;
  MESSAGE(runs << " kills in " << secs << " s, " << acked.size() << " acknowledged events ("
               << runs_with_acks << " runs acknowledged some), last seq " << prev_last);
  // The kills really landed while events were being appended.
  CHECK(runs_with_acks >= static_cast<size_t>(runs) / 2);
  CHECK(ReadText(child_err).empty());
}

}  // namespace
}  // namespace storegw::storage
