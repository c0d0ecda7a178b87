// The HQ end of the wire as a fleet, end to end: a private PostgreSQL
// 15, a real mosquitto, `storegw-hq run` replicas (this build tree's
// binary) and a fleet of gateways, each with its own journal and a real
// uplink with ack = "hq": most of them inside this process
// (e2e_util.h's LocalGateway), five of them real `storegw run` daemons.
//
// MQTT: every gateway builds a backlog while the broker is not up yet (its
// uplink fails to connect through the link proxy), then the broker and
// three replicas on one shared subscription start, and while the
// backlogs drain (live sales keep being journaled meanwhile):
//   1. one replica is killed (SIGKILL), the others go on, it is started
//      again on its persistent session;
//   2. the broker is killed and started on the same port WITHOUT
//      persistence: every session, subscription and queued message is lost
//      (the gateways resend what HQ did not ack, after hq_ack_timeout);
//   3. PostgreSQL stops (`pg_ctl stop -m immediate`) and starts again
//      (crash recovery); the replicas' transactions fail and are retried;
//   4. every gateway's link is cut at once (tests/sync/tcp_proxy.h).
// HTTPS: gateways with uplink.transport = "https" (mutual TLS, a test CA)
// build their backlogs while storegw-hq is down, then drain into one
// storegw-hq with [https], which is killed (SIGKILL) and started again on
// the same port mid-drain, and PostgreSQL is restarted as above (503 +
// Retry-After meanwhile).
// At the end, with the tests' own SQL (e2e_util.h's CheckExactlyOnce, not
// PgStore): every journaled event of every gateway is in `events` exactly
// once with its event_id and recorded_at, no seq is missing
// (generate_series), gateway_epochs.applied_seq is each gateway's last
// seq; every gateway's watermark is its last seq; and (MQTT) each
// replica's /v1/fleet lists every gateway applied up to its last seq.
//
// Scale (environment): STOREGW_FLEET_GATEWAYS (MQTT gateways, default 200,
// five of them daemons), STOREGW_FLEET_EVENTS (backlog per gateway,
// default 300), STOREGW_FLEET_HTTPS_GATEWAYS (default 24). Every process
// started here is stopped by PID when the test ends, failed or not
// (tests/common/process.h); every server listens on 127.0.0.1.
#include <doctest/doctest.h>

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>

#include "e2e_util.h"
#include "hq_fleet_test_util.h"
#include "storegw/v1/warmup.h"
#include "tcp_proxy.h"

namespace {

using namespace storegw;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
using e2e::LocalGateway;

// Generous: the suite also runs under TSan; success never waits for it.
constexpr auto kDrainTimeout = 300s;
constexpr auto kStepTimeout = 120s;
constexpr int kDaemons = 5;
// Every gateway: batches of 100 events, 2 of them unacknowledged at most,
// resent after 5 s without an HqAck (the daemons' config says the same).
// 200 gateways keep at most 40,000 events in flight, a few seconds of
// HQ's work: no storm of resends (e2e_util.h).
constexpr int kInflight = 2;
constexpr auto kHqAckTimeout = 5s;

using Clock = std::chrono::steady_clock;
double Since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// A real `storegw run` gateway of the fleet.
struct DaemonGateway {
  std::string store_id, gateway_id;
  fs::path data_dir, config;
  std::optional<test::Daemon> d;
};

std::string DaemonToml(const DaemonGateway& g, const std::string& url) {
  return "[gateway]\nstore_id = \"" + g.store_id + "\"\ngateway_id = \"" + g.gateway_id +
         "\"\n[uplink]\nurl = \"" + url +
         "\"\nack = \"hq\"\nhq_ack_timeout = \"5s\"\nack_timeout = \"10s\"\n"
         "connect_timeout = \"5s\"\nbatch_events = 100\nmax_inflight = 2\n"
         "backoff_initial = \"100ms\"\n"
         "backoff_max = \"1s\"\n";
}

std::optional<v1::GatewayStatus> DaemonStatus(const DaemonGateway& g) {
  return test::GetStatus(g.d->port);
}

// A metric's value from storegw-hq's /metrics (unlabelled series), -1
// when it does not answer.
double Metric(uint16_t port, const std::string& name) {
  const test::HttpResult r = test::HttpGet(port, "/metrics");
  if (r.status != 200) return -1;
  return e2e::MetricValue(r.body, name).value_or(-1);
}

// Journals live sales while the faults run, so that every fault finds
// batches in flight: every 20 ms five sales on the next in-process
// gateway, every 100 ms five receipts posted to the next daemon.
class LiveFeeder {
 public:
  LiveFeeder(std::vector<std::unique_ptr<LocalGateway>>& local, std::vector<uint16_t> daemon_ports)
      : local_(local), daemon_ports_(std::move(daemon_ports)) {
    thread_ = std::thread([this] { Run(); });
  }
  ~LiveFeeder() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  uint64_t events() const { return events_.load(); }
  std::string error() const {
    std::lock_guard lk(mu_);
    return error_;
  }

