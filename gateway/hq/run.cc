// `storegw-hq run --config FILE`: the daemon. A checklist, like storegw's
// (gateway/daemon.cc): block the stop signals before any thread exists,
// build protobuf's shared state, load and check the config, open the
// database (PgStore: connects and migrates the schema), start the fleet
// listener (http.listen), start the receiver (MQTT and HTTPS ingress), tell
// systemd READY=1; on SIGTERM/SIGINT stop in reverse: STOPPING=1, the
// receiver (no new batch; the transaction under way commits and is acked),
// the listener, the database. A start failure prints one line,
// `storegw-hq: cannot start: ...`, and exits 1.
//
// Two PgStores (two connections): one for the receiver's transactions and
// one for the fleet view, so that a page load never waits behind a batch.
#include <malloc.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include <spdlog/spdlog.h>

#include "storegw/cli/logging.h"
#include "storegw/hq/app/cli.h"
#include "storegw/hq/app/config.h"
#include "storegw/hq/fleet.h"
#include "storegw/hq/pg_store.h"
#include "storegw/hq/receiver.h"
#include "storegw/http/listen.h"
#include "storegw/http/server.h"
#include "storegw/v1/warmup.h"
#include "systemd_notify.h"
#include "version.h"

namespace storegw::hq {
namespace {

using Clock = std::chrono::steady_clock;
using storegw::gateway::kVersion;

int StartFailure(std::string reason) {
  std::replace(reason.begin(), reason.end(), '\n', ' ');
  std::fprintf(stderr, "storegw-hq: cannot start: %s\n", reason.c_str());
  return kExitFailure;
}

sigset_t StopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  return set;
}

// After the first stop signal, a second one exits at once: every batch
// acknowledged is committed, so nothing durable is lost; unacknowledged
// batches are sent again by their gateways.
void ArmSecondSignal() {
  std::thread([] {
    sigset_t set = StopSignals();
    sigdelset(&set, SIGHUP);
    int sig = 0;
    if (sigwait(&set, &sig) == 0) {
      static const char msg[] = "storegw-hq: second stop signal: exiting without draining\n";
      ssize_t n = write(STDERR_FILENO, msg, sizeof msg - 1);
      (void)n;
      _exit(kExitFailure);
    }
  }).detach();
}

std::string BaseUrl(const http::ListenAddress& addr, uint16_t port) {
  std::string host = addr.host;
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  return "http://" + host + ":" + std::to_string(port);
}

ReceiverOptions ReceiverOptionsFrom(const HqConfig& c) {
  ReceiverOptions o;
  o.mqtt.url = c.mqtt.url;
  o.mqtt.topic_prefix = c.mqtt.topic_prefix;
  o.mqtt.share_group = c.mqtt.share_group;
  o.mqtt.client_id = EffectiveClientId(c);
  o.mqtt.username = c.mqtt.username;
  o.mqtt.password = c.mqtt.password;
  o.mqtt.ca_file = c.mqtt.tls.ca_file;
  o.mqtt.cert_file = c.mqtt.tls.cert_file;
  o.mqtt.key_file = c.mqtt.tls.key_file;
  o.mqtt.session_expiry_s = static_cast<uint32_t>(
      std::chrono::duration_cast<std::chrono::seconds>(c.mqtt.session_expiry).count());
  o.https.listen = c.https.listen;
  o.https.cert_file = c.https.cert_file;
  o.https.key_file = c.https.key_file;
  o.https.client_ca_file = c.https.client_ca_file;
  o.max_batches_per_txn = static_cast<uint32_t>(c.hq.max_batches_per_txn);
  o.max_txn_delay_ms = static_cast<uint32_t>(c.hq.max_txn_delay.count());
  return o;
}

// What the main loop says in the log when it changes (not at every tick).
struct Watch {
  std::optional<bool> mqtt_connected;
  std::string receiver_error;
  std::string store_error;
};

int RunHq(const std::string& config_path) {
  // Block the stop signals before any thread exists, so every thread
  // inherits the mask and only the main loop receives them.
  sigset_t stop_set = StopSignals();
  pthread_sigmask(SIG_BLOCK, &stop_set, nullptr);
  signal(SIGPIPE, SIG_IGN);
  // Two malloc arenas instead of glibc's 8 per core: batches are decoded
  // on Paho's thread, stored on the transaction thread, the fleet rendered
  // on the listener's, and every thread's arena kept its own peak (a
  // replica with 1,000 reporting gateways: 134 MiB peak RSS with the
  // default, 111 MiB with 2; hq_e2e_bench's rss phase). An operator's
  // MALLOC_ARENA_MAX wins. Before any thread exists.
  if (!std::getenv("MALLOC_ARENA_MAX")) mallopt(M_ARENA_MAX, 2);
  // Protobuf's lazily built shared state, before any thread (storegw/v1/
  // warmup.h says why); the fleet document's too (its JSON printer).
  v1::WarmUpProtobuf();
  (void)FleetToJson(fleet::v1::Fleet());

  // 1. Config.
  HqConfig cfg;
  if (!config_path.empty()) {
    auto loaded = LoadHqConfigFile(config_path);
    if (!loaded.ok()) return StartFailure(loaded.status().message());
    cfg = std::move(*loaded);
  }
  if (Status s = CheckHqConfigFiles(cfg); !s.ok()) return StartFailure(s.message());
  gateway::InitLogging(cfg.log.level);
  spdlog::info("storegw-hq {} starting (config: {})", kVersion,
               config_path.empty() ? "embedded defaults" : config_path);

  // 2. The database, twice (see the top of this file). PgStore's messages
  // never hold the password.
  auto ingest_store = PgStore::Open(cfg.hq.database);
  if (!ingest_store.ok()) return StartFailure("database: " + ingest_store.status().message());
  auto fleet_store = PgStore::Open(cfg.hq.database);
  if (!fleet_store.ok()) return StartFailure("database: " + fleet_store.status().message());
  spdlog::info("database: {} (schema version {})", (*ingest_store)->Describe(),
               PgStore::SchemaVersion());

  // 3. The fleet listener.
  auto addr = http::ParseListenAddress(cfg.http.listen);
  if (!addr.ok()) return StartFailure("http.listen: " + addr.status().message());
  FleetHttpOptions fo;
  fo.fleet.offline_after = cfg.fleet.offline_after;
  fo.version = kVersion;
  fo.mqtt_enabled = !cfg.mqtt.url.empty();
  FleetHttp fleet_http(**fleet_store, fo);
  http::ServerOptions so;
  so.name = "http.listen";
  so.threads = 4;  // people, a scraper, `storegw-hq status`
  http::Server server(so);
  fleet_http.Mount(server);
  if (Status s = server.Start(*addr); !s.ok()) return StartFailure(s.message());
  const std::string base = BaseUrl(*addr, server.port());
  if (!addr->loopback) {
    spdlog::warn(
        "the fleet page and /metrics on {} have no authentication: keep http.listen on "
        "loopback or put a proxy that adds it in front",
        base);
  }

  // 4. The receiver: batches in, HqAcks out after each commit.
  auto receiver = Receiver::Create(ReceiverOptionsFrom(cfg), ingest_store->get());
  if (!receiver.ok()) {
    server.Stop();
    const Status& e = receiver.status();
    return StartFailure(e.field().empty() || e.message().rfind(e.field(), 0) == 0
                            ? e.message()
                            : e.field() + ": " + e.message());
  }
  if (Status s = (*receiver)->Start(); !s.ok()) {
    server.Stop();
    return StartFailure(s.message());
  }
  fleet_http.SetReceiverStats([r = receiver->get()] { return r->Stats(); });
  spdlog::info("receiver: MQTT {}{}, HTTPS {}", cfg.mqtt.url.empty() ? "off" : cfg.mqtt.url,
               cfg.mqtt.url.empty() ? ""
               : cfg.mqtt.share_group.empty()
                   ? " (plain subscription)"
                   : " (shared subscription group " + cfg.mqtt.share_group + ")",
               cfg.https.listen.empty() ? "off" : cfg.https.listen);

  // 5. Ready.
  gateway::NotifyReady("fleet page on " + base + ", database " + (*ingest_store)->Describe());
  std::printf("storegw-hq: listening on %s (fleet page; /v1/fleet, /metrics, /healthz)\n",
              base.c_str());
  std::fflush(stdout);
  spdlog::info("ready: fleet page on {}", base);

  // 6. Run: feed the watchdog, say in the log what changes.
  std::chrono::milliseconds tick{1000};
  const auto watchdog = gateway::WatchdogInterval();
  if (watchdog) {
    tick = std::max(
        std::chrono::milliseconds(1),
        std::min(tick, std::chrono::duration_cast<std::chrono::milliseconds>(*watchdog / 2)));
  }
  Watch watch;
  int sig = 0;
  auto next_tick = Clock::now();
  for (;;) {
    if (Clock::now() >= next_tick) {
      if (watchdog) gateway::NotifyWatchdog();
      const ReceiverStats st = (*receiver)->Stats();
      if (!cfg.mqtt.url.empty() && watch.mqtt_connected != st.mqtt_connected) {
        if (st.mqtt_connected) {
          spdlog::info("mqtt: connected to {}", cfg.mqtt.url);
        } else if (watch.mqtt_connected.has_value()) {
          spdlog::warn("mqtt: not connected to {}{}", cfg.mqtt.url,
                       st.last_error.empty() ? "" : ": " + st.last_error);
        }
        watch.mqtt_connected = st.mqtt_connected;
      }
      if (st.last_error != watch.receiver_error) {
        if (!st.last_error.empty()) spdlog::warn("receiver: {}", st.last_error);
        watch.receiver_error = st.last_error;
      }
      next_tick = Clock::now() + tick;
    }
    const auto left =
        std::chrono::duration_cast<std::chrono::nanoseconds>(next_tick - Clock::now());
    timespec ts{static_cast<time_t>(std::max<int64_t>(0, left.count()) / 1000000000),
                static_cast<long>(std::max<int64_t>(0, left.count()) % 1000000000)};
    siginfo_t info{};
    const int got = sigtimedwait(&stop_set, &info, &ts);
    if (got == SIGHUP) {
      spdlog::warn(
          "SIGHUP ignored: storegw-hq does not reload its config; restart it to apply "
          "changes");
    } else if (got > 0) {
      sig = got;
      break;
    }
  }

  // 7. Stop in reverse order.
  const auto t0 = Clock::now();
  ArmSecondSignal();
  gateway::NotifyStopping();
  spdlog::info("{}: stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
  (*receiver)->Stop();
  server.Stop();
  const ReceiverStats st = (*receiver)->Stats();
  receiver->reset();
  ingest_store->reset();
  fleet_store->reset();
  spdlog::info("stopped in {} ms: {} batches and {} events stored since start",
               std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count(),
               st.batches_stored, st.events_stored);
  return kExitOk;
}

}  // namespace

void AddRunCommand(CLI::App& app, int* exit_code) {
  auto path = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand(
      "run",
      "Run storegw-hq until SIGTERM/SIGINT: receive batches, store them in PostgreSQL, ack, serve "
      "the fleet page");
  cmd->add_option("--config,-c", *path, "The TOML config file (embedded defaults without it)");
  cmd->callback([path, exit_code] { *exit_code = RunHq(*path); });
}

}  // namespace storegw::hq
