// Unit tests of the config loader (storegw/config/config.h): defaults, every key,
// every bad value and unknown key named with key and file, duration, size
// and listen-address parsing, and the packaged default config file.
#include <doctest/doctest.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "storegw/config/config.h"
#include "test_util.h"

using namespace storegw::gateway;
using namespace std::chrono_literals;
using storegw::Status;
using storegw::test::TempDir;

namespace {

const char kFile[] = "storegw.toml";

std::string ErrorOf(std::string_view toml) {
  auto r = ParseConfig(toml, kFile);
  REQUIRE_MESSAGE(!r.ok(), "expected an error for:\n" << toml);
  return r.status().message();
}

// A config that sets every key to something other than its default.
const char kEveryKey[] = R"(
[gateway]
store_id = "store-42"
gateway_id = "gw_B.2"
data_dir = "/var/lib/storegw"

[http]
listen = "[::1]:9090"
device_tokens_file = "/etc/storegw/devices.tokens"
max_body_bytes = 1048576
threads = 64

[journal]
max_bytes = 536870912
retention = "36h"

[uplink]
transport = "https"
url = "https://hq.example/ingest"
topic_prefix = "chain/v2"
ack = "hq"
max_inflight = 4
batch_events = 1000
max_message_bytes = 1048576
backoff_initial = "250ms"
backoff_max = "5m"
hq_ack_timeout = "45s"
ack_timeout = "20s"
connect_timeout = "7s"
compression = "zstd"
compression_level = 9
batch_encoding = "columnar"
batch_sizing = "fixed"
live_lane = "off"
client_id = "storegw-custom"
username = "store42"
password = "s3cret-pa55"
session_expiry = "1d"
request_timeout = "12s"
proxy = "http://proxy.example:3128"

[uplink.tls]
ca_file = "/etc/storegw/ca.pem"
cert_file = "/etc/storegw/client.pem"
key_file = "/etc/storegw/client.key"

[log]
level = "debug"
format = "json"

[devices]
silent_after = "15m"
opening_hours = "22:00-06:00"

[metrics]
max_devices = 7

[alerts]
count_mismatch_threshold = 5
low_stock_default = 3
low_stock_file = "/etc/storegw/low-stock.txt"

[changes]
max_clients = 128
max_lag = 500
keep_alive = "30s"

[perishables]
default_hold = "3h"
escalate_after = "45m"
hold_times_file = "/etc/storegw/hold-times.txt"

[cold_chain]
metric = "temp_dc"
grace = "15m"
clear_after = "10m"
silent_after = "30m"
sensors_file = "/etc/storegw/sensors.txt"

[status]
listen = "127.0.0.1:9100"
token = "status-token-0123456789"
)";

// "key = value" line of `key` in ConfigToToml(c).
std::string TomlLine(const Config& c, const std::string& dotted) {
  std::string section = dotted.substr(0, dotted.rfind('.'));
  std::string leaf = dotted.substr(dotted.rfind('.') + 1);
  std::istringstream in(ConfigToToml(c));
  std::string line, current;
  while (std::getline(in, line)) {
    if (!line.empty() && line.front() == '[') current = line.substr(1, line.size() - 2);
    if (current == section && line.rfind(leaf + " = ", 0) == 0) return line;
  }
  return "";
}

}  // namespace

TEST_CASE("gateway config: an empty file gives the embedded defaults (docs/design.md, README: Configuration)") {
  auto r = ParseConfig("", kFile);
  REQUIRE(r.ok());
  const Config& c = *r;
  CHECK(c.gateway.store_id == "store-0001");
  CHECK(c.gateway.gateway_id == "gw-01");
  CHECK(c.gateway.data_dir == "./storegw-data");
  CHECK(c.http.listen == "127.0.0.1:8080");
  CHECK(c.http.device_tokens_file.empty());
  CHECK(c.http.max_body_bytes == 4u << 20);
  CHECK(c.http.threads == 32);
  CHECK(c.journal.max_bytes == 1ull << 30);
  CHECK(c.journal.retention == 7 * 24h);
  CHECK(c.uplink.transport == "mqtt");
  CHECK(c.uplink.url == "tcp://127.0.0.1:1883");
  CHECK(c.uplink.topic_prefix == "retail/v1");
  CHECK(c.uplink.ack == "broker");
  CHECK(c.uplink.max_inflight == 8);
  CHECK(c.uplink.batch_events == 500);
  CHECK(c.uplink.max_message_bytes == 256u << 10);
  CHECK(c.uplink.backoff_initial == 1s);
  CHECK(c.uplink.backoff_max == 60s);
  CHECK(c.uplink.hq_ack_timeout == 30s);
  CHECK(c.uplink.client_id.empty());
  CHECK(c.uplink.tls.ca_file.empty());
  CHECK(c.log.level == "info");
  CHECK(c.log.format == "text");
  CHECK(ConfigToToml(c) == ConfigToToml(Config{}));
  // Empty sections and comments change nothing.
  auto r2 = ParseConfig("# nothing\n[gateway]\n[uplink.tls]\n", kFile);
  REQUIRE(r2.ok());
  CHECK(ConfigToToml(*r2) == ConfigToToml(Config{}));
}

