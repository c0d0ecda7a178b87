// Helpers of the end-to-end HQ fleet test and benchmark (tests/hq/e2e,
// tests/bench/hq_e2e_bench.cc), on top of what the other test folders
// share:
//   * LocalGateway: a gateway inside the test process, a real
//     storage::Journal with a real sync::Uplink (ack = "hq"), as the
//     receiver tests and the chaos soak make them; many can run side by
//     side (Paho C serves every client of a process with one thread);
//   * WriteHqConfig, StartHqReplicas: storegw-hq replicas' configs, and
//     their processes started side by side (hq_fleet_test_util.h: HqDaemon);
//   * Sql: the tests' own libpq connection (parameters, reconnects after a
//     PostgreSQL restart), independent of PgStore;
//   * CheckExactlyOnce: every journaled event of every gateway is in
//     `events` exactly once, with the journal's event_id and recorded_at,
//     no seq missing (generate_series), and gateway_epochs.applied_seq is
//     each gateway's last seq;
//   * EnvInt: the scale from the environment (the TSan preset runs smaller).
#pragma once

#include <libpq-fe.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <regex>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "common/files.h"
#include "common/ids.h"
#include "hq_fleet_test_util.h"
#include "storegw/storage/journal.h"
#include "storegw/sync/uplink.h"
#include "storegw/v1/storegw.pb.h"
#include "sync_test_util.h"

namespace storegw::e2e {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

// An integer from the environment, `def` when unset; out of [lo, hi] or
// not a number: an exception naming the variable.
inline int EnvInt(const char* name, int def, int lo, int hi) {
  const char* v = std::getenv(name);
  if (!v || !*v) return def;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  if (*end != '\0' || n < lo || n > hi) {
    throw std::invalid_argument(std::string(name) + "=\"" + v + "\": expected a whole number in " +
                                std::to_string(lo) + ".." + std::to_string(hi));
  }
  return static_cast<int>(n);
}

// "store-0042", "gw-0042-1": readable ids per store and gateway (HQ tells
// gateways apart by (store, gateway); distinct gateway ids only make the
// test's own SQL and messages easier to read).
inline std::string StoreId(int i) {
  char b[32];
  std::snprintf(b, sizeof b, "store-%04d", i);
  return b;
}
inline std::string GatewayId(int i) {
  char b[32];
  std::snprintf(b, sizeof b, "gw-%04d-1", i);
  return b;
}

// ------------------------------------------------------------ gateways

// A gateway of the fleet inside this process: its journal and its uplink.
struct LocalGateway {
  std::string store_id, gateway_id;
  fs::path dir;
  std::unique_ptr<storage::Journal> journal;
  std::unique_ptr<sync::Uplink> uplink;

