// `storegw status`, `storegw alerts` and `storegw stock SKU...`: the
// operator's view of a running gateway from a shell, over its HTTP API.
//
// Exit codes, for scripts and monitoring (health.h has the rules):
//   status  0 healthy, 1 degraded, 2 down (no answer, or no status document:
//           wrong URL, a token is needed, not a storegw)
//   alerts  0 no open alerts, 1 open alerts, 2 down
//   alerts ack  0 acknowledged (now or before), 1 refused, 2 down
//   stock   0 every sku known, 1 a sku the gateway never saw, 2 down
//   devices 0 no device silent, 1 a device silent (devices.silent_after
//           while open), 2 down
// Command-line mistakes also exit 2 (kExitUsage): a script treats them like
// "cannot tell", which is what they are.
//
// Where: --url, else the address from --config (status.listen, or
// http.listen; stock: http.listen, the device API), else
// http://127.0.0.1:8080. Tokens come from the
// environment so they never show in `ps`: STOREGW_STATUS_TOKEN (else
// status.token from --config) for status and alerts, STOREGW_DEVICE_TOKEN
// for stock (with device tokens configured, stock needs a device's token).
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <httplib.h>

#include "storegw/cli/cli.h"
#include "storegw/config/config.h"
#include "storegw/http/listen.h"
#include "storegw/monitor/health.h"
#include "storegw/monitor/humanize.h"
#include "storegw/v1/storegw.pb.h"

