#include "storegw/config/config.h"

#include "storegw/config/config_text.h"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <sstream>
#include <variant>

#include <toml++/toml.h>

#include "storegw/devices/device_api.h"
#include "storegw/http/listen.h"
#include "storegw/sync/uplink.h"

namespace storegw::gateway {
namespace {

using namespace std::chrono_literals;

// ------------------------------------------------------------ the key table

// How a key's value is written in TOML and checked.
enum class Kind {
  kString,    // free text (may be empty)
  kId,        // 1..64 of [A-Za-z0-9._-]
  kPath,      // a file or directory path; `required` says if empty is allowed
  kEnum,      // one of `choices`
  kListen,    // HOST:PORT
  kUrl,       // scheme://rest
  kTopic,     // MQTT topic prefix
  kClientId,  // MQTT client id, empty allowed
  kOptAddr,   // HOST:PORT or empty
  kHours,     // opening hours "HH:MM-HH:MM" or empty (devices::ParseOpeningHours)
  kToken,     // at most 256 printable ASCII characters, no spaces
  kInt,       // TOML integer within [min, max]
  kSize,      // TOML integer, bytes, within [min, max]
  kDuration,  // TOML string "5s", within [min, max] milliseconds
};

using StrRef = std::string& (*)(Config&);
using IntRef = int& (*)(Config&);
using SizeRef = uint64_t& (*)(Config&);
using DurRef = Millis& (*)(Config&);
using FieldRef = std::variant<StrRef, IntRef, SizeRef, DurRef>;

struct KeySpec {
  std::string_view name;  // dotted: "uplink.tls.ca_file"
  Kind kind;
  FieldRef field;
  int64_t min = 0;  // kInt, kSize; milliseconds for kDuration
  int64_t max = 0;
  std::vector<std::string_view> choices = {};  // kEnum
  bool required = false;                       // kPath: empty is an error
  bool secret = false;                         // never printed or echoed
};

#define FIELD(path)          \
  +[](Config & c) -> auto& { \
    return c.path;           \
  }

constexpr int64_t kKiB = 1024;
constexpr int64_t kSec = 1000;
constexpr int64_t kDay = 86400 * kSec;

// The one table of keys, in the order `config check` prints them. The
// defaults live in Config's member initializers; the meaning of each key is
// documented in config.h and packaging/storegw.toml.
const std::vector<KeySpec>& Keys() {
  static const std::vector<KeySpec> keys = {
      {.name = "gateway.store_id", .kind = Kind::kId, .field = FIELD(gateway.store_id)},
      {.name = "gateway.gateway_id", .kind = Kind::kId, .field = FIELD(gateway.gateway_id)},
      {.name = "gateway.data_dir",
       .kind = Kind::kPath,
       .field = FIELD(gateway.data_dir),
       .required = true},

      {.name = "http.listen", .kind = Kind::kListen, .field = FIELD(http.listen)},
      {.name = "http.device_tokens_file",
       .kind = Kind::kPath,
       .field = FIELD(http.device_tokens_file)},
      {.name = "http.max_body_bytes",
       .kind = Kind::kSize,
       .field = FIELD(http.max_body_bytes),
       .min = devices::ApiLimits::kMinBodyBytes,
       .max = devices::ApiLimits::kMaxBodyBytes},
      {.name = "http.threads",
       .kind = Kind::kInt,
       .field = FIELD(http.threads),
       .min = devices::ApiLimits::kMinThreads,
       .max = devices::ApiLimits::kMaxThreads},

      {.name = "journal.max_bytes",
       .kind = Kind::kSize,
       .field = FIELD(journal.max_bytes),
       .min = 64 * kKiB,
       .max = int64_t{1} << 50},
      {.name = "journal.retention",
       .kind = Kind::kDuration,
       .field = FIELD(journal.retention),
       .min = 0,
       .max = 3650 * kDay},

      {.name = "uplink.transport",
       .kind = Kind::kEnum,
       .field = FIELD(uplink.transport),
       .choices = {"mqtt", "https", "none"}},
      {.name = "uplink.url", .kind = Kind::kUrl, .field = FIELD(uplink.url)},
      {.name = "uplink.topic_prefix", .kind = Kind::kTopic, .field = FIELD(uplink.topic_prefix)},
      {.name = "uplink.ack",
       .kind = Kind::kEnum,
       .field = FIELD(uplink.ack),
       .choices = {"broker", "hq"}},
      {.name = "uplink.max_inflight",
       .kind = Kind::kInt,
       .field = FIELD(uplink.max_inflight),
       .min = sync::UplinkLimits::kMinInflight,
       .max = sync::UplinkLimits::kMaxInflight},
      {.name = "uplink.batch_events",
       .kind = Kind::kInt,
       .field = FIELD(uplink.batch_events),
       .min = sync::UplinkLimits::kMinBatchEvents,
       .max = sync::UplinkLimits::kMaxBatchEvents},
      {.name = "uplink.max_message_bytes",
       .kind = Kind::kSize,
       .field = FIELD(uplink.max_message_bytes),
       .min = sync::UplinkLimits::kMinMessageBytes,
       .max = sync::UplinkLimits::kMaxMessageBytes},
      {.name = "uplink.backoff_initial",
       .kind = Kind::kDuration,
       .field = FIELD(uplink.backoff_initial),
       .min = 1,
       .max = 3600 * kSec},
      {.name = "uplink.backoff_max",
       .kind = Kind::kDuration,
       .field = FIELD(uplink.backoff_max),
       .min = 1,
       .max = 7 * kDay},
      {.name = "uplink.hq_ack_timeout",
       .kind = Kind::kDuration,
       .field = FIELD(uplink.hq_ack_timeout),
       .min = kSec,
       .max = kDay},
      {.name = "uplink.ack_timeout",
       .kind = Kind::kDuration,
       .field = FIELD(uplink.ack_timeout),
       .min = kSec,
       .max = kDay},
      {.name = "uplink.connect_timeout",
       .kind = Kind::kDuration,
       .field = FIELD(uplink.connect_timeout),
       .min = kSec,
       .max = 3600 * kSec},
      {.name = "uplink.request_timeout",
       .kind = Kind::kDuration,
       .field = FIELD(uplink.request_timeout),
       .min = kSec,
       .max = 3600 * kSec},
      {.name = "uplink.proxy", .kind = Kind::kString, .field = FIELD(uplink.proxy), .secret = true},
      {.name = "uplink.session_expiry",
       .kind = Kind::kDuration,
       .field = FIELD(uplink.session_expiry),
       .min = 0,
       .max = 3650 * kDay},
      {.name = "uplink.compression",
       .kind = Kind::kEnum,
       .field = FIELD(uplink.compression),
       .choices = {"zstd", "deflate", "none"}},
      {.name = "uplink.batch_encoding",
       .kind = Kind::kEnum,
       .field = FIELD(uplink.batch_encoding),
       .choices = {"protobuf", "columnar"}},
      {.name = "uplink.batch_sizing",
       .kind = Kind::kEnum,
       .field = FIELD(uplink.batch_sizing),
       .choices = {"adaptive", "fixed"}},
      {.name = "uplink.live_lane",
       .kind = Kind::kEnum,
       .field = FIELD(uplink.live_lane),
       .choices = {"auto", "off"}},
      {.name = "uplink.compression_level",
       .kind = Kind::kInt,
       .field = FIELD(uplink.compression_level),
       .min = -7,
       .max = 19},
      {.name = "uplink.client_id", .kind = Kind::kClientId, .field = FIELD(uplink.client_id)},
      {.name = "uplink.username", .kind = Kind::kString, .field = FIELD(uplink.username)},
      {.name = "uplink.password",
       .kind = Kind::kString,
       .field = FIELD(uplink.password),
       .secret = true},
      {.name = "uplink.tls.ca_file", .kind = Kind::kPath, .field = FIELD(uplink.tls.ca_file)},
      {.name = "uplink.tls.cert_file", .kind = Kind::kPath, .field = FIELD(uplink.tls.cert_file)},
      {.name = "uplink.tls.key_file", .kind = Kind::kPath, .field = FIELD(uplink.tls.key_file)},

      {.name = "log.level",
       .kind = Kind::kEnum,
       .field = FIELD(log.level),
       .choices = {"trace", "debug", "info", "warn", "error", "critical", "off"}},
      {.name = "log.format",
       .kind = Kind::kEnum,
       .field = FIELD(log.format),
       .choices = {"text", "json"}},

      {.name = "status.listen", .kind = Kind::kOptAddr, .field = FIELD(status.listen)},
      {.name = "status.token", .kind = Kind::kToken, .field = FIELD(status.token), .secret = true},

      {.name = "devices.silent_after",
       .kind = Kind::kDuration,
       .field = FIELD(devices.silent_after),
       .min = 10 * kSec,
       .max = 7 * kDay},
      {.name = "devices.opening_hours",
       .kind = Kind::kHours,
       .field = FIELD(devices.opening_hours)},
      {.name = "metrics.max_devices",
       .kind = Kind::kInt,
       .field = FIELD(metrics.max_devices),
       .min = 0,
       .max = 1000},

      {.name = "alerts.count_mismatch_threshold",
       .kind = Kind::kInt,
       .field = FIELD(alerts.count_mismatch_threshold),
       .min = -1,
       .max = 1000000000},
      {.name = "alerts.low_stock_default",
       .kind = Kind::kInt,
       .field = FIELD(alerts.low_stock_default),
       .min = -1,
       .max = 1000000000},
      {.name = "alerts.low_stock_file", .kind = Kind::kPath, .field = FIELD(alerts.low_stock_file)},

      {.name = "changes.max_clients",
       .kind = Kind::kInt,
       .field = FIELD(changes.max_clients),
       .min = 0,
       .max = 4096},
      {.name = "changes.max_lag",
       .kind = Kind::kInt,
       .field = FIELD(changes.max_lag),
       .min = 1,
       .max = 1000000},
      {.name = "changes.keep_alive",
       .kind = Kind::kDuration,
       .field = FIELD(changes.keep_alive),
       .min = kSec,
       .max = 3600 * kSec},

      {.name = "perishables.default_hold",
       .kind = Kind::kDuration,
       .field = FIELD(perishables.default_hold),
       .min = 60 * kSec,
       .max = 7 * kDay},
      {.name = "perishables.escalate_after",
       .kind = Kind::kDuration,
       .field = FIELD(perishables.escalate_after),
       .min = 60 * kSec,
       .max = kDay},
      {.name = "perishables.hold_times_file",
       .kind = Kind::kPath,
       .field = FIELD(perishables.hold_times_file)},

      {.name = "cold_chain.metric", .kind = Kind::kClientId, .field = FIELD(cold_chain.metric)},
      {.name = "cold_chain.grace",
       .kind = Kind::kDuration,
       .field = FIELD(cold_chain.grace),
       .min = 0,
       .max = kDay},
      {.name = "cold_chain.clear_after",
       .kind = Kind::kDuration,
       .field = FIELD(cold_chain.clear_after),
       .min = 0,
       .max = kDay},
      {.name = "cold_chain.silent_after",
       .kind = Kind::kDuration,
       .field = FIELD(cold_chain.silent_after),
       .min = 60 * kSec,
       .max = 7 * kDay},
      {.name = "cold_chain.sensors_file",
       .kind = Kind::kPath,
       .field = FIELD(cold_chain.sensors_file)},
  };
  return keys;
}

#undef FIELD

const KeySpec* FindKey(std::string_view name) {
  for (const auto& k : Keys()) {
    if (k.name == name) return &k;
  }
  return nullptr;
}

std::string_view SectionOf(std::string_view key) {
  auto dot = key.rfind('.');
  return dot == std::string_view::npos ? std::string_view{} : key.substr(0, dot);
}

// Every table name that may appear: "gateway", "uplink", "uplink.tls", ...
bool IsSection(std::string_view name) {
  for (const auto& k : Keys()) {
    std::string_view s = SectionOf(k.name);
    while (!s.empty()) {
      if (s == name) return true;
      s = SectionOf(s);
    }
  }
  return false;
}

// ------------------------------------------------------------ small helpers

std::string_view TypeName(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a floating-point number";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    default:
      return "nothing";
  }
}

// " (did you mean 'uplink.batch_events'?)" for a near miss, else "". A key
// put in the wrong section is matched by its last part.
std::string Suggest(std::string_view unknown, bool is_section = false) {
  std::vector<std::string> names;
  for (const auto& k : Keys()) {
    if (!is_section) {
      names.emplace_back(k.name);
    } else {
      for (std::string_view s = SectionOf(k.name); !s.empty(); s = SectionOf(s)) {
        names.emplace_back(s);
      }
    }
  }
  auto leaf = [](std::string_view n) {
    auto dot = n.rfind('.');
    return dot == std::string_view::npos ? n : n.substr(dot + 1);
  };
  std::string best;
  size_t best_d = 4;
  for (const auto& n : names) {
    size_t d = EditDistance(unknown, n);
    if (!is_section && leaf(unknown) == leaf(n)) d = std::min<size_t>(d, 1);
    if (d < best_d) {
      best_d = d;
      best = n;
    }
  }
  return best.empty() ? "" : " (did you mean '" + best + "'?)";
}

bool IsIdChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

// The value as it may appear in a message: quoted, shortened, or hidden.
std::string Shown(const KeySpec& spec, std::string_view v) {
  if (spec.secret) return "(hidden)";
  if (v.size() > 80) return Quote(v.substr(0, 80)) + "...";
  return Quote(v);
}

// Checks a string value of a string kind; "" when fine, else the reason.
std::string CheckString(const KeySpec& spec, std::string_view v) {
  switch (spec.kind) {
    case Kind::kId: {
      if (v.empty() || v.size() > 64 || !std::all_of(v.begin(), v.end(), IsIdChar)) {
        return "must be 1 to 64 characters of A-Z a-z 0-9 . _ -, got " + Shown(spec, v);
      }
      return "";
    }
    case Kind::kPath:
      if (spec.required && v.empty()) return "must not be empty";
      if (v.find('\0') != std::string_view::npos) return "contains a NUL character";
      return "";
    case Kind::kEnum: {
      for (auto c : spec.choices) {
        if (v == c) return "";
      }
      std::string list;
      for (size_t i = 0; i < spec.choices.size(); ++i) {
        list += (i == 0 ? "" : i + 1 == spec.choices.size() ? " or " : ", ");
        list += Quote(spec.choices[i]);
      }
      return "must be " + list + ", got " + Shown(spec, v);
    }
    case Kind::kListen: {
      auto hp = http::ParseListenAddress(v);
      return hp.ok() ? "" : hp.status().message();
    }
    case Kind::kUrl: {
      auto pos = v.find("://");
      if (pos == std::string_view::npos || pos == 0 || pos + 3 >= v.size()) {
        return "expected a URL like \"tcp://host:1883\", \"ssl://host:8883\" or "
               "\"https://host/path\", got " +
               Shown(spec, v);
      }
      return "";
    }
    case Kind::kTopic:
      if (v.empty() || v.size() > 128 || v.front() == '/' || v.back() == '/' ||
          v.find_first_of("+#") != std::string_view::npos ||
          v.find("//") != std::string_view::npos) {
        return "must be 1 to 128 characters, without '+', '#', empty levels or a leading or "
               "trailing '/', got " +
               Shown(spec, v);
      }
      return "";
    case Kind::kOptAddr: {
      if (v.empty()) return "";
      auto hp = http::ParseListenAddress(v);
      return hp.ok() ? "" : hp.status().message();
    }
    case Kind::kToken:
      // It travels in an HTTP header: printable ASCII, no spaces.
      if (v.size() > 256 ||
          !std::all_of(v.begin(), v.end(), [](char c) { return c > 0x20 && c < 0x7f; })) {
        return "must be at most 256 printable ASCII characters without spaces (got " +
               std::to_string(v.size()) + " characters; the value is not shown)";
      }
      return "";
    case Kind::kClientId:
      if (v.size() > 128 ||
          !std::all_of(v.begin(), v.end(), [](char c) { return c > 0x20 && c < 0x7f; })) {
        return "must be at most 128 printable ASCII characters without spaces, got " +
               Shown(spec, v);
      }
      return "";
    case Kind::kString:
      return "";
    case Kind::kHours: {
      auto h = devices::ParseOpeningHours(v);
      return h.ok() ? "" : h.status().message();
    }
    default:
      return "internal: not a string kind";
  }
}

using Value = std::variant<std::string, int64_t>;

// Checks `value` against `spec` and stores it; "" on success, else the
// reason (without the key name).
std::string Apply(const KeySpec& spec, const Value& value, Config& config) {
  const std::string* s = std::get_if<std::string>(&value);
  const int64_t* i = std::get_if<int64_t>(&value);
  switch (spec.kind) {
    case Kind::kInt:
    case Kind::kSize: {
      if (!i) {
        return std::string(spec.kind == Kind::kSize
                               ? "expected an integer number of bytes (e.g. 1048576)"
                               : "expected an integer") +
               ", got the string " + Shown(spec, *s);
      }
      if (*i < spec.min || *i > spec.max) {
        return "must be between " + std::to_string(spec.min) + " and " + std::to_string(spec.max) +
               (spec.kind == Kind::kSize ? " bytes" : "") + ", got " + std::to_string(*i);
      }
      if (spec.kind == Kind::kInt) {
        std::get<IntRef>(spec.field)(config) = static_cast<int>(*i);
      } else {
        std::get<SizeRef>(spec.field)(config) = static_cast<uint64_t>(*i);
      }
      return "";
    }
    case Kind::kDuration: {
      if (!s) {
        return "expected a duration string with a unit (e.g. \"5s\"), got the integer " +
               std::to_string(*i);
      }
      auto d = ParseDuration(*s);
      if (!d.ok()) return d.status().message();
      if (d->count() < spec.min || d->count() > spec.max) {
        return "must be between " + FormatDuration(Millis(spec.min)) + " and " +
               FormatDuration(Millis(spec.max)) + ", got " + Quote(*s);
      }
      std::get<DurRef>(spec.field)(config) = *d;
      return "";
    }
    default: {
      if (!s) {
        return "expected a string, got " +
               (spec.secret ? std::string("an integer") : "the integer " + std::to_string(*i));
      }
      std::string why = CheckString(spec, *s);
      if (!why.empty()) return why;
      std::get<StrRef>(spec.field)(config) = *s;
      return "";
    }
  }
}

std::string Where(std::string_view source, const toml::source_region& src) {
  std::string out(source);
  if (src.begin.line > 0) out += ":" + std::to_string(src.begin.line);
  return out;
}

// A problem and the line it is on (0: unknown), to report in file order.
using Problem = std::pair<uint32_t, std::string>;

// Checks the value of `node` against `spec` and stores it; "" on success,
// else the reason (without the key name).
std::string ApplyNode(const KeySpec& spec, const toml::node& node, Config& config) {
  Value v;
  if (auto str = node.as_string()) {
    v = str->get();
  } else if (auto integer = node.as_integer()) {
    v = integer->get();
  } else {
    std::string want = (spec.kind == Kind::kInt || spec.kind == Kind::kSize) ? "an integer"
                       : spec.kind == Kind::kDuration ? "a duration string (e.g. \"5s\")"
                                                      : "a string";
    return "expected " + want + ", got " + std::string(TypeName(node));
  }
  return Apply(spec, v, config);
}

const RetiredKey* FindRetired(std::string_view name, const std::vector<RetiredKey>& retired) {
  for (const auto& r : retired) {
    if (r.key == name) return &r;
  }
  return nullptr;
}

// A table that only retired keys name ("[mqtt]" of "mqtt.url" renamed to
// "uplink.url"): walked, so that its keys are reported as retired.
bool IsRetiredSection(std::string_view name, const std::vector<RetiredKey>& retired) {
  for (const auto& r : retired) {
    for (std::string_view s = SectionOf(r.key); !s.empty(); s = SectionOf(s)) {
      if (s == name) return true;
    }
  }
  return false;
}

// Every key (not table) of the file by its dotted name, with its line.
void CollectKeyLines(const toml::table& table, const std::string& prefix,
                     std::map<std::string, uint32_t>& out) {
  for (const auto& [key, node] : table) {
    std::string name =
        prefix.empty() ? std::string(key.str()) : prefix + "." + std::string(key.str());
    if (const toml::table* sub = node.as_table()) {
      CollectKeyLines(*sub, name, out);
    } else {
      const toml::source_region& src = key.source().begin.line > 0 ? key.source() : node.source();
      out.emplace(name, src.begin.line);
    }
  }
}

struct WalkState {
  std::string_view source;
  Config& config;
  const std::vector<RetiredKey>& retired;
  std::map<std::string, uint32_t> keys;  // CollectKeyLines of the whole file
  std::vector<Problem> problems;
  std::vector<Problem> warnings;
};

std::string InRelease(const RetiredKey& r) {
  return r.since.empty() ? std::string() : " in storegw " + r.since;
}

// A retired key found in the file: a warning (its value applied under the
// new name, or ignored when the key was removed) or an error; see
// RetiredKey in config.h.
void ReportRetired(const RetiredKey& r, const toml::node& node, const std::string& where,
                   uint32_t line, WalkState& st) {
  auto problem = [&](std::string msg) { st.problems.emplace_back(line, where + ": " + msg); };
  auto warning = [&](std::string msg) { st.warnings.emplace_back(line, where + ": " + msg); };
  const std::string advice = r.advice.empty() ? std::string() : ": " + r.advice;
  if (r.renamed_to.empty()) {
    if (r.refuse) {
      problem("key '" + r.key + "' was removed" + InRelease(r) + advice);
    } else {
      warning("key '" + r.key + "' was removed" + InRelease(r) + " and has no effect" + advice +
              "; delete it from the file");
    }
    return;
  }
  const std::string renamed =
      "key '" + r.key + "' was renamed to '" + r.renamed_to + "'" + InRelease(r);
  const KeySpec* spec = FindKey(r.renamed_to);
  if (!spec) {
    problem(renamed + ", which this storegw does not know either");
    return;
  }
  // The new key, or another old name of it, set as well: which value was
  // meant is not for us to guess.
  if (auto it = st.keys.find(r.renamed_to); it != st.keys.end()) {
    problem(renamed + ", and '" + r.renamed_to + "' is set too" +
            (it->second > 0 ? " (line " + std::to_string(it->second) + ")" : "") + ": delete '" +
            r.key + "'");
    return;
  }
  for (const auto& other : st.retired) {
    if (other.key == r.key || other.renamed_to != r.renamed_to) continue;
    if (auto it = st.keys.find(other.key); it != st.keys.end()) {
      problem(renamed + ", and '" + other.key + "'" +
              (it->second > 0 ? " (line " + std::to_string(it->second) + ")" : "") +
              ", another old name of it, is set too: keep one, as '" + r.renamed_to + "'");
      return;
    }
  }
  if (r.refuse) {
    problem(renamed + "; its value is not carried over" + advice);
    return;
  }
  std::string why = ApplyNode(*spec, node, st.config);
  if (!why.empty()) {
    problem(renamed + ": " + r.renamed_to + ": " + why);
    return;
  }
  warning(renamed + ": write '" + r.renamed_to + "' instead (the value is used as '" +
          r.renamed_to + "' meanwhile)" + advice);
}

// Walks one table; `prefix` is its dotted name ("" for the root).
void Walk(const toml::table& table, const std::string& prefix, WalkState& st) {
  for (const auto& [key, node] : table) {
    std::string name =
        prefix.empty() ? std::string(key.str()) : prefix + "." + std::string(key.str());
    const toml::source_region& src = key.source().begin.line > 0 ? key.source() : node.source();
    std::string where = Where(st.source, src);
    auto problems_push = [&](std::string msg) {
      st.problems.emplace_back(src.begin.line, std::move(msg));
    };
    const RetiredKey* retired = FindRetired(name, st.retired);
    if (const KeySpec* spec = FindKey(name)) {
      std::string why = ApplyNode(*spec, node, st.config);
      if (!why.empty()) problems_push(where + ": " + name + ": " + why);
    } else if (retired && !node.is_table()) {
      ReportRetired(*retired, node, where, src.begin.line, st);
    } else if (IsSection(name) || IsRetiredSection(name, st.retired)) {
      if (const toml::table* sub = node.as_table()) {
        Walk(*sub, name, st);
      } else if (IsSection(name)) {
        problems_push(where + ": " + name + ": expected a table ([" + name + "]), got " +
                      std::string(TypeName(node)));
      } else {
        problems_push(where + ": unknown key '" + name + "'" + Suggest(name));
      }
    } else if (node.is_table()) {
      problems_push(where + ": unknown section '" + name + "'" + Suggest(name, true));
    } else {
      problems_push(where + ": unknown key '" + name + "'" + Suggest(name));
    }
  }
}

Status Problems(const std::vector<std::string>& problems) {
  std::string msg = problems.front();
  if (problems.size() > 1) {
    msg += " (and " + std::to_string(problems.size() - 1) + " more problem" +
           (problems.size() > 2 ? "s" : "") + ")";
  }
  return Status::InvalidArgument("", msg);
}

std::string_view Scheme(std::string_view url) {
  auto pos = url.find("://");
  return pos == std::string_view::npos ? std::string_view{} : url.substr(0, pos);
}

void CrossChecks(const Config& c, std::string_view source, std::vector<std::string>& problems) {
  std::string where(source);
  if (c.cold_chain.metric.empty()) {
    problems.push_back(where +
                       ": cold_chain.metric: must not be empty (the sensor metric the "
                       "limits apply to, e.g. \"temp_mc\")");
  }
  if (c.uplink.backoff_initial > c.uplink.backoff_max) {
    problems.push_back(
        where + ": uplink.backoff_initial: " + Quote(FormatDuration(c.uplink.backoff_initial)) +
        " is longer than uplink.backoff_max " + Quote(FormatDuration(c.uplink.backoff_max)));
  }
  if (c.uplink.tls.cert_file.empty() != c.uplink.tls.key_file.empty()) {
    problems.push_back(
        where + ": " +
        (c.uplink.tls.cert_file.empty() ? "uplink.tls.cert_file" : "uplink.tls.key_file") +
        ": must be set together with " +
        (c.uplink.tls.cert_file.empty() ? "uplink.tls.key_file" : "uplink.tls.cert_file") +
        " (a client certificate needs its key)");
  }
  std::string_view scheme = Scheme(c.uplink.url);
  bool tls = scheme == "ssl" || scheme == "mqtts" || scheme == "wss" || scheme == "https";
  if (c.uplink.transport == "mqtt" && scheme != "tcp" && scheme != "mqtt" && scheme != "ssl" &&
      scheme != "mqtts" && scheme != "ws" && scheme != "wss") {
    problems.push_back(where + ": uplink.url: " + Quote(c.uplink.url) +
                       " is not an MQTT URL (tcp://, ssl://, mqtt://, mqtts://, ws://, wss://) "
                       "but uplink.transport is \"mqtt\"");
  }
  if (c.uplink.transport == "https" && scheme != "https") {
    problems.push_back(
        where + ": uplink.url: " + Quote(c.uplink.url) +
        " is not an https:// URL but uplink.transport is \"https\"" +
        (scheme == "http" ? " (plain http:// is refused: batches carry sales data)" : ""));
  }
  if (c.uplink.transport != "none" && !tls &&
      (!c.uplink.tls.ca_file.empty() || !c.uplink.tls.cert_file.empty())) {
    problems.push_back(where + ": uplink.tls: TLS files are set but uplink.url " +
                       Quote(c.uplink.url) +
                       " is not a TLS URL (use ssl://, mqtts:// or https://): the link would "
                       "be plain text");
  }
  if (auto hp = http::ParseListenAddress(c.http.listen); hp.ok()) {
    if (!hp->loopback && c.http.device_tokens_file.empty()) {
      problems.push_back(where + ": http.listen: " + Quote(c.http.listen) +
                         " is not a loopback address, so http.device_tokens_file must be set "
                         "(without device tokens any machine on the network could post events)");
    }
  }
  if (!c.status.listen.empty()) {
    auto s = http::ParseListenAddress(c.status.listen), h = http::ParseListenAddress(c.http.listen);
    if (s.ok() && h.ok() && s->port != 0 && s->port == h->port) {
      problems.push_back(where + ": status.listen: " + Quote(c.status.listen) +
                         " is the same port as http.listen " + Quote(c.http.listen) +
                         ": leave status.listen empty to serve the status page on http.listen, "
                         "or give it a port of its own");
    }
  }
}

Status CheckReadable(std::string_view key, const std::string& path, bool want_dir = false) {
  if (path.empty()) return Status::Ok();
  std::error_code ec;
  auto st = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(st)) {
    return Status::NotFound(std::string(key) + ": " + path + ": no such file");
  }
  if (want_dir) return Status::Ok();
  if (std::filesystem::is_directory(st)) {
    return Status::InvalidArgument(std::string(key),
                                   std::string(key) + ": " + path + " is a directory, not a file");
  }
  std::ifstream in(path);
  if (!in) {
    return Status::PermissionDenied(std::string(key) + ": " + path +
                                    ": cannot be read (check its permissions)");
  }
  return Status::Ok();
}

}  // namespace

