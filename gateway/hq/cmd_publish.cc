// `storegw-hq publish stock|prices|rules --config FILE --store S --csv FILE`:
// HQ's downstream (sync/README.md, "Downstream"): a CSV file, checked line
// by line first (csv.h: nothing is published from a file with an error),
// published with QoS 1 (not retained) to
// {prefix}/{store}/downstream/stock|prices|rules on the broker of [mqtt].
//
// stock:  one StockSnapshot of every line. Its epoch and as_of_seq are the
//         store's gateway's current epoch and HQ's applied seq of it, read
//         from the database ([hq] database), unless --epoch / --as-of-seq
//         say otherwise; hq_version is HQ's clock (Unix microseconds at
//         publish time): increasing as long as the clock does not step back,
//         with no shared counter to keep between HQ replicas.
// prices: one PriceUpdate per line.
// rules:  one StoreRules of every line (hold times of perishable skus,
//         cold-chain sensor limits).
//
// Exit 0 only when the broker acknowledged every message (MQTT 5: with a
// success reason code). A broker that reports "no matching subscribers"
// (0x10; mosquitto does not) fails it too: no gateway of that store has a
// session there, so nothing was queued for it.
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cstdio>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <mqtt/async_client.h>

#include "storegw/config/config_text.h"
#include "storegw/hq/app/cli.h"
#include "storegw/hq/app/config.h"
#include "storegw/hq/app/csv.h"
#include "storegw/hq/pg_store.h"
#include "storegw/monitor/humanize.h"
#include "storegw/v1/storegw.pb.h"

