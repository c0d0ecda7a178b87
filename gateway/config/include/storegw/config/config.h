// storegw's configuration: one TOML file (/etc/storegw/storegw.toml when
// packaged), every key optional with the default written here.
//
// Config is a plain struct; config.cc holds the one table of keys that knows
// each key's TOML name, type, default, range and meaning. Loading rejects an
// unknown key or a bad value with a message that names the file, the line
// (when the TOML parser knows it) and the key, and a close match:
//   "storegw.toml:12: unknown key 'uplink.batchevents' (did you mean 'uplink.batch_events'?)"
//   "storegw.toml:3: http.listen: expected HOST:PORT (e.g. 127.0.0.1:8080), got \"8080\""
//
// Durations are TOML strings with a unit: "250ms", "5s", "10m", "2h", "7d".
// Sizes are TOML integers in bytes.
//
// Thread-safety: plain values; load once at start-up, then share read-only.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "storegw/config/config_text.h"
#include "storegw/status.h"

namespace storegw::gateway {

struct Config {
  struct Gateway {
    // Identity of this store and of this box in it; written into a new
    // journal and into every event sent upstream. 1..64 of [A-Za-z0-9._-].
    std::string store_id = "store-0001";
    std::string gateway_id = "gw-01";
    // Directory of journal.db. Relative paths are relative to the working
    // directory (systemd: the unit's WorkingDirectory).
    std::string data_dir = "./storegw-data";
  } gateway;

  struct Http {
    // Device API address "HOST:PORT" ("[::1]:8080" for IPv6; port 0 picks a
    // free port). A non-loopback address needs device_tokens_file.
    std::string listen = "127.0.0.1:8080";
    // "DEVICE_ID TOKEN" per line, '#' comments. Empty: no device auth.
    std::string device_tokens_file;
    uint64_t max_body_bytes = 4u << 20;  // larger bodies answer 413
    int threads = 32;  // server worker threads; each keep-alive connection holds one
  } http;

  struct Journal {
    uint64_t max_bytes = 1ull << 30;                // at or over it, ingest answers 503
    Millis retention = std::chrono::hours(24 * 7);  // how long delivered events are kept
  } journal;

  struct Uplink {
    std::string transport = "mqtt";  // "mqtt" | "https" | "none"
    std::string url = "tcp://127.0.0.1:1883";
    std::string topic_prefix = "retail/v1";
    std::string ack = "broker";               // "broker" | "hq"
    int max_inflight = 8;                     // batches sent and not yet acknowledged
    int batch_events = 500;                   // events per batch, at most
    std::string batch_sizing = "adaptive";    // "adaptive" (to the link) | "fixed"
    std::string live_lane = "auto";           // "auto" (new events ahead of a backlog) | "off"
    uint64_t max_message_bytes = 256u << 10;  // bytes per batch message, at most
    Millis backoff_initial = std::chrono::seconds(1);
    Millis backoff_max = std::chrono::seconds(60);
    Millis hq_ack_timeout = std::chrono::seconds(30);
    // A batch the broker has not acknowledged for this long means the link
    // is broken: the connection is torn down and rebuilt.
    Millis ack_timeout = std::chrono::seconds(30);
    Millis connect_timeout = std::chrono::seconds(10);  // one connection attempt, at most
    // MQTT: how long the broker keeps this gateway's session (downstream
    // subscriptions and the snapshots/prices HQ publishes meanwhile) after
    // the link drops. "0s": a fresh session per connection (whatever HQ
    // sends while the store is offline is lost).
    Millis session_expiry = std::chrono::hours(24 * 7);
    // transport "https": one POST (connect, upload, HQ's answer), at most.
    Millis request_timeout = std::chrono::seconds(30);
    // transport "https": proxy URL, e.g. "http://proxy.example:3128" (HTTP
    // CONNECT), https:// or socks5://; credentials in it are a secret
    // (printed as "***"). Empty: the https_proxy / no_proxy environment.
    std::string proxy;
    std::string compression = "deflate";  // "zstd" | "deflate" | "none" (batch payloads)
    int compression_level = 0;            // 0: the codec's default (deflate 1, zstd 3)
    std::string batch_encoding = "protobuf";  // "protobuf" | "columnar" (thin links)
    std::string client_id;  // MQTT client id; empty: "storegw-<store_id>-<gateway_id>"
    std::string username;   // broker (MQTT) or HTTP basic-auth user; empty: none
    std::string password;   // secret: printed as "***", never logged
    struct Tls {
      std::string ca_file;    // empty: the system trust store
      std::string cert_file;  // client certificate (mutual TLS), with key_file
      std::string key_file;
    } tls;
  } uplink;