// ------------------------------------------------------------ public

Status ValidateConfig(const Config& config, std::string_view source_name) {
  std::vector<std::string> problems;
  CrossChecks(config, source_name, problems);
  return problems.empty() ? Status::Ok() : Problems(problems);
}

const std::vector<RetiredKey>& RetiredConfigKeys() {
  // Add an entry when a release renames or removes a key (never reuse an
  // old name for something else); docs/design.md, "Configuration across
  // releases". No key has been renamed or removed so far.
  static const std::vector<RetiredKey> keys = {};
  return keys;
}

Result<Config> ParseConfig(std::string_view text, std::string_view source_name,
                           std::vector<std::string>* problems_out,
                           const ConfigParseOptions& options) {
  std::vector<std::string> problems, warnings;
  Config config;
  try {
    toml::table root = toml::parse(text, source_name);
    WalkState st{.source = source_name,
                 .config = config,
                 .retired = options.retired ? *options.retired : RetiredConfigKeys()};
    CollectKeyLines(root, "", st.keys);
    Walk(root, "", st);
    // toml++ iterates keys sorted by name; report them in file order.
    auto by_line = [](const Problem& a, const Problem& b) { return a.first < b.first; };
    std::stable_sort(st.problems.begin(), st.problems.end(), by_line);
    std::stable_sort(st.warnings.begin(), st.warnings.end(), by_line);
    for (auto& p : st.problems) problems.push_back(std::move(p.second));
    for (auto& w : st.warnings) warnings.push_back(std::move(w.second));
  } catch (const toml::parse_error& e) {
    std::string where(source_name);
    if (e.source().begin.line > 0) {
      where += ":" + std::to_string(e.source().begin.line) + ":" +
               std::to_string(e.source().begin.column);
    }
    problems.push_back(where + ": not valid TOML: " + std::string(e.description()));
  }
  if (problems.empty()) CrossChecks(config, source_name, problems);
  if (problems_out) *problems_out = problems;
  if (options.warnings) *options.warnings = std::move(warnings);
  if (!problems.empty()) return Problems(problems);
  return config;
}

