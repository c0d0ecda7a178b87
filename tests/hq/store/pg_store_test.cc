// PgStore against a real PostgreSQL 15 (tests/common/postgres.h), one
// server per test process, a fresh database per test case. Every claim is
// checked independently of PgStore too: the tests count rows with their own
// SQL through psql (count(*), count(DISTINCT seq), max(seq), gaps with
// generate_series).
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <random>
#include <thread>

#include "common/postgres.h"
#include "common/process.h"
#include "hq_store_test_util.h"
#include "sql_check.h"
#include "storegw/hq/pg_store.h"

namespace storegw::hq {
namespace {

using hq_test::Batch;
using hq_test::SqlCheck;
using namespace std::chrono_literals;

test::Postgres& Server() {
  static test::Postgres server;
  return server;
}

std::string FreshDatabase() {
  static int n = 0;
  return Server().CreateDatabase(test::Id("case", ++n));
}

std::unique_ptr<PgStore> OpenStore(const std::string& conninfo, PgStoreOptions o = {}) {
  auto s = PgStore::Open(conninfo, o);
  REQUIRE_MESSAGE(s.ok(), s.status().ToString());
  return std::move(*s);
}

std::vector<BatchOutcome> Apply(PgStore& store, std::vector<IncomingBatch> batches) {
  std::vector<BatchOutcome> out;
  Status st = store.ApplyBatches(batches, &out);
  REQUIRE_MESSAGE(st.ok(), st.ToString());
  REQUIRE(out.size() == batches.size());
  return out;
}

std::string EpochSql(uint64_t epoch) {
  return std::to_string(static_cast<int64_t>(epoch));
}

// The tests' own view of (gateway, epoch) in `events`:
// "count|distinct seqs|max seq|missing seqs in 1..max".
std::string Census(SqlCheck& sql, const std::string& gw, uint64_t epoch) {
  const std::string where = "gateway_id = '" + gw + "' AND epoch = " + EpochSql(epoch);
  return sql(
      "SELECT count(*), count(DISTINCT seq), coalesce(max(seq), 0), "
      "(SELECT count(*) FROM generate_series(1, (SELECT coalesce(max(seq), 0) FROM events "
      "WHERE " +
      where + ")) s WHERE NOT EXISTS (SELECT 1 FROM events WHERE " + where +
      " AND seq = s)) FROM events WHERE " + where);
}

std::string CensusLine(uint64_t n) {
  return std::to_string(n) + "|" + std::to_string(n) + "|" + std::to_string(n) + "|0";
}

uint64_t Applied(PgStore& store, const std::string& store_id, const std::string& gw,
                 uint64_t epoch) {
  uint64_t seq = 0;
  Status st = store.AppliedSeq(store_id, gw, epoch, &seq);
  REQUIRE_MESSAGE(st.ok(), st.ToString());
  return seq;
}

constexpr uint64_t kEpoch = 0xF00DCAFE12345678ULL;  // above 2^63: negative as bigint

}  // namespace

TEST_CASE("schema: created from empty, re-opening is idempotent, replicas may start at once") {
  const std::string conninfo = FreshDatabase();
  SqlCheck sql(conninfo);
  {
    // Four replicas open an empty database together: the advisory lock
    // lets one migrate; the others wait and find the work done.
    std::vector<std::thread> threads;
    std::atomic<int> ok{0};
    std::mutex mu;
    std::vector<std::string> errors;
    for (int i = 0; i < 4; ++i) {
      threads.emplace_back([&] {
        auto s = PgStore::Open(conninfo);
        if (s.ok()) {
          ++ok;
        } else {
          std::lock_guard l(mu);
          errors.push_back(s.status().ToString());
        }
      });
    }
    for (auto& t : threads) t.join();
    CHECK_MESSAGE(ok == 4, (errors.empty() ? "" : errors[0]));
  }
  CHECK(sql("SELECT version, name <> '' FROM schema_migrations ORDER BY version") == "1|t");
  CHECK(PgStore::SchemaVersion() == 1);
  CHECK(sql("SELECT count(*) FROM pg_partitioned_table WHERE partrelid = 'events'::regclass") ==
        "1");
  CHECK(sql("SELECT to_regclass('events_default') IS NOT NULL AND "
            "to_regclass('gateways') IS NOT NULL AND to_regclass('gateway_epochs') IS NOT NULL "
            "AND to_regclass('pending_ranges') IS NOT NULL") == "t");
  CHECK(sql("SELECT indexdef LIKE '%UNIQUE%(gateway_id, epoch, seq, recorded_at)' FROM "
            "pg_indexes WHERE tablename = 'events'") == "t");
  auto again = OpenStore(conninfo);
  CHECK(sql("SELECT count(*) FROM schema_migrations") == "1");
  CHECK(sql("SELECT storegw_u64(" + EpochSql(kEpoch) + ")") == std::to_string(kEpoch));
}

TEST_CASE("schema: a database from a newer storegw-hq is refused, nothing changed") {
  const std::string conninfo = FreshDatabase();
  SqlCheck sql(conninfo);
  { auto s = OpenStore(conninfo); }
  sql("INSERT INTO schema_migrations (version, name) VALUES (99, 'from the future')");
  const std::string tables_before =
      sql("SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = "
          "'public'");
  auto s = PgStore::Open(conninfo);
  REQUIRE_FALSE(s.ok());
  CHECK(s.status().code() == StatusCode::kFailedPrecondition);
  CHECK(s.status().message().find("version 99") != std::string::npos);
  CHECK(s.status().message().find("newer than this storegw-hq knows (1)") != std::string::npos);
  CHECK(sql("SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname "
            "= 'public'") == tables_before);
  CHECK(sql("SELECT count(*) FROM schema_migrations") == "2");
}

TEST_CASE("connection errors name host, port and database, never the password") {
  auto& pg = Server();
  const std::string secret = "s3cr3t-Pw-417";
  {
    const uint16_t port = test::FreePort();  // nothing listens
    auto s = PgStore::Open("host=127.0.0.1 port=" + std::to_string(port) +
                           " dbname=nowhere user=u password=" + secret);
    REQUIRE_FALSE(s.ok());
    const std::string m = s.status().ToString();
    INFO(m);
    CHECK(s.status().code() == StatusCode::kUnavailable);
    CHECK(m.find("host 127.0.0.1 port " + std::to_string(port) + " database nowhere") !=
          std::string::npos);
    CHECK(m.find(secret) == std::string::npos);
  }
  {
    // A wrong password against the real server (SCRAM on TCP).
    auto s = PgStore::Open("postgresql://storegw:" + secret +
                           "@127.0.0.1:" + std::to_string(pg.port()) + "/storegw");
    REQUIRE_FALSE(s.ok());
    const std::string m = s.status().ToString();
    INFO(m);
    CHECK(m.find("password authentication failed") != std::string::npos);
    CHECK(m.find("database storegw") != std::string::npos);
    CHECK(m.find(secret) == std::string::npos);
  }
  for (const std::string& bad :
       {"host=127.0.0.1 password=" + secret + " bogus",
        "host=127.0.0.1 password='" + secret + " unterminated",
        "host=127.0.0.1 nosuchoption=1 password=" + secret,
        "postgresql://u:" + secret + "@127.0.0.1:5432/db?nosuch=" + secret}) {
    auto s = PgStore::Open(bad);
    REQUIRE_FALSE(s.ok());
    const std::string m = s.status().ToString();
    INFO(m);
    CHECK(s.status().code() == StatusCode::kInvalidArgument);
    CHECK(s.status().field() == "[hq] database");
    CHECK(m.find(secret) == std::string::npos);
  }
}

TEST_CASE("apply: the same batch twice and overlapping batches store every seq once") {
  // Both row writers: COPY (the default) and multi-row INSERT.
  for (auto writer : {PgStoreOptions::RowWriter::kCopy, PgStoreOptions::RowWriter::kInsert}) {
    CAPTURE(static_cast<int>(writer));
    const std::string conninfo = FreshDatabase();
    SqlCheck sql(conninfo);
    PgStoreOptions o;
    o.row_writer = writer;
    auto store = OpenStore(conninfo, o);
    auto out = Apply(*store, {Batch("s1", "gw1", kEpoch, 1, 250)});
    CHECK(out[0].events_stored == 250);
    CHECK(out[0].applied_seq == 250);
    out = Apply(*store, {Batch("s1", "gw1", kEpoch, 1, 250), Batch("s1", "gw1", kEpoch, 1, 250)});
    CHECK(out[0].events_stored == 0);
    CHECK(out[0].events_duplicate == 250);
    CHECK(out[1].events_duplicate == 250);
    out =
        Apply(*store, {Batch("s1", "gw1", kEpoch, 200, 300), Batch("s1", "gw1", kEpoch, 290, 310)});
    CHECK(out[0].events_stored == 50);
    CHECK(out[0].events_duplicate == 51);
    CHECK(out[1].events_stored == 10);
    CHECK(out[1].events_duplicate == 11);
    CHECK(out[0].applied_seq == 310);
    CHECK(out[1].applied_seq == 310);
    CHECK(Applied(*store, "s1", "gw1", kEpoch) == 310);
    CHECK(Census(sql, "gw1", kEpoch) == CensusLine(310));
    // What a row holds.
    CHECK(sql("SELECT store_id, kind, event_id, device_id, storegw_us(recorded_at), "
              "event->>'event_id', event->'sale'->'lines'->0->>'unit_price', "
              "storegw_u64(epoch) FROM events WHERE seq = 7") ==
          "s1|sale|e7|till-1|" + std::to_string(hq_test::SaleEvent(7).recorded_at()) + "|e7|199|" +
              std::to_string(kEpoch));
  }
}

TEST_CASE(
    "apply: out of order (3 before 2 before 1) - stored at once, prefix moves when the gap fills") {
  const std::string conninfo = FreshDatabase();
  SqlCheck sql(conninfo);
  auto store = OpenStore(conninfo);
  auto out = Apply(*store, {Batch("s1", "gw1", kEpoch, 201, 300)});
  CHECK(out[0].events_stored == 100);
  CHECK(out[0].applied_seq == 0);
  CHECK(sql("SELECT first_seq, last_seq FROM pending_ranges") == "201|300");
  out = Apply(*store, {Batch("s1", "gw1", kEpoch, 101, 200)});
  CHECK(out[0].applied_seq == 0);
  CHECK(sql("SELECT first_seq, last_seq FROM pending_ranges") == "101|300");
  std::vector<FleetRow> fleet;
  REQUIRE(store->Fleet(&fleet).ok());
  REQUIRE(fleet.size() == 1);
  CHECK(fleet[0].pending_events == 200);
  CHECK(fleet[0].applied_seq == 0);
  CHECK(sql("SELECT count(*) FROM events") == "200");
  out = Apply(*store, {Batch("s1", "gw1", kEpoch, 1, 100)});
  CHECK(out[0].events_stored == 100);
  CHECK(out[0].applied_seq == 300);
  CHECK(sql("SELECT count(*) FROM pending_ranges") == "0");
  CHECK(Census(sql, "gw1", kEpoch) == CensusLine(300));
}

TEST_CASE("apply: a gap filled later, and gaps closed within one call") {
  const std::string conninfo = FreshDatabase();
  SqlCheck sql(conninfo);
  auto store = OpenStore(conninfo);
  auto out = Apply(*store, {Batch("s1", "gw1", 1, 1, 10), Batch("s1", "gw1", 1, 21, 30),
                            Batch("s1", "gw1", 1, 41, 50)});
  for (const auto& o : out) CHECK(o.applied_seq == 10);
  CHECK(sql("SELECT string_agg(first_seq || '-' || last_seq, ',' ORDER BY first_seq) FROM "
            "pending_ranges") == "21-30,41-50");
  out = Apply(*store, {Batch("s1", "gw1", 1, 11, 20)});
  CHECK(out[0].applied_seq == 30);
  CHECK(sql("SELECT string_agg(first_seq || '-' || last_seq, ',') FROM pending_ranges") == "41-50");
  // Two gateways in one call, one of them out of order inside the call.
  out = Apply(*store, {Batch("s2", "gw2", 5, 11, 20), Batch("s1", "gw1", 1, 31, 40),
                       Batch("s2", "gw2", 5, 1, 10)});
  CHECK(out[0].applied_seq == 20);
  CHECK(out[1].applied_seq == 50);
  CHECK(out[2].applied_seq == 20);
  CHECK(sql("SELECT count(*) FROM pending_ranges") == "0");
  CHECK(Census(sql, "gw1", 1) == CensusLine(50));
  CHECK(Census(sql, "gw2", 5) == CensusLine(20));
}

TEST_CASE(
    "epochs: a new epoch (batch or status) supersedes the old one, whose batches are refused") {
  const std::string conninfo = FreshDatabase();
  SqlCheck sql(conninfo);
  auto store = OpenStore(conninfo);
  const uint64_t a = 1111, b = kEpoch, c = 3333;
  Apply(*store, {Batch("s1", "gw1", a, 1, 10)});
  auto out = Apply(*store, {Batch("s1", "gw1", b, 1, 5)});
  CHECK_FALSE(out[0].refused);
  CHECK(out[0].applied_seq == 5);
  out = Apply(*store, {Batch("s1", "gw1", a, 11, 20), Batch("s1", "gw1", b, 6, 8)});
  REQUIRE(out[0].refused);
  CHECK(*out[0].refused == RefuseReason::kSupersededEpoch);
  CHECK(out[0].refuse_detail.find("superseded by epoch " + std::to_string(b)) != std::string::npos);
  CHECK(out[0].events_stored == 0);
  CHECK(out[0].applied_seq == 10);
  CHECK_FALSE(out[1].refused);
  CHECK(out[1].applied_seq == 8);
  CHECK(Census(sql, "gw1", a) == CensusLine(10));
  CHECK(Applied(*store, "s1", "gw1", a) == 10);
  CHECK(sql("SELECT storegw_u64(superseded_by) FROM gateway_epochs WHERE epoch = " + EpochSql(a)) ==
        std::to_string(b));

  // A status naming epoch c (the journal was replaced again): c is current,
  // b is superseded before any batch of c arrived.
  v1::GatewayStatus st;
  st.set_store_id("s1");
  st.set_gateway_id("gw1");
  st.set_epoch(c);
  st.set_online(true);
  REQUIRE(store->RecordStatus(st, hq_test::NowMicros()).ok());
  out = Apply(*store, {Batch("s1", "gw1", b, 9, 10)});
  REQUIRE(out[0].refused);
  CHECK(*out[0].refused == RefuseReason::kSupersededEpoch);
  CHECK(Census(sql, "gw1", b) == CensusLine(8));
  // A late status of a superseded epoch changes nothing.
  v1::GatewayStatus stale = st;
  stale.set_epoch(a);
  stale.set_online(false);
  REQUIRE(store->RecordStatus(stale, hq_test::NowMicros()).ok());
  std::vector<FleetRow> fleet;
  REQUIRE(store->Fleet(&fleet).ok());
  REQUIRE(fleet.size() == 1);
  CHECK(fleet[0].epoch == c);
  CHECK(fleet[0].epochs_seen == 3);
  CHECK(fleet[0].applied_seq == 0);
  REQUIRE(fleet[0].status);
  CHECK(fleet[0].status->epoch() == c);
  CHECK(fleet[0].status->online());
  out = Apply(*store, {Batch("s1", "gw1", c, 1, 3)});
  CHECK(out[0].applied_seq == 3);
  CHECK(sql("SELECT count(*) FROM gateway_epochs WHERE superseded_at IS NULL") == "1");
}

TEST_CASE(
    "apply: a repeated seq that holds another event is a conflict - nothing of the batch is "
    "stored") {
  const std::string conninfo = FreshDatabase();
  SqlCheck sql(conninfo);
  auto store = OpenStore(conninfo);
  Apply(*store, {Batch("s1", "gw1", 1, 1, 10)});
  auto bad = Batch("s1", "gw1", 1, 5, 15);
  bad.batch.mutable_events(2)->mutable_event()->set_event_id("restored-journal-7");
  auto out = Apply(*store, {bad, Batch("s1", "gw2", 1, 1, 5)});
  REQUIRE(out[0].refused);
  CHECK(*out[0].refused == RefuseReason::kConflict);
  CHECK(out[0].refuse_detail.find("seq 7 is stored as event_id e7") != std::string::npos);
  CHECK(out[0].applied_seq == 10);
  CHECK_FALSE(out[1].refused);
  CHECK(Census(sql, "gw1", 1) == CensusLine(10));
  CHECK(Census(sql, "gw2", 1) == CensusLine(5));
}

TEST_CASE("apply: malformed batches are refused with a reason, the rest of the call is stored") {
  const std::string conninfo = FreshDatabase();
  SqlCheck sql(conninfo);
  auto store = OpenStore(conninfo);
  auto short_batch = Batch("s1", "gw1", 1, 1, 10);
  short_batch.batch.mutable_events()->RemoveLast();
  auto nul = Batch("s1", "gw1", 1, 1, 10);
  nul.batch.mutable_events(3)->mutable_event()->mutable_sale()->set_tender(
      std::string("ca\0sh", 5));
  auto out = Apply(*store, {short_batch, nul, Batch("s1", "gw2", 1, 1, 4)});
  REQUIRE(out[0].refused);
  CHECK(*out[0].refused == RefuseReason::kNotContiguous);
  REQUIRE(out[1].refused);
  CHECK(*out[1].refused == RefuseReason::kInvalidEvent);
  CHECK(out[1].refuse_detail.find("seq 4") != std::string::npos);
  CHECK(out[2].applied_seq == 4);
  CHECK(sql("SELECT count(*) FROM events") == "4");
  CHECK(Applied(*store, "s1", "gw1", 1) == 0);
}

TEST_CASE(
    "apply: two stores apply overlapping batches of the same gateways at once - every seq once") {
  const std::string conninfo = FreshDatabase();
  SqlCheck sql(conninfo);
  auto s1 = OpenStore(conninfo);
  auto s2 = OpenStore(conninfo);
  constexpr uint64_t kLast = 1200;
  const std::vector<std::string> gateways = {"gw-a", "gw-b", "gw-c"};
  // Each replica gets every range once (cover 1..kLast in chunks of 1..40)
  // plus random overlapping ranges, all shuffled, applied in calls of 1..6
  // batches of mixed gateways.
  auto work = [&](uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::vector<IncomingBatch> all;
    for (const auto& gw : gateways) {
      for (uint64_t s = 1; s <= kLast;) {
        const uint64_t e = std::min(kLast, s + rng() % 40);
        all.push_back(Batch("s1", gw, kEpoch, s, e));
        s = e + 1;
      }
      for (int i = 0; i < 20; ++i) {
        const uint64_t s = 1 + rng() % kLast;
        all.push_back(Batch("s1", gw, kEpoch, s, std::min(kLast, s + rng() % 60)));
      }
    }
    std::shuffle(all.begin(), all.end(), rng);
    return all;
  };
  const auto w1 = work(1), w2 = work(2);
  std::atomic<uint64_t> stored_total{0};
  std::mutex mu;
  std::vector<std::string> errors;
  auto run = [&](PgStore& store, const std::vector<IncomingBatch>& batches, uint64_t seed) {
    std::mt19937_64 rng(seed);
    for (size_t i = 0; i < batches.size();) {
      const size_t n = std::min(batches.size() - i, static_cast<size_t>(1 + rng() % 6));
      std::vector<BatchOutcome> out;
      Status st = store.ApplyBatches(std::span(batches).subspan(i, n), &out);
      if (!st.ok()) {
        std::lock_guard l(mu);
        errors.push_back(st.ToString());
        return;
      }
      for (const auto& o : out) {
        if (o.refused) {
          std::lock_guard l(mu);
          errors.push_back("refused: " + o.refuse_detail);
        }
        stored_total += o.events_stored;
      }
      i += n;
    }
  };
  std::thread t1([&] { run(*s1, w1, 11); });
  std::thread t2([&] { run(*s2, w2, 12); });
  t1.join();
  t2.join();
  REQUIRE_MESSAGE(errors.empty(), (errors.empty() ? std::string() : errors.front()));
  // Each seq was "newly stored" by exactly one call of one replica.
  CHECK(stored_total == kLast * gateways.size());
  for (const auto& gw : gateways) {
    CAPTURE(gw);
    CHECK(Applied(*s1, "s1", gw, kEpoch) == kLast);
    CHECK(Census(sql, gw, kEpoch) == CensusLine(kLast));
  }
  CHECK(sql("SELECT count(*) FROM pending_ranges") == "0");
}

TEST_CASE(
    "stores: two stores' gw-01 (different epochs) are two gateways - interleaved batches all "
    "stored, neither superseded, two fleet rows") {
  const std::string conninfo = FreshDatabase();
  SqlCheck sql(conninfo);
  auto store = OpenStore(conninfo);
  // Every store's gateway is "gw-01" by default (packaging/storegw.toml).
  const uint64_t e1 = kEpoch, e2 = 0x0123456789ABCDEFULL;
  constexpr uint64_t kSize = 10, kBatches = 12;  // 120 events per store
  // Statuses of both first (each names its own epoch), then the batches of
  // the two stores interleaved within and across calls, gaps included.
  for (const auto& [sid, epoch] : {std::pair{"s1", e1}, std::pair{"s2", e2}}) {
    v1::GatewayStatus st;
    st.set_store_id(sid);
    st.set_gateway_id("gw-01");
    st.set_epoch(epoch);
    st.set_online(true);
    REQUIRE(store->RecordStatus(st, hq_test::NowMicros()).ok());
  }
  const auto b1 = [&](uint64_t k) {
    return Batch("s1", "gw-01", e1, k * kSize + 1, (k + 1) * kSize, "s1-e");
  };
  const auto b2 = [&](uint64_t k) {
    return Batch("s2", "gw-01", e2, k * kSize + 1, (k + 1) * kSize, "s2-e");
  };
  uint64_t stored = 0;
  for (uint64_t k = 0; k < kBatches; k += 2) {
    // s2 out of order inside the call (k+1 before k), s1 in order.
    auto out = Apply(*store, {b1(k), b2(k + 1), b1(k + 1), b2(k)});
    for (const auto& o : out) {
      CHECK_MESSAGE(!o.refused, o.refuse_detail);
      stored += o.events_stored;
    }
    CHECK(out[0].applied_seq == (k + 2) * kSize);  // what HqAck of s1's gw-01 names
    CHECK(out[3].applied_seq == (k + 2) * kSize);  // ... and of s2's
  }
  CHECK(stored == 2 * kBatches * kSize);
  // A resend of either is a duplicate of its own store's events only.
  auto out = Apply(*store, {b2(3), b1(3)});
  CHECK(out[0].events_duplicate == kSize);
  CHECK(out[1].events_duplicate == kSize);

  const uint64_t n = kBatches * kSize;
  CHECK(Applied(*store, "s1", "gw-01", e1) == n);
  CHECK(Applied(*store, "s2", "gw-01", e2) == n);
  CHECK(Applied(*store, "s1", "gw-01", e2) == 0);  // s2's journal is not s1's
  CHECK(Census(sql, "gw-01", e1) == CensusLine(n));
  CHECK(Census(sql, "gw-01", e2) == CensusLine(n));
  CHECK(sql("SELECT store_id, count(*), count(DISTINCT event_id), bool_and(event_id LIKE "
            "store_id || '-e%') FROM events GROUP BY 1 ORDER BY 1") ==
        "s1|" + std::to_string(n) + "|" + std::to_string(n) + "|t\ns2|" + std::to_string(n) + "|" +
            std::to_string(n) + "|t");
  CHECK(sql("SELECT count(*) FROM gateway_epochs WHERE superseded_at IS NULL") == "2");
  CHECK(sql("SELECT count(*) FROM pending_ranges") == "0");
  std::vector<FleetRow> fleet;
  REQUIRE(store->Fleet(&fleet).ok());
  REQUIRE(fleet.size() == 2);
  for (size_t i = 0; i < 2; ++i) {
    CAPTURE(i);
    CHECK(fleet[i].store_id == (i == 0 ? "s1" : "s2"));
    CHECK(fleet[i].gateway_id == "gw-01");
    CHECK(fleet[i].epoch == (i == 0 ? e1 : e2));
    CHECK(fleet[i].epochs_seen == 1);
    CHECK(fleet[i].applied_seq == n);
    REQUIRE(fleet[i].status);
    CHECK(fleet[i].status->store_id() == fleet[i].store_id);
  }

  // A new journal on s1's gw-01 supersedes s1's old epoch only.
  const uint64_t e3 = 77;
  out = Apply(*store, {Batch("s1", "gw-01", e3, 1, 5), b2(kBatches), b1(kBatches)});
  CHECK_FALSE(out[0].refused);
  CHECK_FALSE(out[1].refused);
  CHECK(out[1].applied_seq == n + kSize);
  REQUIRE(out[2].refused);
  CHECK(*out[2].refused == RefuseReason::kSupersededEpoch);
  CHECK(out[2].refuse_detail.find("store s1 gateway gw-01 epoch " + std::to_string(e1)) !=
        std::string::npos);
  CHECK(sql("SELECT store_id, storegw_u64(epoch), storegw_u64(superseded_by) FROM gateway_epochs "
            "WHERE superseded_at IS NOT NULL") == "s1|" + std::to_string(e1) + "|77");

  // A journal copied into another store's box (s3's gw-01 sending s2's
  // epoch): refused, nothing stored; its status is kept without the epoch.
  const std::string events_before = sql("SELECT count(*) FROM events");
  out = Apply(*store, {Batch("s3", "gw-01", e2, 1, 5, "s2-e")});
  REQUIRE(out[0].refused);
  CHECK(*out[0].refused == RefuseReason::kConflict);
  CHECK(out[0].refuse_detail.find("already the journal of store s2") != std::string::npos);
  CHECK(out[0].applied_seq == 0);
  v1::GatewayStatus copied;
  copied.set_store_id("s3");
  copied.set_gateway_id("gw-01");
  copied.set_epoch(e2);
  copied.set_online(true);
  REQUIRE(store->RecordStatus(copied, hq_test::NowMicros()).ok());
  CHECK(sql("SELECT count(*) FROM events") == events_before);
  CHECK(sql("SELECT count(*) FROM gateway_epochs WHERE store_id = 's3'") == "0");
  REQUIRE(store->Fleet(&fleet).ok());
  REQUIRE(fleet.size() == 3);
  CHECK(fleet[1].store_id == "s2");
  CHECK(fleet[1].epoch == e2);
  CHECK(fleet[1].applied_seq == n + kSize);
  CHECK(fleet[2].store_id == "s3");
  CHECK(fleet[2].epoch == 0);
  CHECK(fleet[2].status.has_value());
}

TEST_CASE("restart: PostgreSQL stopped immediately mid-way - nothing acknowledged is lost") {
  // A server of its own: this case stops it.
  test::Postgres pg;
  const std::string conninfo = pg.conninfo();
  auto store = OpenStore(conninfo);
  constexpr uint64_t kBatches = 200, kSize = 50;
  std::atomic<uint64_t> acked{0};  // applied_seq returned by a successful call
  std::atomic<bool> up{true};
  std::atomic<int> failures{0};
  std::atomic<bool> stop{false};
  std::thread applier([&] {
    uint64_t next = 1;
    while (next <= kBatches && !stop) {
      std::vector<BatchOutcome> out;
      const std::vector<IncomingBatch> batches = {
          Batch("s1", "gw1", kEpoch, (next - 1) * kSize + 1, next * kSize)};
      if (store->ApplyBatches(batches, &out).ok()) {
        acked = out[0].applied_seq;
        ++next;
      } else {
        ++failures;
        // Retry once the test has restarted the server (the next call
        // reconnects).
        test::WaitFor([&] { return up.load() || stop.load(); }, 120s);
      }
    }
  });
  REQUIRE(test::WaitFor([&] { return acked >= 20 * kSize; }, 120s));
  up = false;
  pg.Stop(/*immediate=*/true);
  const uint64_t acked_before_stop = acked;
  REQUIRE(test::WaitFor([&] { return failures > 0; }, 60s));
  pg.Start();
  // Everything acknowledged before the crash is there, contiguous from 1.
  SqlCheck sql(conninfo);
  const std::string got =
      sql("SELECT count(DISTINCT seq), (SELECT count(*) FROM generate_series(1, " +
          std::to_string(acked_before_stop) +
          ") s WHERE NOT EXISTS (SELECT 1 FROM events WHERE seq = s)) FROM "
          "events WHERE seq <= " +
          std::to_string(acked_before_stop));
  CHECK(got == std::to_string(acked_before_stop) + "|0");
  up = true;
  const bool finished = test::WaitFor([&] { return acked == kBatches * kSize; }, 120s);
  stop = true;
  applier.join();
  REQUIRE(finished);
  CHECK(Applied(*store, "s1", "gw1", kEpoch) == kBatches * kSize);
  CHECK(Census(sql, "gw1", kEpoch) == CensusLine(kBatches * kSize));
}

TEST_CASE("status: recorded per gateway, shown by Fleet with its applied prefix and online_since") {
  const std::string conninfo = FreshDatabase();
  SqlCheck sql(conninfo);
  auto store = OpenStore(conninfo);
  v1::GatewayStatus st;
  st.set_store_id("s1");
  st.set_gateway_id("gw1");
  st.set_epoch(kEpoch);
  st.set_last_seq(40);
  st.set_watermark(30);
  st.set_backlog_events(10);
  st.set_link("up");
  st.set_online(true);
  st.set_ingest_rate(2.5);
  st.set_version("0.1.0");
  st.set_updated_at(1700000000000000);
  auto* alert = st.add_alerts();
  alert->set_kind(v1::Alert::OVERSELL);
  alert->set_sku("S1");
  REQUIRE(store->RecordStatus(st, 1000).ok());
  Apply(*store, {Batch("s1", "gw1", kEpoch, 1, 30), Batch("s2", "gw2", 9, 5, 9)});
  st.set_watermark(40);
  REQUIRE(store->RecordStatus(st, 2000).ok());  // still online: online_since stays

  std::vector<FleetRow> fleet;
  REQUIRE(store->Fleet(&fleet).ok());
  REQUIRE(fleet.size() == 2);
  const FleetRow& a = fleet[0];
  CHECK(a.gateway_id == "gw1");
  CHECK(a.store_id == "s1");
  CHECK(a.epoch == kEpoch);
  CHECK(a.epochs_seen == 1);
  CHECK(a.applied_seq == 30);
  CHECK(a.pending_events == 0);
  CHECK(a.last_batch_at_us > 0);
  REQUIRE(a.status);
  CHECK(a.status->SerializeAsString() == st.SerializeAsString());
  CHECK(a.status_received_at_us == 2000);
  CHECK(a.online_since_us == 1000);
  const FleetRow& b = fleet[1];
  CHECK(b.gateway_id == "gw2");
  CHECK(b.applied_seq == 0);
  CHECK(b.pending_events == 5);
  CHECK_FALSE(b.status);
  CHECK(b.online_since_us == 0);

  st.set_online(false);  // the last will
  REQUIRE(store->RecordStatus(st, 3000).ok());
  REQUIRE(store->Fleet(&fleet).ok());
  CHECK(fleet[0].online_since_us == 3000);
  CHECK_FALSE(fleet[0].status->online());
  CHECK(sql("SELECT online, link, watermark, storegw_us(status_updated_at), "
            "status->>'gateway_id' FROM gateways WHERE gateway_id = 'gw1'") ==
        "f|up|40|1700000000000000|gw1");
  v1::GatewayStatus nameless;
  CHECK(store->RecordStatus(nameless, 1).code() == StatusCode::kInvalidArgument);
  v1::GatewayStatus storeless = st;
  storeless.clear_store_id();
  const Status no_store = store->RecordStatus(storeless, 4000);
  CHECK(no_store.code() == StatusCode::kInvalidArgument);
  CHECK(no_store.field() == "store_id");
  CHECK(sql("SELECT count(*) FROM gateways") == "2");
}

TEST_CASE("partitions: monthly on demand, far-off clocks in the default, retention drops months") {
  const std::string conninfo = FreshDatabase();
  SqlCheck sql(conninfo);
  auto store = OpenStore(conninfo);
  const int64_t now = hq_test::NowMicros();
  const int64_t day = 86400LL * 1000000;
  auto at = [&](uint64_t first, uint64_t last, int64_t t) {
    auto in = Batch("s1", "gw1", 1, first, last);
    for (auto& e : *in.batch.mutable_events()) e.set_recorded_at(t + static_cast<int64_t>(e.seq()));
    return in;
  };
  const auto old_batch = at(1, 10, now - 100 * day);  // about three months ago
  auto out = Apply(*store, {old_batch, at(11, 20, now), at(21, 25, 978307200000000 /* 2001 */)});
  CHECK(out[2].applied_seq == 25);
  const std::string old_part =
      sql("SELECT 'events_' || to_char(storegw_from_us(" + std::to_string(now - 100 * day) +
          ") AT TIME ZONE 'UTC', 'YYYY_MM')");
  CHECK(sql("SELECT count(*) FROM " + old_part) == "10");
  CHECK(sql("SELECT count(*) FROM events_default") == "5");
  CHECK(sql("SELECT count(*) FROM pg_inherits WHERE inhparent = 'events'::regclass") ==
        "3");  // two months and the default
  // Retention: everything that ended more than 60 days ago.
  CHECK(sql("SELECT * FROM storegw_drop_events_before(storegw_from_us(" +
            std::to_string(now - 60 * day) + "))") == old_part);
  CHECK(sql("SELECT count(*) FROM events") == "15");
  // A resend of the dropped rows is a duplicate: applied_seq remembers them.
  out = Apply(*store, {old_batch});
  CHECK_FALSE(out[0].refused);
  CHECK(out[0].events_stored == 0);
  CHECK(out[0].events_duplicate == 10);
  CHECK(sql("SELECT count(*) FROM events") == "15");
}

}  // namespace storegw::hq

