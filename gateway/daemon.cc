#include "daemon.h"

#include <netdb.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include <spdlog/spdlog.h>

#include "storegw/cli/cli.h"
#include "storegw/config/config.h"
#include "storegw/http/listen.h"
#include "storegw/cli/logging.h"
#include "storegw/monitor/status.h"
#include "storegw/monitor/status_http.h"
#include "storegw/monitor/status_server.h"
#include "storegw/devices/device_api.h"
#include "storegw/storage/journal.h"
#include "storegw/sync/downstream.h"
#include "storegw/sync/uplink.h"
#include "storegw/v1/warmup.h"
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

// Before anything is created on disk: can `listen` be bound? `name` is the
// server as its own start-up error names it ("device API",
// "status.listen"), and the message is the same, so a port in use fails
// the start before the journal (and its directory) exists. The servers
// bind for real later; this check only moves the common failure earlier
// (a port taken in between still fails the start, then with a journal).
// Bound like http::Server binds: SO_REUSEADDR, the first address of the
// host that works. Port 0 (any free port) always passes.
Status CheckCanListen(const std::string& name, const std::string& listen) {
  auto addr = http::ParseListenAddress(listen);
  if (!addr.ok() || addr->port == 0) return Status::Ok();  // the server says it
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* res = nullptr;
  const std::string port = std::to_string(addr->port);
  std::string reason;
  if (int rc = getaddrinfo(addr->host.c_str(), port.c_str(), &hints, &res); rc != 0) {
    reason = std::string("cannot resolve host: ") + gai_strerror(rc);
  } else {
    reason = "no address to bind";
    for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
      const int fd = ::socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
      if (fd < 0) {
        reason = std::strerror(errno);
        continue;
      }
      int yes = 1;
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
      const bool ok = ::bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd, 1) == 0;
      if (!ok) reason = std::strerror(errno);
      ::close(fd);
      if (ok) {
        reason.clear();
        break;
      }
    }
    freeaddrinfo(res);
  }
  if (reason.empty()) return Status::Ok();
  return Status::Unavailable(name + ": cannot listen on " + addr->ToString() + ": " + reason +
                             " (is another storegw or service using it?)");
}

sigset_t StopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  return set;
}