Result<Config> LoadConfigFile(const std::filesystem::path& path, std::vector<std::string>* problems,
                              const ConfigParseOptions& options) {
  if (options.warnings) options.warnings->clear();
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    Status s = Status::InvalidArgument("", path.string() + ": is a directory, not a config file");
    if (problems) *problems = {s.message()};
    return s;
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    Status s = std::filesystem::exists(path, ec)
                   ? Status::PermissionDenied(
                         path.string() + ": cannot read the config file (check its permissions)")
                   : Status::NotFound(path.string() + ": no such config file");
    if (problems) *problems = {s.message()};
    return s;
  }
  std::stringstream buf;
  buf << in.rdbuf();
  return ParseConfig(buf.str(), path.string(), problems, options);
}

Status SetConfigValue(Config& config, std::string_view key, std::string_view value,
                      std::string_view source_name) {
  const KeySpec* spec = FindKey(key);
  if (!spec) {
    return Status::InvalidArgument(
        "", std::string(source_name) + ": unknown key '" + std::string(key) + "'" + Suggest(key));
  }
  Value v = std::string(value);
  if (spec->kind == Kind::kInt || spec->kind == Kind::kSize) {
    int64_t n = 0;
    auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
    if (ec == std::errc() && ptr == value.data() + value.size()) v = n;
  }
  Config updated = config;
  std::string why = Apply(*spec, v, updated);
  if (!why.empty()) {
    return Status::InvalidArgument("",
                                   std::string(source_name) + ": " + std::string(key) + ": " + why);
  }
  Status s = ValidateConfig(updated, source_name);
  if (!s.ok()) return s;
  config = std::move(updated);
  return Status::Ok();
}