  uint64_t last_seq() const { return journal->Stats().last_seq; }
  uint64_t watermark() const { return journal->Stats().watermark; }
  bool drained() const {
    const auto s = journal->Stats();
    return s.watermark == s.last_seq;
  }
};

// The uplink options of a fleet gateway: ack = "hq" (the watermark moves
// only by HqAck; sync/README.md says why HQ needs it), at most `batch`
// events per batch and `inflight` batches unacknowledged, short back-off
// and connect timers, and a resend from the watermark after
// `hq_ack_timeout` without an HqAck moving it. Keep the fleet's whole
// window (gateways x inflight x batch events) well below what HQ stores
// in one hq_ack_timeout: otherwise every gateway resends its window
// before HQ has reached it, again and again, and HQ spends its time on
// duplicates.
inline sync::UplinkOptions FleetUplinkOptions(const std::string& url, int batch, int inflight,
                                              std::chrono::milliseconds hq_ack_timeout) {
  sync::UplinkOptions o;
  o.url = url;
  o.ack = "hq";
  o.batch_events = batch;
  o.max_inflight = inflight;
  o.backoff_initial = 100ms;
  o.backoff_max = 1s;
  o.connect_timeout = 5s;
  o.ack_timeout = 10s;
  o.hq_ack_timeout = hq_ack_timeout;
  o.request_timeout = 10s;
  o.status_interval = 5s;
  return o;
}

// Opens the journal of gateway `i` under `dir` and creates its uplink
// (not started). Throws with the reason.
inline std::unique_ptr<LocalGateway> OpenLocalGateway(const fs::path& dir, int i,
                                                      const sync::UplinkOptions& uplink) {
  auto g = std::make_unique<LocalGateway>();
  g->store_id = StoreId(i);
  g->gateway_id = GatewayId(i);
  g->dir = dir;
  storage::JournalOptions jo;
  jo.data_dir = dir;
  jo.store_id = g->store_id;
  jo.gateway_id = g->gateway_id;
  jo.reader_connections = 1;  // the uplink is its only reader here
  auto j = storage::Journal::Open(jo);
  if (!j.ok()) throw std::runtime_error(g->gateway_id + ": journal: " + j.status().ToString());
  g->journal = std::move(*j);
  auto up = sync::Uplink::Create(uplink, g->journal.get());
  if (!up.ok()) throw std::runtime_error(g->gateway_id + ": uplink: " + up.status().ToString());
  g->uplink = std::move(*up);
  return g;
}

// Runs fn(i) for i in [0, n) on `threads` threads; rethrows the first
// exception (journal opens and appends are mostly fsync waits, so a few
// threads go faster even on two cores).
template <typename Fn>
void ParallelFor(int n, int threads, Fn fn) {
  std::atomic<int> next{0};
  std::mutex mu;
  std::exception_ptr first;
  std::vector<std::thread> ts;
  for (int t = 0; t < std::max(1, threads); ++t) {
    ts.emplace_back([&] {
      for (int i; (i = next++) < n;) {
        try {
          fn(i);
        } catch (...) {
          std::lock_guard lk(mu);
          if (!first) first = std::current_exception();
        }
      }
    });
  }
  for (auto& t : ts) t.join();
  if (first) std::rethrow_exception(first);
}

// Appends `n` till sales (sync_test_util.h's SaleEvent: one or two lines,
// ~100 bytes; some raise an oversell alert, a gateway-written event that
// goes upstream like the others) numbered from `first`, in device batches
// of `chunk`. Throws on failure.
inline void AppendSales(storage::Journal& j, uint64_t first, uint64_t n, size_t chunk = 500) {
  const std::string err = sync_test::AppendSales(j, first, n, chunk);
  if (!err.empty()) throw std::runtime_error("append: " + err);
}

// Every event of a journal, in seq order (the reader pool).
inline std::vector<v1::JournaledEvent> ReadAll(storage::Journal& j) {
  std::vector<v1::JournaledEvent> out;
  for (uint64_t from = 1;;) {
    auto r = j.ReadEvents(from, 5000, size_t{8} << 20);
    if (!r.ok()) throw std::runtime_error("read events: " + r.status().ToString());
    if (r->empty()) return out;
    from = r->back().seq() + 1;
    for (auto& e : *r) out.push_back(std::move(e));
  }
}

// ------------------------------------------------------------ storegw-hq

struct HqReplicaConfig {
  std::string conninfo;     // [hq] database
  std::string mqtt_url;     // "" = no MQTT ingress
  std::string client_id;    // unique per replica
  std::string topic_prefix = "retail/v1";
  std::string share_group = "storegw-hq";
  std::string https_listen; // "" = no HTTPS ingress
  std::string cert_file, key_file, client_ca_file;
  std::string log_level = "info";
  std::string hq_extra;  // more [hq] lines ("max_batches_per_txn = 32\n")
};

// Writes the replica's TOML (fleet listener on a free port: the daemon
// prints the one it got) and returns its path.
inline fs::path WriteHqConfig(const fs::path& path, const HqReplicaConfig& c) {
  std::string t = "[hq]\ndatabase = \"" + c.conninfo + "\"\n" + c.hq_extra;
  t += "[mqtt]\nurl = \"" + c.mqtt_url + "\"\n";
  if (!c.mqtt_url.empty()) {
    t += "client_id = \"" + c.client_id + "\"\ntopic_prefix = \"" + c.topic_prefix +
         "\"\nshare_group = \"" + c.share_group + "\"\n";
  }
  t += "[http]\nlisten = \"127.0.0.1:0\"\n";
  if (!c.https_listen.empty()) {
    t += "[https]\nlisten = \"" + c.https_listen + "\"\ncert_file = \"" + c.cert_file +
         "\"\nkey_file = \"" + c.key_file + "\"\n";
    if (!c.client_ca_file.empty()) t += "client_ca_file = \"" + c.client_ca_file + "\"\n";
  }
  t += "[log]\nlevel = \"" + c.log_level + "\"\n";
  test::WriteFile(path, t);
  return path;
}

// The value of an unlabelled series in a Prometheus text document
// (storegw-hq's /metrics), nullopt when it is not there.
inline std::optional<double> MetricValue(const std::string& text, const std::string& name) {
  const std::regex re("(^|\n)" + name + " ([-0-9.e+]+)\n");
  std::smatch m;
  if (!std::regex_search(text, m, re)) return std::nullopt;
  return std::stod(m[2].str());
}

// Starts `storegw-hq run --config C` for every config side by side and
// waits for each one's "listening on http://127.0.0.1:PORT" line (a start
// takes a second or two, mostly Paho's connect; hq_fleet_test_util.h's
// StartHq starts one at a time), with `env` ("NAME=value") added to their
// environment. Spawned from the calling thread (the children die with
// it). Empty with `why` when one does not come up.
inline std::vector<test::HqDaemon> StartHqReplicas(const std::vector<fs::path>& configs,
                                                   const std::vector<std::string>& names,
                                                   const fs::path& logs, std::string* why,
                                                   const std::vector<std::string>& env = {}) {
  fs::create_directories(logs);
  std::vector<test::HqDaemon> out(configs.size());
  for (size_t i = 0; i < configs.size(); ++i) {
    out[i].proc = test::Process::Spawn(
        {test::StoregwHqPath(), "run", "--config", configs[i].string()},
        logs / (names[i] + ".out"), logs / (names[i] + ".err"), env);
  }
  static const std::regex kListening(R"(listening on http://127\.0\.0\.1:(\d+))");
  for (size_t i = 0; i < out.size(); ++i) {
    std::smatch m;
    std::string text;
    const bool up = test::WaitFor(
        [&] {
          text = out[i].proc.Stdout();
          return !out[i].proc.Running() || std::regex_search(text, m, kListening);
        },
        60s);
    if (!up || !out[i].proc.Running()) {
      if (why) {
        *why = names[i] + ": " +
               (up ? test::Describe(*out[i].proc.exit_info()) : std::string("not ready in 60 s")) +
               "; stderr:\n" + out[i].proc.Stderr();
      }
      return {};
    }
    out[i].port = static_cast<uint16_t>(std::stoi(m[1].str()));
  }
  return out;
}

// ------------------------------------------------------------ SQL

// The tests' own view of PostgreSQL: one libpq connection, statements with
// parameters (PQexecParams), text results. A statement that fails on a
// broken connection (the server was restarted) reconnects and runs once
// more. Throws with the server's message otherwise.
class Sql {
 public:
  using Rows = std::vector<std::vector<std::string>>;