TEST_CASE("gateway config: every key is parsed") {
  auto r = ParseConfig(kEveryKey, kFile);
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  const Config& c = *r;
  CHECK(c.gateway.store_id == "store-42");
  CHECK(c.gateway.gateway_id == "gw_B.2");
  CHECK(c.gateway.data_dir == "/var/lib/storegw");
  CHECK(c.http.listen == "[::1]:9090");
  CHECK(c.http.device_tokens_file == "/etc/storegw/devices.tokens");
  CHECK(c.http.max_body_bytes == 1048576);
  CHECK(c.http.threads == 64);
  CHECK(c.journal.max_bytes == 536870912);
  CHECK(c.journal.retention == 36h);
  CHECK(c.uplink.transport == "https");
  CHECK(c.uplink.url == "https://hq.example/ingest");
  CHECK(c.uplink.topic_prefix == "chain/v2");
  CHECK(c.uplink.ack == "hq");
  CHECK(c.uplink.max_inflight == 4);
  CHECK(c.uplink.batch_events == 1000);
  CHECK(c.uplink.max_message_bytes == 1048576);
  CHECK(c.uplink.backoff_initial == 250ms);
  CHECK(c.uplink.backoff_max == 5min);
  CHECK(c.uplink.hq_ack_timeout == 45s);
  CHECK(c.uplink.client_id == "storegw-custom");
  CHECK(c.uplink.username == "store42");
  CHECK(c.uplink.password == "s3cret-pa55");
  CHECK(c.uplink.tls.ca_file == "/etc/storegw/ca.pem");
  CHECK(c.uplink.tls.cert_file == "/etc/storegw/client.pem");
  CHECK(c.uplink.tls.key_file == "/etc/storegw/client.key");
  CHECK(c.log.level == "debug");
  CHECK(c.log.format == "json");
  CHECK(c.uplink.ack_timeout == 20s);
  CHECK(c.uplink.connect_timeout == 7s);
  CHECK(c.uplink.compression == "zstd");
  CHECK(c.uplink.compression_level == 9);
  CHECK(c.uplink.batch_encoding == "columnar");
  CHECK(c.uplink.batch_sizing == "fixed");
  CHECK(c.uplink.live_lane == "off");
  CHECK(c.uplink.session_expiry == std::chrono::hours(24));
  CHECK(c.uplink.request_timeout == 12s);
  CHECK(c.uplink.proxy == "http://proxy.example:3128");
  CHECK(c.alerts.count_mismatch_threshold == 5);
  CHECK(c.alerts.low_stock_default == 3);
  CHECK(c.alerts.low_stock_file == "/etc/storegw/low-stock.txt");
  CHECK(c.status.listen == "127.0.0.1:9100");
  CHECK(c.status.token == "status-token-0123456789");
  CHECK(c.devices.silent_after == 15min);
  CHECK(c.devices.opening_hours == "22:00-06:00");
  CHECK(c.metrics.max_devices == 7);
  CHECK(c.changes.max_clients == 128);
  CHECK(c.changes.max_lag == 500);
  CHECK(c.changes.keep_alive == 30s);
  CHECK(c.perishables.default_hold == 3h);
  CHECK(c.perishables.escalate_after == 45min);
  CHECK(c.perishables.hold_times_file == "/etc/storegw/hold-times.txt");
  CHECK(c.cold_chain.metric == "temp_dc");
  CHECK(c.cold_chain.grace == 15min);
  CHECK(c.cold_chain.clear_after == 10min);
  CHECK(c.cold_chain.silent_after == 30min);
  CHECK(c.cold_chain.sensors_file == "/etc/storegw/sensors.txt");

  // The test above covers the whole key table: every key differs from its
  // default here, so a key added to the table without a test shows up.
  for (const std::string& key : ConfigKeys()) {
    INFO("key " << key);
    CHECK(TomlLine(c, key) != "");
    CHECK(TomlLine(c, key) != TomlLine(Config{}, key));
  }
}

TEST_CASE(
    "gateway config: the effective config prints as TOML that parses back, with secrets masked") {
  auto r = ParseConfig(kEveryKey, kFile);
  REQUIRE(r.ok());
  std::string printed = ConfigToToml(*r);
  CHECK(printed.find("s3cret-pa55") == std::string::npos);
  CHECK(printed.find("password = \"***\"") != std::string::npos);
  // Paths of key files are not secrets.
  CHECK(printed.find("key_file = \"/etc/storegw/client.key\"") != std::string::npos);
  CHECK(printed.find("retention = \"36h\"") != std::string::npos);
  CHECK(printed.find("backoff_initial = \"250ms\"") != std::string::npos);
  auto back = ParseConfig(printed, "printed");
  REQUIRE_MESSAGE(back.ok(), back.status().message());
  CHECK(ConfigToToml(*back) == printed);
  CHECK(back->uplink.password == "***");  // masked on print, so not the secret
  // An empty password prints empty, not as a mask.
  CHECK(ConfigToToml(Config{}).find("password = \"\"") != std::string::npos);
  // Strings with quotes and backslashes survive.
  Config odd;
  odd.gateway.data_dir = "C:\\data \"x\"\tz";
  auto odd_back = ParseConfig(ConfigToToml(odd), "odd");
  REQUIRE(odd_back.ok());
  CHECK(odd_back->gateway.data_dir == odd.gateway.data_dir);
}

TEST_CASE("gateway config: unknown keys and sections are rejected by name, with file and line") {
  CHECK(ErrorOf("[uplink]\nbatchevents = 5\n") ==
        "storegw.toml:2: unknown key 'uplink.batchevents' (did you mean 'uplink.batch_events'?)");
  CHECK(ErrorOf("store_id = \"x\"\n") ==
        "storegw.toml:1: unknown key 'store_id' (did you mean 'gateway.store_id'?)");
  CHECK(ErrorOf("\n\n[uplnk]\nurl = \"tcp://x:1\"\n") ==
        "storegw.toml:3: unknown section 'uplnk' (did you mean 'uplink'?)");
  CHECK(ErrorOf("[http]\nlisten = \"127.0.0.1:1\"\nfrobnicate = true\n") ==
        "storegw.toml:3: unknown key 'http.frobnicate'");
  // Dotted keys and inline tables are TOML too.
  CHECK(ErrorOf("uplink.tls.ca = \"x\"\n").find("unknown key 'uplink.tls.ca'") !=
        std::string::npos);
  CHECK(ErrorOf("log = { level = \"info\", colour = true }\n").find("unknown key 'log.colour'") !=
        std::string::npos);
  // A known section with a value instead of a table.
  CHECK(ErrorOf("gateway = 5\n") ==
        "storegw.toml:1: gateway: expected a table ([gateway]), got an integer");
}

