// `storegw simulate`: POS traffic against a running gateway (the generator
// itself is devices::RunSimulation). SIGINT/SIGTERM end the run early and
// still print the summary.
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <string>

#include "storegw/cli/cli.h"
#include "storegw/config/config.h"
#include "storegw/cli/logging.h"
#include "storegw/devices/simulator.h"

namespace storegw::gateway {
namespace {

volatile sig_atomic_t g_stop = 0;
void OnStopSignal(int) {
  g_stop = 1;
}  // only sets the flag

struct SimFlags {
  std::string url = devices::SimOptions{}.url;
  int lanes = devices::SimOptions{}.lanes;
  double rate = devices::SimOptions{}.rate;
  std::string duration = "10s";
  std::string token_file;
  int batch = 1;
  uint64_t seed = 1;
  std::string accepted_log;
  std::string grace = "5s";
  std::string run_id;
  bool protobuf = false;
};

CLI::Validator DurationCheck() {
  return CLI::Validator(
      [](std::string& v) -> std::string {
        auto d = ParseDuration(v);
        return d.ok() ? "" : d.status().message();
      },
      "DURATION");
}

int Simulate(const SimFlags& f) {
  InitLogging("info");
  devices::SimOptions o;
  o.url = f.url;
  o.lanes = f.lanes;
  o.rate = f.rate;
  o.duration = ParseDuration(f.duration).value();  // checked by the flag's validator
  o.token_file = f.token_file;
  o.batch = f.batch;
  o.seed = f.seed;
  o.accepted_log = f.accepted_log;
  o.grace = ParseDuration(f.grace).value();
  o.run_id = f.run_id;
  o.protobuf = f.protobuf;
  struct sigaction sa {};
  sa.sa_handler = OnStopSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  o.stop = [] { return g_stop != 0; };

  auto r = devices::RunSimulation(o);
  if (!r.ok()) {
    std::fprintf(stderr, "simulate: %s\n", r.status().message().c_str());
    return kExitFailure;
  }
  using ull = unsigned long long;
  std::printf(
      "simulate: %s, %d lanes, %.1fs: sent %llu, accepted %llu (duplicates %llu), "
      "retries %llu, rejected %llu, unavailable %llu, failed %llu, unsent %llu; "
      "%llu requests, %llu connection errors, %llu protocol errors; "
      "%.0f events/s accepted; latency p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
      f.url.c_str(), f.lanes, r->seconds, ull(r->sent), ull(r->accepted), ull(r->duplicates),
      ull(r->retries), ull(r->rejected), ull(r->unavailable), ull(r->failed), ull(r->unsent),
      ull(r->requests), ull(r->connection_errors), ull(r->protocol_errors),
      r->seconds > 0 ? static_cast<double>(r->accepted) / r->seconds : 0.0, r->latency_p50_ms,
      r->latency_p99_ms, r->latency_max_ms);
  std::fflush(stdout);
  // Exit non-zero when the gateway did not take everything it was sent:
  // refused (4xx), answered nonsense, or still failing when the run ended.
  if (r->rejected > 0 || r->protocol_errors > 0 || r->failed > 0) {
    std::fprintf(stderr,
                 "simulate: not every event was accepted: %llu rejected, %llu protocol errors, "
                 "%llu still failing at the end%s%s\n",
                 ull(r->rejected), ull(r->protocol_errors), ull(r->failed),
                 r->last_error.empty() ? "" : "; last error: ", r->last_error.c_str());
    return kExitFailure;
  }
  return kExitOk;
}

}  // namespace

void AddSimulateCommand(CLI::App& app, int* exit_code) {
  auto f = std::make_shared<SimFlags>();
  auto* cmd = app.add_subcommand("simulate",
                                 "Send POS traffic (sales, returns, deliveries, "
                                 "counts) to a running gateway");
  cmd->add_option("--url", f->url, "Base URL of the gateway's device API")->capture_default_str();
  cmd->add_option("--lanes", f->lanes, "Tills, each its own device and connection")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  cmd->add_option("--rate", f->rate, "Events per second, all lanes together")
      ->check(CLI::Range(0.001, 1e7))
      ->capture_default_str();
  cmd->add_option("--duration", f->duration,
                  "How long to run (\"30s\", \"5m\"); \"0s\": until "
                  "SIGINT/SIGTERM")
      ->check(DurationCheck())
      ->capture_default_str();
  cmd->add_option("--token-file", f->token_file, "\"DEVICE_ID TOKEN\" lines; lane i uses line i")
      ->check(CLI::ExistingFile);
  cmd->add_option("--batch", f->batch, "Events per request")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  cmd->add_option("--seed", f->seed, "Random seed (same seed, same traffic)")
      ->capture_default_str();
  cmd->add_option("--accepted-log", f->accepted_log,
                  "Write one \"event_id seq\" line per accepted event here");
  cmd->add_option("--grace", f->grace,
                  "After the run, how long lanes keep resending what they hold")
      ->check(DurationCheck())
      ->capture_default_str();
  cmd->add_option("--run-id", f->run_id,
                  "Part of every event_id (default: from the start time and seed)");
  cmd->add_flag("--protobuf", f->protobuf, "Send application/x-protobuf instead of JSON");
  cmd->callback([f, exit_code] { *exit_code = Simulate(*f); });
}

}  // namespace storegw::gateway
