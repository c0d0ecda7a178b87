// `storegw-hq status`: the fleet from a shell, as the running storegw-hq
// sees it (its GET /v1/fleet), as a table; exits 1 when a gateway has been
// offline longer than --max-offline, naming them.
//
// Why the daemon and not the database: the online/offline verdict needs
// the daemon's view (fleet.offline_after, the statuses it received), the
// command then needs no database password, and it also tells when
// storegw-hq itself is down, which is a failure of its own.
//
// Exit codes (like `storegw status`):
//   0  no gateway offline longer than --max-offline (default status.max_offline)
//   1  at least one is; stderr names each with how long
//   2  cannot tell: storegw-hq does not answer, its database does not, or a
//      command-line / config mistake
//
// Where: --url, else http.listen from --config, else http://127.0.0.1:9080.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include <google/protobuf/util/json_util.h>
#include <httplib.h>

#include "storegw/config/config_text.h"
#include "storegw/fleet/v1/fleet.pb.h"
#include "storegw/hq/app/cli.h"
#include "storegw/hq/app/config.h"
#include "storegw/http/listen.h"
#include "storegw/monitor/humanize.h"

namespace storegw::hq {
namespace {

using gateway::FormatAge;
using gateway::FormatCount;
using gateway::FormatDuration;
using gateway::ParseDuration;

struct StatusFlags {
  std::string config;
  std::string url;
  std::string max_offline;  // "" = status.max_offline
  std::string timeout = "5s";
  bool json = false;
};

std::string UrlFromListen(const std::string& listen) {
  auto hp = http::ParseListenAddress(listen);
  if (!hp.ok()) return "http://127.0.0.1:9080";
  std::string host = hp->host;
  // A wildcard listen address is reached on loopback.
  if (host == "0.0.0.0") host = "127.0.0.1";
  if (host == "::") host = "::1";
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  return "http://" + host + ":" + std::to_string(hp->port);
}

std::string Ago(int64_t us, int64_t now_us) {
  if (us <= 0) return "never";
  return FormatAge(static_cast<uint64_t>(std::max<int64_t>(0, now_us - us) / 1000000)) + " ago";
}

// Columns padded to their widest cell; numbers right-aligned.
void PrintTable(const std::vector<std::vector<std::string>>& rows, const std::vector<bool>& right) {
  std::vector<size_t> width(rows.front().size(), 0);
  for (const auto& r : rows) {
    for (size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  }
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      const std::string pad(width[i] - r[i].size(), ' ');
      line += right[i] ? pad + r[i] : r[i] + (i + 1 < r.size() ? pad : "");
      if (i + 1 < r.size()) line += "  ";
    }
    std::printf("%s\n", line.c_str());
  }
}

int Run(const StatusFlags& f) {
  HqConfig cfg;
  if (!f.config.empty()) {
    auto loaded = LoadHqConfigFile(f.config);
    if (!loaded.ok()) {
      std::fprintf(stderr, "storegw-hq status: %s\n", loaded.status().message().c_str());
      return kExitUsage;
    }
    cfg = std::move(*loaded);
  }
  Millis max_offline = cfg.status.max_offline;
  if (!f.max_offline.empty()) max_offline = ParseDuration(f.max_offline).value();  // validated
  const Millis timeout = ParseDuration(f.timeout).value();
  const std::string url = f.url.empty() ? UrlFromListen(cfg.http.listen) : f.url;
  static const std::regex kUrl(R"(^http://[^/?#]+/?$)");
  if (!std::regex_match(url, kUrl)) {
    std::fprintf(stderr,
                 "storegw-hq status: --url: expected http://HOST:PORT (e.g. "
                 "http://127.0.0.1:9080), got \"%s\"\n",
                 url.c_str());
    return kExitUsage;
  }

  httplib::Client cli(url.back() == '/' ? url.substr(0, url.size() - 1) : url);
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(timeout);
  const auto usecs = std::chrono::duration_cast<std::chrono::microseconds>(timeout - secs);
  cli.set_connection_timeout(secs.count(), usecs.count());
  cli.set_read_timeout(secs.count(), usecs.count());
  auto res = cli.Get("/v1/fleet", {{"Accept", "application/json"}});
  if (!res) {
    std::fprintf(stderr, "storegw-hq status: no answer from storegw-hq at %s: %s\n", url.c_str(),
                 httplib::to_string(res.error()).c_str());
    return kExitUsage;
  }
  fleet::v1::Fleet fleet;
  google::protobuf::util::JsonParseOptions po;
  po.ignore_unknown_fields = true;
  if ((res->status != 200 && res->status != 503) ||
      !google::protobuf::util::JsonStringToMessage(res->body, &fleet, po).ok()) {
    std::fprintf(stderr,
                 "storegw-hq status: %s/v1/fleet answered HTTP %d without a fleet document (is "
                 "it storegw-hq?)\n",
                 url.c_str(), res->status);
    return kExitUsage;
  }
  if (f.json) std::printf("%s\n", res->body.c_str());
  if (!fleet.store_error().empty()) {
    std::fprintf(stderr, "storegw-hq status: storegw-hq at %s cannot read its database: %s\n",
                 url.c_str(), fleet.store_error().c_str());
    return kExitUsage;
  }

  const int64_t now = fleet.generated_at();
  const auto& sum = fleet.summary();
  if (!f.json) {
    std::printf(
        "storegw-hq %s at %s: %s gateways, %s online, %s offline; backlog %s events; %s "
        "open alerts%s\n",
        fleet.version().c_str(), url.c_str(), FormatCount(uint64_t{sum.gateways()}).c_str(),
        FormatCount(uint64_t{sum.online()}).c_str(), FormatCount(uint64_t{sum.offline()}).c_str(),
        FormatCount(sum.backlog_events()).c_str(), FormatCount(uint64_t{sum.open_alerts()}).c_str(),
        fleet.mqtt_enabled() && !fleet.mqtt_connected() ? "; NOT connected to the MQTT broker"
                                                        : "");
    if (fleet.gateways_size() > 0) {
      std::vector<std::vector<std::string>> rows = {{"STATE", "FOR", "STORE", "GATEWAY", "BACKLOG",
                                                     "OLDEST", "APPLIED", "LAST BATCH", "ALERTS",
                                                     "EPOCHS"}};
      for (const auto& g : fleet.gateways()) {
        rows.push_back({g.online() ? "online" : "offline (" + g.offline_reason() + ")",
                        g.since() > 0 ? FormatAge(g.for_s()) : "-", g.store_id(), g.gateway_id(),
                        g.has_status() ? FormatCount(g.backlog_events()) : "-",
                        g.backlog_events() > 0 ? FormatAge(g.lag_s()) : "-",
                        FormatCount(g.applied_seq()), Ago(g.last_batch_at(), now),
                        g.has_status() ? std::to_string(g.open_alerts()) : "-",
                        std::to_string(g.epochs_seen())});
      }
      PrintTable(rows, {false, true, false, false, true, true, true, true, true, true});
    }
  }

  const int64_t limit_us =
      std::chrono::duration_cast<std::chrono::microseconds>(max_offline).count();
  std::vector<std::string> late;
  for (const auto& g : fleet.gateways()) {
    // An offline gateway whose start is unknown counts as over the limit.
    if (!g.online() && (g.since() <= 0 || now - g.since() > limit_us)) {
      late.push_back(g.store_id() + "/" + g.gateway_id() + " (" +
                     (g.since() > 0 ? FormatAge(g.for_s()) : std::string("since an unknown time")) +
                     ")");
    }
  }
  if (late.empty()) return kExitOk;
  std::string list;
  for (size_t i = 0; i < late.size(); ++i) list += (i ? ", " : "") + late[i];
  std::fprintf(stderr, "storegw-hq status: %zu gateway%s offline longer than %s: %s\n", late.size(),
               late.size() == 1 ? "" : "s", FormatDuration(max_offline).c_str(), list.c_str());
  return kExitFailure;
}

}  // namespace

void AddStatusCommand(CLI::App& app, int* exit_code) {
  auto f = std::make_shared<StatusFlags>();
  auto* cmd = app.add_subcommand(
      "status",
      "Show the fleet as the running storegw-hq sees it; exit 1 when a gateway is offline longer "
      "than --max-offline, 2 when storegw-hq cannot tell");
  const auto duration = [](const std::string& v) -> std::string {
    auto d = ParseDuration(v);
    return d.ok() ? "" : d.status().message();
  };
  cmd->add_option("--config,-c", f->config,
                  "The TOML config file (http.listen, status.max_offline)");
  cmd->add_option("--url", f->url, "storegw-hq's fleet listener (default: from http.listen)");
  cmd->add_option("--max-offline", f->max_offline,
                  "Exit 1 when a gateway is offline longer than this (default: status.max_offline, "
                  "15m)")
      ->check(duration);
  cmd->add_option("--timeout", f->timeout, "How long to wait for an answer")
      ->check(duration)
      ->capture_default_str();
  cmd->add_flag("--json", f->json, "Print /v1/fleet's JSON instead of the table");
  cmd->callback([f, exit_code] { *exit_code = Run(*f); });
}

}  // namespace storegw::hq