  explicit Sql(std::string conninfo) : conninfo_(std::move(conninfo)) { Connect(); }
  ~Sql() {
    if (c_) PQfinish(c_);
  }
  Sql(const Sql&) = delete;
  Sql& operator=(const Sql&) = delete;

  Rows operator()(const std::string& sql, const std::vector<std::string>& params = {}) {
    for (int attempt = 0;; ++attempt) {
      std::vector<const char*> values;
      for (const auto& p : params) values.push_back(p.c_str());
      PGresult* r = PQexecParams(c_, sql.c_str(), static_cast<int>(values.size()), nullptr,
                                 values.data(), nullptr, nullptr, 0);
      const auto st = PQresultStatus(r);
      if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
        Rows rows;
        for (int i = 0; i < PQntuples(r); ++i) {
          rows.emplace_back();
          for (int k = 0; k < PQnfields(r); ++k) rows.back().emplace_back(PQgetvalue(r, i, k));
        }
        PQclear(r);
        return rows;
      }
      const std::string why = PQresultErrorMessage(r);
      PQclear(r);
      if (attempt == 0 && PQstatus(c_) != CONNECTION_OK) {
        Connect();
        continue;
      }
      throw std::runtime_error("SQL `" + sql.substr(0, 80) + "` failed: " + why);
    }
  }
  // The single value of a one-row, one-column result.
  std::string Value(const std::string& sql, const std::vector<std::string>& params = {}) {
    Rows r = (*this)(sql, params);
    if (r.size() != 1 || r[0].size() != 1) throw std::runtime_error("SQL: not one value: " + sql);
    return r[0][0];
  }

