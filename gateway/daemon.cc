#include "daemon.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include <spdlog/spdlog.h>

#include "cli.h"
#include "config.h"
#include "logging.h"
#include "status.h"
#include "storegw/devices/device_api.h"
#include "storegw/storage/journal.h"
#include "systemd_notify.h"
#include "version.h"

namespace storegw::gateway {
namespace {

using Clock = std::chrono::steady_clock;

// One line on stderr, the process's only word when it cannot start.
// `module` prefixes the reason unless the module's message already does.
int StartFailure(const std::string& reason, std::string_view module = {}) {
  std::string line = reason;
  if (!module.empty() && line.rfind(std::string(module) + ":", 0) != 0) {
    line = std::string(module) + ": " + line;
  }
  std::replace(line.begin(), line.end(), '\n', ' ');
  std::fprintf(stderr, "storegw: cannot start: %s\n", line.c_str());
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

Result<Config> EffectiveConfig(const RunFlags& flags) {
  Config config;
  if (!flags.config_path.empty()) {
    auto loaded = LoadConfigFile(flags.config_path);
    if (!loaded.ok()) return loaded.status();
    config = std::move(*loaded);
  }
  if (!flags.data_dir.empty()) {
    if (Status s = SetConfigValue(config, "gateway.data_dir", flags.data_dir, "--data-dir");
        !s.ok()) {
      return s;
    }
  }
  if (!flags.listen.empty()) {
    if (Status s = SetConfigValue(config, "http.listen", flags.listen, "--listen"); !s.ok()) {
      return s;
    }
  }
  if (Status s = CheckConfigFiles(config); !s.ok()) return s;
  return config;
}

storage::JournalOptions JournalOptionsFrom(const Config& c) {
  storage::JournalOptions o;
  o.data_dir = c.gateway.data_dir;
  o.store_id = c.gateway.store_id;
  o.gateway_id = c.gateway.gateway_id;
  o.max_bytes = c.journal.max_bytes;
  // Round up: a retention of 1500ms keeps events at least that long.
  o.retention = std::chrono::ceil<std::chrono::seconds>(c.journal.retention);
  return o;
}

devices::ApiOptions ApiOptionsFrom(const Config& c) {
  devices::ApiOptions o;
  o.listen = c.http.listen;
  o.device_tokens_file = c.http.device_tokens_file;
  o.max_body_bytes = c.http.max_body_bytes;
  o.threads = c.http.threads;
  return o;
}

void LogOpenReport(const storage::Journal& j) {
  const storage::OpenReport& r = j.open_report();
  const storage::JournalStats st = j.Stats();
  if (!r.corrupt_moved_to.empty()) {
    spdlog::error(
        "journal: {} failed its integrity check ({}); it was moved to {} and kept for recovery; "
        "a new journal with a new epoch was started",
        j.path().string(), r.corrupt_reason, r.corrupt_moved_to);
  }
  if (r.migrated_from > 0) {
    spdlog::info("journal: migrated {} from schema version {}", j.path().string(), r.migrated_from);
  }
  if (r.created) {
    spdlog::info("journal: created {} (store {}, gateway {}), new epoch {}", j.path().string(),
                 j.store_id(), j.gateway_id(), j.epoch());
  } else {
    spdlog::info(
        "journal: opened {} (store {}, gateway {}), epoch {}, seq {}..{}, watermark {}, "
        "backlog {} events",
        j.path().string(), j.store_id(), j.gateway_id(), j.epoch(), st.first_seq, st.last_seq,
        st.watermark, st.backlog_events);
  }
}

std::string BaseUrl(const std::string& listen, uint16_t port) {
  auto hp = ParseListen(listen);
  std::string host = hp.ok() ? hp->host : "127.0.0.1";
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  return "http://" + host + ":" + std::to_string(port);
}

devices::ExtraHandler StatusRoutes(StatusReporter& status) {
  return [&status](const devices::HttpRequest& req) -> std::optional<devices::HttpResponse> {
    if (req.path != "/v1/status") return std::nullopt;
    devices::HttpResponse resp;
    if (req.method != "GET" && req.method != "HEAD") {
      resp.status = 405;
      resp.body = R"({"error":{"code":"method_not_allowed","message":"use GET","field":""}})";
      resp.headers.emplace_back("Allow", "GET, HEAD");
      return resp;
    }
    resp.body = status.Json();
    resp.headers.emplace_back("Cache-Control", "no-store");
    return resp;
  };
}

// After the first stop signal: a second one ends the process at once. Every
// acknowledged event is already committed, so this loses nothing durable;
// it only abandons requests still in flight (their devices retry).
void ArmSecondSignal() {
  std::thread([] {
    sigset_t set = StopSignals();
    sigdelset(&set, SIGHUP);
    int sig = 0;
    if (sigwait(&set, &sig) == 0) {
      static const char msg[] = "storegw: second stop signal: exiting without draining\n";
      ssize_t n = write(STDERR_FILENO, msg, sizeof msg - 1);
      (void)n;
      _exit(kExitFailure);
    }
  }).detach();
}

// Waits for SIGTERM/SIGINT, waking at least every `tick` to run `on_tick`.
int WaitForStop(std::chrono::milliseconds tick, const std::function<void()>& on_tick) {
  sigset_t set = StopSignals();
  auto next_tick = Clock::now() + tick;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(next_tick - Clock::now());
    if (left.count() <= 0) {
      on_tick();
      next_tick = Clock::now() + tick;
      continue;
    }
    timespec ts{static_cast<time_t>(left.count() / 1000000000),
                static_cast<long>(left.count() % 1000000000)};
    siginfo_t info{};
    int sig = sigtimedwait(&set, &info, &ts);
    if (sig == SIGHUP) {
      spdlog::warn(
          "SIGHUP ignored: storegw does not reload its config; restart it to apply "
          "changes");
    } else if (sig > 0) {
      return sig;
    }
    // -1 with EAGAIN (timeout) or EINTR: loop and tick when due.
  }
}

}  // namespace

int RunDaemon(const RunFlags& flags) {
  // Block the stop signals before any thread exists, so every thread
  // inherits the mask and only WaitForStop() receives them.
  sigset_t stop_set = StopSignals();
  pthread_sigmask(SIG_BLOCK, &stop_set, nullptr);
  signal(SIGPIPE, SIG_IGN);  // a device hanging up must not kill the daemon

  // 1. Config.
  auto config = EffectiveConfig(flags);
  if (!config.ok()) return StartFailure(config.status().message());
  InitLogging(config->log.level);
  spdlog::info("storegw {} starting (config: {})", kVersion,
               flags.config_path.empty() ? "embedded defaults" : flags.config_path);

  // 2. Journal.
  auto journal = storage::Journal::Open(JournalOptionsFrom(*config));
  if (!journal.ok()) return StartFailure(journal.status().message(), "journal");
  LogOpenReport(**journal);

  // The uplink (sync/) is not wired into the daemon yet: say so once, the
  // status document says it on every read.
  if (config->uplink.transport != "none") {
    spdlog::warn("uplink: not available in this build (uplink.transport = \"{}\"); events stay "
                 "in the journal",
                 config->uplink.transport);
  }

  // 3. Device API, with the gateway's own routes.
  StatusReporter status(**journal, *config);
  status.Sample();
  auto api = devices::DeviceApi::Start(ApiOptionsFrom(*config), **journal, StatusRoutes(status));
  if (!api.ok()) {
    (*journal)->Close();
    return StartFailure(api.status().message(), "device API");
  }

  // 4. Ready: /readyz answers 200 from now on, and systemd hears it.
  (*api)->SetReady(true);
  std::string base = BaseUrl(config->http.listen, (*api)->port());
  std::string journal_path = (*journal)->path().string();
  NotifyReady("listening on " + base + ", journal " + journal_path);
  std::printf("storegw: listening on %s (status: %s/v1/status), journal %s epoch %llu\n",
              base.c_str(), base.c_str(), journal_path.c_str(),
              static_cast<unsigned long long>((*journal)->epoch()));
  std::fflush(stdout);
  spdlog::info("ready: device API on {}", base);

  // 5. Run: feed the watchdog at half its interval, sample the status.
  std::chrono::milliseconds tick{1000};
  std::optional<std::chrono::microseconds> watchdog = WatchdogInterval();
  if (watchdog) {
    tick = std::min(tick, std::chrono::duration_cast<std::chrono::milliseconds>(*watchdog / 2));
    tick = std::max(tick, std::chrono::milliseconds(1));
    spdlog::info("systemd watchdog: {} ms, fed every {} ms", watchdog->count() / 1000,
                 tick.count());
  }
  int sig = WaitForStop(tick, [&] {
    if (watchdog) NotifyWatchdog();
    status.Sample();
  });

  // 6. Stop in reverse order.
  auto t0 = Clock::now();
  ArmSecondSignal();
  NotifyStopping();
  spdlog::info("{}: stopping; refusing new events, finishing requests in flight",
               sig == SIGINT ? "SIGINT" : "SIGTERM");
  (*api)->BeginShutdown();
  (*api)->Stop();
  storage::JournalStats st = (*journal)->Stats();
  (*journal)->Close();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  spdlog::info("stopped in {} ms: journal closed at seq {} (epoch {})", ms, st.last_seq, st.epoch);
  return kExitOk;
}

}  // namespace storegw::gateway