  struct Log {
    std::string level = "info";  // trace, debug, info, warn, error, critical, off
    // Lines on stderr: "text" ("2026-01-31 12:00:00.123 info message") or
    // "json" (one object per line: time, level, logger, message; for
    // journald, Loki, Fluent Bit). storegw/cli/logging.h has the details.
    std::string format = "text";
  } log;

  struct StatusPage {
    // Where the status page (GET /), /v1/status, /v1/status/history and
    // /metrics are served: empty (default) on http.listen next to the
    // device API; "HOST:PORT" on a listener of their own (then only
    // there), e.g. to let a central Prometheus scrape the store while the
    // device API stays on loopback. Must differ from http.listen.
    std::string listen;
    // Bearer token for those routes (header "Authorization: Bearer TOKEN",
    // or "?token=TOKEN" on the page URL). Empty: no token needed.
    // /healthz and /readyz never need it. Secret: printed as "***".
    // At most 256 printable ASCII characters without spaces; use a long
    // random one (e.g. `openssl rand -hex 24`).
    std::string token;
  } status;

  struct Devices {
    // A device with no request for this long while the store is open is
    // flagged silent (status page, /v1/devices, storegw devices, /metrics).
    Millis silent_after{600'000};
    // When the store is open, local time: "07:00-22:00" ("22:00-06:00"
    // across midnight). Empty: always.
    std::string opening_hours;
  } devices;

  struct Metrics {
    // Devices with their own `device` label in /metrics (the busiest by
    // requests); the rest are summed under device="other". 0..1000.
    int max_devices = 50;
  } metrics;

  struct Alerts {
    // COUNT_MISMATCH when a cycle count differs from on_hand before it by
    // more than this many base units; -1: never.
    int count_mismatch_threshold = 0;
    // LOW_STOCK when on_hand falls below this (cleared at or above it);
    // -1: off, except for skus in low_stock_file.
    int low_stock_default = -1;
    // Per-sku thresholds, one "SKU THRESHOLD" pair a line, '#' comments;
    // they win over low_stock_default (-1 there: off for that sku). Meant
    // to be generated centrally and shipped with the config. Empty: none.
    std::string low_stock_file;
  } alerts;

  struct Changes {
    // GET /v1/changes (price, stock and alert changes pushed to in-store
    // devices): clients at once (0: the feed is off), how far behind the
    // newest change (journal events) a client may fall before it is
    // dropped, and the keep-alive interval of an idle stream.
    int max_clients = 64;
    int max_lag = 10000;
    Millis keep_alive{15'000};
  } changes;