// `warnings`: keys renamed or removed by a release (logged once logging
// is set up).
Result<Config> EffectiveConfig(const RunFlags& flags, std::vector<std::string>& warnings) {
  Config config;
  if (!flags.config_path.empty()) {
    auto loaded = LoadConfigFile(flags.config_path, nullptr, {.warnings = &warnings});
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
  o.count_mismatch_threshold = c.alerts.count_mismatch_threshold;
  o.low_stock_default = c.alerts.low_stock_default;
  // alerts.low_stock_file: read (and checked) by RunDaemon.
  using std::chrono::ceil;
  using std::chrono::seconds;
  o.default_hold = ceil<seconds>(c.perishables.default_hold);
  o.escalate_after = ceil<seconds>(c.perishables.escalate_after);
  o.cold_chain_metric = c.cold_chain.metric;
  o.cold_chain_grace = ceil<seconds>(c.cold_chain.grace);
  o.cold_chain_clear_after = ceil<seconds>(c.cold_chain.clear_after);
  o.silent_after = ceil<seconds>(c.cold_chain.silent_after);
  // perishables.hold_times_file, cold_chain.sensors_file: read by RunDaemon.
  return o;
}

devices::ApiOptions ApiOptionsFrom(const Config& c) {
  devices::ApiOptions o;
  o.listen = c.http.listen;
  o.device_tokens_file = c.http.device_tokens_file;
  o.max_body_bytes = c.http.max_body_bytes;
  o.threads = c.http.threads;
  o.devices.silent_after =
      std::chrono::duration_cast<std::chrono::seconds>(c.devices.silent_after);
  // Checked by the config loader (devices.opening_hours).
  if (auto h = devices::ParseOpeningHours(c.devices.opening_hours); h.ok()) {
    o.devices.opening_hours = *h;
  }
  o.changes.max_clients = c.changes.max_clients;
  o.changes.max_lag = static_cast<size_t>(c.changes.max_lag);
  o.changes.keep_alive = c.changes.keep_alive;
  return o;
}

sync::UplinkOptions UplinkOptionsFrom(const Config& c) {
  sync::UplinkOptions o;
  o.transport = c.uplink.transport;
  o.url = c.uplink.url;
  o.topic_prefix = c.uplink.topic_prefix;
  o.store_id = c.gateway.store_id;
  o.gateway_id = c.gateway.gateway_id;
  o.ack = c.uplink.ack;
  o.max_inflight = c.uplink.max_inflight;
  o.batch_events = c.uplink.batch_events;
  o.batch_sizing = c.uplink.batch_sizing;
  o.live_lane = c.uplink.live_lane;
  o.max_message_bytes = c.uplink.max_message_bytes;
  o.compression = c.uplink.compression;
  o.compression_level = c.uplink.compression_level;
  o.batch_encoding = c.uplink.batch_encoding;
  o.backoff_initial = c.uplink.backoff_initial;
  o.backoff_max = c.uplink.backoff_max;
  o.hq_ack_timeout = c.uplink.hq_ack_timeout;
  o.ack_timeout = c.uplink.ack_timeout;
  o.connect_timeout = c.uplink.connect_timeout;
  o.session_expiry = c.uplink.session_expiry;
  o.request_timeout = c.uplink.request_timeout;
  o.proxy = c.uplink.proxy;
  o.tls = {c.uplink.tls.ca_file, c.uplink.tls.cert_file, c.uplink.tls.key_file};
  o.client_id = c.uplink.client_id;
  o.username = c.uplink.username;
  o.password = c.uplink.password;
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
  auto hp = http::ParseListenAddress(listen);
  std::string host = hp.ok() ? hp->host : "127.0.0.1";
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  return "http://" + host + ":" + std::to_string(port);
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
  // Protobuf's lazily built shared state, before the uplink's and the HTTP
  // servers' threads exist (storegw/v1/warmup.h says why).
  v1::WarmUpProtobuf();

  // 1. Config.
  std::vector<std::string> config_warnings;
  auto config = EffectiveConfig(flags, config_warnings);
  if (!config.ok()) return StartFailure(config.status().message());
  InitLogging(config->log.level, config->log.format);
  spdlog::info("storegw {} starting (config: {})", kVersion,
               flags.config_path.empty() ? "embedded defaults" : flags.config_path);
  for (const auto& w : config_warnings) spdlog::warn("config: {}", w);

  // 2. What could still fail the start without a journal: the listen
  // addresses and the device tokens file, checked before the journal (and
  // its directory) is created, so that a failed start leaves the data dir
  // as it found it.
  if (Status s = CheckCanListen("device API", config->http.listen); !s.ok()) {
    return StartFailure(s.message());
  }
  if (!config->status.listen.empty()) {
    if (Status s = CheckCanListen("status.listen", config->status.listen); !s.ok()) {
      return StartFailure(s.message());
    }
  }
  if (!config->http.device_tokens_file.empty()) {
    if (auto n = devices::CheckDeviceTokensFile(config->http.device_tokens_file); !n.ok()) {
      return StartFailure(n.status().message(), "device API");
    }
  }

  // 3. Journal.
  storage::JournalOptions journal_options = JournalOptionsFrom(*config);
  if (!config->alerts.low_stock_file.empty()) {
    auto thresholds = LoadLowStockFile(config->alerts.low_stock_file);
    if (!thresholds.ok()) return StartFailure(thresholds.status().message());
    journal_options.low_stock_thresholds = std::move(*thresholds);
    spdlog::info("alerts: {} per-sku low-stock thresholds from {}",
                 journal_options.low_stock_thresholds.size(), config->alerts.low_stock_file);
  }
  if (!config->perishables.hold_times_file.empty()) {
    auto holds = LoadHoldTimesFile(config->perishables.hold_times_file);
    if (!holds.ok()) return StartFailure(holds.status().message());
    for (const auto& [sku, d] : *holds) {
      journal_options.hold_times[sku] = std::chrono::ceil<std::chrono::seconds>(d);
    }
    spdlog::info("perishables: {} per-sku hold times from {}", journal_options.hold_times.size(),
                 config->perishables.hold_times_file);
  }
  if (!config->cold_chain.sensors_file.empty()) {
    auto sensors = LoadSensorsFile(config->cold_chain.sensors_file);
    if (!sensors.ok()) return StartFailure(sensors.status().message());
    for (const auto& [id, l] : *sensors) {
      storage::JournalOptions::SensorLimits sl;
      sl.location = l.location;
      sl.metric = l.metric.empty() ? config->cold_chain.metric : l.metric;
      sl.min_value = l.min_value;
      sl.max_value = l.max_value;
      if (l.grace) sl.grace = std::chrono::ceil<std::chrono::seconds>(*l.grace);
      if (l.silent_after) {
        sl.silent_after = std::chrono::ceil<std::chrono::seconds>(*l.silent_after);
      }
      journal_options.sensor_limits[id] = sl;
    }
    spdlog::info("cold chain: limits of {} sensors from {}", journal_options.sensor_limits.size(),
                 config->cold_chain.sensors_file);
  }
  auto journal = storage::Journal::Open(journal_options);
  if (!journal.ok()) return StartFailure(journal.status().message(), "journal");
  LogOpenReport(**journal);

  // 4. Uplink: replays the journal to HQ in the background (it connects,
  // retries and reports on its own; a broker that is not there is not a
  // start-up failure: the store keeps selling and the journal buffers).
  StatusReporter status(**journal, *config);
  // Downstream (HQ stock snapshots and prices, MQTT only): applied through
  // the journal on the uplink's receive thread, so the broker gets each
  // PUBACK only once the change is committed. Declared before the uplink,
  // so it outlives the sink.
  sync::Downstream downstream(journal->get());
  std::unique_ptr<sync::Uplink> uplink;
  if (config->uplink.transport == "mqtt" || config->uplink.transport == "https") {
    auto u = sync::Uplink::Create(UplinkOptionsFrom(*config), journal->get());
    if (!u.ok()) {
      (*journal)->Close();
      const Status& e = u.status();
      return StartFailure(e.field().empty() ? e.message() : e.field() + ": " + e.message(),
                          "uplink");
    }
    uplink = std::move(*u);
    status.SetUplinkFields([up = uplink.get()](v1::GatewayStatus* s) { up->FillStatus(s); });
    uplink->SetStatusSource([&status] { return status.Build(); });
    if (config->uplink.transport == "mqtt") {
      // The stop token ends the apply's retries when the uplink stops, so
      // Uplink::Stop() stays bounded while a message is being applied.
      uplink->SetDownstreamSink(
          [&downstream](sync::DownstreamKind kind, std::string payload, std::stop_token stop) {
            (void)downstream.Submit(kind, payload, stop);  // counted and logged inside
          });
    }
    if (Status st = uplink->Start(); !st.ok()) {
      (*journal)->Close();
      return StartFailure(st.message(), "uplink");
    }
    if (config->uplink.transport == "https") {
      spdlog::info("uplink: HTTPS POST to {}{}, replaying from seq {}", config->uplink.url,
                   config->uplink.proxy.empty() ? "" : " via uplink.proxy",
                   (*journal)->Stats().watermark + 1);
    } else {
      spdlog::info("uplink: MQTT to {} (ack = \"{}\"), replaying from seq {}", config->uplink.url,
                   config->uplink.ack, (*journal)->Stats().watermark + 1);
    }
  } else if (config->uplink.transport == "none") {
    spdlog::info("uplink: disabled (uplink.transport = \"none\"); events stay in the journal");
  } else {
    spdlog::warn("uplink: transport \"{}\" is not available in this build; events stay in the "
                 "journal",
                 config->uplink.transport);
  }

  // 5. Device API, with the gateway's own routes (status page, /v1/status,
  // /metrics: status_http.h), unless they have a listener of their own
  // (status.listen).
  status.Sample();
  StatusHttp status_http(status, **journal, config->status.token);
  if (uplink) status_http.SetUplinkStatus([up = uplink.get()] { return up->status(); });
  status_http.SetDownstreamCounters([&downstream] { return downstream.counters(); });
  devices::ApiOptions api_options = ApiOptionsFrom(*config);
  api_options.on_append_done = status_http.AppendObserver();
  const bool status_listener = !config->status.listen.empty();
  auto api = devices::DeviceApi::Start(
      api_options, **journal, status_listener ? devices::ExtraHandler{} : status_http.Handler());
  if (!api.ok()) {
    if (uplink) uplink->Stop();
    (*journal)->Close();
    return StartFailure(api.status().message(), "device API");
  }
  status_http.SetApiCounters([a = api->get()] { return a->counters(); });
  status_http.SetFeedStats([a = api->get()] { return a->feed_stats(); });
  status_http.SetDevices([a = api->get()] { return a->Devices(); },
                         static_cast<size_t>(config->metrics.max_devices));
  std::unique_ptr<StatusServer> status_server;
  if (status_listener) {
    auto started = StatusServer::Start(config->status.listen, status_http);
    if (!started.ok()) {
      (*api)->Stop();
      if (uplink) uplink->Stop();
      (*journal)->Close();
      return StartFailure(started.status().message());
    }
    status_server = std::move(*started);
    status_http.SetExtraResponseCounts(
        [sv = status_server.get()] { return sv->ResponsesByCode(); });
  }
  status_http.Sample();

  // 6. Ready: /readyz answers 200 from now on (on both listeners), and
  // systemd hears it.
  (*api)->SetReady(true);
  if (status_server) status_server->SetReady(true);
  std::string base = BaseUrl(config->http.listen, (*api)->port());
  std::string status_base =
      status_server ? BaseUrl(config->status.listen, status_server->port()) : base;
  if (auto hp = http::ParseListenAddress(status_listener ? config->status.listen : config->http.listen);
      hp.ok() && !hp->loopback && config->status.token.empty()) {
    spdlog::warn(
        "status page and /metrics on {} are open to the network without a token: set "
        "status.token to require one",
        status_base);
  }
  std::string journal_path = (*journal)->path().string();
  NotifyReady("listening on " + base + ", journal " + journal_path);
  std::printf("storegw: listening on %s (status: %s/v1/status), journal %s epoch %llu\n",
              base.c_str(), status_base.c_str(), journal_path.c_str(),
              static_cast<unsigned long long>((*journal)->epoch()));
  std::fflush(stdout);
  spdlog::info("ready: device API on {}", base);

  // 7. Run: feed the watchdog at half its interval, sample the status.
  std::chrono::milliseconds tick{1000};
  std::optional<std::chrono::microseconds> watchdog = WatchdogInterval();
  if (watchdog) {
    tick = std::min(tick, std::chrono::duration_cast<std::chrono::milliseconds>(*watchdog / 2));
    tick = std::max(tick, std::chrono::milliseconds(1));
    spdlog::info("systemd watchdog: {} ms, fed every {} ms", watchdog->count() / 1000,
                 tick.count());
  }
  bool integrity_logged = false, full_logged = false;
  bool checkpoint_failing_logged = false;
  uint64_t appended_when_full = 0;
  int sig = WaitForStop(tick, [&] {
    if (watchdog) NotifyWatchdog();
    status.Sample();
    status_http.Sample();
    // Say it when the journal's background integrity check fails (damage
    // the quick start-up check cannot see) and when ingest starts and stops
    // being refused for lack of space. While the disk is full the journal
    // probes it again on the next request, so `full` flickers: "resumed" is
    // said only once an append really went through.
    const storage::JournalStats js = (*journal)->Stats();
    if (!integrity_logged && !js.integrity_error.empty()) {
      integrity_logged = true;
      spdlog::error(
          "{}; storegw keeps running on it; the next start moves it aside (kept) and starts a new "
          "journal with a new epoch: deliver the backlog, then restart storegw",
          js.integrity_error);
    }
    // The checkpointer: once when it starts failing (with the reason), and
    // once when it works again; not at every failed retry.
    if (!js.checkpoint_error.empty() && !checkpoint_failing_logged) {
      checkpoint_failing_logged = true;
      spdlog::error("journal: the checkpointer is failing ({}); the WAL is {} bytes and grows "
                    "until it works again (the writer checkpoints as a fallback)",
                    js.checkpoint_error, js.wal_bytes);
    } else if (js.checkpoint_error.empty() && checkpoint_failing_logged) {
      checkpoint_failing_logged = false;
      spdlog::info("journal: the checkpointer works again after {} failed attempts",
                   js.checkpoint_failures);
    }
    if (js.full && !full_logged) {
      full_logged = true;
      appended_when_full = js.events_appended;
      spdlog::error("journal: full ({} bytes in use, max_bytes {}{}): ingest answers 503 until "
                    "delivery and retention (or more disk) free space",
                    js.journal_bytes, js.max_bytes,
                    js.journal_bytes < js.max_bytes ? "; the disk is full" : "");
    } else if (full_logged && !js.full && js.events_appended > appended_when_full) {
      full_logged = false;
      spdlog::info("journal: space available again ({} bytes in use): ingest resumed",
                   js.journal_bytes);
    }
  });

  // 8. Stop in reverse order.
  auto t0 = Clock::now();
  ArmSecondSignal();
  NotifyStopping();
  spdlog::info("{}: stopping; refusing new events, finishing requests in flight",
               sig == SIGINT ? "SIGINT" : "SIGTERM");
  (*api)->BeginShutdown();
  if (status_server) status_server->BeginShutdown();
  (*api)->Stop();
  if (status_server) status_server->Stop();
  if (uplink) {
    // Publishes the retained status with online=false and disconnects;
    // bounded even on a stalled link. Unacknowledged batches are simply
    // resent from the watermark next time.
    uplink->Stop();
  }
  // No more downstream messages (the uplink is stopped).
  downstream.Stop();
  storage::JournalStats st = (*journal)->Stats();
  (*journal)->Close();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  spdlog::info("stopped in {} ms: journal closed at seq {} (epoch {})", ms, st.last_seq, st.epoch);
  return kExitOk;
}

}  // namespace storegw::gateway