Status CheckConfigFiles(const Config& config) {
  for (auto [key, path] : {std::pair<std::string_view, const std::string*>{
                               "http.device_tokens_file", &config.http.device_tokens_file},
                           {"uplink.tls.ca_file", &config.uplink.tls.ca_file},
                           {"uplink.tls.cert_file", &config.uplink.tls.cert_file},
                           {"uplink.tls.key_file", &config.uplink.tls.key_file},
                           {"alerts.low_stock_file", &config.alerts.low_stock_file},
                           {"perishables.hold_times_file", &config.perishables.hold_times_file},
                           {"cold_chain.sensors_file", &config.cold_chain.sensors_file}}) {
    Status s = CheckReadable(key, *path);
    if (!s.ok()) return s;
  }
  if (!config.alerts.low_stock_file.empty()) {
    auto loaded = LoadLowStockFile(config.alerts.low_stock_file);
    if (!loaded.ok()) return loaded.status();
  }
  if (!config.perishables.hold_times_file.empty()) {
    auto loaded = LoadHoldTimesFile(config.perishables.hold_times_file);
    if (!loaded.ok()) return loaded.status();
  }
  if (!config.cold_chain.sensors_file.empty()) {
    auto loaded = LoadSensorsFile(config.cold_chain.sensors_file);
    if (!loaded.ok()) return loaded.status();
  }
  return Status::Ok();
}

