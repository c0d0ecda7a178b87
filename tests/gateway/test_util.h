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

#include "common/files.h"
#include "common/net.h"
#include "common/process.h"
#include "storegw/v1/storegw.pb.h"

namespace storegw::test {

using namespace std::chrono_literals;

// Temp dirs, files, ports and processes: tests/common (shared by every
// test folder).


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
         R"(","occurred_at":1700000000000000,"receipt":{"lines":[{"sku":")" + sku + R"(","qty":)" + std::to_string(qty) + "}]}}";
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