namespace storegw::hq {

TEST_CASE("docs: the example queries and the CDC publication of docs/hq-schema.md work") {
  // wal_level = logical for the publication: a server of its own.
  test::PostgresOptions po;
  po.extra_conf = "wal_level = logical\nmax_replication_slots = 4\n";
  test::Postgres pg(po);
  auto store = OpenStore(pg.conninfo());
  SqlCheck sql(pg.conninfo());
  sql("CREATE PUBLICATION storegw_events FOR TABLE events "
      "WITH (publish = 'insert', publish_via_partition_root = true)");
  sql("SELECT pg_create_logical_replication_slot('kafka', 'pgoutput')");

  Apply(*store, {Batch("s1", "gw-01", kEpoch, 1, 100), Batch("s2", "gw-02", 5, 1, 50),
                 Batch("s2", "gw-02", 5, 61, 70)});
  // Sales per store per hour, over the two days around the test's events
  // (SaleEvent: qty 1 + seq % 3, unit_price 199, EUR).
  uint64_t units1 = 0;
  for (uint64_t s = 1; s <= 100; ++s) units1 += 1 + s % 3;
  const std::string day_from =
      sql("SELECT date_trunc('day', storegw_from_us(" + std::to_string(hq_test::T0()) + "))");
  const std::string hourly =
      sql("SELECT store_id, date_trunc('hour', recorded_at) AS hour, l->>'currency' AS currency, "
          "sum((l->>'qty')::bigint) AS units, sum((l->>'qty')::bigint * "
          "(l->>'unit_price')::bigint) AS revenue "
          "FROM events, jsonb_array_elements(event->'sale'->'lines') AS l "
          "WHERE kind = 'sale' AND recorded_at >= '" +
          day_from + "' AND recorded_at < timestamptz '" + day_from +
          "' + interval '2 days' GROUP BY 1, 2, 3 ORDER BY 1, 2, 3");
  uint64_t got_units1 = 0;
  for (size_t pos = 0; pos < hourly.size();) {
    const size_t end = std::min(hourly.find('\n', pos), hourly.size());
    const std::string row = hourly.substr(pos, end - pos);
    if (row.rfind("s1|", 0) == 0) {
      // store|hour|currency|units|revenue
      size_t a = row.find('|', 3), b = row.find('|', a + 1), c = row.find('|', b + 1);
      CHECK(row.substr(a + 1, b - a - 1) == "EUR");
      got_units1 += std::stoull(row.substr(b + 1, c - b - 1));
    }
    pos = end + 1;
  }
  CHECK(got_units1 == units1);
  // Stored but not yet contiguous.
  CHECK(sql("SELECT p.store_id, p.gateway_id, storegw_u64(p.epoch) AS epoch, e.applied_seq, "
            "p.first_seq, p.last_seq, p.last_seq - p.first_seq + 1 AS events FROM pending_ranges p "
            "JOIN gateway_epochs e USING (store_id, gateway_id, epoch) ORDER BY 1, 2, 3, 5") ==
        "s2|gw-02|5|50|61|70|10");
  // Gateways silent for an hour (none), and one event by its seq.
  CHECK(sql("SELECT g.store_id, g.gateway_id, e.last_batch_at, g.online, g.backlog_events, g.link "
            "FROM gateways g JOIN gateway_epochs e ON e.store_id = g.store_id AND "
            "e.gateway_id = g.gateway_id AND e.epoch = g.current_epoch "
            "WHERE e.last_batch_at < now() - interval '1 hour' ORDER BY e.last_batch_at")
            .empty());
  CHECK(sql("SELECT event_id FROM events WHERE gateway_id = 'gw-01' AND storegw_u64(epoch) = " +
            std::to_string(kEpoch) + " AND seq = 42") == "e42");
  CHECK(sql("SELECT count(*) FROM storegw_drop_events_before(now() - interval '13 months')") ==
        "0");

  // The publication: one insert per stored event, each as a change of
  // `events` itself (its relation id), not of the monthly partition
  // (pgoutput of PostgreSQL 15 describes the partition too, in a Relation
  // message of its own, but the inserts name the root).
  CHECK(
      sql("WITH m AS (SELECT data FROM pg_logical_slot_peek_binary_changes('kafka', NULL, NULL, "
          "'proto_version', '1', 'publication_names', 'storegw_events')), "
          "root AS (SELECT substring(data FROM 2 FOR 4) AS relid FROM m WHERE get_byte(data, 0) = "
          "82 "
          "AND position('\\x7075626c6963006576656e747300'::bytea IN data) > 0) "  // public\0events\0
          "SELECT (SELECT count(*) FROM m WHERE get_byte(data, 0) = 73), "        // 'I'nsert
          "(SELECT count(*) FROM m, root WHERE get_byte(m.data, 0) = 73 "
          "AND substring(m.data FROM 2 FOR 4) = root.relid)") == "160|160");
}

}  // namespace storegw::hq
