// hq_store_bench: how fast storegw-hq's PostgreSQL store takes events, side
// by side with the raw limit of the same machine.
//
// Starts a private PostgreSQL 15 (tests/common/postgres.h; fsync on unless
// --fsync off), makes G gateways x E events in batches of B (till sales,
// the shape storegw's uplink sends) and applies them, T batches per
// transaction, with the batches of one transaction from T different
// gateways (what the receiver gathers from a busy broker), through:
//   * PgStore, 1 connection, COPY (the shipped row writer)
//   * PgStore, 2 connections (two PgStores, transactions alternating)
//   * PgStore, 1 connection, multi-row INSERT (the other row writer)
//   * raw COPY of the same rows into `events` with libpq, 1 and 2
//     connections: JSON + COPY + COMMIT, no locks, no dedupe (the limit)
// Each run goes into a fresh database and is checked afterwards with SQL
// (rows = events, one per (gateway, epoch, seq)). It also prints the JSON
// printers' rates (one core). Figures depend on the machine's load; run by
// hand, not a test.
//
//   hq_store_bench [--gateways 200] [--events 5000] [--batch 500]
//                  [--per-txn 64] [--fsync on|off] [--quick]
//                  [--runs copy1,copy2,insert1,raw1,raw2]  (in this order; default all)
#include <google/protobuf/util/json_util.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "common/postgres.h"
#include "event_json.h"
#include "event_rows.h"
#include "hq_store_test_util.h"
#include "pg_conn.h"
#include "storegw/hq/pg_store.h"
#include "storegw/v1/warmup.h"

namespace {

using namespace storegw;
using Clock = std::chrono::steady_clock;

struct Options {
  int gateways = 200;
  int events = 5000;  // per gateway
  int batch = 500;
  int per_txn = 64;
  bool fsync = true;
  std::vector<std::string> runs = {"copy1", "copy2", "insert1", "raw1", "raw2"};
};

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

// 1234567 -> "1,234,567" (built by appending: GCC 12 misreads an inlined
// insert at -O3, see tests/common/ids.h).
std::string Thousands(double v) {
  const std::string digits = std::to_string(static_cast<long long>(v + 0.5));
  std::string s;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) s += ',';
    s += digits[i];
  }
  return s;
}

void Die(const std::string& what) {
  std::fprintf(stderr, "hq_store_bench: %s\n", what.c_str());
  std::exit(1);
}

using Txn = std::vector<hq::IncomingBatch>;

// Runs txns[i] for i % threads == t on thread t; returns the wall time.
double RunThreads(size_t txns, int threads, const std::function<void(int, size_t)>& apply) {
  const auto t0 = Clock::now();
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      for (size_t i = static_cast<size_t>(t); i < txns; i += static_cast<size_t>(threads))
        apply(t, i);
    });
  }
  for (auto& t : ts) t.join();
  return Seconds(t0);
}

// Rows and distinct keys in `events`, by psql.
void Verify(test::Postgres& pg, const std::string& db, uint64_t total) {
  const std::string got =
      pg.Psql("SELECT count(*), count(DISTINCT (gateway_id, epoch, seq)) FROM events", db);
  const std::string want = std::to_string(total) + "|" + std::to_string(total);
  if (got != want) Die("database " + db + " holds " + got + " (rows|distinct), expected " + want);
}

double PgStoreRun(test::Postgres& pg, const std::string& db, const std::vector<Txn>& txns,
                  int connections, hq::PgStoreOptions::RowWriter writer, uint64_t total) {
  const std::string conninfo = pg.CreateDatabase(db);
  hq::PgStoreOptions o;
  o.row_writer = writer;
  std::vector<std::unique_ptr<hq::PgStore>> stores;
  for (int i = 0; i < connections; ++i) {
    auto s = hq::PgStore::Open(conninfo, o);
    if (!s.ok()) Die(s.status().ToString());
    stores.push_back(std::move(*s));
  }
  std::atomic<uint64_t> stored{0};
  const double secs = RunThreads(txns.size(), connections, [&](int t, size_t i) {
    std::vector<hq::BatchOutcome> out;
    Status st = stores[static_cast<size_t>(t)]->ApplyBatches(txns[i], &out);
    if (!st.ok()) Die(st.ToString());
    for (const auto& x : out) {
      if (x.refused) Die("refused: " + x.refuse_detail);
      stored += x.events_stored;
    }
  });
  if (stored != total) {
    Die("stored " + std::to_string(stored.load()) + " events, expected " + std::to_string(total));
  }
  Verify(pg, db, total);
  return secs;
}

