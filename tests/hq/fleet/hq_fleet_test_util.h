// Helpers of the storegw-hq integration tests, on top of the gateway
// tests' (tests/gateway/test_util.h: processes, HTTP, `storegw run`;
// tests/statuspage/sp_util.h: a mosquitto per test, posting receipts) and
// tests/common/postgres.h (a private PostgreSQL 15): the storegw-hq binary
// of this build tree started as a process, its /v1/fleet read back, and a
// subscriber that records what HQ publishes to a store.
#pragma once

#include <google/protobuf/util/json_util.h>
#include <mqtt/async_client.h>

#include <filesystem>
#include <mutex>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "common/postgres.h"
#include "sp_util.h"
#include "storegw/fleet/v1/fleet.pb.h"

namespace storegw::test {

inline std::string StoregwHqPath() {
  return std::string(STOREGW_BINARY_DIR) + "/gateway/hq/storegw-hq";
}

// One PostgreSQL server for every test case of the program (each uses a
// database of its own); stopped when the program exits.
inline Postgres& SharedPostgres() {
  static Postgres pg;
  return pg;
}

// A database of its own for a test case.
struct TestDb {
  std::string name;
  std::string conninfo;  // with the password, as storegw-hq gets it
  std::string Psql(const std::string& sql) const { return SharedPostgres().Psql(sql, name); }
};
inline TestDb FreshDatabase(const std::string& prefix) {
  static int n = 0;
  TestDb db;
  db.name = prefix + "_" + std::to_string(getpid()) + "_" + std::to_string(++n);
  db.conninfo = SharedPostgres().CreateDatabase(db.name);
  return db;
}

// A storegw-hq config: the database, the broker, the fleet listener on a
// free loopback port (port 0: the daemon prints the one it got), and
// whatever `extra` adds (more sections).
inline std::string HqConfigToml(const std::string& conninfo, const std::string& broker_url,
                                const std::string& extra = "") {
  return "[hq]\ndatabase = \"" + conninfo + "\"\n[mqtt]\nurl = \"" + broker_url +
         "\"\n[http]\nlisten = \"127.0.0.1:0\"\n[log]\nlevel = \"debug\"\n" + extra;
}

// A running `storegw-hq run --config FILE`.
struct HqDaemon {
  Process proc;
  uint16_t port = 0;
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port); }
};

// Starts storegw-hq and waits for its "listening on http://HOST:PORT" line
// (it prints it once everything runs). nullopt with `why` when it exits or
// does not get there in time.
inline std::optional<HqDaemon> StartHq(const std::filesystem::path& config,
                                       const std::filesystem::path& logs, const std::string& name,
                                       std::string* why) {
  std::filesystem::create_directories(logs);
  HqDaemon d;
  d.proc = Process::Spawn({StoregwHqPath(), "run", "--config", config.string()},
                          logs / (name + ".out"), logs / (name + ".err"));
  static const std::regex kListening(R"(listening on http://127\.0\.0\.1:(\d+))");
  std::smatch m;
  std::string out;
  const bool up = WaitFor(
      [&] {
        out = d.proc.Stdout();
        return !d.proc.Running() || std::regex_search(out, m, kListening);
      },
      30s);
  if (!up || !d.proc.Running()) {
    if (why) {
      *why = (up ? Describe(*d.proc.exit_info()) : std::string("not ready within 30 s")) +
             "; stderr:\n" + d.proc.Stderr();
    }
    return std::nullopt;
  }
  d.port = static_cast<uint16_t>(std::stoi(m[1].str()));
  return d;
}

// GET /v1/fleet, parsed; nullopt when it does not answer with a fleet.
inline std::optional<fleet::v1::Fleet> GetFleet(uint16_t port) {
  HttpResult r = HttpGet(port, "/v1/fleet");
  if (r.status != 200 && r.status != 503) return std::nullopt;
  fleet::v1::Fleet f;
  if (!google::protobuf::util::JsonStringToMessage(r.body, &f).ok()) return std::nullopt;
  return f;
}

// The gateway `gw` of `store` in the fleet, if it is there.
inline std::optional<fleet::v1::FleetGateway> FleetGatewayOf(uint16_t port,
                                                             const std::string& store,
                                                             const std::string& gw) {
  auto f = GetFleet(port);
  if (!f) return std::nullopt;
  for (const auto& g : f->gateways()) {
    if (g.store_id() == store && g.gateway_id() == gw) return g;
  }
  return std::nullopt;
}

// Subscribes to {prefix}/{store}/downstream/# and keeps every message HQ
// publishes there, in order of arrival.
class DownstreamSpy {
 public:
  struct Message {
    std::string topic, payload;
  };
  DownstreamSpy(const std::string& broker_url, const std::string& store,
                const std::string& prefix = "retail/v1") {
    mqtt::create_options co(MQTTVERSION_5);
    cli_ = std::make_unique<mqtt::async_client>(
        broker_url, "hq-test-spy-" + std::to_string(getpid()), co, nullptr);
    cli_->set_message_callback([this](mqtt::const_message_ptr m) {
      std::lock_guard lk(mu_);
      messages_.push_back({m->get_topic(), m->get_payload_str()});
    });
    auto opts =
        mqtt::connect_options_builder().mqtt_version(MQTTVERSION_5).clean_start(true).finalize();
    if (!cli_->connect(opts)->wait_for(10s)) throw std::runtime_error("spy: connect timed out");
    if (!cli_->subscribe(prefix + "/" + store + "/downstream/#", 1)->wait_for(10s)) {
      throw std::runtime_error("spy: subscribe timed out");
    }
  }
  ~DownstreamSpy() {
    try {
      cli_->disconnect(0)->wait_for(2s);
    } catch (...) {
    }
  }
  DownstreamSpy(const DownstreamSpy&) = delete;
  DownstreamSpy& operator=(const DownstreamSpy&) = delete;

  std::vector<Message> messages() const {
    std::lock_guard lk(mu_);
    return messages_;
  }

 private:
  std::unique_ptr<mqtt::async_client> cli_;
  mutable std::mutex mu_;
  std::vector<Message> messages_;
};

// Runs storegw-hq with `args` to completion.
inline RunResult RunHq(std::vector<std::string> args, std::chrono::milliseconds timeout = 60s) {
  args.insert(args.begin(), StoregwHqPath());
  return Run(args, timeout);
}

}  // namespace storegw::test