namespace storegw::gateway {
namespace {

constexpr int kExitHealthy = 0;
constexpr int kExitDegraded = 1;
constexpr int kExitDown = 2;

struct CommonFlags {
  std::string url;
  std::string config;
  std::string timeout = "5s";
};

// ------------------------------------------------------------ output

struct Style {
  bool color = false;
  std::string Paint(const std::string& s, const char* code) const {
    return color ? std::string("\x1b[") + code + "m" + s + "\x1b[0m" : s;
  }
  std::string Bold(const std::string& s) const { return Paint(s, "1"); }
  std::string Green(const std::string& s) const { return Paint(s, "1;32"); }
  std::string Yellow(const std::string& s) const { return Paint(s, "1;33"); }
  std::string Red(const std::string& s) const { return Paint(s, "1;31"); }
  std::string Dim(const std::string& s) const { return Paint(s, "2"); }
};

// Colour only for a person at a terminal (and never with NO_COLOR set).
Style StdoutStyle() {
  const char* no_color = std::getenv("NO_COLOR");
  const char* term = std::getenv("TERM");
  Style s;
  s.color = isatty(STDOUT_FILENO) == 1 && !(no_color && *no_color) &&
            !(term && std::string(term) == "dumb");
  return s;
}

// ------------------------------------------------------------ talking to the daemon

struct Target {
  std::string base;    // "http://127.0.0.1:8080"
  std::string prefix;  // "" or "/storegw" behind a reverse proxy
  std::string token;   // bearer token, "" for none
};

std::string UrlFromListen(const std::string& listen) {
  auto hp = http::ParseListenAddress(listen);
  if (!hp.ok()) return "http://127.0.0.1:8080";
  std::string host = hp->host;
  // A wildcard listen address is reached on loopback.
  if (host == "0.0.0.0") host = "127.0.0.1";
  if (host == "::") host = "::1";
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  return "http://" + host + ":" + std::to_string(hp->port);
}

// Works out URL and token; an error is a message for stderr. With
// `status_token` (the status routes) --config gives status.listen (else
// http.listen) and status.token; without it (stock: the device API) it
// gives http.listen only, and the token comes from `token_env` alone.
Result<Target> ResolveTarget(const CommonFlags& f, const char* token_env, bool status_token) {
  std::string url = f.url;
  std::string config_token;
  if (!f.config.empty()) {
    auto cfg = LoadConfigFile(f.config);
    if (!cfg.ok()) return cfg.status();
    if (url.empty()) {
      url = UrlFromListen(!status_token || cfg->status.listen.empty() ? cfg->http.listen
                                                                      : cfg->status.listen);
    }
    config_token = cfg->status.token;
  }
  if (url.empty()) url = "http://127.0.0.1:8080";
  static const std::regex kUrl(R"(^(https?)://([^/?#]+)(/[^?#]*)?$)");
  std::smatch m;
  if (!std::regex_match(url, m, kUrl)) {
    return Status::InvalidArgument(
        "url",
        "--url: expected http://HOST:PORT (e.g. http://127.0.0.1:8080), got \"" + url + "\"");
  }
  if (m[1] == "https") {
    return Status::InvalidArgument(
        "url",
        "--url: https is not supported by this client: use the gateway's plain http "
        "address on the box itself (http://127.0.0.1:8080) or an SSH tunnel");
  }
  Target t;
  t.base = m[1].str() + "://" + m[2].str();
  t.prefix = m[3].str();
  while (!t.prefix.empty() && t.prefix.back() == '/') t.prefix.pop_back();
  const char* env = std::getenv(token_env);
  if (env && *env) {
    t.token = env;
  } else if (status_token) {
    t.token = config_token;
  }
  return t;
}

struct Reply {
  int status = -1;  // -1: no answer; `error` says why
  std::string body;
  std::string error;
};

std::string DescribeHttpError(httplib::Error e) {
  switch (e) {
    case httplib::Error::Connection:
      return "cannot connect (connection refused: is storegw running, and on this address?)";
    case httplib::Error::ConnectionTimeout:
      return "cannot connect (timed out)";
    case httplib::Error::Read:
      return "the connection broke or no answer came in time";
    case httplib::Error::Write:
      return "the request could not be sent";
    case httplib::Error::BindIPAddress:
      return "cannot bind the local address";
    default:
      return httplib::to_string(e);
  }
}

Reply Get(const Target& t, const std::string& path, std::chrono::milliseconds timeout) {
  httplib::Client cli(t.base);
  cli.set_connection_timeout(timeout);
  cli.set_read_timeout(timeout);
  cli.set_write_timeout(timeout);
  httplib::Headers headers = {{"Accept", "application/json"}};
  if (!t.token.empty()) headers.emplace("Authorization", "Bearer " + t.token);
  Reply r;
  if (!cli.is_valid()) {
    r.error = "not a usable URL";
    return r;
  }
  auto res = cli.Get(t.prefix + path, headers);
  if (!res) {
    r.error = DescribeHttpError(res.error());
    return r;
  }
  r.status = res->status;
  r.body = res->body;
  return r;
}

// The "message" of a JSON error body, or the body's start.
std::string ErrorMessage(const std::string& body) {
  google::protobuf::Struct s;
  google::protobuf::util::JsonParseOptions o;
  o.ignore_unknown_fields = true;
  if (google::protobuf::util::JsonStringToMessage(body, &s, o).ok()) {
    auto err = s.fields().find("error");
    if (err != s.fields().end() && err->second.has_struct_value()) {
      const auto& f = err->second.struct_value().fields();
      auto msg = f.find("message");
      if (msg != f.end()) return msg->second.string_value();
    }
  }
  return body.substr(0, 200);
}

// GET /v1/status, parsed. On failure, `why` says it for people.
std::optional<v1::GatewayStatus> FetchStatus(const Target& t, std::chrono::milliseconds timeout,
                                             std::string* why) {
  Reply r = Get(t, "/v1/status", timeout);
  if (r.status < 0) {
    *why = "no answer from " + t.base + t.prefix + ": " + r.error;
    return std::nullopt;
  }
  if (r.status == 401) {
    *why = t.base + t.prefix +
           " wants the status token: set STOREGW_STATUS_TOKEN, or pass "
           "--config with status.token";
    return std::nullopt;
  }
  if (r.status != 200) {
    *why = t.base + t.prefix + "/v1/status answered HTTP " + std::to_string(r.status) + ": " +
           ErrorMessage(r.body);
    return std::nullopt;
  }
  v1::GatewayStatus s;
  google::protobuf::util::JsonParseOptions o;
  o.ignore_unknown_fields = true;  // a newer daemon may say more
  if (!google::protobuf::util::JsonStringToMessage(r.body, &s, o).ok()) {
    *why = t.base + t.prefix + "/v1/status did not answer a storegw status document";
    return std::nullopt;
  }
  return s;
}

std::chrono::milliseconds TimeoutOf(const CommonFlags& f) {
  return ParseDuration(f.timeout).value();  // checked by the flag's validator
}

void Row(const char* label, const std::string& value) {
  std::printf("  %-16s%s\n", label, value.c_str());
}

std::string AlertKind(v1::Alert::Kind k) {
  std::string s = v1::Alert::Kind_Name(k);
  for (char& c : s)
    c = c == '_' ? ' ' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// What a device sent (sku, location, sensor id), safe for a terminal: no
// control characters (an escape sequence would repaint the screen).
std::string Printable(const std::string& in) {
  std::string out = in;
  for (char& c : out) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) c = '?';
  }
  return out;
}

// The stock kinds (on hand matters); the others are perishables and cold chain.
bool IsStockKind(v1::Alert::Kind k) {
  return k != v1::Alert::REMOVE_FROM_SHELF && k != v1::Alert::TEMPERATURE_EXCURSION &&
         k != v1::Alert::SENSOR_SILENT;
}

// The metric of a watched sensor ("temp_mc" when unknown).
std::string SensorMetric(const v1::GatewayStatus& s, const std::string& sensor_id) {
  for (const auto& x : s.sensors()) {
    if (x.sensor_id() == sensor_id) return x.metric().empty() ? "temp_mc" : x.metric();
  }
  return "temp_mc";
}

// How long from `since_us` to the document's time, "35 min 12 s"; "-" if unknown.
std::string SinceAge(const v1::GatewayStatus& s, int64_t since_us) {
  if (since_us <= 0 || s.updated_at() <= 0) return "-";
  return FormatAge(static_cast<uint64_t>(std::max<int64_t>(0, s.updated_at() - since_us) / 1000000));
}

std::string Acked(const v1::StatusAlert& a) {
  return " [acknowledged by " + Printable(a.acked_by()) + " at " + FormatLocalTime(a.acked_at()) +
         (a.ack_note().empty() ? "" : ": " + Printable(a.ack_note())) + "]";
}

// Perishables and cold chain: kind, sku or sensor, location, qty, due or
// since, how long overdue or out, and what else to know (escalated, the
// extremes seen).
void PrintPerishableAlerts(const v1::GatewayStatus& s, const Style& st) {
  std::printf("  %8s  %-21s  %-16s  %-18s  %5s  %-19s  %-13s  %s\n", "SEQ", "KIND", "SKU/SENSOR",
              "LOCATION", "QTY", "DUE/SINCE", "OVERDUE/FOR", "NOTE");
  for (const auto& a : s.alerts()) {
    if (IsStockKind(a.kind())) continue;
    const std::string kind = AlertKind(a.kind());
    const std::string pad(kind.size() < 21 ? 21 - kind.size() : 0, ' ');
    const bool remove = a.kind() == v1::Alert::REMOVE_FROM_SHELF;
    const std::string who = Printable(remove ? a.sku() : a.sensor_id());
    std::string note;
    if (remove) {
      note = a.escalated() ? st.Red("ESCALATED") : "remove from the shelf";
    } else if (a.kind() == v1::Alert::TEMPERATURE_EXCURSION) {
      const std::string metric = SensorMetric(s, a.sensor_id());
      note = "seen " + FormatSensorValue(a.min_seen(), metric) + " to " +
             FormatSensorValue(a.max_seen(), metric);
    } else {
      note = "no reading since";
    }
    if (a.acked_seq() != 0) note += Acked(a);
    std::printf("  %8s  %s%s  %-16s  %-18s  %5s  %-19s  %-13s  %s\n", std::to_string(a.seq()).c_str(),
                (a.acked_seq() != 0 ? st.Dim(kind) : st.Red(kind)).c_str(), pad.c_str(),
                who.empty() ? "-" : who.c_str(),
                a.location().empty() ? "-" : Printable(a.location()).c_str(),
                remove ? FormatCount(a.qty()).c_str() : "-",
                a.since() > 0 ? FormatLocalTime(a.since()).c_str() : "-",
                SinceAge(s, a.since()).c_str(), note.c_str());
  }
}

// The next batches by due time (overdue first), as the gateway sends them.
void PrintDueNext(const v1::GatewayStatus& s, const Style& st) {
  std::printf("next batches due: %s out, %s overdue%s\n", FormatCount(s.batches_open()).c_str(),
              FormatCount(s.batches_overdue()).c_str(),
              s.batches_open() > static_cast<uint64_t>(s.due_next_size())
                  ? (" (the next " + std::to_string(s.due_next_size()) + " below)").c_str()
                  : "");
  std::printf("  %8s  %-16s  %-18s  %5s  %-19s  %s\n", "SEQ", "SKU", "LOCATION", "QTY", "DUE AT",
              "IN");
  for (const auto& b : s.due_next()) {
    const int64_t left_us = b.due_at() - s.updated_at();
    std::string in = left_us > 0 ? FormatAge(static_cast<uint64_t>(left_us / 1000000))
                                 : st.Red("overdue " + SinceAge(s, b.due_at()));
    if (b.escalated()) in += " " + st.Red("ESCALATED");
    std::printf("  %8s  %-16s  %-18s  %5s  %-19s  %s\n", std::to_string(b.seq()).c_str(),
                Printable(b.sku()).c_str(),
                b.location().empty() ? "-" : Printable(b.location()).c_str(),
                FormatCount(b.qty()).c_str(), FormatLocalTime(b.due_at()).c_str(), in.c_str());
  }
}

// "4 sensors, 1 out of limits, 1 silent, 7 excursions in all" or "".
std::string ColdChainLine(const v1::GatewayStatus& s) {
  if (s.sensors_size() == 0) return "";
  int exc = 0, silent = 0;
  uint64_t total = 0;
  for (const auto& x : s.sensors()) {
    exc += x.excursion_alert_seq() != 0;
    silent += x.silent_alert_seq() != 0;
    total += x.excursions();
  }
  std::string out = std::to_string(s.sensors_size()) + (s.sensors_size() == 1 ? " sensor" : " sensors");
  if (exc > 0) out += ", " + std::to_string(exc) + " out of limits";
  if (silent > 0) out += ", " + std::to_string(silent) + " silent";
  return out + ", " + FormatCount(total) + (total == 1 ? " excursion" : " excursions") + " in all";
}

void PrintAlerts(const v1::GatewayStatus& s, const Style& st) {
  bool stock = false, other = false;
  for (const auto& a : s.alerts()) (IsStockKind(a.kind()) ? stock : other) = true;
  if (other) PrintPerishableAlerts(s, st);
  if (!stock) return;
  if (other) std::printf("\n");
  std::printf("  %8s  %-19s  %-17s  %-16s  %8s  %s\n", "SEQ", "WHEN", "KIND", "SKU", "ON HAND",
              "MESSAGE");
  for (const auto& a : s.alerts()) {
    if (!IsStockKind(a.kind())) continue;
    std::string kind = AlertKind(a.kind());
    std::string when = a.raised_at() > 0 ? FormatLocalTime(a.raised_at()) : "-";
    std::string painted_kind =
        a.acked_seq() != 0 ? st.Dim(kind)
        : a.kind() == v1::Alert::OVERSELL || a.kind() == v1::Alert::SNAPSHOT_REJECTED
            ? st.Red(kind)
            : st.Yellow(kind);
    // Pad before painting so the escape codes do not upset the columns.
    std::string pad(kind.size() < 17 ? 17 - kind.size() : 0, ' ');
    std::string message = a.message();
    if (a.acked_seq() != 0) message += Acked(a);
    std::printf("  %8s  %-19s  %s%s  %-16s  %8s  %s\n", std::to_string(a.seq()).c_str(),
                when.c_str(), painted_kind.c_str(), pad.c_str(),
                a.sku().empty() ? "-" : Printable(a.sku()).c_str(), FormatCount(a.on_hand()).c_str(),
                message.c_str());
  }
}

// "3 open", "959 open (the newest 50 below)", with how many are acknowledged.
std::string AlertsLine(const v1::GatewayStatus& s) {
  // A daemon older than the counts sends only the list.
  const uint64_t total =
      s.alert_counts_size() > 0 ? s.alerts_open_total() : static_cast<uint64_t>(s.alerts_size());
  uint64_t acked = 0;
  for (const auto& c : s.alert_counts()) acked += c.acknowledged();
  std::string out = FormatCount(total) + " open";
  if (acked > 0) out += ", " + FormatCount(acked) + " acknowledged";
  if (total > static_cast<uint64_t>(s.alerts_size())) {
    out += " (the newest " + std::to_string(s.alerts_size()) + " of " + FormatCount(total) +
           " below)";
  }
  return out;
}

// "12 of 20,000 skus have no baseline yet ..." or "".
std::string UntrackedLine(const v1::GatewayStatus& s) {
  if (s.skus_untracked() == 0) return "";
  return FormatCount(s.skus_untracked()) + " of " + FormatCount(s.skus_total()) +
         " skus have no baseline yet (no snapshot, count or receipt): they raise no stock alert";
}

// ------------------------------------------------------------ status

std::optional<google::protobuf::Struct> ParseObject(const std::string& body);
int64_t IntField(const google::protobuf::Struct& s, const char* name);
std::string StringField(const google::protobuf::Struct& s, const char* name);

// "OVERSELL" (as the JSON names a kind) -> "oversell".
std::string AlertKindName(const std::string& json_kind) {
  v1::Alert::Kind k = v1::Alert::KIND_UNSPECIFIED;
  return v1::Alert::Kind_Parse(json_kind, &k) ? AlertKind(k) : json_kind;
}

// The status document for `storegw status|alerts` (and where it came from,
// in *target_out when not null): nullopt with *exit_code set (and the reason printed) when the target is misconfigured (usage) or
// the gateway does not answer (DOWN).
std::optional<v1::GatewayStatus> FetchForCommand(const char* command, const CommonFlags& f,
                                                 Target* target_out, int* exit_code) {
  auto target = ResolveTarget(f, "STOREGW_STATUS_TOKEN", /*status_token=*/true);
  if (!target.ok()) {
    std::fprintf(stderr, "%s: %s\n", command, target.status().message().c_str());
    *exit_code = kExitUsage;
    return std::nullopt;
  }
  if (target_out) *target_out = *target;
  std::string why;
  auto s = FetchStatus(*target, TimeoutOf(f), &why);
  if (!s) {
    std::printf("%s: %s\n", StdoutStyle().Red("DOWN").c_str(), why.c_str());
    std::fflush(stdout);
    *exit_code = kExitDown;
  }
  return s;
}

struct StatusFlags : CommonFlags {
  std::string max_age = "10m";
  int max_journal_percent = 80;
  bool json = false;
};

int RunStatus(const StatusFlags& f) {
  int exit_code = kExitOk;
  Target target;
  auto s = FetchForCommand("status", f, &target, &exit_code);
  if (!s) return exit_code;
  const Style st = StdoutStyle();
  HealthPolicy policy;
  policy.max_age =
      std::chrono::duration_cast<std::chrono::seconds>(ParseDuration(f.max_age).value());
  policy.max_journal_percent = f.max_journal_percent;
  Health h = EvaluateHealth(*s, policy);
  const int code = h.level == HealthLevel::kHealthy ? kExitHealthy : kExitDegraded;

  if (f.json) {
    google::protobuf::util::JsonPrintOptions o;
    o.preserve_proto_field_names = true;
    o.always_print_primitive_fields = true;
    std::string json;
    (void)google::protobuf::util::MessageToJsonString(*s, &json, o);
    std::printf("%s\n", json.c_str());
    return code;
  }

  std::printf("%s %s at %s%s: store %s, gateway %s\n", st.Bold("storegw").c_str(),
              s->version().c_str(), target.base.c_str(), target.prefix.c_str(),
              s->store_id().c_str(), s->gateway_id().c_str());
  if (h.level == HealthLevel::kHealthy) {
    std::printf("%s\n", st.Green("HEALTHY").c_str());
  } else {
    std::printf("%s\n", st.Yellow("DEGRADED").c_str());
    for (const auto& r : h.reasons) std::printf("  - %s\n", r.c_str());
  }
  std::printf("\n");
  std::string link = s->link().empty() ? "unknown" : s->link();
  Row("Link", link == "up"           ? st.Green("up")
              : link == "connecting" ? st.Yellow(link)
                                     : st.Red(link));
  Row("Backlog",
      FormatCount(s->backlog_events()) + " events (" + FormatBytes(s->backlog_bytes()) + ")");
  Row("Oldest waiting",
      s->backlog_events() > 0 ? FormatAge(s->oldest_undelivered_age_s()) : "nothing waits");
  Row("Ingest", FormatRate(s->ingest_rate()));
  Row("Send", FormatRate(s->send_rate()));
  std::string journal = FormatBytes(s->journal_bytes()) + " of " +
                        FormatBytes(s->journal_max_bytes()) + " (" +
                        FormatPercent(s->journal_bytes(), s->journal_max_bytes()) + ")";
  Row("Journal", s->journal_full() ? st.Red("FULL: " + journal) : journal);
  Row("Reconnects", FormatCount(s->reconnects()));
  Row("Last seq",
      FormatCount(s->last_seq()) + " (delivered up to " + FormatCount(s->watermark()) + ")");
  // With its time: an old error beside HEALTHY is history, not news.
  std::string last_error = s->last_error().empty() ? "none" : s->last_error();
  if (!s->last_error().empty() && s->last_error_at() > 0) {
    const int64_t ago_us = std::max<int64_t>(0, s->updated_at() - s->last_error_at());
    last_error += " (at " + FormatLocalTime(s->last_error_at()) + ", " +
                  FormatAge(static_cast<uint64_t>(ago_us / 1000000)) + " ago)";
  }
  Row("Last error", last_error);
  if (!UntrackedLine(*s).empty()) Row("Untracked", UntrackedLine(*s));
  if (s->batches_open() > 0) {
    const std::string overdue = FormatCount(s->batches_overdue()) + " overdue";
    Row("Perishables", FormatCount(s->batches_open()) + " batches out, " +
                           (s->batches_overdue() > 0 ? st.Red(overdue) : overdue));
  }
  if (!ColdChainLine(*s).empty()) Row("Cold chain", ColdChainLine(*s));
  if (s->alerts_size() == 0) {
    Row("Alerts", "none open");
  } else {
    Row("Alerts", AlertsLine(*s));
    PrintAlerts(*s, st);
  }
  std::fflush(stdout);
  return code;
}

// ------------------------------------------------------------ alerts

int RunAlerts(const CommonFlags& f) {
  int exit_code = kExitOk;
  auto s = FetchForCommand("alerts", f, /*target_out=*/nullptr, &exit_code);
  if (!s) return exit_code;
  const Style st = StdoutStyle();
  // What is not an alert yet: the batches still out, the sensors.
  auto trailer = [&] {
    if (s->due_next_size() > 0) {
      std::printf("\n");
      PrintDueNext(*s, st);
    }
    if (!ColdChainLine(*s).empty()) std::printf("cold chain: %s\n", ColdChainLine(*s).c_str());
  };
  if (s->alerts_size() == 0) {
    std::printf("no open alerts (store %s, gateway %s)\n", s->store_id().c_str(),
                s->gateway_id().c_str());
    if (!UntrackedLine(*s).empty()) std::printf("%s\n", UntrackedLine(*s).c_str());
    trailer();
    std::fflush(stdout);
    return kExitHealthy;
  }
  std::printf("alerts: %s (store %s, gateway %s)\n", AlertsLine(*s).c_str(),
              s->store_id().c_str(), s->gateway_id().c_str());
  if (!UntrackedLine(*s).empty()) std::printf("%s\n", UntrackedLine(*s).c_str());
  PrintAlerts(*s, st);
  std::printf("acknowledge one with: storegw alerts ack SEQ --by NAME\n");
  trailer();
  std::fflush(stdout);
  return kExitDegraded;
}

struct AckFlags : CommonFlags {
  uint64_t seq = 0;
  std::string by;
  std::string note;
};

// POST /v1/alerts/{seq}/ack. Exit 0 acknowledged (now or before), 1 refused
// (no such alert, cleared, a bad name), 2 down.
int RunAck(const AckFlags& f) {
  auto target = ResolveTarget(f, "STOREGW_STATUS_TOKEN", /*status_token=*/true);
  if (!target.ok()) {
    std::fprintf(stderr, "alerts ack: %s\n", target.status().message().c_str());
    return kExitUsage;
  }
  v1::AckRequest req;
  req.set_by(f.by);
  req.set_note(f.note);
  std::string body;
  (void)google::protobuf::util::MessageToJsonString(req, &body);
  const auto timeout = TimeoutOf(f);
  httplib::Client cli(target->base);
  cli.set_connection_timeout(timeout);
  cli.set_read_timeout(timeout);
  cli.set_write_timeout(timeout);
  httplib::Headers headers = {{"Accept", "application/json"}};
  if (!target->token.empty()) headers.emplace("Authorization", "Bearer " + target->token);
  const std::string where = target->base + target->prefix;
  auto res = cli.Post(target->prefix + "/v1/alerts/" + std::to_string(f.seq) + "/ack", headers,
                      body, "application/json");
  if (!res) {
    std::printf("%s: no answer from %s: %s\n", StdoutStyle().Red("DOWN").c_str(), where.c_str(),
                DescribeHttpError(res.error()).c_str());
    return kExitDown;
  }
  if (res->status == 401) {
    std::fprintf(stderr,
                 "alerts ack: %s wants the status token: set STOREGW_STATUS_TOKEN, or pass "
                 "--config with status.token\n",
                 where.c_str());
    return kExitDown;
  }
  if (res->status != 200) {
    std::fprintf(stderr, "alerts ack: alert %s: %s (HTTP %d)\n", std::to_string(f.seq).c_str(),
                 ErrorMessage(res->body).c_str(), res->status);
    return res->status >= 500 ? kExitDown : kExitDegraded;
  }
  auto obj = ParseObject(res->body);
  if (!obj || obj->fields().find("alert") == obj->fields().end()) {
    std::fprintf(stderr, "alerts ack: %s did not answer an acknowledged alert\n", where.c_str());
    return kExitDown;
  }
  const auto& alert = obj->fields().at("alert").struct_value();
  const bool already = obj->fields().count("already_acknowledged") &&
                       obj->fields().at("already_acknowledged").bool_value();
  std::printf("alert %s (%s %s) %s by %s at %s (ack seq %s)\n", std::to_string(f.seq).c_str(),
              AlertKindName(StringField(alert, "kind")).c_str(), StringField(alert, "sku").c_str(),
              already ? "was already acknowledged" : "acknowledged",
              StringField(alert, "acked_by").c_str(),
              FormatLocalTime(IntField(alert, "acked_at")).c_str(),
              std::to_string(IntField(alert, "acked_seq")).c_str());
  std::fflush(stdout);
  return kExitHealthy;
}

// ------------------------------------------------------------ stock

struct StockFlags : CommonFlags {
  std::vector<std::string> skus;
  std::string prefix;
  bool prefix_given = false;
  int limit = 100;
  std::string after;
};

std::string PercentEncode(const std::string& s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::optional<google::protobuf::Struct> ParseObject(const std::string& body) {
  google::protobuf::Struct s;
  google::protobuf::util::JsonParseOptions o;
  o.ignore_unknown_fields = true;
  if (!google::protobuf::util::JsonStringToMessage(body, &s, o).ok()) return std::nullopt;
  return s;
}

// A JSON number, or a decimal string (the API prints 64-bit integers as
// strings, as the proto3 JSON mapping does).
int64_t IntField(const google::protobuf::Struct& s, const char* name) {
  auto it = s.fields().find(name);
  if (it == s.fields().end()) return 0;
  if (it->second.has_string_value()) {
    const std::string& v = it->second.string_value();
    int64_t n = 0;
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    return ec == std::errc() && end == v.data() + v.size() ? n : 0;
  }
  return static_cast<int64_t>(it->second.number_value());
}

std::string StringField(const google::protobuf::Struct& s, const char* name) {
  auto it = s.fields().find(name);
  return it == s.fields().end() ? "" : it->second.string_value();
}

void StockRowOut(const google::protobuf::Struct& row) {
  auto tracked = row.fields().find("tracked");
  const bool untracked = tracked != row.fields().end() && !tracked->second.bool_value();
  std::printf("%-24s  %10s  %10s  %10s%s\n", StringField(row, "sku").c_str(),
              FormatCount(IntField(row, "on_hand")).c_str(),
              FormatCount(IntField(row, "base_qty")).c_str(),
              FormatCount(IntField(row, "as_of_seq")).c_str(),
              untracked ? "  (untracked: no baseline yet)" : "");
}

int RunStock(const StockFlags& f) {
  auto target = ResolveTarget(f, "STOREGW_DEVICE_TOKEN", /*status_token=*/false);
  if (!target.ok()) {
    std::fprintf(stderr, "stock: %s\n", target.status().message().c_str());
    return kExitUsage;
  }
  if (f.skus.empty() && !f.prefix_given) {
    std::fprintf(stderr, "stock: name one or more SKUs, or --prefix P (--prefix \"\" lists all)\n");
    return kExitUsage;
  }
  const auto timeout = TimeoutOf(f);
  auto down = [&](const Reply& r, const std::string& what) {
    if (r.status < 0) {
      std::fprintf(stderr, "stock: the gateway at %s%s is not answering: %s\n",
                   target->base.c_str(), target->prefix.c_str(), r.error.c_str());
    } else if (r.status == 401 || r.status == 403) {
      std::fprintf(stderr,
                   "stock: %s: HTTP %d: %s (set STOREGW_DEVICE_TOKEN to a device's token)\n",
                   what.c_str(), r.status, ErrorMessage(r.body).c_str());
    } else {
      std::fprintf(stderr, "stock: %s: HTTP %d: %s\n", what.c_str(), r.status,
                   ErrorMessage(r.body).c_str());
    }
    return kExitDown;
  };
  // The table's header comes with its first row: a gateway that does not
  // answer gets only the error.
  bool header_done = false;
  auto header = [&header_done] {
    if (std::exchange(header_done, true)) return;
    std::printf("%-24s  %10s  %10s  %10s\n", "SKU", "ON HAND", "BASE", "AS OF SEQ");
  };
  int code = kExitHealthy;
  if (f.prefix_given) {
    std::string path =
        "/v1/stock?prefix=" + PercentEncode(f.prefix) + "&limit=" + std::to_string(f.limit);
    if (!f.after.empty()) path += "&after=" + PercentEncode(f.after);
    Reply r = Get(*target, path, timeout);
    if (r.status != 200) return down(r, "prefix \"" + f.prefix + "\"");
    auto obj = ParseObject(r.body);
    const google::protobuf::Value* rows = nullptr;
    if (obj) {
      auto it = obj->fields().find("stock");
      if (it != obj->fields().end() && it->second.has_list_value()) rows = &it->second;
    }
    if (!rows) {
      std::fprintf(stderr, "stock: %s/v1/stock did not answer a stock list\n",
                   target->base.c_str());
      return kExitDown;
    }
    header();
    for (const auto& v : rows->list_value().values()) StockRowOut(v.struct_value());
    if (rows->list_value().values_size() == 0) code = kExitDegraded;
    if (auto next = obj->fields().find("next_after"); next != obj->fields().end()) {
      std::printf("more: storegw stock --prefix '%s' --limit %d --after '%s'\n",
                  f.prefix.c_str(), f.limit, next->second.string_value().c_str());
    }
  }
  for (const std::string& sku : f.skus) {
    Reply r = Get(*target, "/v1/stock/" + PercentEncode(sku), timeout);
    if (r.status == 404) {
      header();
      std::printf("%-24s  %10s\n", sku.c_str(), "unknown");
      code = std::max(code, kExitDegraded);
      continue;
    }
    if (r.status != 200) return down(r, "sku \"" + sku + "\"");
    auto row = ParseObject(r.body);
    if (!row) {
      std::fprintf(stderr, "stock: %s/v1/stock/%s did not answer a stock row\n",
                   target->base.c_str(), sku.c_str());
      return kExitDown;
    }
    header();
    StockRowOut(*row);
  }
  std::fflush(stdout);
  return code;
}

// ------------------------------------------------------------ devices

struct DevicesFlags : CommonFlags {
  bool json = false;
};

// GET /v1/devices as a table, worst first.
int RunDevices(const DevicesFlags& f) {
  auto target = ResolveTarget(f, "STOREGW_STATUS_TOKEN", /*status_token=*/true);
  if (!target.ok()) {
    std::fprintf(stderr, "devices: %s\n", target.status().message().c_str());
    return kExitUsage;
  }
  const Style st = StdoutStyle();
  Reply r = Get(*target, "/v1/devices", TimeoutOf(f));
  if (r.status != 200) {
    std::string why =
        r.status < 0 ? "no answer from " + target->base + target->prefix + ": " + r.error
        : r.status == 401
            ? target->base + target->prefix +
                  " wants the status token: set STOREGW_STATUS_TOKEN, or pass --config with "
                  "status.token"
            : target->base + target->prefix + "/v1/devices answered HTTP " +
                  std::to_string(r.status) + ": " + ErrorMessage(r.body);
    std::printf("%s: %s\n", st.Red("DOWN").c_str(), why.c_str());
    return kExitDown;
  }
  v1::DeviceList list;
  google::protobuf::util::JsonParseOptions o;
  o.ignore_unknown_fields = true;
  if (!google::protobuf::util::JsonStringToMessage(r.body, &list, o).ok()) {
    std::printf("%s: %s/v1/devices did not answer a device list\n", st.Red("DOWN").c_str(),
                target->base.c_str());
    return kExitDown;
  }
  const int code = list.silent() > 0 ? kExitDegraded : kExitHealthy;
  if (f.json) {
    std::printf("%s\n", r.body.c_str());
    return code;
  }
  std::printf("%zu device%s, %s silent (no request for %s while open%s)\n",
              static_cast<size_t>(list.devices_size()), list.devices_size() == 1 ? "" : "s",
              std::to_string(list.silent()).c_str(),
              FormatDuration(std::chrono::seconds(list.silent_after_s())).c_str(),
              list.opening_hours().empty() ? ", always open"
                                           : (", open " + list.opening_hours()).c_str());
  std::printf("  %-20s  %-7s  %-19s  %10s  %8s  %8s  %s\n", "DEVICE", "STATE", "LAST SEEN",
              "EVENTS", "DUPS", "REFUSED", "LAST ERROR");
  for (const auto& d : list.devices()) {
    uint64_t refused = 0;
    for (const auto& c : d.rejected()) refused += c.count();
    const std::string state = d.silent() ? "SILENT" : refused > 0 ? "ERRORS" : "ok";
    const std::string painted =
        d.silent() ? st.Red(state) : refused > 0 ? st.Yellow(state) : st.Green(state);
    const std::string pad(state.size() < 7 ? 7 - state.size() : 0, ' ');
    std::string err;
    if (d.last_error_at() > 0) {
      err = FormatLocalTime(d.last_error_at()) + " " + ErrorMessage(d.last_error());
      if (err.size() > 100) err = err.substr(0, 97) + "...";
    }
    const std::string name = d.device_id().empty() ? "(unidentified)" : d.device_id();
    std::printf("  %-20s  %s%s  %-19s  %10s  %8s  %8s  %s\n", name.c_str(), painted.c_str(),
                pad.c_str(), FormatLocalTime(d.last_seen_at()).c_str(),
                std::to_string(d.events_accepted()).c_str(),
                std::to_string(d.events_duplicate()).c_str(), std::to_string(refused).c_str(),
                err.c_str());
  }
  std::fflush(stdout);
  return code;
}

// ------------------------------------------------------------ flags

CLI::Validator DurationFlag() {
  return CLI::Validator(
      [](std::string& v) -> std::string {
        auto d = ParseDuration(v);
        return d.ok() ? "" : d.status().message();
      },
      "DURATION");
}

constexpr const char* kStatusConfigHelp =
    "Take the address (status.listen or http.listen) and status.token from this config file";

void AddCommon(CLI::App* cmd, CommonFlags& f, const char* config_help = kStatusConfigHelp) {
  cmd->add_option("--url", f.url,
                  "The gateway, e.g. http://127.0.0.1:8080 (default: from --config, else that)");
  cmd->add_option("--config,-c", f.config, config_help);
  cmd->add_option("--timeout", f.timeout, "How long to wait for an answer")
      ->check(DurationFlag())
      ->capture_default_str();
}

}  // namespace

void AddStatusCommands(CLI::App& app, int* exit_code) {
  auto sf = std::make_shared<StatusFlags>();
  auto* status =
      app.add_subcommand("status",
                         "Show a running gateway's status; exit 0 healthy, 1 degraded, 2 down "
                         "(token: STOREGW_STATUS_TOKEN)");
  AddCommon(status, *sf);
  status
      ->add_option("--max-age", sf->max_age,
                   "Degraded when the oldest undelivered event is older than this")
      ->check(DurationFlag())
      ->capture_default_str();
  status
      ->add_option("--max-journal-percent", sf->max_journal_percent,
                   "Degraded when the journal is at least this full (% of journal.max_bytes)")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  status->add_flag("--json", sf->json, "Print the status document as JSON (same exit codes)");
  status->callback([sf, exit_code] { *exit_code = RunStatus(*sf); });

  auto af = std::make_shared<CommonFlags>();
  auto* alerts = app.add_subcommand(
      "alerts",
      "List open alerts (stock, perishables, cold chain) and the next batches due; exit 0 "
      "none, 1 some, 2 down (token: STOREGW_STATUS_TOKEN)");
  AddCommon(alerts, *af);
  auto kf_ack = std::make_shared<AckFlags>();
  auto* ack = alerts->add_subcommand(
      "ack",
      "Acknowledge an open alert (journaled, sent to HQ); exit 0 done, 1 refused, 2 down");
  AddCommon(ack, *kf_ack);
  ack->add_option("seq", kf_ack->seq, "The alert's SEQ (first column of `storegw alerts`)")
      ->required()
      ->check(CLI::Range(uint64_t{1}, std::numeric_limits<uint64_t>::max()));
  ack->add_option("--by", kf_ack->by, "Who acknowledges (a name, up to 64 characters)")
      ->required();
  ack->add_option("--note", kf_ack->note, "Why, or what is being done (up to 256 bytes)");
  ack->callback([kf_ack, exit_code] { *exit_code = RunAck(*kf_ack); });
  alerts->callback([af, ack, exit_code] {
    if (ack->parsed()) return;
    *exit_code = RunAlerts(*af);
  });

  auto df = std::make_shared<DevicesFlags>();
  auto* devices = app.add_subcommand(
      "devices",
      "List the devices that talk to the gateway, worst first; exit 0 none silent, 1 a device "
      "silent, 2 down (token: STOREGW_STATUS_TOKEN)");
  AddCommon(devices, *df);
  devices->add_flag("--json", df->json, "Print the device list as JSON (same exit codes)");
  devices->callback([df, exit_code] { *exit_code = RunDevices(*df); });

  auto kf = std::make_shared<StockFlags>();
  auto* stock =
      app.add_subcommand("stock",
                         "Show stock on hand of SKUs; exit 0 all known, 1 an unknown SKU, 2 down "
                         "(token: STOREGW_DEVICE_TOKEN)");
  AddCommon(stock, *kf,
            "Take the device API's address (http.listen) from this config file; the token "
            "comes from STOREGW_DEVICE_TOKEN only (a device's token, with device tokens "
            "configured)");
  stock->add_option("sku", kf->skus, "SKUs to look up");
  auto* prefix = stock->add_option("--prefix", kf->prefix, "List SKUs starting with this");
  stock->add_option("--limit", kf->limit, "At most this many rows with --prefix")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  stock->add_option("--after", kf->after,
                    "With --prefix: start after this SKU (the next page; the list says which)");
  stock->callback([kf, prefix, exit_code] {
    kf->prefix_given = prefix->count() > 0;
    *exit_code = RunStock(*kf);
  });
}

}  // namespace storegw::gateway