TEST_CASE("gateway config: each bad value names the key, the file and the line") {
  struct Case {
    std::string toml;
    std::string key;
    std::string says;
  };
  const Case cases[] = {
      {"[gateway]\nstore_id = \"\"", "gateway.store_id", "1 to 64 characters"},
      {"[gateway]\nstore_id = \"store 1\"", "gateway.store_id", "\"store 1\""},
      {"[gateway]\ngateway_id = \"gw/1\"", "gateway.gateway_id", "A-Z a-z 0-9 . _ -"},
      {"[gateway]\ngateway_id = \"" + std::string(65, 'g') + "\"", "gateway.gateway_id", "1 to 64"},
      {"[gateway]\ndata_dir = \"\"", "gateway.data_dir", "must not be empty"},
      {"[gateway]\ndata_dir = 7", "gateway.data_dir", "expected a string, got the integer 7"},
      {"[http]\nlisten = \"8080\"", "http.listen", "expected HOST:PORT"},
      {"[http]\nlisten = \"127.0.0.1:99999\"", "http.listen", "not a number 0..65535"},
      {"[http]\nlisten = \"127.0.0.1:http\"", "http.listen", "not a number 0..65535"},
      {"[http]\nlisten = \"::1:8080\"", "http.listen", "IPv6 address without brackets"},
      {"[http]\nlisten = \"[::1:8080\"", "http.listen", "expected HOST:PORT"},
      {"[http]\nlisten = \"[127.0.0.1]:8080\"", "http.listen", "no valid IPv6 address"},
      {"[http]\nlisten = \":8080\"", "http.listen", "has no host"},
      {"[http]\nmax_body_bytes = -1", "http.max_body_bytes", "between 1024 and"},
      {"[http]\nmax_body_bytes = \"4MB\"", "http.max_body_bytes", "integer number of bytes"},
      {"[http]\nmax_body_bytes = 1023", "http.max_body_bytes", "got 1023"},
      {"[http]\nthreads = 0", "http.threads", "between 1 and 1024"},
      {"[http]\nthreads = 1.5", "http.threads", "expected an integer, got a floating-point"},
      {"[http]\nthreads = true", "http.threads", "got a boolean"},
      {"[devices]\nopening_hours = \"7-22\"", "devices.opening_hours", "\"7-22\": \"7\" is not HH:MM"},
      {"[devices]\nsilent_after = \"5s\"", "devices.silent_after", "between 10s and 7d"},
      {"[metrics]\nmax_devices = 1001", "metrics.max_devices", "between 0 and 1000"},
      {"[journal]\nmax_bytes = 65535", "journal.max_bytes", "between 65536 and"},
      {"[journal]\nretention = \"7\"", "journal.retention", "with a unit"},
      {"[journal]\nretention = 7", "journal.retention", "got the integer 7"},
      {"[journal]\nretention = \"7days\"", "journal.retention", "\"7days\""},
      {"[journal]\nretention = \"3651d\"", "journal.retention", "between 0s and 3650d"},
      {"[uplink]\ntransport = \"amqp\"", "uplink.transport",
       "must be \"mqtt\", \"https\" or \"none\", got \"amqp\""},
      {"[uplink]\nurl = \"localhost\"", "uplink.url", "expected a URL"},
      {"[uplink]\ntopic_prefix = \"a/#\"", "uplink.topic_prefix", "'#'"},
      {"[uplink]\ntopic_prefix = \"/retail\"", "uplink.topic_prefix", "leading or trailing"},
      {"[uplink]\ntopic_prefix = \"\"", "uplink.topic_prefix", "1 to 128"},
      {"[uplink]\nack = \"both\"", "uplink.ack", "must be \"broker\" or \"hq\""},
      {"[uplink]\nmax_inflight = 0", "uplink.max_inflight", "between 1 and 100"},
      {"[uplink]\nmax_inflight = 101", "uplink.max_inflight", "got 101"},
      {"[uplink]\nbatch_events = 0", "uplink.batch_events", "between 1 and 100000"},
      {"[uplink]\nmax_message_bytes = 100", "uplink.max_message_bytes", "between 1024 and"},
      {"[uplink]\nbackoff_initial = \"0ms\"", "uplink.backoff_initial", "between 1ms and 1h"},
      {"[uplink]\nbackoff_max = \"fast\"", "uplink.backoff_max", "with a unit"},
      {"[uplink]\nhq_ack_timeout = \"500ms\"", "uplink.hq_ack_timeout", "between 1s and 1d"},
      {"[uplink]\nclient_id = \"my client\"", "uplink.client_id", "without spaces"},
      {"[uplink.tls]\nca_file = 5", "uplink.tls.ca_file", "expected a string"},
      {"[uplink.tls]\nkey_file = [\"a\"]", "uplink.tls.key_file", "got an array"},
      {"[log]\nlevel = \"verbose\"", "log.level", "\"trace\", \"debug\", \"info\""},
      {"[log]\nlevel = \"INFO\"", "log.level", "got \"INFO\""},
      {"[log]\nformat = \"xml\"", "log.format", "must be \"text\" or \"json\", got \"xml\""},
  };
  for (const Case& c : cases) {
    INFO("config:\n" << c.toml);
    std::vector<std::string> problems;
    auto r = ParseConfig(c.toml, kFile, &problems);
    REQUIRE(!r.ok());
    REQUIRE(problems.size() == 1);
    CHECK(r.status().message() == problems[0]);
    CHECK(r.status().message().rfind(std::string("storegw.toml:2: ") + c.key + ": ", 0) == 0);
    CHECK_MESSAGE(r.status().message().find(c.says) != std::string::npos, r.status().message());
  }
}