namespace {

// Reads a list file named by config key `key`, a line at a time: '#'
// comments and blank lines are skipped; `each` gets the line (comment cut)
// and its words and returns "" or what is wrong with it, which becomes
// "KEY: FILE:LINE: problem".
Status ForEachListLine(
    const std::filesystem::path& path, const std::string& key,
    const std::function<std::string(const std::string& line, std::istringstream& words)>& each) {
  std::ifstream in(path);
  if (!in) return Status::NotFound(key + ": " + path.string() + ": cannot be read");
  std::string line;
  for (int lineno = 1; std::getline(in, line); ++lineno) {
    if (auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    std::istringstream words(line);
    if (std::string why = each(line, words); !why.empty()) {
      return Status::InvalidArgument(
          key, key + ": " + path.string() + ":" + std::to_string(lineno) + ": " + why);
    }
  }
  return Status::Ok();
}

}  // namespace

Result<std::map<std::string, int64_t>> LoadLowStockFile(const std::filesystem::path& path) {
  std::map<std::string, int64_t> out;
  Status st = ForEachListLine(
      path, "alerts.low_stock_file",
      [&](const std::string& line, std::istringstream& words) -> std::string {
        std::string sku, number, extra;
        words >> sku;
        if (!(words >> number) || (words >> extra)) {
          return "expected \"SKU THRESHOLD\" (two words), got " + Quote(line);
        }
        if (sku.size() > 64) return "sku longer than 64 characters";
        int64_t n = 0;
        auto [ptr, ec] = std::from_chars(number.data(), number.data() + number.size(), n);
        if (ec != std::errc() || ptr != number.data() + number.size() || n < -1 || n > 1000000000) {
          return "threshold must be an integer from -1 (off) to 1000000000, got " + Quote(number);
        }
        if (!out.emplace(sku, n).second) return "sku " + Quote(sku) + " is listed twice";
        return "";
      });
  if (!st.ok()) return st;
  return out;
}

namespace {

// "SKU" format of the journal: 1..64 printable ASCII characters.
bool PrintableWord(const std::string& s, size_t max) {
  return !s.empty() && s.size() <= max &&
         std::all_of(s.begin(), s.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

bool ParseInt64(const std::string& text, int64_t& v) {
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  return ec == std::errc() && ptr == text.data() + text.size();
}

}  // namespace

Result<std::map<std::string, Millis>> LoadHoldTimesFile(const std::filesystem::path& path) {
  std::map<std::string, Millis> out;
  Status st = ForEachListLine(
      path, "perishables.hold_times_file",
      [&](const std::string& line, std::istringstream& words) -> std::string {
        std::string sku, hold, extra;
        words >> sku;
        if (!(words >> hold) || (words >> extra)) {
          return "expected \"SKU DURATION\" (two words, e.g. \"chicken-roast 2h\"), got " +
                 Quote(line);
        }
        if (!PrintableWord(sku, 64)) return "sku must be 1..64 printable characters";
        auto d = ParseDuration(hold);
        if (!d.ok()) return d.status().message();
        if (d->count() < 60 * kSec || d->count() > 7 * kDay) {
          return "hold time must be between 1m and 7d, got " + Quote(hold);
        }
        if (!out.emplace(sku, *d).second) return "sku " + Quote(sku) + " is listed twice";
        return "";
      });
  if (!st.ok()) return st;
  return out;
}

Result<std::map<std::string, SensorLimitLine>> LoadSensorsFile(const std::filesystem::path& path) {
  std::map<std::string, SensorLimitLine> out;
  Status st = ForEachListLine(
      path, "cold_chain.sensors_file",
      [&](const std::string& line, std::istringstream& words) -> std::string {
        std::string id, min_text, max_text;
        words >> id;
        if (!(words >> min_text >> max_text)) {
          return "expected \"SENSOR_ID MIN MAX [grace=DUR] [silent_after=DUR] [metric=NAME] "
                 "[LOCATION...]\", got " +
                 Quote(line);
        }
        if (!PrintableWord(id, 64)) return "sensor id must be 1..64 printable characters";
        SensorLimitLine l;
        if (!ParseInt64(min_text, l.min_value)) {
          return "MIN must be an integer (milli-Celsius for temp_mc), got " + Quote(min_text);
        }
        if (!ParseInt64(max_text, l.max_value)) {
          return "MAX must be an integer (milli-Celsius for temp_mc), got " + Quote(max_text);
        }
        if (l.min_value > l.max_value) {
          return "MIN " + min_text + " is above MAX " + max_text;
        }
        std::string word, location;
        while (words >> word) {
          auto opt_duration = [&](std::string_view name,
                                  std::optional<Millis>& field) -> std::string {
            auto d = ParseDuration(word.substr(name.size() + 1));
            if (!d.ok()) return std::string(name) + ": " + d.status().message();
            if (d->count() < 0 || d->count() > 7 * kDay) {
              return std::string(name) + " must be between 0s and 7d, got " + Quote(word);
            }
            field = *d;
            return "";
          };
          if (location.empty() && word.rfind("grace=", 0) == 0) {
            if (auto why = opt_duration("grace", l.grace); !why.empty()) return why;
          } else if (location.empty() && word.rfind("silent_after=", 0) == 0) {
            if (auto why = opt_duration("silent_after", l.silent_after); !why.empty()) return why;
          } else if (location.empty() && word.rfind("metric=", 0) == 0) {
            l.metric = word.substr(7);
            if (!PrintableWord(l.metric, 64)) return "metric must be 1..64 printable characters";
          } else {
            location += location.empty() ? word : " " + word;
          }
        }
        if (location.size() > 64) return "location is longer than 64 bytes";
        l.location = location;
        if (!out.emplace(id, l).second) return "sensor " + Quote(id) + " is listed twice";
        return "";
      });
  if (!st.ok()) return st;
  return out;
}

std::string ConfigToToml(const Config& config) {
  Config copy = config;  // the accessors take a mutable Config
  std::string out;
  std::string_view section = "\x01";
  for (const auto& k : Keys()) {
    std::string_view sec = SectionOf(k.name);
    if (sec != section) {
      if (!out.empty()) out += "\n";
      // Appended piece by piece: `"[" + std::string(sec)` inserts at the
      // front of a temporary, which GCC 12 at -O3 misreads as an
      // overlapping memcpy (-Wrestrict).
      out += '[';
      out += sec;
      out += "]\n";
      section = sec;
    }
    out += k.name.substr(sec.size() + 1);
    out += " = ";
    std::visit(
        [&](auto ref) {
          auto& v = ref(copy);
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, std::string>) {
            out += (k.secret && !v.empty()) ? Quote("***") : Quote(v);
          } else if constexpr (std::is_same_v<T, Millis>) {
            out += Quote(FormatDuration(v));
          } else {
            out += std::to_string(v);
          }
        },
        k.field);
    out += "\n";
  }
  return out;
}

std::vector<std::string> ConfigKeys() {
  std::vector<std::string> out;
  for (const auto& k : Keys()) out.emplace_back(k.name);
  return out;
}

}  // namespace storegw::gateway