  struct Perishables {
    // Hold time of a `production` batch whose sku has no hold time from HQ
    // (nor in hold_times_file): REMOVE_FROM_SHELF when it runs out.
    Millis default_hold{4 * 3600'000};
    // A batch still out this long after its due time escalates.
    Millis escalate_after{30 * 60'000};
    // Local per-sku hold times, "SKU DURATION" a line ('#' comments); HQ's
    // (downstream rules) win. Empty: none.
    std::string hold_times_file;
  } perishables;

  struct ColdChain {
    // The sensor metric the limits apply to (milli-Celsius by convention).
    std::string metric = "temp_mc";
    // Outside the limits longer than this: TEMPERATURE_EXCURSION.
    Millis grace{10 * 60'000};
    // Back inside for this long: the excursion clears.
    Millis clear_after{5 * 60'000};
    // A watched sensor silent this long: SENSOR_SILENT.
    Millis silent_after{15 * 60'000};
    // Local limits per sensor, one a line:
    //   SENSOR_ID MIN MAX [grace=DUR] [silent_after=DUR] [metric=NAME] [LOCATION...]
    // HQ's limits for a sensor win. Empty: none.
    std::string sensors_file;
  } cold_chain;
};

// A key an earlier release read that this one does not: renamed or
// removed. A config file that still has it (a conffile kept across an
// upgrade) is told what to write instead, never silently ignored:
//   renamed:  a warning naming the file, the line, the old key and the new
//             one; the value is applied under the new key (with the new
//             key's checks). Both the old and the new key set: an error.
//   removed:  a warning that the key has no effect any more, with `advice`.
//   refuse:   an error instead of the warning, for a rename whose value
//             cannot be carried over as written (its unit or meaning
//             changed) or a removal that would silently change what the
//             file asked for; `advice` says what to write.
struct RetiredKey {
  std::string key;         // dotted, as files wrote it: "uplink.batch_size"
  std::string since;       // the release that renamed or removed it: "0.2.0"
  std::string renamed_to;  // the key to write instead; empty: removed
  std::string advice;      // what to do instead (removed, refuse); may be empty
  bool refuse = false;
};

// The keys this release knows to be renamed or removed, from the
// project's history (docs/design.md, "Configuration across releases",
// says how to add one). Empty while no key has been renamed or removed.
const std::vector<RetiredKey>& RetiredConfigKeys();

struct ConfigParseOptions {
  // The retired keys to recognise; nullptr: RetiredConfigKeys(). Tests pass
  // their own table.
  const std::vector<RetiredKey>* retired = nullptr;
  // When given, receives every warning (one message each, in file order):
  // "storegw.toml:7: 'uplink.batch_size' was renamed to ...".
  std::vector<std::string>* warnings = nullptr;
};

// Parses `text` (the content of the file called `source_name`, which is
// only used in messages). On failure the Status message is the first
// problem, followed by "(and N more problems)" when there are more;
// `problems`, when given, receives every problem, one message each.
Result<Config> ParseConfig(std::string_view text, std::string_view source_name,
                           std::vector<std::string>* problems = nullptr,
                           const ConfigParseOptions& options = {});

// Reads and parses a file. A missing or unreadable file is an error naming it.
Result<Config> LoadConfigFile(const std::filesystem::path& path,
                              std::vector<std::string>* problems = nullptr,
                              const ConfigParseOptions& options = {});

// Sets one key from a command-line override (`--listen ADDR` is
// SetConfigValue(c, "http.listen", ADDR, "--listen")), with the same checks
// as the file, then re-runs the checks across keys.
Status SetConfigValue(Config& config, std::string_view key, std::string_view value,
                      std::string_view source_name);

// Checks that span keys (backoff_initial <= backoff_max, cert/key pairs,
// a non-loopback listen address needs a tokens file, the uplink URL scheme
// matches the transport). ParseConfig already calls it.
Status ValidateConfig(const Config& config, std::string_view source_name);

// Reads alerts.low_stock_file: "SKU THRESHOLD" per line, '#' comments and
// blank lines ignored, THRESHOLD an integer >= -1, a sku at most once.
// Errors name the file and line.
Result<std::map<std::string, int64_t>> LoadLowStockFile(const std::filesystem::path& path);

// Reads perishables.hold_times_file: "SKU DURATION" a line (DURATION as in
// the config, 1m..7d), '#' comments, a sku at most once. Errors name the
// file and line.
Result<std::map<std::string, Millis>> LoadHoldTimesFile(const std::filesystem::path& path);

// One line of cold_chain.sensors_file.
struct SensorLimitLine {
  std::string location, metric;  // metric "": cold_chain.metric
  int64_t min_value = 0, max_value = 0;
  std::optional<Millis> grace, silent_after;  // unset: the cold_chain defaults
};
// Reads cold_chain.sensors_file (format above). Errors name the file and line.
Result<std::map<std::string, SensorLimitLine>> LoadSensorsFile(const std::filesystem::path& path);

// Checks that every file the config names exists and is readable (tokens
// file, TLS files). Separate from parsing so unit tests and tools can parse
// a config written for another machine.
Status CheckConfigFiles(const Config& config);

// The effective config as TOML, every key, in the table's order; secret
// values print as "***".
std::string ConfigToToml(const Config& config);

// Every key's dotted name, in table order ("gateway.store_id", ...).
std::vector<std::string> ConfigKeys();

// ParseDuration and FormatDuration: storegw/config/config_text.h.

}  // namespace storegw::gateway