TEST_CASE("gateway config: checks across keys name the key and the file") {
  struct Case {
    const char* toml;
    const char* says;
  };
  const Case cases[] = {
      {"[uplink]\nbackoff_initial = \"2m\"\nbackoff_max = \"1m\"",
       "storegw.toml: uplink.backoff_initial: \"2m\" is longer than uplink.backoff_max \"1m\""},
      {"[uplink]\nurl = \"ssl://hq:8883\"\n[uplink.tls]\ncert_file = \"c.pem\"",
       "storegw.toml: uplink.tls.key_file: must be set together with uplink.tls.cert_file"},
      {"[uplink]\nurl = \"ssl://hq:8883\"\n[uplink.tls]\nkey_file = \"k.pem\"",
       "storegw.toml: uplink.tls.cert_file: must be set together with uplink.tls.key_file"},
      {"[uplink]\ntransport = \"https\"",
       "storegw.toml: uplink.url: \"tcp://127.0.0.1:1883\" is not an https:// URL"},
      {"[uplink]\nurl = \"https://hq/x\"",
       "storegw.toml: uplink.url: \"https://hq/x\" is not an "
       "MQTT URL"},
      {"[uplink.tls]\nca_file = \"ca.pem\"",
       "storegw.toml: uplink.tls: TLS files are set but uplink.url \"tcp://127.0.0.1:1883\" is not "
       "a TLS URL"},
      {"[http]\nlisten = \"0.0.0.0:8080\"",
       "storegw.toml: http.listen: \"0.0.0.0:8080\" is not a loopback address, so "
       "http.device_tokens_file must be set"},
      {"[http]\nlisten = \"[::]:8080\"", "http.device_tokens_file must be set"},
  };
  for (const Case& c : cases) {
    INFO("config:\n" << c.toml);
    auto r = ParseConfig(c.toml, kFile);
    REQUIRE(!r.ok());
    CHECK_MESSAGE(r.status().message().find(c.says) != std::string::npos, r.status().message());
  }
  // The same combinations are fine once completed.
  CHECK(ParseConfig("[http]\nlisten = \"0.0.0.0:8080\"\ndevice_tokens_file = \"/t\"", kFile).ok());
  CHECK(ParseConfig("[uplink]\ntransport = \"none\"\nurl = \"https://hq/x\"", kFile).ok());
  CHECK(ParseConfig("[uplink]\nurl = \"mqtts://hq:8883\"\n[uplink.tls]\nca_file = \"ca\"\n"
                    "cert_file = \"c\"\nkey_file = \"k\"",
                    kFile)
            .ok());
  CHECK(ParseConfig("[http]\nlisten = \"localhost:0\"", kFile).ok());
}

TEST_CASE("gateway config: every problem is reported - the status carries the first and a count") {
  std::vector<std::string> problems;
  auto r = ParseConfig("[http]\nthreads = 0\nlisten = \"x\"\n[nope]\n", kFile, &problems);
  REQUIRE(!r.ok());
  REQUIRE(problems.size() == 3);
  CHECK(problems[0].find("http.threads") != std::string::npos);
  CHECK(problems[1].find("http.listen") != std::string::npos);
  CHECK(problems[2].find("unknown section 'nope'") != std::string::npos);
  CHECK(r.status().message() == problems[0] + " (and 2 more problems)");
}

TEST_CASE("gateway config: TOML syntax errors name the file, line and column") {
  std::string e = ErrorOf("[gateway]\nstore_id = \"unterminated\n");
  CHECK(e.rfind("storegw.toml:2:", 0) == 0);
  CHECK(e.find("not valid TOML") != std::string::npos);
  // An integer beyond int64 is a syntax error in TOML.
  e = ErrorOf("[journal]\nmax_bytes = 9223372036854775808\n");
  CHECK(e.rfind("storegw.toml:2:", 0) == 0);
  // A duplicated key too.
  e = ErrorOf("[log]\nlevel = \"info\"\nlevel = \"debug\"\n");
  CHECK(e.rfind("storegw.toml:3:", 0) == 0);
}

TEST_CASE("gateway config: secrets never appear in error messages") {
  std::vector<std::string> problems;
  auto r = ParseConfig("[uplink]\npassword = 12345678\n", kFile, &problems);
  REQUIRE(!r.ok());
  CHECK(r.status().message() ==
        "storegw.toml:2: uplink.password: expected a string, got an integer");
  CHECK(r.status().message().find("12345678") == std::string::npos);
}

TEST_CASE("gateway config: durations: a whole number and one unit") {
  CHECK(ParseDuration("0s").value() == 0ms);
  CHECK(ParseDuration("0ms").value() == 0ms);
  CHECK(ParseDuration("250ms").value() == 250ms);
  CHECK(ParseDuration("5s").value() == 5s);
  CHECK(ParseDuration("10m").value() == 10min);
  CHECK(ParseDuration("2h").value() == 2h);
  CHECK(ParseDuration("7d").value() == 7 * 24h);
  CHECK(ParseDuration("007s").value() == 7s);
  CHECK(ParseDuration("9223372036854775807ms").value().count() == INT64_MAX);
  CHECK(ParseDuration("106751991167d").ok());
  for (const char* bad : {"", "s", "5", "5S", "5 s", " 5s", "5s ", "-5s", "+5s", "1.5s", "5sec",
                          "5us", "5ns", "1h30m", "ms", "5ms5", "١s"}) {
    INFO("'" << bad << "'");
    auto r = ParseDuration(bad);
    REQUIRE(!r.ok());
    CHECK(r.status().message().find("with a unit") != std::string::npos);
  }
  for (const char* huge : {"9223372036854775808ms", "106751991168d", "99999999999999999999s"}) {
    INFO(huge);
    auto r = ParseDuration(huge);
    REQUIRE(!r.ok());
    CHECK(r.status().message().find("too large") != std::string::npos);
  }
  CHECK(FormatDuration(0ms) == "0s");
  CHECK(FormatDuration(1500ms) == "1500ms");
  CHECK(FormatDuration(90s) == "90s");
  CHECK(FormatDuration(60s) == "1m");
  CHECK(FormatDuration(36h) == "36h");
  CHECK(FormatDuration(7 * 24h) == "7d");
  for (const char* s : {"1ms", "999ms", "1s", "59s", "61m", "25h", "3650d"}) {
    CHECK(FormatDuration(ParseDuration(s).value()) == s);
  }
}