 private:
  void Run() {
    uint64_t n = 0;
    auto next = Clock::now();
    while (!stop_) {
      next += 20ms;
      std::this_thread::sleep_until(next);
      ++n;
      auto& g = *local_[n % local_.size()];
      try {
        e2e::AppendSales(*g.journal, 10'000'000 + n * 5, 5);
        events_ += 5;
      } catch (const std::exception& e) {
        Fail(g.gateway_id + ": " + e.what());
      }
      if (!daemon_ports_.empty() && n % 5 == 0) {
        std::string why;
        if (test::PostReceipts(daemon_ports_[(n / 5) % daemon_ports_.size()], test::Id("live", n),
                               5, 5, &why)) {
          events_ += 5;
        } else {
          Fail("posting to a daemon: " + why);
        }
      }
    }
  }
  void Fail(std::string why) {
    std::lock_guard lk(mu_);
    if (error_.empty()) error_ = std::move(why);
  }

  std::vector<std::unique_ptr<LocalGateway>>& local_;
  std::vector<uint16_t> daemon_ports_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> events_{0};
  mutable std::mutex mu_;
  std::string error_;
  std::thread thread_;
};

// The in-process gateways' share of their initial backlog that HQ has
// acknowledged (sum of watermarks over sum of backlogs).
double Progress(const std::vector<std::unique_ptr<LocalGateway>>& local, uint64_t backlog) {
  uint64_t acked = 0;
  for (const auto& g : local) acked += g->watermark();
  return backlog ? static_cast<double>(acked) / static_cast<double>(backlog) : 1.0;
}

// Events journaled and not acknowledged yet, over the in-process gateways.
uint64_t Unacked(const std::vector<std::unique_ptr<LocalGateway>>& local) {
  uint64_t n = 0;
  for (const auto& g : local) {
    const auto s = g->journal->Stats();
    n += s.last_seq - s.watermark;
  }
  return n;
}

// Why the fleet is not drained yet: the first few gateways still behind.
std::string NotDrained(const std::vector<std::unique_ptr<LocalGateway>>& local,
                       const std::vector<DaemonGateway>& daemons) {
  std::string out;
  int n = 0;
  for (const auto& g : local) {
    const auto s = g->journal->Stats();
    if (s.watermark == s.last_seq) continue;
    if (++n > 5) continue;
    const sync::UplinkStatus u = g->uplink->status();
    out += g->gateway_id + ": watermark " + std::to_string(s.watermark) + " of " +
           std::to_string(s.last_seq) + ", link " + u.link + ", last error: " + u.last_error + "\n";
  }
  for (const auto& g : daemons) {
    auto s = DaemonStatus(g);
    if (s && s->watermark() == s->last_seq()) continue;
    ++n;
    out += g.gateway_id + " (daemon): " +
           (s ? "watermark " + std::to_string(s->watermark()) + " of " +
                    std::to_string(s->last_seq()) + ", last error: " + s->last_error()
              : std::string("no status")) +
           "\n";
  }
  return std::to_string(n) + " gateways not drained:\n" + out;
}

bool Drained(const std::vector<std::unique_ptr<LocalGateway>>& local,
             const std::vector<DaemonGateway>& daemons) {
  for (const auto& g : local) {
    if (!g->drained()) return false;
  }
  for (const auto& g : daemons) {
    auto s = DaemonStatus(g);
    if (!s || s->watermark() != s->last_seq()) return false;
  }
  return true;
}

// The in-process gateways' journals, for CheckExactlyOnce.
void CollectLocal(const std::vector<std::unique_ptr<LocalGateway>>& local,
                  std::vector<e2e::Journaled>* out) {
  for (const auto& g : local) {
    e2e::Journaled j;
    j.store_id = g->store_id;
    j.gateway_id = g->gateway_id;
    j.epoch = g->journal->epoch();
    j.events = e2e::ReadAll(*g->journal);
    out->push_back(std::move(j));
  }
}

// Side by side: each Stop() says goodbye to the broker (a final status),
// a fraction of a second each.
void StopUplinks(std::vector<std::unique_ptr<LocalGateway>>& local) {
  e2e::ParallelFor(static_cast<int>(local.size()), 16,
                   [&](int i) { local[static_cast<size_t>(i)]->uplink->Stop(); });
}

// Hundreds of in-process uplinks log every reconnect and resend the
// faults cause: only their errors go to the test's output (each
// gateway's last error is in NotDrained's report). Protobuf's shared
// state is built before any thread (storegw/v1/warmup.h).
void SetUpTestProcess() {
  spdlog::set_level(spdlog::level::err);
  v1::WarmUpProtobuf();
}

// Starts replica `name` of storegw-hq; REQUIREs that it comes up.
test::HqDaemon StartReplica(const fs::path& config, const fs::path& logs, const std::string& name) {
  std::string why;
  auto hq = test::StartHq(config, logs, name, &why);
  REQUIRE_MESSAGE(hq, name << ": " << why);
  return std::move(*hq);
}

}  // namespace

