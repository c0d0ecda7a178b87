// Helpers for tests that drive real processes: temp dirs, free loopback
// ports, child processes that are always killed and reaped, small HTTP
// calls, and a `storegw run` launcher that waits for /readyz.
//
// Process safety: a Process kills its child with SIGKILL (by PID) and reaps
// it in its destructor, so a failed REQUIRE never leaves a daemon behind.
// Children also get PR_SET_PDEATHSIG(SIGKILL), so they die with the test
// even when the test itself is killed (ctest timeout). PDEATHSIG fires when
// the *thread* that spawned the child exits: spawn from the test's main
// thread (or a thread that outlives the child).
#pragma once

#include <algorithm>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <google/protobuf/util/json_util.h>
#include <httplib.h>

#include "storegw/v1/storegw.pb.h"

namespace storegw::test {

using namespace std::chrono_literals;

// ------------------------------------------------------------ files

// A fresh directory under $TMPDIR (or /tmp), removed with its content.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string templ = std::string(base && *base ? base : "/tmp") + "/storegw-test-XXXXXX";
    if (!mkdtemp(templ.data())) throw std::runtime_error("mkdtemp failed");
    path_ = templ;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

inline std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

inline void WriteFile(const std::filesystem::path& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
}

// ------------------------------------------------------------ ports, waiting

// A loopback TCP port that was free a moment ago: bind port 0, read the
// port, release it. Another process may take it before we do; callers that
// start a server on it retry on "address in use".
inline uint16_t FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("socket failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    close(fd);
    throw std::runtime_error("bind to 127.0.0.1:0 failed");
  }
  close(fd);
  return ntohs(addr.sin_port);
}

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
      int o = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      int e = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
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

// The storegw binary of this build tree.
inline std::string StoregwPath() {
  return std::string(STOREGW_BINARY_DIR) + "/gateway/storegw";
}

inline std::vector<std::string> StoregwArgs(std::vector<std::string> args) {
  args.insert(args.begin(), StoregwPath());
  return args;
}

// ------------------------------------------------------------ HTTP

struct HttpResult {
  int status = -1;  // -1: no response (error says why)
  std::string body;
  std::string error;
  httplib::Headers headers;
};

inline HttpResult FromHttplib(const httplib::Result& res) {
  HttpResult r;
  if (!res) {
    r.error = httplib::to_string(res.error());
    return r;
  }
  r.status = res->status;
  r.body = res->body;
  r.headers = res->headers;
  return r;
}

inline httplib::Client LoopbackClient(uint16_t port, std::chrono::milliseconds timeout) {
  httplib::Client cli("127.0.0.1", port);
  cli.set_connection_timeout(timeout);
  cli.set_read_timeout(timeout);
  cli.set_write_timeout(timeout);
  return cli;
}

inline HttpResult HttpGet(uint16_t port, const std::string& path,
                          std::chrono::milliseconds timeout = 5s) {
  auto cli = LoopbackClient(port, timeout);
  return FromHttplib(cli.Get(path));
}

inline HttpResult HttpPost(uint16_t port, const std::string& path, const std::string& body,
                           const std::string& content_type = "application/json",
                           const httplib::Headers& headers = {},
                           std::chrono::milliseconds timeout = 5s) {
  auto cli = LoopbackClient(port, timeout);
  return FromHttplib(cli.Post(path, headers, body, content_type));
}

// ------------------------------------------------------------ the daemon

// A running `storegw run` on 127.0.0.1:port, logs in `logs/<name>.out|err`.
struct Daemon {
  Process proc;
  uint16_t port = 0;
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port); }
};