TEST_CASE("gateway config: sizes: integers in bytes, bounds inclusive") {
  CHECK(ParseConfig("[journal]\nmax_bytes = 65536", kFile).value().journal.max_bytes == 65536);
  CHECK(ParseConfig("[journal]\nmax_bytes = 1125899906842624", kFile).value().journal.max_bytes ==
        1ull << 50);
  CHECK(!ParseConfig("[journal]\nmax_bytes = 1125899906842625", kFile).ok());
  CHECK(!ParseConfig("[journal]\nmax_bytes = 0", kFile).ok());
  CHECK(ParseConfig("[http]\nmax_body_bytes = 0x400", kFile).value().http.max_body_bytes == 1024);
  CHECK(ParseConfig("[http]\nmax_body_bytes = 1_048_576", kFile).value().http.max_body_bytes ==
        1048576);
  CHECK(ErrorOf("[journal]\nmax_bytes = 1e9").find("got a floating-point number") !=
        std::string::npos);
  CHECK(ParseConfig("[journal]\nretention = \"0s\"", kFile).value().journal.retention == 0ms);
}

TEST_CASE("gateway config: command-line overrides use the same checks and name the flag") {
  Config c;
  CHECK(SetConfigValue(c, "http.listen", "127.0.0.1:0", "--listen").ok());
  CHECK(c.http.listen == "127.0.0.1:0");
  Status s = SetConfigValue(c, "http.listen", "nonsense", "--listen");
  REQUIRE(!s.ok());
  CHECK(s.message().rfind("--listen: http.listen: listen address \"nonsense\" has no port", 0) == 0);
  CHECK(c.http.listen == "127.0.0.1:0");  // unchanged on error
  s = SetConfigValue(c, "http.listen", "0.0.0.0:8080", "--listen");
  REQUIRE(!s.ok());
  CHECK(s.message().find("http.device_tokens_file must be set") != std::string::npos);
  CHECK(c.http.listen == "127.0.0.1:0");
  CHECK(SetConfigValue(c, "gateway.data_dir", "/tmp/x", "--data-dir").ok());
  CHECK(c.gateway.data_dir == "/tmp/x");
  CHECK(!SetConfigValue(c, "gateway.data_dir", "", "--data-dir").ok());
  CHECK(SetConfigValue(c, "http.threads", "7", "--threads").ok());
  CHECK(c.http.threads == 7);
  CHECK(
      SetConfigValue(c, "http.threads", "7x", "--threads").message().find("expected an integer") !=
      std::string::npos);
  CHECK(SetConfigValue(c, "journal.retention", "3d", "--retention").ok());
  CHECK(c.journal.retention == 72h);
  CHECK(SetConfigValue(c, "gateway.nope", "1", "--nope").message() ==
        "--nope: unknown key 'gateway.nope'");
}

TEST_CASE("gateway config: config files: missing, unreadable, and the files a config names") {
  TempDir dir;
  auto missing = LoadConfigFile(dir.path() / "absent.toml");
  REQUIRE(!missing.ok());
  CHECK(missing.status().message() ==
        (dir.path() / "absent.toml").string() + ": no such config file");
  auto is_dir = LoadConfigFile(dir.path());
  REQUIRE(!is_dir.ok());
  CHECK(is_dir.status().message().find("is a directory") != std::string::npos);

  std::string path = (dir.path() / "gw.toml").string();
  std::ofstream(path) << "[http]\nlisten = \"127.0.0.1:1\"\nthreads = -3\n";
  auto bad = LoadConfigFile(path);
  REQUIRE(!bad.ok());
  CHECK(bad.status().message().rfind(path + ":3: http.threads: ", 0) == 0);

  Config c;
  CHECK(CheckConfigFiles(c).ok());
  c.http.device_tokens_file = (dir.path() / "tokens").string();
  Status s = CheckConfigFiles(c);
  REQUIRE(!s.ok());
  CHECK(s.message() == "http.device_tokens_file: " + c.http.device_tokens_file + ": no such file");
  std::ofstream(c.http.device_tokens_file) << "till-1 abc\n";
  CHECK(CheckConfigFiles(c).ok());
  c.uplink.tls.ca_file = dir.path().string();
  s = CheckConfigFiles(c);
  REQUIRE(!s.ok());
  CHECK(s.message().find("uplink.tls.ca_file: ") == 0);
  CHECK(s.message().find("is a directory") != std::string::npos);
}