TEST_CASE(
    "fleet over MQTT: offline backlogs of every gateway reach PostgreSQL exactly once through 3 "
    "replicas while a replica is killed, the broker, PostgreSQL and the links restart") {
  const int gateways = e2e::EnvInt("STOREGW_FLEET_GATEWAYS", 200, kDaemons + 1, 2000);
  const int backlog = e2e::EnvInt("STOREGW_FLEET_EVENTS", 300, 10, 1'000'000);
  const int n_local = gateways - kDaemons;
  const auto t0 = Clock::now();
  SetUpTestProcess();
  test::TempDir tmp({}, "storegw-e2e");
  const fs::path logs = tmp / "logs";
  fs::create_directories(logs);
  test::Postgres pg;  // this test's own: it restarts it
  const std::string conninfo = pg.conninfo();

  // The broker's port is chosen now; the broker starts later. Gateways
  // reach it only through the link proxy.
  const uint16_t broker_port = test::FreePort();
  sync_test::TcpProxy link(broker_port);
  const std::string link_url = "tcp://127.0.0.1:" + std::to_string(link.port());

  // 1. Offline: every gateway journals its backlog while its uplink cannot
  // connect (nothing listens behind the proxy). The in-process journals
  // fill on worker threads while this thread starts the daemons (children
  // are spawned from this thread: they die with it).
  std::vector<std::unique_ptr<LocalGateway>> local(static_cast<size_t>(n_local));
  const sync::UplinkOptions uo = e2e::FleetUplinkOptions(link_url, 100, kInflight, kHqAckTimeout);
  std::exception_ptr journaling_failed;
  std::jthread journaling([&] {
    try {
      e2e::ParallelFor(n_local, 8, [&](int i) {
        auto g = e2e::OpenLocalGateway(tmp / ("gw-" + std::to_string(i + 1)), i + 1, uo);
        e2e::AppendSales(*g->journal, 1, static_cast<uint64_t>(backlog), 500);
        local[static_cast<size_t>(i)] = std::move(g);
      });
    } catch (...) {
      journaling_failed = std::current_exception();
    }
  });
  std::vector<DaemonGateway> daemons(kDaemons);
  std::vector<uint16_t> daemon_ports;
  for (int k = 0; k < kDaemons; ++k) {
    DaemonGateway& g = daemons[static_cast<size_t>(k)];
    const int i = n_local + k + 1;
    g.store_id = e2e::StoreId(i);
    g.gateway_id = e2e::GatewayId(i);
    g.data_dir = tmp / ("daemon-" + std::to_string(i));
    g.config = tmp / ("daemon-" + std::to_string(i) + ".toml");
    test::WriteFile(g.config, DaemonToml(g, link_url));
    std::string why;
    g.d = test::StartDaemon(g.data_dir, logs, "daemon-" + std::to_string(i), &why, 0,
                            {"--config", g.config.string()});
    REQUIRE_MESSAGE(g.d, g.gateway_id << ": " << why);
    REQUIRE_MESSAGE(test::PostReceipts(g.d->port, "backlog", backlog, 100, &why), why);
    daemon_ports.push_back(g.d->port);
  }
  journaling.join();
  if (journaling_failed) std::rethrow_exception(journaling_failed);
  for (auto& g : local) REQUIRE(g->uplink->Start().ok());
  uint64_t backlog_local = 0;
  for (const auto& g : local) {
    const auto s = g->journal->Stats();
    REQUIRE(s.watermark == 0);
    REQUIRE(s.last_seq >= static_cast<uint64_t>(backlog));
    backlog_local += s.last_seq;
    CHECK(g->uplink->status().connects == 0);  // offline all along
  }
  for (const auto& g : daemons) {
    auto s = DaemonStatus(g);
    REQUIRE(s);
    CHECK(s->watermark() == 0);
    CHECK(s->last_seq() == static_cast<uint64_t>(backlog));
    CHECK(s->link() != "up");
  }
  MESSAGE("[" << Since(t0) << " s] " << gateways << " gateways (" << kDaemons << " daemons) journaled "
                   << backlog_local + static_cast<uint64_t>(kDaemons * backlog)
                   << " events offline in " << Since(t0) << " s");

  // 2. Head office comes up: the broker (no persistence) and three
  // replicas of one shared subscription group.
  sync_test::BrokerOptions bo;
  bo.persistence = false;
  sync_test::Mosquitto broker(tmp / "broker", bo, broker_port);
  const std::vector<std::string> names = {"hq-a", "hq-b", "hq-c"};
  std::vector<fs::path> configs;
  for (const auto& name : names) {
    e2e::HqReplicaConfig c;
    c.conninfo = conninfo;
    c.mqtt_url = broker.url();
    c.client_id = name + "-" + std::to_string(getpid());
    configs.push_back(e2e::WriteHqConfig(tmp / (name + ".toml"), c));
  }
  std::string why;
  std::vector<test::HqDaemon> hq = e2e::StartHqReplicas(configs, names, logs, &why);
  REQUIRE_MESSAGE(hq.size() == 3, why);
  const auto t_drain = Clock::now();
  MESSAGE("[" << Since(t0) << " s] broker and 3 replicas up");
  LiveFeeder feeder(local, daemon_ports);
  auto at = [&](double f) {
    const bool ok = test::WaitFor([&] { return Progress(local, backlog_local) >= f; }, kStepTimeout);
    REQUIRE_MESSAGE(ok, "no progress past " << f << ": " << NotDrained(local, daemons));
    return Progress(local, backlog_local);
  };

  // 3. Faults, each while the backlogs drain.
  double p = at(0.10);
  hq[1].proc.KillAndReap();
  REQUIRE(hq[1].proc.exit_info());
  CHECK(hq[1].proc.exit_info()->signal == SIGKILL);
  MESSAGE("[" << Since(t0) << " s] " << "replica hq-b killed (SIGKILL) at " << p * 100 << "% of the backlog acknowledged, "
                                              << Since(t_drain) << " s into the drain");
  p = at(std::min(0.99, p + 0.05));  // the other two go on
  hq[1] = StartReplica(configs[1], logs, "hq-b.2");
  MESSAGE("[" << Since(t0) << " s] " << "replica hq-b started again at " << p * 100 << "%");

  p = at(0.30);
  broker.Restart();
  MESSAGE("[" << Since(t0) << " s] " << "broker killed and started again (no persistence) at " << p * 100 << "%");

  p = at(0.50);
  pg.Stop(/*immediate=*/true);
  const bool noticed =
      test::WaitFor([&] { return test::HttpGet(hq[0].port, "/healthz").status == 503; }, 30s);
  pg.Start();
  CHECK_MESSAGE(noticed, "hq-a's /healthz did not answer 503 while PostgreSQL was down");
  MESSAGE("[" << Since(t0) << " s] " << "PostgreSQL stopped (immediate) and started again at " << p * 100 << "%");

  p = at(0.70);
  link.CutAll();
  const uint64_t in_flight = Unacked(local);
  MESSAGE("[" << Since(t0) << " s] " << "every gateway's link cut at " << p * 100 << "% (" << in_flight
                                         << " events journaled, not acknowledged yet)");
  CHECK(in_flight > 0);

  // 4. The live sales stop; everything drains.
  at(0.95);
  feeder.Stop();
  CHECK_MESSAGE(feeder.error().empty(), feeder.error());
  const bool drained = test::WaitFor([&] { return Drained(local, daemons); }, kDrainTimeout, 100ms);
  REQUIRE_MESSAGE(drained, NotDrained(local, daemons));
  MESSAGE("[" << Since(t0) << " s] " << "drained " << Since(t_drain) << " s after HQ came up (" << feeder.events()
                     << " live events besides the backlogs)");

  // The faults did what they were meant to: transactions failed while
  // PostgreSQL was down, every gateway reconnected, the cut happened.
  double store_errors = 0;
  for (auto& r : hq) {
    REQUIRE_MESSAGE(r.proc.Running(), "a replica exited: " << r.proc.Stderr());
    store_errors += std::max(0.0, Metric(r.port, "storegw_hq_store_errors_total"));
  }
  CHECK(store_errors > 0);
  CHECK(link.cuts() == 1);
  uint64_t resends = 0;
  for (const auto& g : local) {
    const sync::UplinkStatus u = g->uplink->status();
    CHECK(u.reconnects >= 1);
    CHECK_FALSE(u.halted);
    resends += u.hq_resends;
  }
  MESSAGE("[" << Since(t0) << " s] " << "uplinks resent from their watermark " << resends
                                                 << " times after hq_ack_timeout; store errors "
                                                 << store_errors);

  // Each replica's fleet view: every gateway, applied up to its last seq.
  std::map<std::string, uint64_t> last;
  for (const auto& g : local) last[g->gateway_id] = g->last_seq();
  for (const auto& g : daemons) last[g.gateway_id] = DaemonStatus(g)->last_seq();
  for (auto& r : hq) {
    const bool fleet_ok = test::WaitFor(
        [&] {
          auto f = test::GetFleet(r.port);
          if (!f || f->gateways_size() != gateways) return false;
          for (const auto& g : f->gateways()) {
            if (g.applied_seq() != last[g.gateway_id()] || g.pending_events() != 0) return false;
          }
          return true;
        },
        30s);
    CHECK_MESSAGE(fleet_ok, "/v1/fleet of port " << r.port << " is not the whole fleet applied");
  }

  // 5. The gateways stop; the database against their journals.
  MESSAGE("[" << Since(t0) << " s] fleet views checked");
  StopUplinks(local);
  MESSAGE("[" << Since(t0) << " s] uplinks stopped");
  std::vector<e2e::Journaled> fleet;
  CollectLocal(local, &fleet);
  std::vector<v1::GatewayStatus> daemon_status;
  for (auto& g : daemons) {
    auto s = DaemonStatus(g);
    REQUIRE(s);
    CHECK(s->watermark() == s->last_seq());
    daemon_status.push_back(*s);
    g.d->proc.Signal(SIGTERM);
  }
  for (size_t k = 0; k < daemons.size(); ++k) {
    DaemonGateway& g = daemons[k];
    auto e = g.d->proc.WaitExit(60s);
    REQUIRE(e);
    CHECK(e->ok());
    std::string why;
    auto events = test::ExportJournal(g.data_dir, &why);
    REQUIRE_MESSAGE(events, why);
    e2e::Journaled j;
    j.store_id = g.store_id;
    j.gateway_id = g.gateway_id;
    j.epoch = daemon_status[k].epoch();
    j.events = std::move(*events);
    CHECK(j.last_seq() == daemon_status[k].last_seq());
    fleet.push_back(std::move(j));
  }
  for (const auto& g : local) CHECK(g->watermark() == g->last_seq());
  MESSAGE("[" << Since(t0) << " s] journals read, daemons stopped");
  e2e::Sql sql(conninfo);
  const std::vector<std::string> problems = e2e::CheckExactlyOnce(sql, fleet);
  std::string all;
  for (const auto& x : problems) all += x + "\n";
  CHECK_MESSAGE(problems.empty(), all);
  MESSAGE("[" << Since(t0) << " s] " << sql.Value("SELECT count(*) FROM events") << " events stored exactly once from "
                                                   << fleet.size() << " gateways");

  // 6. The replicas stop cleanly.
  for (auto& r : hq) {
    r.proc.Signal(SIGTERM);
    auto e = r.proc.WaitExit(60s);
    REQUIRE(e);
    CHECK_MESSAGE(e->ok(), test::Describe(*e) << ": " << r.proc.Stderr());
  }
  MESSAGE("[" << Since(t0) << " s] " << "whole case: " << Since(t0) << " s");
}

