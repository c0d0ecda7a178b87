// Child processes for the tests: always killed (SIGKILL, by PID) and reaped,
// also when a check fails or the test process dies (PR_SET_PDEATHSIG); and
// waiting on a condition with a deadline instead of sleeping.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "common/files.h"

extern char** environ;

namespace storegw::test {

using namespace std::chrono_literals;

// Polls `done` every `poll` until it is true or `timeout` passes.
inline bool WaitFor(const std::function<bool()>& done, std::chrono::milliseconds timeout,
                    std::chrono::milliseconds poll = 20ms) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (done()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(poll);
  }
}

// ------------------------------------------------------------ processes

struct ExitInfo {
  bool exited = false;  // true: normal exit with `code`; false: killed by `signal`
  int code = -1;
  int signal = 0;
  bool ok() const { return exited && code == 0; }
};

inline std::string Describe(const ExitInfo& e) {
  return e.exited ? "exit " + std::to_string(e.code)
                  : "killed by signal " + std::to_string(e.signal);
}

// A child process with stdout and stderr going to files.
class Process {
 public:
  Process() = default;
  // Starts argv[0] (a path) with argv, this process's environment plus
  // `env` ("NAME=value", overriding). Throws if fork fails.
  static Process Spawn(const std::vector<std::string>& argv, const std::filesystem::path& out_file,
                       const std::filesystem::path& err_file,
                       const std::vector<std::string>& env = {}) {
    return Start(argv, out_file, err_file, env, /*combined=*/false);
  }
  // Both stdout and stderr appended to one file (a server's log).
  static Process SpawnCombined(const std::vector<std::string>& argv,
                               const std::filesystem::path& log_file,
                               const std::vector<std::string>& env = {}) {
    return Start(argv, log_file, log_file, env, /*combined=*/true);
  }

 private:
  static Process Start(const std::vector<std::string>& argv, const std::filesystem::path& out_file,
                       const std::filesystem::path& err_file, const std::vector<std::string>& env,
                       bool combined) {
    Process p;
    p.out_ = out_file;
    p.err_ = err_file;
    // Everything the child needs is prepared before fork: after fork it
    // only makes async-signal-safe calls.
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    std::vector<std::string> env_strings = env;
    for (char** e = environ; *e; ++e) {
      std::string_view kv(*e);
      std::string_view name = kv.substr(0, kv.find('='));
      bool overridden = false;
      for (const auto& x : env)
        overridden |= x.compare(0, name.size() + 1, std::string(name) + "=") == 0;
      if (!overridden) env_strings.emplace_back(kv);
    }
    std::vector<char*> envp;
    for (auto& e : env_strings) envp.push_back(e.data());
    envp.push_back(nullptr);
    std::string out = out_file.string(), err = err_file.string();
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(127);  // the parent died before prctl
      int o = combined ? open(out.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)
                       : open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      int e = combined ? dup(o) : open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      int n = open("/dev/null", O_RDONLY | O_CLOEXEC);
      if (o < 0 || e < 0 || n < 0) _exit(127);
      dup2(n, STDIN_FILENO);
      dup2(o, STDOUT_FILENO);
      dup2(e, STDERR_FILENO);
      sigset_t none;
      sigemptyset(&none);
      sigprocmask(SIG_SETMASK, &none, nullptr);
      signal(SIGPIPE, SIG_DFL);
      execve(args[0], args.data(), envp.data());
      _exit(127);
    }
    p.pid_ = pid;
    return p;
  }

 public:

  Process(Process&& o) noexcept { *this = std::move(o); }
  Process& operator=(Process&& o) noexcept {
    if (this != &o) {
      KillAndReap();
      pid_ = std::exchange(o.pid_, -1);
      exit_ = o.exit_;
      out_ = std::move(o.out_);
      err_ = std::move(o.err_);
    }
    return *this;
  }
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  ~Process() { KillAndReap(); }

  pid_t pid() const { return pid_; }
  bool started() const { return pid_ > 0; }

  // True while the child has not exited (reaps it when it has).
  bool Running() {
    if (pid_ <= 0 || exit_) return false;
    int st = 0;
    pid_t r = waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
      exit_ = ToExit(st);
      return false;
    }
    return r == 0;
  }

  // The exit, once it happens within `timeout`; nullopt if still running.
  std::optional<ExitInfo> WaitExit(std::chrono::milliseconds timeout) {
    WaitFor([&] { return !Running(); }, timeout, 5ms);
    return exit_;
  }

  void Signal(int sig) {
    if (pid_ > 0 && !exit_) ::kill(pid_, sig);
  }

  // SIGKILL by PID and reap. Safe to call at any time, any number of times.
  void KillAndReap() {
    if (pid_ > 0 && !exit_) {
      ::kill(pid_, SIGKILL);
      int st = 0;
      while (waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
      }
      exit_ = ToExit(st);
    }
  }

  std::optional<ExitInfo> exit_info() const { return exit_; }
  std::string Stdout() const { return ReadFile(out_); }
  std::string Stderr() const { return ReadFile(err_); }

 private:
  static ExitInfo ToExit(int st) {
    ExitInfo e;
    if (WIFEXITED(st)) {
      e.exited = true;
      e.code = WEXITSTATUS(st);
    } else if (WIFSIGNALED(st)) {
      e.signal = WTERMSIG(st);
    }
    return e;
  }

  pid_t pid_ = -1;
  std::optional<ExitInfo> exit_;
  std::filesystem::path out_, err_;
};

struct RunResult {
  ExitInfo exit;
  bool timed_out = false;
  std::string out, err;
};

// Runs a command to completion (killed after `timeout`), capturing output.
inline RunResult Run(const std::vector<std::string>& argv,
                     std::chrono::milliseconds timeout = 60s) {
  TempDir tmp;
  Process p = Process::Spawn(argv, tmp / "stdout", tmp / "stderr");
  RunResult r;
  auto e = p.WaitExit(timeout);
  if (!e) {
    r.timed_out = true;
    p.KillAndReap();
    e = p.exit_info();
  }
  r.exit = *e;
  r.out = p.Stdout();
  r.err = p.Stderr();
  return r;
}

}  // namespace storegw::test