TEST_CASE("gateway config: packaging/storegw.toml documents every key with its default") {
  std::ifstream in(std::string(STOREGW_TEST_SOURCE_DIR) + "/../packaging/storegw.toml");
  REQUIRE(in);
  std::stringstream buf;
  buf << in.rdbuf();
  const std::string text = buf.str();

  // As shipped (every key commented out) it is valid and gives the defaults.
  auto as_is = ParseConfig(text, "packaging/storegw.toml");
  REQUIRE_MESSAGE(as_is.ok(), as_is.status().message());
  CHECK(ConfigToToml(*as_is) == ConfigToToml(Config{}));

  // With every "#key = value" line uncommented it still gives the defaults,
  // and every key of the table is there exactly once, with a comment above.
  std::set<std::string> leaves;
  for (const auto& k : ConfigKeys()) leaves.insert(k.substr(k.rfind('.') + 1));
  std::istringstream lines(text);
  std::string line, uncommented, section, previous;
  std::multiset<std::string> seen;
  // "#key = value": '#', then a key name, then " = " (descriptions use "# ").
  auto commented_key = [](const std::string& l) -> std::string {
    if (l.size() < 2 || l[0] != '#') return "";
    size_t end = l.find(" = ");
    if (end == std::string::npos) return "";
    std::string key = l.substr(1, end - 1);
    for (char c : key) {
      if (!((c >= 'a' && c <= 'z') || c == '_')) return "";
    }
    return key;
  };
  while (std::getline(lines, line)) {
    if (!line.empty() && line.front() == '[') section = line.substr(1, line.size() - 2);
    const std::string original = line;
    if (std::string key = commented_key(line); !key.empty() && leaves.count(key)) {
      seen.insert(section + "." + key);
      CHECK_MESSAGE(previous.rfind("#", 0) == 0, "no comment above " << line);
      line = line.substr(1);
    }
    uncommented += line + "\n";
    previous = original;
  }
  for (const auto& k : ConfigKeys()) {
    CHECK_MESSAGE(seen.count(k) == 1, "packaging/storegw.toml: key " << k);
  }
  auto all = ParseConfig(uncommented, "packaging/storegw.toml (uncommented)");
  REQUIRE_MESSAGE(all.ok(), all.status().message());
  CHECK(ConfigToToml(*all) == ConfigToToml(Config{}));
}

// ------------------------------------------------------------ retired keys

namespace {

// The value text ConfigToToml prints for `key` in the default config
// ("500", "\"mqtt\"", "\"30s\""): a valid value of that key.
std::string RetiredDefaultValueText(const std::string& key) {
  const std::string section = key.substr(0, key.rfind('.'));
  const std::string leaf = key.substr(key.rfind('.') + 1);
  std::istringstream lines(ConfigToToml(Config{}));
  std::string line, current;
  while (std::getline(lines, line)) {
    if (!line.empty() && line.front() == '[') current = line.substr(1, line.size() - 2);
    if (current == section && line.rfind(leaf + " = ", 0) == 0) {
      return line.substr(leaf.size() + 3);
    }
  }
  FAIL("no default printed for " << key);
  return "";
}

// "[a.b]\nleaf = value\n" for the dotted `key`.
std::string RetiredTomlLine(const std::string& key, const std::string& value) {
  return "[" + key.substr(0, key.rfind('.')) + "]\n" + key.substr(key.rfind('.') + 1) + " = " +
         value + "\n";
}

// A test-only table, the way a release would list its renames and
// removals. None of these keys was ever a real storegw key.
const std::vector<RetiredKey>& TestRetiredKeys() {
  static const std::vector<RetiredKey> keys = {
      {.key = "uplink.batch_size", .since = "9.1.0", .renamed_to = "uplink.batch_events"},
      {.key = "uplink.max_batch", .since = "9.2.0", .renamed_to = "uplink.batch_events"},
      {.key = "mqtt.url", .since = "9.1.0", .renamed_to = "uplink.url"},
      {.key = "uplink.pass", .since = "9.1.0", .renamed_to = "uplink.password"},
      {.key = "uplink.keepalive",
       .since = "9.1.0",
       .advice = "the MQTT keep-alive is fixed at 30 s"},
      {.key = "journal.retention_hours",
       .since = "9.3.0",
       .renamed_to = "journal.retention",
       .advice = "write a duration with its unit, e.g. retention = \"168h\"",
       .refuse = true},
      {.key = "uplink.insecure",
       .since = "9.3.0",
       .advice = "TLS is verified always; trust a private CA with uplink.tls.ca_file",
       .refuse = true},
  };
  return keys;
}

struct RetiredParse {
  storegw::Result<Config> config = Config{};
  std::vector<std::string> problems, warnings;
};

RetiredParse ParseWithTestRetired(std::string_view toml) {
  RetiredParse r;
  r.config = ParseConfig(toml, kFile, &r.problems,
                         {.retired = &TestRetiredKeys(), .warnings = &r.warnings});
  return r;
}

}  // namespace

TEST_CASE("gateway config: the table of renamed and removed keys is consistent, each entry works") {
  // The project's real history: every entry names a key this release does
  // not read, a rename names one it does, an old name is listed once, a
  // removal says what to do instead; and each one is reported, never
  // silently ignored (a valid value of the new key under the old name is
  // applied with a warning).
  const auto& real = RetiredConfigKeys();
  MESSAGE(real.size() << " renamed or removed keys in this release's table");
  const auto keys = ConfigKeys();
  const std::set<std::string> current(keys.begin(), keys.end());
  std::set<std::string> seen;
  for (const auto& r : real) {
    INFO("retired key " << r.key);
    CHECK(current.count(r.key) == 0);
    CHECK(seen.insert(r.key).second);
    CHECK(!r.since.empty());
    if (r.renamed_to.empty() || r.refuse) CHECK(!r.advice.empty());
    if (r.renamed_to.empty()) continue;
    REQUIRE(current.count(r.renamed_to) == 1);
    std::vector<std::string> problems, warnings;
    auto c = ParseConfig(RetiredTomlLine(r.key, RetiredDefaultValueText(r.renamed_to)), kFile,
                         &problems, {.warnings = &warnings});
    if (r.refuse) {
      CHECK(!c.ok());
      REQUIRE(problems.size() == 1);
      CHECK(problems[0].find("'" + r.renamed_to + "'") != std::string::npos);
    } else {
      CHECK(c.ok());
      REQUIRE(warnings.size() == 1);
      CHECK(warnings[0].rfind(std::string(kFile) + ":2: key '" + r.key + "' was renamed to '" +
                                  r.renamed_to + "'",
                              0) == 0);
    }
  }
  // The packaged config never names a retired key, commented out or not.
  std::ifstream in(std::string(STOREGW_TEST_SOURCE_DIR) + "/../packaging/storegw.toml");
  REQUIRE(in);
  std::stringstream buf;
  buf << in.rdbuf();
  for (const auto& r : real) {
    const std::string leaf = r.key.substr(r.key.rfind('.') + 1);
    CHECK_MESSAGE(buf.str().find("#" + leaf + " = ") == std::string::npos, r.key);
  }
  // The real table is what ParseConfig uses by default: the test-only keys
  // below are unknown to it.
  CHECK(ErrorOf("[uplink]\nbatch_size = 250\n")
            .rfind("storegw.toml:2: unknown key 'uplink.batch_size'", 0) == 0);
}

