// storegw-hq's configuration: one TOML file (/etc/storegw-hq/storegw-hq.toml
// when packaged), every key optional with the default written here. The
// keys, their meaning and their limits are listed in docs/hq.md and in
// packaging/hq/storegw-hq.toml.
//
// Loading is strict: an unknown key or section, a value of the wrong type
// or out of its range is an error that names the file, the line (when the
// TOML parser knows it), the key and what is allowed:
//   "hq.toml:7: unknown key 'mqtt.sharegroup' (did you mean 'mqtt.share_group'?)"
//   "hq.toml:3: fleet.offline_after: must be between 1s and 7d, got \"0s\""
// Secrets (the password in [hq] database, [mqtt] password) are never shown
// in a message or in ConfigToToml's output.
//
// Thread-safety: plain values; load once, then share read-only.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "storegw/status.h"

namespace storegw::hq {

using Millis = std::chrono::milliseconds;

struct HqConfig {
  struct Hq {
    // libpq connection string ("host=db.example dbname=storegw user=hq") or
    // URI ("postgresql://hq@db.example:5432/storegw"). The default is the
    // database `storegw` on this machine's unix socket, as the service's
    // own user (peer authentication).
    std::string database = "postgresql:///storegw";
    // Batches written in one PostgreSQL transaction: at most this many,
    // collected for at most max_txn_delay after the first arrived.
    int max_batches_per_txn = 64;
    Millis max_txn_delay = std::chrono::milliseconds(5);
  } hq;

  struct Mqtt {
    // The broker the gateways publish to; "" = no MQTT ingress.
    // tcp://, mqtt:// (plain), ssl://, mqtts:// (TLS), ws://, wss://.
    std::string url = "tcp://127.0.0.1:1883";
    std::string topic_prefix = "retail/v1";  // the gateways' uplink.topic_prefix
    // MQTT 5 shared subscription group: replicas with the same group share
    // the batches. "" = a plain subscription (one replica only).
    std::string share_group = "storegw-hq";
    // Unique per replica (its persistent session); "" = "storegw-hq-" + the
    // host name.
    std::string client_id;
    std::string username;
    std::string password;  // secret
    // The broker keeps this replica's session (subscriptions, queued
    // batches) this long after it disconnects: a restart within it resumes
    // where it stopped. Short, because a broker may keep queueing shared-
    // subscription batches for a replica that is gone; those then reach HQ
    // by the gateways' resend.
    Millis session_expiry = std::chrono::minutes(10);
    struct Tls {
      std::string ca_file, cert_file, key_file;
    } tls;
  } mqtt;

  struct Http {
    // The fleet page, /v1/fleet, /metrics, /healthz. No authentication:
    // keep it on loopback or behind a proxy that adds it.
    std::string listen = "127.0.0.1:9080";
  } http;

  struct Https {
    // Ingress for gateways with uplink.transport = "https" (POST
    // /v1/batches); "" = off. cert_file and key_file are required with it;
    // client_ca_file makes client certificates mandatory (mutual TLS).
    std::string listen;
    std::string cert_file, key_file, client_ca_file;
  } https;

  struct Log {
    std::string level = "info";  // trace, debug, info, warn, error, critical, off
  } log;

  struct Fleet {
    // A gateway whose status says online is shown offline once nothing
    // (status or batch) came from it for this long. Gateways publish their
    // status every 30 s.
    Millis offline_after = std::chrono::seconds(90);
  } fleet;

  struct StatusCmd {
    // `storegw-hq status` exits 1 when a gateway is offline longer than
    // this (its --max-offline overrides it).
    Millis max_offline = std::chrono::minutes(15);
  } status;
};

// Parses TOML text; `source_name` (usually the file's path) prefixes every
// problem. `problems`, when given, receives each problem, one message each.
Result<HqConfig> ParseHqConfig(std::string_view text, std::string_view source_name,
                               std::vector<std::string>* problems = nullptr);

// Reads and parses a file; a missing or unreadable file is an error naming it.
Result<HqConfig> LoadHqConfigFile(const std::filesystem::path& path,
                                  std::vector<std::string>* problems = nullptr);

// Checks that every file the config names exists and can be read (TLS
// files). Separate from parsing, so a config for another machine parses.
Status CheckHqConfigFiles(const HqConfig& config);

// The effective config as TOML, every key in table order; secrets masked
// ("***"; in [hq] database only the password is).
std::string HqConfigToToml(const HqConfig& config);

// Every key's dotted name, in table order.
std::vector<std::string> HqConfigKeys();

// The MQTT client id the receiver uses: mqtt.client_id, or "storegw-hq-" +
// the host name when it is empty.
std::string EffectiveClientId(const HqConfig& config);

// A libpq connection string or URI with its password replaced by "***"
// (URI user info and ?password=, keyword password=). A string it cannot
// read is not shown at all.
std::string MaskConnInfo(std::string_view conninfo);

}  // namespace storegw::hq