namespace storegw::hq {
namespace {

using gateway::FormatBytes;
using gateway::FormatCount;
using gateway::ParseDuration;

struct PublishFlags {
  std::string kind;  // "stock", "prices" or "rules"
  std::string config;
  std::string store;
  std::string csv;
  std::string gateway;         // stock: which gateway of the store (when it has several)
  std::string as_of_seq_text;  // "" = from the store
  std::string epoch_text;      // decimal, as /v1/fleet shows it; "" = from the store
  std::optional<uint64_t> as_of_seq, epoch;  // parsed by Run
  std::string effective_from;
  std::string timeout = "30s";
  bool dry_run = false;
};

struct Message {
  std::string topic;
  std::string payload;
  std::string what;  // for messages: "the stock snapshot", "price of SKU-1", "the store rules"
};

// An epoch is a random 64-bit number: parsed as unsigned, in full.
std::optional<uint64_t> ParseU64(const std::string& v) {
  uint64_t n = 0;
  auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (v.empty() || ec != std::errc() || ptr != v.data() + v.size()) return std::nullopt;
  return n;
}

int64_t NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string ReasonText(int reason) {
  switch (reason) {
    case 0x10:
      return "no matching subscribers (0x10)";
    case 0x80:
      return "unspecified error (0x80)";
    case 0x83:
      return "implementation specific error (0x83)";
    case 0x87:
      return "not authorized (0x87)";
    case 0x90:
      return "topic name invalid (0x90)";
    case 0x97:
      return "quota exceeded (0x97)";
    case 0x95:
      return "packet too large (0x95)";
    case 0x99:
      return "payload format invalid (0x99)";
    default: {
      char buf[16];
      std::snprintf(buf, sizeof buf, "0x%02x", reason);
      return std::string("reason code ") + buf;
    }
  }
}

// Paho wants tcp:// and ssl://; the config also takes mqtt:// and mqtts://.
std::string PahoUri(const std::string& url) {
  if (url.rfind("mqtt://", 0) == 0) return "tcp://" + url.substr(7);
  if (url.rfind("mqtts://", 0) == 0) return "ssl://" + url.substr(8);
  return url;
}

bool IsTls(const std::string& url) {
  return url.rfind("ssl://", 0) == 0 || url.rfind("mqtts://", 0) == 0 ||
         url.rfind("wss://", 0) == 0;
}

// Publishes every message with QoS 1 and waits for each acknowledgement.
// Returns the number acknowledged; `errors` gets one line per failure.
size_t PublishAll(const HqConfig& cfg, const std::vector<Message>& msgs, Millis timeout,
                  std::vector<std::string>* errors) {
  const std::string client_id = EffectiveClientId(cfg) + "-publish-" + std::to_string(getpid());
  try {
    mqtt::create_options create(MQTTVERSION_5);
    mqtt::async_client cli(PahoUri(cfg.mqtt.url), client_id.substr(0, 128), create, nullptr);
    mqtt::connect_options_builder b;
    b.mqtt_version(MQTTVERSION_5)
        .clean_start(true)
        .connect_timeout(std::chrono::duration_cast<std::chrono::seconds>(timeout))
        .automatic_reconnect(false);
    if (!cfg.mqtt.username.empty()) b.user_name(cfg.mqtt.username);
    if (!cfg.mqtt.password.empty()) b.password(cfg.mqtt.password);
    mqtt::connect_options opts = b.finalize();
    if (IsTls(cfg.mqtt.url)) {
      mqtt::ssl_options ssl;
      if (!cfg.mqtt.tls.ca_file.empty()) ssl.set_trust_store(cfg.mqtt.tls.ca_file);
      if (!cfg.mqtt.tls.cert_file.empty()) ssl.set_key_store(cfg.mqtt.tls.cert_file);
      if (!cfg.mqtt.tls.key_file.empty()) ssl.set_private_key(cfg.mqtt.tls.key_file);
      ssl.set_enable_server_cert_auth(true);
      ssl.set_verify(true);  // host name / IP check: off by default in Paho
      opts.set_ssl(std::move(ssl));
    }
    try {
      if (!cli.connect(opts)->wait_for(timeout)) {
        errors->push_back("connecting to the broker at " + cfg.mqtt.url + " timed out");
        return 0;
      }
    } catch (const mqtt::exception& e) {
      const int reason = e.get_reason_code();
      errors->push_back("cannot connect to the broker at " + cfg.mqtt.url + ": " +
                        (reason >= 0x80 && reason != mqtt::ReasonCode::MQTTPP_V3_CODE
                             ? "refused: " + ReasonText(reason)
                         : e.get_message().empty() ? e.printable_error(e.get_return_code())
                                                   : e.get_message()));
      return 0;
    }

    // At most 64 messages wait for their PUBACK at a time.
    size_t acked = 0;
    std::deque<std::pair<mqtt::delivery_token_ptr, const Message*>> window;
    auto settle = [&](mqtt::delivery_token_ptr tok, const Message* m) {
      try {
        if (!tok->wait_for(timeout)) {
          errors->push_back(m->what + ": no acknowledgement from the broker within " +
                            gateway::FormatDuration(timeout));
          return;
        }
        const int reason = tok->get_reason_code();
        if (reason == 0x10) {
          errors->push_back(m->what + " to " + m->topic + ": the broker has " + ReasonText(reason) +
                            ": no gateway of that store has a session there, nothing was queued");
        } else if (reason >= 0x80 && reason != mqtt::ReasonCode::MQTTPP_V3_CODE) {
          errors->push_back(m->what + " to " + m->topic +
                            ": refused by the broker: " + ReasonText(reason));
        } else {
          ++acked;
        }
      } catch (const mqtt::exception& e) {
        const int reason = e.get_reason_code();
        errors->push_back(m->what + " to " + m->topic + ": " +
                          (reason >= 0x80 && reason != mqtt::ReasonCode::MQTTPP_V3_CODE
                               ? "refused by the broker: " + ReasonText(reason)
                               : "not acknowledged: " + e.get_message()));
      }
    };
    for (const Message& m : msgs) {
      if (window.size() >= 64) {
        settle(window.front().first, window.front().second);
        window.pop_front();
      }
      try {
        window.emplace_back(cli.publish(m.topic, m.payload.data(), m.payload.size(), 1, false), &m);
      } catch (const mqtt::exception& e) {
        errors->push_back(m.what + " to " + m.topic + ": not sent: " + e.get_message());
      }
    }
    while (!window.empty()) {
      settle(window.front().first, window.front().second);
      window.pop_front();
    }
    try {
      cli.disconnect()->wait_for(std::chrono::seconds(5));
    } catch (const mqtt::exception&) {
      // Every acknowledgement is in; a failed disconnect loses nothing.
    }
    return acked;
  } catch (const std::exception& e) {
    errors->push_back("MQTT client: " + std::string(e.what()));
    return 0;
  }
}

// The StockSnapshot's epoch and as_of_seq from the store (unless given).
Status ResolveStream(const HqConfig& cfg, const PublishFlags& f, uint64_t* epoch,
                     uint64_t* as_of_seq, std::string* gateway_id) {
  if (f.epoch && f.as_of_seq) {
    *epoch = *f.epoch;
    *as_of_seq = *f.as_of_seq;
    *gateway_id = f.gateway;
    return Status::Ok();
  }
  auto store = PgStore::Open(cfg.hq.database);
  if (!store.ok()) return Status::Unavailable("database: " + store.status().message());
  std::vector<FleetRow> rows;
  if (Status s = (*store)->Fleet(&rows); !s.ok()) {
    return Status::Unavailable("database: " + s.message());
  }
  std::vector<const FleetRow*> mine;
  std::string names;
  for (const FleetRow& r : rows) {
    if (r.store_id != f.store || (!f.gateway.empty() && r.gateway_id != f.gateway)) continue;
    mine.push_back(&r);
    names += (names.empty() ? "" : ", ") + r.gateway_id;
  }
  if (mine.empty()) {
    return Status::NotFound(
        "HQ has nothing from store " + f.store +
        (f.gateway.empty() ? "" : " gateway " + f.gateway) +
        " yet (no batch, no status), so it knows neither its epoch nor how far it applied it: "
        "give --epoch and --as-of-seq");
  }
  if (mine.size() > 1) {
    return Status::InvalidArgument("gateway", "store " + f.store + " has " +
                                                  std::to_string(mine.size()) + " gateways (" +
                                                  names + "): choose one with --gateway");
  }
  *epoch = f.epoch.value_or(mine.front()->epoch);
  *as_of_seq = f.as_of_seq.value_or(mine.front()->applied_seq);
  *gateway_id = mine.front()->gateway_id;
  return Status::Ok();
}

int Run(PublishFlags f) {
  if (!f.as_of_seq_text.empty()) f.as_of_seq = ParseU64(f.as_of_seq_text);  // checked by the flag
  if (!f.epoch_text.empty()) f.epoch = ParseU64(f.epoch_text);
  auto fail = [](const std::string& msg) {
    std::fprintf(stderr, "storegw-hq publish: %s\n", msg.c_str());
    return kExitFailure;
  };
  std::vector<std::string> problems;
  auto cfg = LoadHqConfigFile(f.config, &problems);
  if (!cfg.ok()) {
    std::fprintf(stderr, "storegw-hq publish: %s is not valid:\n", f.config.c_str());
    for (const auto& p : problems) std::fprintf(stderr, "  %s\n", p.c_str());
    return kExitUsage;
  }
  if (cfg->mqtt.url.empty())
    return fail("mqtt.url is empty in " + f.config + ": no broker to publish to");
  if (Status s = CheckHqConfigFiles(*cfg); !s.ok()) return fail(s.message());

  // 1. The whole file, every line checked, before anything else.
  auto text = ReadCsvFile(f.csv);
  if (!text.ok()) return fail(text.status().message());
  const int64_t now = NowUs();
  int64_t default_effective = now;
  if (!f.effective_from.empty()) {
    auto t = ParseTimestamp(f.effective_from);
    if (!t.ok()) return fail("--effective-from: " + t.status().message());
    default_effective = *t;
  }
  std::vector<Message> msgs;
  const std::string base = cfg->mqtt.topic_prefix + "/" + f.store + "/downstream/";
  std::string summary;
  if (f.kind == "stock") {
    auto lines = ParseStockCsv(*text, f.csv, &problems);
    if (!lines.ok()) {
      std::fprintf(stderr, "storegw-hq publish: %s has errors; nothing was published:\n",
                   f.csv.c_str());
      for (const auto& p : problems) std::fprintf(stderr, "  %s\n", p.c_str());
      return kExitFailure;
    }
    uint64_t epoch = 0, as_of = 0;
    std::string gw;
    if (Status s = ResolveStream(*cfg, f, &epoch, &as_of, &gw); !s.ok()) {
      return fail(s.message() + "; nothing was published");
    }
    v1::StockSnapshot snap;
    snap.set_store_id(f.store);
    snap.set_epoch(epoch);
    snap.set_as_of_seq(as_of);
    snap.set_hq_version(static_cast<uint64_t>(now));
    for (auto& l : *lines) *snap.add_lines() = std::move(l);
    msgs.push_back({base + "stock", snap.SerializeAsString(), "the stock snapshot"});
    summary = "the stock snapshot of " + FormatCount(uint64_t(snap.lines_size())) + " skus for store " +
              f.store + (gw.empty() ? "" : " (gateway " + gw + ")") + ", epoch " +
              std::to_string(epoch) + ", as_of_seq " + std::to_string(as_of) + ", hq_version " +
              std::to_string(snap.hq_version()) + ", " + FormatBytes(msgs.back().payload.size());
  } else if (f.kind == "rules") {
    auto rules = ParseRulesCsv(*text, f.csv, &problems);
    if (!rules.ok()) {
      std::fprintf(stderr, "storegw-hq publish: %s has errors; nothing was published:\n",
                   f.csv.c_str());
      for (const auto& p : problems) std::fprintf(stderr, "  %s\n", p.c_str());
      return kExitFailure;
    }
    rules->set_store_id(f.store);
    msgs.push_back({base + "rules", rules->SerializeAsString(), "the store rules"});
    summary = "the store rules (" + FormatCount(uint64_t(rules->hold_times_size())) +
              (rules->hold_times_size() == 1 ? " hold time, " : " hold times, ") +
              FormatCount(uint64_t(rules->sensor_limits_size())) +
              (rules->sensor_limits_size() == 1 ? " sensor limit" : " sensor limits") +
              ") for store " + f.store + ", " + FormatBytes(msgs.back().payload.size());
  } else {
    auto prices = ParsePriceCsv(*text, f.csv, default_effective, &problems);
    if (!prices.ok()) {
      std::fprintf(stderr, "storegw-hq publish: %s has errors; nothing was published:\n",
                   f.csv.c_str());
      for (const auto& p : problems) std::fprintf(stderr, "  %s\n", p.c_str());
      return kExitFailure;
    }
    for (auto& p : *prices) {
      p.set_store_id(f.store);
      msgs.push_back({base + "prices", p.SerializeAsString(), "the price of " + p.sku()});
    }
    summary = FormatCount(uint64_t(msgs.size())) +
              (msgs.size() == 1 ? " price update" : " price updates") + " for store " + f.store;
  }

  if (f.dry_run) {
    std::printf(
        "storegw-hq publish: %s is valid: would publish %s to %s%s (--dry-run: "
        "nothing published)\n",
        f.csv.c_str(), summary.c_str(), base.c_str(), f.kind.c_str());
    return kExitOk;
  }

  // 2. Publish and wait for every acknowledgement.
  const Millis timeout = ParseDuration(f.timeout).value();  // validated by the flag
  std::vector<std::string> errors;
  const size_t acked = PublishAll(*cfg, msgs, timeout, &errors);
  if (!errors.empty() || acked != msgs.size()) {
    std::fprintf(stderr, "storegw-hq publish: the broker acknowledged %zu of %zu messages (%s):\n",
                 acked, msgs.size(), summary.c_str());
    const size_t shown = std::min<size_t>(errors.size(), 20);
    for (size_t i = 0; i < shown; ++i) std::fprintf(stderr, "  %s\n", errors[i].c_str());
    if (errors.size() > shown) {
      std::fprintf(stderr, "  ... and %zu more\n", errors.size() - shown);
    }
    return kExitFailure;
  }
  std::printf("storegw-hq publish: published %s to %s%s; the broker acknowledged %s of %s\n",
              summary.c_str(), base.c_str(), f.kind.c_str(), FormatCount(uint64_t(acked)).c_str(),
              FormatCount(uint64_t(msgs.size())).c_str());
  return kExitOk;
}

}  // namespace

void AddPublishCommand(CLI::App& app, int* exit_code) {
  auto* publish = app.add_subcommand(
      "publish",
      "Publish stock, prices or store rules (hold times, sensor limits) from a CSV file to a "
      "store (MQTT, QoS 1)");
  publish->require_subcommand(1);
  const auto duration = [](const std::string& v) -> std::string {
    auto d = ParseDuration(v);
    return d.ok() ? "" : d.status().message();
  };
  const auto unsigned64 = [](const std::string& v) -> std::string {
    return ParseU64(v) ? "" : "expected a decimal number from 0 to 18446744073709551615";
  };
  for (const char* kind : {"stock", "prices", "rules"}) {
    auto f = std::make_shared<PublishFlags>();
    f->kind = kind;
    const bool stock = f->kind == "stock";
    const bool prices = f->kind == "prices";
    auto* cmd = publish->add_subcommand(
        kind, stock    ? "A StockSnapshot from sku,qty lines (HQ's stock on hand of each sku)"
              : prices ? "A PriceUpdate per sku,price,currency[,effective_from] line"
                       : "A StoreRules of hold,SKU,HOLD lines (hold times of perishable skus: "
                         "4h, 90m, 0 removes) and sensor,SENSOR_ID,LOCATION,MIN,MAX[,GRACE[,"
                         "SILENT_AFTER]][,metric=NAME] lines (cold-chain limits, milli-degrees "
                         "Celsius; sensor,SENSOR_ID,remove drops them)");
    cmd->add_option("--config,-c", f->config, "The TOML config file ([mqtt], [hq] database)")
        ->required();
    cmd->add_option("--store", f->store, "The store's id (its gateways' gateway.store_id)")
        ->required();
    cmd->add_option("--csv", f->csv, "The CSV file")->required();
    if (stock) {
      cmd->add_option("--gateway", f->gateway,
                      "The store's gateway, when HQ knows more than one of it");
      cmd->add_option("--as-of-seq", f->as_of_seq_text,
                      "The seq the stock is correct as of (default: HQ's applied seq of the "
                      "gateway's current epoch)")
          ->check(unsigned64);
      cmd->add_option("--epoch", f->epoch_text,
                      "The gateway's epoch, decimal (default: its current epoch at HQ)")
          ->check(unsigned64);
    } else if (prices) {
      cmd->add_option("--effective-from", f->effective_from,
                      "For lines without effective_from: a UTC date-time "
                      "(2026-12-01T06:00:00Z) or Unix microseconds (default: now)");
    }
    cmd->add_option("--timeout", f->timeout,
                    "How long to wait for the broker (connection, each acknowledgement)")
        ->check(duration)
        ->capture_default_str();
    cmd->add_flag("--dry-run", f->dry_run, "Check the file (and the store) but publish nothing");
    cmd->callback([f, exit_code] { *exit_code = Run(*f); });
  }
}

}  // namespace storegw::hq