TEST_CASE("gateway config: a renamed key warns with file, line, old and new key, value applied") {
  auto r = ParseWithTestRetired("# store 42\n[uplink]\nbatch_size = 250\n");
  REQUIRE_MESSAGE(r.config.ok(), r.config.status().message());
  CHECK(r.config->uplink.batch_events == 250);
  CHECK(r.problems.empty());
  REQUIRE(r.warnings.size() == 1);
  CHECK(r.warnings[0] ==
        "storegw.toml:3: key 'uplink.batch_size' was renamed to 'uplink.batch_events' in storegw "
        "9.1.0: write 'uplink.batch_events' instead (the value is used as 'uplink.batch_events' "
        "meanwhile)");

  // Into another section, from a section that no longer exists.
  r = ParseWithTestRetired("[mqtt]\nurl = \"ssl://hq.example:8883\"\n[log]\nlevel = \"warn\"\n");
  REQUIRE_MESSAGE(r.config.ok(), r.config.status().message());
  CHECK(r.config->uplink.url == "ssl://hq.example:8883");
  CHECK(r.config->log.level == "warn");
  REQUIRE(r.warnings.size() == 1);
  CHECK(r.warnings[0].rfind("storegw.toml:2: key 'mqtt.url' was renamed to 'uplink.url'", 0) ==
        0);

  // The value gets the new key's checks, named by both keys.
  r = ParseWithTestRetired("[uplink]\nbatch_size = 0\n");
  REQUIRE(!r.config.ok());
  REQUIRE(r.problems.size() == 1);
  CHECK(r.problems[0] ==
        "storegw.toml:2: key 'uplink.batch_size' was renamed to 'uplink.batch_events' in storegw "
        "9.1.0: uplink.batch_events: must be between 1 and 100000, got 0");
  CHECK(r.warnings.empty());

  // A secret's value never shows, under the old name either.
  r = ParseWithTestRetired("[uplink]\npass = \"hunter2-secret\"\n");
  REQUIRE(r.config.ok());
  CHECK(r.config->uplink.password == "hunter2-secret");
  REQUIRE(r.warnings.size() == 1);
  CHECK(r.warnings[0].find("hunter2") == std::string::npos);
  CHECK(ConfigToToml(*r.config).find("hunter2") == std::string::npos);
  r = ParseWithTestRetired("[uplink]\npass = 31337\n");
  REQUIRE(r.problems.size() == 1);
  CHECK(r.problems[0].find("31337") == std::string::npos);

  // Several warnings come in file order, with the problems apart.
  r = ParseWithTestRetired("[uplink]\nkeepalive = \"30s\"\nbatch_size = 100\nfrobnicate = 1\n");
  REQUIRE(!r.config.ok());
  REQUIRE(r.warnings.size() == 2);
  CHECK(r.warnings[0].rfind("storegw.toml:2: key 'uplink.keepalive'", 0) == 0);
  CHECK(r.warnings[1].rfind("storegw.toml:3: key 'uplink.batch_size'", 0) == 0);
  REQUIRE(r.problems.size() == 1);
  CHECK(r.problems[0] == "storegw.toml:4: unknown key 'uplink.frobnicate'");
}

TEST_CASE("gateway config: the old and the new name of a key both set is an error naming both") {
  auto r = ParseWithTestRetired("[uplink]\nbatch_events = 100\nbatch_size = 250\n");
  REQUIRE(!r.config.ok());
  REQUIRE(r.problems.size() == 1);
  CHECK(r.problems[0] ==
        "storegw.toml:3: key 'uplink.batch_size' was renamed to 'uplink.batch_events' in storegw "
        "9.1.0, and 'uplink.batch_events' is set too (line 2): delete 'uplink.batch_size'");
  CHECK(r.warnings.empty());
  CHECK(r.config.status().message() == r.problems[0]);

  // Across sections, the new one first in the file.
  r = ParseWithTestRetired("[uplink]\nurl = \"tcp://a:1883\"\n[mqtt]\nurl = \"tcp://b:1883\"\n");
  REQUIRE(r.problems.size() == 1);
  CHECK(r.problems[0].find("'uplink.url' is set too (line 2)") != std::string::npos);

  // Two old names of one key.
  r = ParseWithTestRetired("[uplink]\nbatch_size = 250\nmax_batch = 300\n");
  REQUIRE(!r.config.ok());
  REQUIRE(r.problems.size() == 2);
  CHECK(r.problems[0].rfind("storegw.toml:2: key 'uplink.batch_size' was renamed", 0) == 0);
  CHECK(r.problems[0].find("'uplink.max_batch' (line 3), another old name of it, is set too") !=
        std::string::npos);
  CHECK(r.problems[1].rfind("storegw.toml:3: key 'uplink.max_batch' was renamed", 0) == 0);
}