double RawCopyRun(test::Postgres& pg, const std::string& db, const std::vector<Txn>& txns,
                  int connections, uint64_t total) {
  const std::string conninfo = pg.CreateDatabase(db);
  {
    auto s = hq::PgStore::Open(conninfo);  // the schema
    if (!s.ok()) Die(s.status().ToString());
  }
  pg.Psql("SELECT storegw_events_partition(storegw_from_us(" + std::to_string(hq_test::T0()) +
              ")), storegw_events_partition(now())",
          db);
  auto target = hq::pg::ParseConninfo(conninfo);
  std::vector<std::unique_ptr<hq::pg::Conn>> conns;
  for (int i = 0; i < connections; ++i) {
    auto c = hq::pg::Conn::Connect(conninfo, *target);
    if (!c.ok()) Die(c.status().ToString());
    conns.push_back(std::move(*c));
  }
  const double secs = RunThreads(txns.size(), connections, [&](int t, size_t i) {
    hq::pg::Conn& c = *conns[static_cast<size_t>(t)];
    std::string data, json;
    hq::pg::AppendCopyHeader(&data);
    for (const auto& in : txns[i]) {
      for (const auto& e : in.batch.events()) {
        json.clear();
        hq::pg::AppendProtoJson(e.event(), &json);
        hq::pg::AppendCopyRow(in.batch, e, json, &data);
      }
    }
    hq::pg::AppendCopyTrailer(&data);
    Status st = c.Exec("BEGIN");
    if (st.ok()) st = c.CopyIn(hq::pg::kCopyEventsSql, data);
    if (st.ok()) st = c.Exec("COMMIT");
    if (!st.ok()) Die(st.ToString());
  });
  Verify(pg, db, total);
  return secs;
}