 private:
  void Connect() {
    if (c_) PQfinish(c_);
    c_ = PQconnectdb(conninfo_.c_str());
    if (PQstatus(c_) != CONNECTION_OK) {
      throw std::runtime_error(std::string("SQL: cannot connect: ") + PQerrorMessage(c_));
    }
    PQsetNoticeProcessor(
        c_, [](void*, const char*) {}, nullptr);
  }

  std::string conninfo_;
  PGconn* c_ = nullptr;
};

// What one gateway journaled: its identity and every event, seq order.
struct Journaled {
  std::string store_id, gateway_id;
  uint64_t epoch = 0;
  std::vector<v1::JournaledEvent> events;  // seq 1..n
  uint64_t last_seq() const { return events.empty() ? 0 : events.back().seq(); }
};

// {a,b,c}: a PostgreSQL array literal of plain ids and numbers.
inline std::string ArrayLiteral(const std::vector<std::string>& v) {
  std::string s = "{";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) s += ',';
    s += v[i];
  }
  return s + "}";
}

// The fleet's journals against `events` and `gateway_epochs`. Returns the
// problems found (empty: every event of every gateway is stored exactly
// once, no seq missing, applied_seq = last seq everywhere), at most
// `max_problems` of them, then a count.
inline std::vector<std::string> CheckExactlyOnce(Sql& sql, const std::vector<Journaled>& fleet,
                                                 size_t max_problems = 20) {
  std::vector<std::string> problems;
  size_t more = 0;
  auto problem = [&](std::string p) {
    if (problems.size() < max_problems) {
      problems.push_back(std::move(p));
    } else {
      ++more;
    }
  };
  std::vector<std::string> stores, ids, epochs, lasts;
  uint64_t total = 0;
  std::map<std::tuple<std::string, std::string, int64_t>, const Journaled*> by_key;
  for (const auto& g : fleet) {
    // Epochs are fixed64 on the wire and bigint in PostgreSQL: the same 64
    // bits, two's complement (docs/hq-schema.md).
    const int64_t epoch = static_cast<int64_t>(g.epoch);
    stores.push_back(g.store_id);
    ids.push_back(g.gateway_id);
    epochs.push_back(std::to_string(epoch));
    lasts.push_back(std::to_string(g.last_seq()));
    total += g.last_seq();
    by_key[{g.store_id, g.gateway_id, epoch}] = &g;
    for (size_t i = 0; i < g.events.size(); ++i) {
      if (g.events[i].seq() != i + 1) {
        problem(g.gateway_id + ": the journal itself is not dense at seq " + std::to_string(i + 1));
        break;
      }
    }
  }
  const std::vector<std::string> params = {ArrayLiteral(stores), ArrayLiteral(ids),
                                           ArrayLiteral(epochs), ArrayLiteral(lasts)};
  // A gateway is (store_id, gateway_id); its events are keyed on (store,
  // gateway, epoch, seq).
  const std::string expected =
      "WITH expected(store_id, gateway_id, epoch, last_seq) AS (SELECT * FROM unnest($1::text[], "
      "$2::text[], $3::bigint[], $4::bigint[])) ";
  const std::string same =
      "e.store_id = x.store_id AND e.gateway_id = x.gateway_id AND e.epoch = x.epoch";

  // 1. Totals: nothing else in the table, nothing twice.
  auto t = sql(
      "SELECT count(*), count(DISTINCT (store_id, gateway_id, epoch, seq)) FROM events");
  if (t[0][0] != std::to_string(total) || t[0][1] != std::to_string(total)) {
    problem("events holds " + t[0][0] + " rows, " + t[0][1] +
            " distinct (store_id, gateway_id, epoch, seq); the journals hold " +
            std::to_string(total));
  }
  // 2. Per gateway: rows, distinct seqs, min and max.
  for (const auto& r :
       sql(expected +
               "SELECT x.gateway_id, x.last_seq, count(e.seq), count(DISTINCT e.seq), "
               "coalesce(min(e.seq), 0), coalesce(max(e.seq), 0) FROM expected x LEFT JOIN "
               "events e ON " + same + " GROUP BY x.store_id, x.gateway_id, x.last_seq "
               "HAVING count(e.seq) <> x.last_seq OR count(DISTINCT e.seq) <> x.last_seq OR "
               "coalesce(min(e.seq), 0) <> least(x.last_seq, 1) OR coalesce(max(e.seq), 0) <> "
               "x.last_seq ORDER BY 1",
           params)) {
    problem(r[0] + ": journal seqs 1.." + r[1] + ", events has " + r[2] + " rows, " + r[3] +
            " distinct seqs, min " + r[4] + ", max " + r[5]);
  }
  // 3. No gap: every seq 1..last_seq is there.
  for (const auto& r :
       sql(expected +
               "SELECT x.gateway_id, count(*), min(s) FROM expected x CROSS JOIN LATERAL "
               "generate_series(1::bigint, x.last_seq) AS s WHERE NOT EXISTS (SELECT 1 FROM "
               "events e WHERE " + same + " AND e.seq = s) GROUP BY x.store_id, x.gateway_id "
               "ORDER BY 1",
           params)) {
    problem(r[0] + ": " + r[1] + " seqs missing, the first " + r[2]);
  }
  // 4. HQ's applied prefix is the whole journal.
  for (const auto& r :
       sql(expected +
               "SELECT x.gateway_id, x.last_seq, coalesce(g.applied_seq::text, 'no row') FROM "
               "expected x LEFT JOIN gateway_epochs g ON g.store_id = x.store_id AND "
               "g.gateway_id = x.gateway_id AND g.epoch = x.epoch WHERE g.applied_seq IS "
               "DISTINCT FROM x.last_seq ORDER BY 1",
           params)) {
    problem(r[0] + ": gateway_epochs.applied_seq is " + r[2] + ", its last seq " + r[1]);
  }
  // 5. Each row is the journal's event at that seq.
  size_t compared = 0;
  for (const auto& r : sql("SELECT store_id, gateway_id, epoch, seq, event_id, (extract(epoch "
                           "FROM recorded_at) * 1000000)::bigint FROM events")) {
    auto it = by_key.find({r[0], r[1], std::stoll(r[2])});
    if (it == by_key.end()) {
      problem("a row of a gateway or epoch no journal has: " + r[0] + "/" + r[1] + " epoch " +
              r[2]);
      continue;
    }
    const uint64_t seq = std::stoull(r[3]);
    const auto& evs = it->second->events;
    if (seq < 1 || seq > evs.size()) continue;  // reported above
    const auto& je = evs[seq - 1];
    if (je.event().event_id() != r[4] || std::to_string(je.recorded_at()) != r[5]) {
      problem(r[1] + " seq " + r[3] + ": stored event_id " + r[4] + " recorded_at " + r[5] +
              ", journaled " + je.event().event_id() + " " + std::to_string(je.recorded_at()));
    }
    ++compared;
  }
  if (compared != total && problems.empty()) {
    problem("compared " + std::to_string(compared) + " rows of " + std::to_string(total));
  }
  if (more) problems.push_back("... and " + std::to_string(more) + " more");
  return problems;
}

}  // namespace storegw::e2e