TEST_CASE("gateway config: a removed key says so and what to do, a refused one is an error") {
  auto r = ParseWithTestRetired("[uplink]\nkeepalive = \"30s\"\n");
  REQUIRE_MESSAGE(r.config.ok(), r.config.status().message());
  CHECK(ConfigToToml(*r.config) == ConfigToToml(Config{}));
  REQUIRE(r.warnings.size() == 1);
  CHECK(r.warnings[0] ==
        "storegw.toml:2: key 'uplink.keepalive' was removed in storegw 9.1.0 and has no effect: "
        "the MQTT keep-alive is fixed at 30 s; delete it from the file");

  r = ParseWithTestRetired("[uplink]\ninsecure = true\n");
  REQUIRE(!r.config.ok());
  REQUIRE(r.problems.size() == 1);
  CHECK(r.problems[0] ==
        "storegw.toml:2: key 'uplink.insecure' was removed in storegw 9.3.0: TLS is verified "
        "always; trust a private CA with uplink.tls.ca_file");

  // A rename whose value cannot be carried over as written.
  r = ParseWithTestRetired("[journal]\nretention_hours = 168\n");
  REQUIRE(!r.config.ok());
  REQUIRE(r.problems.size() == 1);
  CHECK(r.problems[0] ==
        "storegw.toml:2: key 'journal.retention_hours' was renamed to 'journal.retention' in "
        "storegw 9.3.0; its value is not carried over: write a duration with its unit, e.g. "
        "retention = \"168h\"");

  // A removed key is not a section: a table of that name is still unknown.
  r = ParseWithTestRetired("[uplink.keepalive]\nx = 1\n");
  REQUIRE(!r.config.ok());
  CHECK(r.problems[0].find("unknown section 'uplink.keepalive'") != std::string::npos);
}

TEST_CASE("gateway config: a typo that is no retired key is unknown, with a suggestion") {
  auto r = ParseWithTestRetired("[uplink]\nbatch_evnts = 5\n[mqtt]\nuri = \"tcp://x:1\"\n");
  REQUIRE(!r.config.ok());
  REQUIRE(r.problems.size() == 2);
  CHECK(r.problems[0] ==
        "storegw.toml:2: unknown key 'uplink.batch_evnts' (did you mean 'uplink.batch_events'?)");
  // [mqtt] is walked for its retired keys; another key in it is unknown.
  CHECK(r.problems[1].rfind("storegw.toml:4: unknown key 'mqtt.uri'", 0) == 0);
  CHECK(r.warnings.empty());
  // LoadConfigFile passes the options on.
  TempDir dir;
  const auto path = dir / "gw.toml";
  storegw::test::WriteFile(path, "[uplink]\nbatch_size = 7\n");
  std::vector<std::string> warnings = {"stale"};
  auto loaded =
      LoadConfigFile(path, nullptr, {.retired = &TestRetiredKeys(), .warnings = &warnings});
  REQUIRE(loaded.ok());
  CHECK(loaded->uplink.batch_events == 7);
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0].rfind(path.string() + ":2: key 'uplink.batch_size'", 0) == 0);
}

// ------------------------------------------------------------ perishables files

TEST_CASE("gateway config: hold times and sensor limits files, good lines and bad ones") {
  TempDir dir;
  const auto holds = dir.path() / "hold-times.txt";
  std::ofstream(holds) << "# sku hold\nchicken-roast 2h\n\nsushi 90m  # HQ may override\n";
  auto h = LoadHoldTimesFile(holds);
  REQUIRE_MESSAGE(h.ok(), h.status().ToString());
  REQUIRE(h->size() == 2);
  CHECK(h->at("chicken-roast") == 2h);
  CHECK(h->at("sushi") == 90min);

  struct Bad {
    const char* text;
    const char* error;
  };
  for (const Bad& b : {Bad{"a 2h\nb\n", ":2: expected \"SKU DURATION\""},
                       Bad{"a 30s\n", ":1: hold time must be between 1m and 7d"},
                       Bad{"a 2x\n", ":1: "},
                       Bad{"a 2h\na 3h\n", ":2: sku \"a\" is listed twice"}}) {
    CAPTURE(b.text);
    std::ofstream(holds) << b.text;
    auto r = LoadHoldTimesFile(holds);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().message().find(holds.string() + b.error) != std::string::npos);
  }

  const auto sensors = dir.path() / "sensors.txt";
  std::ofstream(sensors) << "fridge-2 0 5000 dairy fridge 2\n"
                            "freezer-1 -25000 -15000 grace=20m silent_after=1h freezer aisle\n"
                            "lamp-1 60000 90000 metric=temp_mc hot counter\n";
  auto s = LoadSensorsFile(sensors);
  REQUIRE_MESSAGE(s.ok(), s.status().ToString());
  REQUIRE(s->size() == 3);
  CHECK(s->at("fridge-2").location == "dairy fridge 2");
  CHECK(s->at("fridge-2").max_value == 5000);
  CHECK(s->at("freezer-1").min_value == -25000);
  CHECK(s->at("freezer-1").grace == 20min);
  CHECK(s->at("freezer-1").silent_after == 1h);
  CHECK_FALSE(s->at("fridge-2").grace.has_value());
  CHECK(s->at("freezer-1").location == "freezer aisle");
  CHECK(s->at("lamp-1").metric == "temp_mc");
  for (const Bad& b : {Bad{"f 1\n", ":1: expected \"SENSOR_ID MIN MAX"},
                       Bad{"f 9 1\n", ":1: MIN 9 is above MAX 1"},
                       Bad{"f x 1\n", ":1: MIN must be an integer"},
                       Bad{"f 0 1 grace=soon\n", ":1: grace: "},
                       Bad{"f 0 1\nf 0 2\n", ":2: sensor \"f\" is listed twice"}}) {
    CAPTURE(b.text);
    std::ofstream(sensors) << b.text;
    auto r = LoadSensorsFile(sensors);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().message().find(sensors.string() + b.error) != std::string::npos);
  }
}