void JsonRates(const std::vector<Txn>& txns) {
  std::vector<const v1::Event*> events;
  for (const auto& t : txns) {
    for (const auto& in : t) {
      for (const auto& e : in.batch.events()) {
        events.push_back(&e.event());
        if (events.size() >= 200000) break;
      }
    }
  }
  google::protobuf::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  std::string out;
  auto t0 = Clock::now();
  for (const auto* e : events) {
    out.clear();
    (void)google::protobuf::util::MessageToJsonString(*e, &out, o);
  }
  const double ref = static_cast<double>(events.size()) / Seconds(t0);
  t0 = Clock::now();
  for (const auto* e : events) {
    out.clear();
    hq::pg::AppendProtoJson(*e, &out);
  }
  const double fast = static_cast<double>(events.size()) / Seconds(t0);
  std::printf("  JSON, one core: MessageToJsonString %s events/s, AppendProtoJson %s events/s\n",
              Thousands(ref).c_str(), Thousands(fast).c_str());
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) Die(a + " needs a value");
      return argv[++i];
    };
    if (a == "--gateways") {
      opt.gateways = std::atoi(next().c_str());
    } else if (a == "--events") {
      opt.events = std::atoi(next().c_str());
    } else if (a == "--batch") {
      opt.batch = std::atoi(next().c_str());
    } else if (a == "--per-txn") {
      opt.per_txn = std::atoi(next().c_str());
    } else if (a == "--fsync") {
      opt.fsync = next() != "off";
    } else if (a == "--runs") {
      opt.runs.clear();
      std::string list = next() + ",";
      for (size_t p = 0, q; (q = list.find(',', p)) != std::string::npos; p = q + 1) {
        const std::string r = list.substr(p, q - p);
        if (r != "copy1" && r != "copy2" && r != "insert1" && r != "raw1" && r != "raw2") {
          Die("--runs: unknown run " + r + " (copy1, copy2, insert1, raw1, raw2)");
        }
        opt.runs.push_back(r);
      }
    } else if (a == "--quick") {
      opt.gateways = 8;
      opt.events = 500;
      opt.batch = 100;
      opt.per_txn = 8;
    } else {
      Die("unknown argument " + a +
          " (--gateways N --events N --batch N --per-txn N --fsync on|off --quick --runs LIST)");
    }
  }
  if (opt.gateways < 1 || opt.events < 1 || opt.batch < 1 || opt.per_txn < 1) {
    Die("--gateways, --events, --batch and --per-txn must be >= 1");
  }
  v1::WarmUpProtobuf();

  // Batch k of every gateway, then batch k+1...; T consecutive batches per
  // transaction.
  std::mt19937_64 rng(7);
  std::vector<uint64_t> epochs;
  for (int g = 0; g < opt.gateways; ++g) epochs.push_back(rng());
  std::vector<Txn> txns(1);
  const int per_gw = (opt.events + opt.batch - 1) / opt.batch;
  for (int k = 0; k < per_gw; ++k) {
    for (int g = 0; g < opt.gateways; ++g) {
      const uint64_t first = static_cast<uint64_t>(k) * static_cast<uint64_t>(opt.batch) + 1;
      const uint64_t last = std::min<uint64_t>(first + static_cast<uint64_t>(opt.batch) - 1,
                                               static_cast<uint64_t>(opt.events));
      if (txns.back().size() == static_cast<size_t>(opt.per_txn)) txns.emplace_back();
      txns.back().push_back(hq_test::Batch(test::Id("store-", g), test::Id("gw-", g),
                                           epochs[static_cast<size_t>(g)], first, last,
                                           test::Id("g", g) + "-e"));
    }
  }
  const uint64_t total = static_cast<uint64_t>(opt.gateways) * static_cast<uint64_t>(opt.events);

  test::PostgresOptions po;
  po.fsync = opt.fsync;
  test::Postgres pg(po);
  std::printf(
      "hq_store_bench: %d gateways x %d events = %s events, batches of %d, %d batches "
      "per transaction (%zu transactions), PostgreSQL 15 fsync %s\n",
      opt.gateways, opt.events, Thousands(static_cast<double>(total)).c_str(), opt.batch,
      opt.per_txn, txns.size(), opt.fsync ? "on" : "off");
  auto line = [&](const char* what, double secs) {
    std::printf("  %-44s %8.2f s  %12s events/s\n", what, secs,
                Thousands(static_cast<double>(total) / secs).c_str());
    std::fflush(stdout);
  };
  using W = hq::PgStoreOptions::RowWriter;
  int n = 0;
  for (const std::string& r : opt.runs) {
    const std::string db = "bench_" + r + "_" + std::to_string(++n);
    if (r == "copy1") {
      line("PgStore, 1 connection, COPY", PgStoreRun(pg, db, txns, 1, W::kCopy, total));
    } else if (r == "copy2") {
      line("PgStore, 2 connections, COPY", PgStoreRun(pg, db, txns, 2, W::kCopy, total));
    } else if (r == "insert1") {
      line("PgStore, 1 connection, multi-row INSERT",
           PgStoreRun(pg, db, txns, 1, W::kInsert, total));
    } else if (r == "raw1") {
      line("raw COPY into events, 1 connection", RawCopyRun(pg, db, txns, 1, total));
    } else {
      line("raw COPY into events, 2 connections", RawCopyRun(pg, db, txns, 2, total));
    }
    pg.Psql("DROP DATABASE " + db, "postgres");
  }
  JsonRates(txns);
  return 0;
}