// Starts `storegw run --data-dir DATA --listen 127.0.0.1:PORT extra...` and
// waits until GET /readyz answers 200. `port` 0 picks a free port (and
// another one when the daemon reports the address in use); a given port is
// retried for a few seconds (a restart may race the old socket). Returns
// nullopt with `why` set when the daemon does not become ready in time.
inline std::optional<Daemon> StartDaemon(const std::filesystem::path& data_dir,
                                         const std::filesystem::path& logs, const std::string& name,
                                         std::string* why, uint16_t port = 0,
                                         std::vector<std::string> extra = {},
                                         const std::vector<std::string>& env = {}) {
  std::filesystem::create_directories(logs);
  // Without a config of the caller's, the uplink points at a free loopback
  // port where nothing listens: tests never reach a broker that happens to
  // run on the default 127.0.0.1:1883.
  if (std::find(extra.begin(), extra.end(), "--config") == extra.end()) {
    const auto cfg = logs / (name + ".toml");
    std::ofstream(cfg) << "[uplink]\nurl = \"tcp://127.0.0.1:" << FreePort()
                       << "\"\nbackoff_initial = \"100ms\"\nbackoff_max = \"1s\"\n";
    extra.push_back("--config");
    extra.push_back(cfg.string());
  }
  const bool fixed = port != 0;
  for (int attempt = 0; attempt < 20; ++attempt) {
    Daemon d;
    d.port = fixed ? port : FreePort();
    std::vector<std::string> args = {"run", "--data-dir", data_dir.string(), "--listen",
                                     "127.0.0.1:" + std::to_string(d.port)};
    args.insert(args.end(), extra.begin(), extra.end());
    std::string tag = name + "." + std::to_string(attempt);
    d.proc = Process::Spawn(StoregwArgs(args), logs / (tag + ".out"), logs / (tag + ".err"), env);
    bool ready = WaitFor(
        [&] { return !d.proc.Running() || HttpGet(d.port, "/readyz", 1s).status == 200; }, 15s);
    if (ready && d.proc.Running()) return d;
    if (!ready) {
      if (why) *why = "not ready within 15 s; stderr:\n" + d.proc.Stderr();
      return std::nullopt;
    }
    std::string err = d.proc.Stderr();
    if (err.find("in use") == std::string::npos) {
      if (why) *why = Describe(*d.proc.exit_info()) + "; stderr:\n" + err;
      return std::nullopt;
    }
    std::this_thread::sleep_for(fixed ? 250ms : 10ms);
  }
  if (why) *why = "the port stayed in use";
  return std::nullopt;
}

// ------------------------------------------------------------ events, export

// A delivery of `qty` of `sku` as proto3 JSON (receipts raise stock, so they
// never raise oversell alerts: the journal holds exactly what was posted).
inline std::string ReceiptJson(const std::string& event_id, const std::string& device_id,
                               const std::string& sku, int64_t qty) {
  return R"({"event_id":")" + event_id + R"(","device_id":")" + device_id +
         R"(","receipt":{"lines":[{"sku":")" + sku + R"(","qty":)" + std::to_string(qty) + "}]}}";
}

// {"events":[...]} of the given event JSON objects.
inline std::string BatchJson(const std::vector<std::string>& events) {
  std::string out = R"({"events":[)";
  for (size_t i = 0; i < events.size(); ++i) out += (i ? "," : "") + events[i];
  return out + "]}";
}

template <typename Msg>
std::optional<Msg> FromJson(const std::string& json) {
  Msg m;
  google::protobuf::util::JsonParseOptions opts;
  opts.ignore_unknown_fields = true;
  if (!google::protobuf::util::JsonStringToMessage(json, &m, opts).ok()) return std::nullopt;
  return m;
}

// `storegw journal export --data-dir DIR`, parsed. nullopt with `why` set
// when the command fails or a line does not parse.
inline std::optional<std::vector<storegw::v1::JournaledEvent>> ExportJournal(
    const std::filesystem::path& data_dir, std::string* why) {
  RunResult r = Run(StoregwArgs({"journal", "export", "--data-dir", data_dir.string()}));
  if (!r.exit.ok()) {
    if (why) *why = "journal export: " + Describe(r.exit) + ": " + r.err;
    return std::nullopt;
  }
  std::vector<storegw::v1::JournaledEvent> out;
  std::istringstream lines(r.out);
  std::string line;
  while (std::getline(lines, line)) {
    auto e = FromJson<storegw::v1::JournaledEvent>(line);
    if (!e) {
      if (why) *why = "journal export: line does not parse: " + line;
      return std::nullopt;
    }
    out.push_back(std::move(*e));
  }
  return out;
}

}  // namespace storegw::test