TEST_CASE(
    "fleet over HTTPS: offline backlogs reach PostgreSQL exactly once while storegw-hq is killed "
    "and PostgreSQL restarts") {
  const int gateways = e2e::EnvInt("STOREGW_FLEET_HTTPS_GATEWAYS", 24, 1, 500);
  const int backlog = e2e::EnvInt("STOREGW_FLEET_EVENTS", 300, 10, 1'000'000);
  const auto t0 = Clock::now();
  SetUpTestProcess();
  test::TempDir tmp({}, "storegw-e2e");
  const fs::path logs = tmp / "logs";
  fs::create_directories(logs);
  sync_test::Pki pki(tmp / "pki");
  test::Postgres pg;
  const std::string conninfo = pg.conninfo();
  const uint16_t https_port = test::FreePort();

  // 1. Offline: storegw-hq is not up; the gateways' POSTs fail to connect.
  std::vector<std::unique_ptr<LocalGateway>> local(static_cast<size_t>(gateways));
  sync::UplinkOptions uo =
      e2e::FleetUplinkOptions("https://127.0.0.1:" + std::to_string(https_port) + "/v1/batches",
                              100, kInflight, kHqAckTimeout);
  uo.transport = "https";
  uo.tls.ca_file = pki.ca_crt.string();
  uo.tls.cert_file = pki.client_crt.string();
  uo.tls.key_file = pki.client_key.string();
  e2e::ParallelFor(gateways, 8, [&](int i) {
    auto g = e2e::OpenLocalGateway(tmp / ("gw-" + std::to_string(i + 1)), i + 1, uo);
    e2e::AppendSales(*g->journal, 1, static_cast<uint64_t>(backlog), 100);
    local[static_cast<size_t>(i)] = std::move(g);
  });
  uint64_t backlog_total = 0;
  for (auto& g : local) {
    REQUIRE(g->uplink->Start().ok());
    backlog_total += g->last_seq();
  }
  REQUIRE(test::WaitFor(
      [&] {
        for (const auto& g : local) {
          if (g->uplink->status().connect_failures == 0) return false;
        }
        return true;
      },
      kStepTimeout));
  for (const auto& g : local) CHECK(g->watermark() == 0);

  // 2. storegw-hq with HTTPS ingress only, mutual TLS.
  e2e::HqReplicaConfig c;
  c.conninfo = conninfo;
  c.https_listen = "127.0.0.1:" + std::to_string(https_port);
  c.cert_file = pki.server_crt.string();
  c.key_file = pki.server_key.string();
  c.client_ca_file = pki.ca_crt.string();
  const fs::path config = e2e::WriteHqConfig(tmp / "hq.toml", c);
  test::HqDaemon hq = StartReplica(config, logs, "hq");
  const auto t_drain = Clock::now();
  auto at = [&](double f) {
    const bool ok =
        test::WaitFor([&] { return Progress(local, backlog_total) >= f; }, kStepTimeout);
    REQUIRE_MESSAGE(ok, "no progress past " << f << ": " << NotDrained(local, {}));
    return Progress(local, backlog_total);
  };

  // 3. Faults mid-drain.
  double p = at(0.20);
  hq.proc.KillAndReap();
  CHECK(hq.proc.exit_info()->signal == SIGKILL);
  hq = StartReplica(config, logs, "hq.2");
  MESSAGE("[" << Since(t0) << " s] " << "storegw-hq killed (SIGKILL) and started again on the same port at " << p * 100 << "%");
  p = at(std::min(0.99, p + 0.2));
  pg.Stop(/*immediate=*/true);
  const bool noticed =
      test::WaitFor([&] { return test::HttpGet(hq.port, "/healthz").status == 503; }, 30s);
  pg.Start();
  CHECK(noticed);
  MESSAGE("[" << Since(t0) << " s] " << "PostgreSQL stopped (immediate) and started again at " << p * 100 << "%");

  // 4. Drained: every watermark at its last seq (storegw-hq must still
  // run: when it dies, say so and show its last words instead of waiting
  // for the gateways until the timeout).
  const bool drained = test::WaitFor(
      [&] {
        if (!hq.proc.Running()) return true;
        for (const auto& g : local) {
          if (!g->drained()) return false;
        }
        return true;
      },
      kDrainTimeout, 100ms);
  if (!hq.proc.Running()) {
    const std::string err = hq.proc.Stderr();
    FAIL("storegw-hq exited during the drain ("
         << (hq.proc.exit_info() ? test::Describe(*hq.proc.exit_info()) : std::string("?"))
         << "); the end of its log:\n"
         << err.substr(err.size() > 4000 ? err.size() - 4000 : 0));
  }
  REQUIRE_MESSAGE(drained, NotDrained(local, {}));
  MESSAGE("[" << Since(t0) << " s] " << gateways << " HTTPS gateways drained " << Since(t_drain) << " s after HQ came up");
  for (const auto& g : local) {
    const sync::UplinkStatus u = g->uplink->status();
    CHECK_FALSE(u.halted);  // nothing was refused for good
  }

  // 5. The database against the journals.
  StopUplinks(local);
  std::vector<e2e::Journaled> fleet;
  CollectLocal(local, &fleet);
  e2e::Sql sql(conninfo);
  const std::vector<std::string> problems = e2e::CheckExactlyOnce(sql, fleet);
  std::string all;
  for (const auto& x : problems) all += x + "\n";
  CHECK_MESSAGE(problems.empty(), all);
  hq.proc.Signal(SIGTERM);
  auto e = hq.proc.WaitExit(60s);
  REQUIRE(e);
  CHECK_MESSAGE(e->ok(), test::Describe(*e) << ": " << hq.proc.Stderr());
  MESSAGE("[" << Since(t0) << " s] " << "whole case: " << Since(t0) << " s");
}
