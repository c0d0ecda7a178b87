#include "storegw/hq/app/config.h"

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <optional>
#include <sstream>
#include <variant>

#include <libpq-fe.h>
#include <toml++/toml.h>

#include "storegw/config/config_text.h"
#include "storegw/http/listen.h"

namespace storegw::hq {
namespace {

using gateway::EditDistance;
using gateway::FormatDuration;
using gateway::ParseDuration;
using gateway::Quote;

// ------------------------------------------------------------ the key table

enum class Kind {
  kString,     // free text (may be empty)
  kConnInfo,   // libpq connection string or URI, required; its password is secret
  kEnum,       // one of `choices`
  kListen,     // HOST:PORT, required
  kOptListen,  // HOST:PORT or ""
  kMqttUrl,    // scheme://host:port or ""
  kTopic,      // MQTT topic prefix
  kGroup,      // shared subscription group name or ""
  kClientId,   // MQTT client id or ""
  kPath,       // a file path or ""
  kInt,        // TOML integer within [min, max]
  kDuration,   // TOML string "5s" within [min, max] milliseconds
};

using Field = std::variant<std::string*, int*, Millis*>;

struct Key {
  std::string_view name;  // dotted: "mqtt.tls.ca_file"
  Kind kind;
  Field field;
  int64_t min = 0;  // kInt; milliseconds for kDuration
  int64_t max = 0;
  std::vector<std::string_view> choices = {};
  bool secret = false;  // never printed or echoed
};

constexpr int64_t kSec = 1000;
constexpr int64_t kDay = 86400 * kSec;

// The one table of keys, bound to `c`, in the order HqConfigToToml prints
// them. Defaults are HqConfig's member initialisers.
std::vector<Key> KeysOf(HqConfig& c) {
  return {
      {.name = "hq.database", .kind = Kind::kConnInfo, .field = &c.hq.database, .secret = true},
      {.name = "hq.max_batches_per_txn",
       .kind = Kind::kInt,
       .field = &c.hq.max_batches_per_txn,
       .min = 1,
       .max = 10000},
      {.name = "hq.max_txn_delay",
       .kind = Kind::kDuration,
       .field = &c.hq.max_txn_delay,
       .min = 0,
       .max = kSec},

      {.name = "mqtt.url", .kind = Kind::kMqttUrl, .field = &c.mqtt.url},
      {.name = "mqtt.topic_prefix", .kind = Kind::kTopic, .field = &c.mqtt.topic_prefix},
      {.name = "mqtt.share_group", .kind = Kind::kGroup, .field = &c.mqtt.share_group},
      {.name = "mqtt.client_id", .kind = Kind::kClientId, .field = &c.mqtt.client_id},
      {.name = "mqtt.username", .kind = Kind::kString, .field = &c.mqtt.username},
      {.name = "mqtt.password", .kind = Kind::kString, .field = &c.mqtt.password, .secret = true},
      {.name = "mqtt.session_expiry",
       .kind = Kind::kDuration,
       .field = &c.mqtt.session_expiry,
       .min = 0,
       .max = 7 * kDay},
      {.name = "mqtt.tls.ca_file", .kind = Kind::kPath, .field = &c.mqtt.tls.ca_file},
      {.name = "mqtt.tls.cert_file", .kind = Kind::kPath, .field = &c.mqtt.tls.cert_file},
      {.name = "mqtt.tls.key_file", .kind = Kind::kPath, .field = &c.mqtt.tls.key_file},

      {.name = "http.listen", .kind = Kind::kListen, .field = &c.http.listen},

      {.name = "https.listen", .kind = Kind::kOptListen, .field = &c.https.listen},
      {.name = "https.cert_file", .kind = Kind::kPath, .field = &c.https.cert_file},
      {.name = "https.key_file", .kind = Kind::kPath, .field = &c.https.key_file},
      {.name = "https.client_ca_file", .kind = Kind::kPath, .field = &c.https.client_ca_file},

      {.name = "log.level",
       .kind = Kind::kEnum,
       .field = &c.log.level,
       .choices = {"trace", "debug", "info", "warn", "error", "critical", "off"}},

      {.name = "fleet.offline_after",
       .kind = Kind::kDuration,
       .field = &c.fleet.offline_after,
       .min = kSec,
       .max = 7 * kDay},

      {.name = "status.max_offline",
       .kind = Kind::kDuration,
       .field = &c.status.max_offline,
       .min = 0,
       .max = 365 * kDay},
  };
}

std::string_view SectionOf(std::string_view key) {
  auto dot = key.rfind('.');
  return dot == std::string_view::npos ? std::string_view{} : key.substr(0, dot);
}

bool IsSection(const std::vector<Key>& keys, std::string_view name) {
  for (const auto& k : keys) {
    for (std::string_view s = SectionOf(k.name); !s.empty(); s = SectionOf(s)) {
      if (s == name) return true;
    }
  }
  return false;
}

// " (did you mean 'mqtt.share_group'?)" for a near miss, else "". A key in
// the wrong section is matched by its last part.
std::string Suggest(const std::vector<Key>& keys, std::string_view unknown, bool is_section) {
  std::vector<std::string_view> names;
  for (const auto& k : keys) {
    if (!is_section) {
      names.push_back(k.name);
    } else {
      for (std::string_view s = SectionOf(k.name); !s.empty(); s = SectionOf(s)) names.push_back(s);
    }
  }
  auto leaf = [](std::string_view n) {
    auto dot = n.rfind('.');
    return dot == std::string_view::npos ? n : n.substr(dot + 1);
  };
  std::string_view best;
  size_t best_d = 4;
  for (auto n : names) {
    size_t d = EditDistance(unknown, n);
    if (!is_section && leaf(unknown) == leaf(n)) d = std::min<size_t>(d, 1);
    if (d < best_d) {
      best_d = d;
      best = n;
    }
  }
  return best.empty() ? "" : " (did you mean '" + std::string(best) + "'?)";
}

std::string TypeName(const toml::node& n) {
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
    default:
      return "a date or time";
  }
}

std::string Shown(const Key& k, std::string_view v) {
  if (k.secret) return "(hidden)";
  if (v.size() > 80) return Quote(v.substr(0, 80)) + "...";
  return Quote(v);
}

bool Printable(std::string_view v) {
  return std::all_of(v.begin(), v.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

std::string_view SchemeOf(std::string_view url) {
  auto pos = url.find("://");
  return pos == std::string_view::npos ? std::string_view{} : url.substr(0, pos);
}

bool IsTlsScheme(std::string_view scheme) {
  return scheme == "ssl" || scheme == "mqtts" || scheme == "wss";
}

// "" when `v` is fine for `k`, else why not (without the key's name).
std::string CheckString(const Key& k, std::string_view v) {
  switch (k.kind) {
    case Kind::kString:
      return "";
    case Kind::kPath:
      return v.find('\0') == std::string_view::npos ? "" : "contains a NUL character";
    case Kind::kConnInfo: {
      if (v.empty()) {
        return "must not be empty (a libpq connection string such as \"host=db.example "
               "dbname=storegw user=hq\" or a URI such as \"postgresql://hq@db.example/storegw\")";
      }
      const std::string s(v);
      char* err = nullptr;
      PQconninfoOption* opts = PQconninfoParse(s.c_str(), &err);
      if (err) PQfreemem(err);  // may quote parts of the value, password included
      if (!opts) {
        return "is not a libpq connection string (keyword=value pairs such as \"host=db.example "
               "dbname=storegw\") nor a URI (\"postgresql://user@host:5432/dbname\"); the value "
               "is not shown because it may hold a password";
      }
      PQconninfoFree(opts);
      return "";
    }
    case Kind::kEnum: {
      for (auto c : k.choices) {
        if (v == c) return "";
      }
      std::string list;
      for (size_t i = 0; i < k.choices.size(); ++i) {
        list += (i == 0 ? "" : i + 1 == k.choices.size() ? " or " : ", ");
        list += Quote(k.choices[i]);
      }
      return "must be " + list + ", got " + Shown(k, v);
    }
    case Kind::kListen:
    case Kind::kOptListen: {
      if (v.empty() && k.kind == Kind::kOptListen) return "";
      auto hp = http::ParseListenAddress(v);
      return hp.ok() ? "" : hp.status().message();
    }
    case Kind::kMqttUrl: {
      if (v.empty()) return "";
      std::string_view scheme = SchemeOf(v);
      static const std::vector<std::string_view> kSchemes = {"tcp",   "mqtt", "ssl",
                                                             "mqtts", "ws",   "wss"};
      if (std::find(kSchemes.begin(), kSchemes.end(), scheme) == kSchemes.end() ||
          v.size() <= scheme.size() + 3) {
        return "expected an MQTT URL such as \"tcp://broker:1883\" or \"ssl://broker:8883\" "
               "(tcp, mqtt, ssl, mqtts, ws or wss), or \"\" for no MQTT ingress, got " +
               Shown(k, v);
      }
      if (v.substr(scheme.size() + 3).find('@') != std::string_view::npos) {
        return "must not hold credentials (user@host): use mqtt.username and mqtt.password; the "
               "value is not shown";
      }
      return "";
    }
    case Kind::kTopic:
      if (v.empty() || v.size() > 128 || v.front() == '/' || v.back() == '/' ||
          v.find_first_of("+#") != std::string_view::npos ||
          v.find("//") != std::string_view::npos) {
        return "must be 1 to 128 characters, without '+', '#', empty levels or a leading or "
               "trailing '/', got " +
               Shown(k, v);
      }
      return "";
    case Kind::kGroup:
      if (v.size() > 64 || !Printable(v) || v.find_first_of("/+#") != std::string_view::npos) {
        return "must be at most 64 printable characters without spaces, '/', '+' or '#' "
               "(\"\" for a plain subscription), got " +
               Shown(k, v);
      }
      return "";
    case Kind::kClientId:
      if (v.size() > 128 || !Printable(v)) {
        return "must be at most 128 printable ASCII characters without spaces, got " + Shown(k, v);
      }
      return "";
    default:
      return "internal: not a string kind";
  }
}

using Value = std::variant<std::string, int64_t>;

// Checks `value` against `k` and stores it; "" on success, else the reason.
std::string Apply(const Key& k, const Value& value) {
  const std::string* s = std::get_if<std::string>(&value);
  const int64_t* i = std::get_if<int64_t>(&value);
  switch (k.kind) {
    case Kind::kInt:
      if (!i) return "expected an integer, got the string " + Shown(k, *s);
      if (*i < k.min || *i > k.max) {
        return "must be between " + std::to_string(k.min) + " and " + std::to_string(k.max) +
               ", got " + std::to_string(*i);
      }
      *std::get<int*>(k.field) = static_cast<int>(*i);
      return "";
    case Kind::kDuration: {
      if (!s) {
        return "expected a duration string with a unit (e.g. \"90s\"), got the integer " +
               std::to_string(*i);
      }
      auto d = ParseDuration(*s);
      if (!d.ok()) return d.status().message();
      if (d->count() < k.min || d->count() > k.max) {
        return "must be between " + FormatDuration(Millis(k.min)) + " and " +
               FormatDuration(Millis(k.max)) + ", got " + Quote(*s);
      }
      *std::get<Millis*>(k.field) = *d;
      return "";
    }
    default: {
      if (!s) {
        return "expected a string, got " +
               (k.secret ? std::string("an integer") : "the integer " + std::to_string(*i));
      }
      std::string why = CheckString(k, *s);
      if (!why.empty()) return why;
      *std::get<std::string*>(k.field) = *s;
      return "";
    }
  }
}

// A problem and the line it is on (0: unknown), to report in file order.
using Problem = std::pair<uint32_t, std::string>;

void Walk(const toml::table& table, const std::string& prefix, std::string_view source,
          const std::vector<Key>& keys, std::vector<Problem>& out) {
  for (const auto& [key, node] : table) {
    const std::string name =
        prefix.empty() ? std::string(key.str()) : prefix + "." + std::string(key.str());
    const toml::source_region& src = key.source().begin.line > 0 ? key.source() : node.source();
    std::string where(source);
    if (src.begin.line > 0) where += ":" + std::to_string(src.begin.line);
    auto problem = [&](const std::string& msg) {
      out.emplace_back(src.begin.line, where + ": " + msg);
    };
    auto spec =
        std::find_if(keys.begin(), keys.end(), [&](const Key& k) { return k.name == name; });
    if (spec != keys.end()) {
      Value v;
      if (auto str = node.as_string()) {
        v = str->get();
      } else if (auto integer = node.as_integer()) {
        v = integer->get();
      } else {
        const std::string want = spec->kind == Kind::kInt ? "an integer"
                                 : spec->kind == Kind::kDuration
                                     ? "a duration string (e.g. \"90s\")"
                                     : "a string";
        problem(name + ": expected " + want + ", got " + TypeName(node));
        continue;
      }
      std::string why = Apply(*spec, v);
      if (!why.empty()) problem(name + ": " + why);
    } else if (IsSection(keys, name)) {
      if (const toml::table* sub = node.as_table()) {
        Walk(*sub, name, source, keys, out);
      } else {
        problem(name + ": expected a table ([" + name + "]), got " + TypeName(node));
      }
    } else if (node.is_table()) {
      problem("unknown section '" + name + "'" + Suggest(keys, name, true));
    } else {
      problem("unknown key '" + name + "'" + Suggest(keys, name, false));
    }
  }
}

void CrossChecks(const HqConfig& c, std::string_view source, std::vector<std::string>& out) {
  const std::string where(source);
  const bool mqtt_tls = IsTlsScheme(SchemeOf(c.mqtt.url));
  if (c.mqtt.url.empty() && c.https.listen.empty()) {
    out.push_back(where +
                  ": mqtt.url and https.listen are both empty: storegw-hq would receive "
                  "nothing (set mqtt.url, https.listen, or both)");
  }
  if (c.mqtt.tls.cert_file.empty() != c.mqtt.tls.key_file.empty()) {
    out.push_back(where + ": " +
                  (c.mqtt.tls.cert_file.empty() ? "mqtt.tls.cert_file" : "mqtt.tls.key_file") +
                  ": must be set together with " +
                  (c.mqtt.tls.cert_file.empty() ? "mqtt.tls.key_file" : "mqtt.tls.cert_file") +
                  " (a client certificate needs its key)");
  }
  if (!mqtt_tls && !c.mqtt.url.empty() &&
      (!c.mqtt.tls.ca_file.empty() || !c.mqtt.tls.cert_file.empty())) {
    out.push_back(where + ": mqtt.tls: TLS files are set but mqtt.url " + Quote(c.mqtt.url) +
                  " is not a TLS URL (use ssl://, mqtts:// or wss://): the link would be plain "
                  "text");
  }
  if (!c.https.listen.empty() && (c.https.cert_file.empty() || c.https.key_file.empty())) {
    out.push_back(where + ": https.listen: " + Quote(c.https.listen) +
                  " needs https.cert_file and https.key_file (the server's certificate and key)");
  }
  if (c.https.listen.empty() && (!c.https.cert_file.empty() || !c.https.key_file.empty() ||
                                 !c.https.client_ca_file.empty())) {
    out.push_back(where +
                  ": https: certificate files are set but https.listen is empty: set "
                  "https.listen to receive batches over HTTPS, or remove them");
  }
  auto h = http::ParseListenAddress(c.http.listen);
  auto s = http::ParseListenAddress(c.https.listen);
  if (!c.https.listen.empty() && h.ok() && s.ok() && h->port != 0 && h->port == s->port) {
    out.push_back(where + ": https.listen: " + Quote(c.https.listen) +
                  " is the same port as http.listen " + Quote(c.http.listen) +
                  ": give each listener a port of its own");
  }
}

Status FromProblems(const std::vector<std::string>& problems) {
  std::string msg = problems.front();
  if (problems.size() > 1) {
    msg += " (and " + std::to_string(problems.size() - 1) + " more problem" +
           (problems.size() > 2 ? "s" : "") + ")";
  }
  return Status::InvalidArgument("", msg);
}

Status CheckReadable(std::string_view key, const std::string& path) {
  if (path.empty()) return Status::Ok();
  std::error_code ec;
  auto st = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(st)) {
    return Status::NotFound(std::string(key) + ": " + path + ": no such file");
  }
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

// ------------------------------------------------------------ MaskConnInfo

bool StartsWith(std::string_view s, std::string_view p) {
  return s.substr(0, p.size()) == p;
}

std::optional<std::string> MaskUri(std::string_view uri) {
  const size_t start = uri.find("://") + 3;
  std::string out(uri.substr(0, start));
  std::string_view rest = uri.substr(start);
  const size_t auth_end = std::min(rest.find('/'), rest.find('?'));
  std::string_view authority = rest.substr(0, std::min(auth_end, rest.size()));
  std::string_view tail = rest.substr(authority.size());
  if (auto at = authority.rfind('@'); at != std::string_view::npos) {
    std::string_view userinfo = authority.substr(0, at);
    if (auto colon = userinfo.find(':'); colon != std::string_view::npos) {
      out += userinfo.substr(0, colon);
      out += ":***";
    } else {
      out += userinfo;
    }
    out += authority.substr(at);
  } else {
    out += authority;
  }
  // Query parameters: password=... (and anything after it in the same pair).
  if (auto q = tail.find('?'); q != std::string_view::npos) {
    out += tail.substr(0, q + 1);
    std::string_view query = tail.substr(q + 1);
    bool first = true;
    while (!query.empty()) {
      size_t amp = query.find('&');
      std::string_view pair = query.substr(0, amp);
      if (!first) out += '&';
      first = false;
      if (StartsWith(pair, "password=")) {
        out += "password=***";
      } else {
        out += pair;
      }
      if (amp == std::string_view::npos) break;
      query = query.substr(amp + 1);
    }
  } else {
    out += tail;
  }
  return out;
}

// keyword = value pairs; values bare or in single quotes with \' and \\.
std::optional<std::string> MaskKeywords(std::string_view s) {
  std::string out;
  size_t i = 0;
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (i < s.size()) {
    if (space(s[i])) {
      out += s[i++];
      continue;
    }
    size_t k = i;
    while (i < s.size() && s[i] != '=' && !space(s[i])) ++i;
    std::string_view keyword = s.substr(k, i - k);
    out += keyword;
    while (i < s.size() && space(s[i])) out += s[i++];
    if (i >= s.size() || s[i] != '=') return std::nullopt;
    out += s[i++];
    while (i < s.size() && space(s[i])) out += s[i++];
    size_t v = i;
    if (i < s.size() && s[i] == '\'') {
      ++i;
      while (i < s.size() && s[i] != '\'') i += (s[i] == '\\' && i + 1 < s.size()) ? 2 : 1;
      if (i >= s.size()) return std::nullopt;
      ++i;
    } else {
      while (i < s.size() && !space(s[i])) i += (s[i] == '\\' && i + 1 < s.size()) ? 2 : 1;
    }
    out += keyword == "password" ? std::string_view("***") : s.substr(v, i - v);
  }
  return out;
}

}  // namespace

std::string MaskConnInfo(std::string_view conninfo) {
  std::optional<std::string> masked;
  if (StartsWith(conninfo, "postgresql://") || StartsWith(conninfo, "postgres://")) {
    masked = MaskUri(conninfo);
  } else {
    masked = MaskKeywords(conninfo);
  }
  return masked ? *masked : "(not shown: not a connection string)";
}

Result<HqConfig> ParseHqConfig(std::string_view text, std::string_view source_name,
                               std::vector<std::string>* problems_out) {
  std::vector<std::string> problems;
  HqConfig config;
  const std::vector<Key> keys = KeysOf(config);
  try {
    toml::table root = toml::parse(text, source_name);
    std::vector<Problem> found;
    Walk(root, "", source_name, keys, found);
    // toml++ iterates keys sorted by name; report them in file order.
    std::stable_sort(found.begin(), found.end(),
                     [](const Problem& a, const Problem& b) { return a.first < b.first; });
    for (auto& p : found) problems.push_back(std::move(p.second));
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
  if (!problems.empty()) return FromProblems(problems);
  return config;
}

Result<HqConfig> LoadHqConfigFile(const std::filesystem::path& path,
                                  std::vector<std::string>* problems) {
  auto fail = [&](Status s) -> Result<HqConfig> {
    if (problems) *problems = {s.message()};
    return s;
  };
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    return fail(Status::InvalidArgument("", path.string() + ": is a directory, not a config file"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return fail(std::filesystem::exists(path, ec)
                    ? Status::PermissionDenied(path.string() +
                                               ": cannot read the config file (check its "
                                               "permissions)")
                    : Status::NotFound(path.string() + ": no such config file"));
  }
  std::stringstream buf;
  buf << in.rdbuf();
  return ParseHqConfig(buf.str(), path.string(), problems);
}

Status CheckHqConfigFiles(const HqConfig& c) {
  for (auto [key, path] :
       {std::pair<std::string_view, const std::string*>{"mqtt.tls.ca_file", &c.mqtt.tls.ca_file},
        {"mqtt.tls.cert_file", &c.mqtt.tls.cert_file},
        {"mqtt.tls.key_file", &c.mqtt.tls.key_file},
        {"https.cert_file", &c.https.cert_file},
        {"https.key_file", &c.https.key_file},
        {"https.client_ca_file", &c.https.client_ca_file}}) {
    if (Status s = CheckReadable(key, *path); !s.ok()) return s;
  }
  return Status::Ok();
}

std::string HqConfigToToml(const HqConfig& config) {
  HqConfig copy = config;  // the table binds to a mutable config
  std::string out;
  std::string_view section = "\x01";
  for (const Key& k : KeysOf(copy)) {
    std::string_view sec = SectionOf(k.name);
    if (sec != section) {
      if (!out.empty()) out += '\n';
      out += '[';
      out += sec;
      out += "]\n";
      section = sec;
    }
    out += k.name.substr(sec.size() + 1);
    out += " = ";
    if (auto* s = std::get_if<std::string*>(&k.field)) {
      if (k.kind == Kind::kConnInfo) {
        out += Quote(MaskConnInfo(**s));
      } else {
        out += (k.secret && !(*s)->empty()) ? Quote("***") : Quote(**s);
      }
    } else if (auto* d = std::get_if<Millis*>(&k.field)) {
      out += Quote(FormatDuration(**d));
    } else {
      out += std::to_string(*std::get<int*>(k.field));
    }
    out += '\n';
  }
  return out;
}

std::vector<std::string> HqConfigKeys() {
  HqConfig c;
  std::vector<std::string> out;
  for (const Key& k : KeysOf(c)) out.emplace_back(k.name);
  return out;
}

std::string EffectiveClientId(const HqConfig& config) {
  if (!config.mqtt.client_id.empty()) return config.mqtt.client_id;
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') {
    std::snprintf(host, sizeof host, "pid%d", static_cast<int>(getpid()));
  }
  std::string id = "storegw-hq-";
  for (const char* p = host; *p; ++p) {
    id += (*p > 0x20 && *p < 0x7f) ? *p : '_';
  }
  return id.substr(0, 128);
}

}  // namespace storegw::hq
