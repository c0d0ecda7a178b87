// PgStore: EventStore on PostgreSQL. One ApplyBatches call is one
// transaction of three round trips plus the row writer:
//   1. BEGIN; per (store, gateway) (sorted) insert-if-missing and lock its
//      row; per (store, gateway, epoch) (sorted) lock its row and read its
//      pending ranges
//   2. only when a batch repeats stored seqs: read those rows (conflict check)
//   3. COPY the new events (or multi-row INSERTs, PgStoreOptions)
//   4. write applied_seq, pending ranges, current epochs; COMMIT
// The decisions between 1 and 3 are BuildPlan's (apply_plan.h).
#include "storegw/hq/pg_store.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <mutex>
#include <set>

#include "apply_plan.h"
#include "event_json.h"
#include "event_rows.h"
#include "pg_conn.h"
#include "schema.h"
#include "storegw/v1/warmup.h"

namespace storegw::hq {

using pg::Call;
using pg::Conn;
using pg::EpochKey;
using pg::EpochState;
using pg::GatewayKey;
using pg::GatewayState;
using pg::Params;
using pg::ResultPtr;

namespace {

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Rows of one multi-row INSERT (PgStoreOptions::RowWriter::kInsert).
constexpr int kInsertRows = 100;

// Months (UTC) whose partition storegw-hq creates: from five years back to
// next month. Events outside (a gateway clock far off) go to events_default.
constexpr int kPartitionMonthsBack = 60;
constexpr int kPartitionMonthsAhead = 1;

// year * 12 + month - 1 of a Unix time in microseconds (UTC).
int MonthKey(int64_t unix_us) {
  using namespace std::chrono;
  const sys_days day = floor<days>(sys_time<microseconds>(microseconds(unix_us)));
  const year_month_day ymd(day);
  return static_cast<int>(ymd.year()) * 12 + static_cast<int>(static_cast<unsigned>(ymd.month())) -
         1;
}

std::string MonthStart(int key) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04d-%02d-01 00:00:00+00", key / 12, key % 12 + 1);
  return buf;
}

bool Retryable(const std::string& sqlstate) {
  return sqlstate == "40P01" || sqlstate == "40001";
}

// A JSON text holds the escape \u0000 (a NUL in a string), which jsonb
// refuses: counts the backslashes before each "u0000" to skip "\\u0000".
bool JsonHasNulEscape(const std::string& json) {
  for (size_t pos = json.find("u0000"); pos != std::string::npos;
       pos = json.find("u0000", pos + 1)) {
    size_t slashes = 0;
    while (pos > slashes && json[pos - 1 - slashes] == '\\') ++slashes;
    if (slashes % 2 == 1) return true;
  }
  return false;
}

struct Statement {
  const char* name;
  const char* sql;
};

constexpr Statement kStatements[] = {
    // A gateway is (store_id, gateway_id) everywhere: gateway ids are unique
    // only within a store.
    {"gw_insert",
     "INSERT INTO gateways (store_id, gateway_id, first_seen) VALUES ($1, $2, storegw_from_us($3)) "
     "ON CONFLICT (store_id, gateway_id) DO NOTHING"},
    {"gw_lock",
     "SELECT current_epoch FROM gateways WHERE store_id = $1 AND gateway_id = $2 FOR UPDATE"},
    // By (gateway_id, epoch), which is unique: an epoch belongs to one
    // store's gateway. The row's store tells whether it is this store's.
    // (Two stores' first batches of one epoch in transactions at the same
    // time, which takes one journal sent under two stores' names: the
    // unique constraint fails the later transaction; its caller retries
    // and the retry refuses the batch.)
    {"ep_lock",
     "SELECT applied_seq, superseded_at IS NOT NULL, superseded_by, store_id FROM gateway_epochs "
     "WHERE gateway_id = $1 AND epoch = $2 FOR UPDATE"},
    {"ep_pending",
     "SELECT first_seq, last_seq FROM pending_ranges "
     "WHERE store_id = $1 AND gateway_id = $2 AND epoch = $3 ORDER BY first_seq"},
    {"ev_stored",
     "SELECT seq, event_id, storegw_us(recorded_at) FROM events "
     "WHERE gateway_id = $2 AND epoch = $3 AND seq BETWEEN $4 AND $5 AND store_id = $1"},
    {"ep_upsert",
     "INSERT INTO gateway_epochs (store_id, gateway_id, epoch, applied_seq, first_seen, "
     "last_batch_at) "
     "VALUES ($1, $2, $3, $4, storegw_from_us($5), storegw_from_us($6)) "
     "ON CONFLICT (store_id, gateway_id, epoch) DO UPDATE SET "
     "applied_seq = EXCLUDED.applied_seq, "
     "last_batch_at = coalesce(EXCLUDED.last_batch_at, gateway_epochs.last_batch_at)"},
    {"ep_supersede",
     "UPDATE gateway_epochs SET superseded_at = storegw_from_us($4), superseded_by = $3 "
     "WHERE store_id = $1 AND gateway_id = $2 AND epoch <> $3 AND superseded_at IS NULL"},
    {"pr_delete",
     "DELETE FROM pending_ranges WHERE store_id = $1 AND gateway_id = $2 AND epoch = $3"},
    {"pr_insert",
     "INSERT INTO pending_ranges (store_id, gateway_id, epoch, first_seq, last_seq) "
     "VALUES ($1, $2, $3, $4, $5)"},
    {"gw_update", "UPDATE gateways SET current_epoch = $3 WHERE store_id = $1 AND gateway_id = $2"},
    {"gw_status",
     "UPDATE gateways SET current_epoch = coalesce($3, current_epoch), "
     "status = $4::jsonb, status_received_at = storegw_from_us($5), "
     "status_updated_at = storegw_from_us($6), "
     "online_since = CASE WHEN online IS DISTINCT FROM $7::boolean "
     "THEN storegw_from_us($5) ELSE online_since END, "
     "online = $7::boolean, last_seq = $8, watermark = $9, backlog_events = $10, link = $11, "
     "version = $12 WHERE store_id = $1 AND gateway_id = $2"},
    {"ev_partition", "SELECT storegw_events_partition($1::timestamptz)"},
    {"applied_seq",
     "SELECT applied_seq FROM gateway_epochs "
     "WHERE store_id = $1 AND gateway_id = $2 AND epoch = $3"},
    {"fleet",
     "SELECT g.gateway_id, g.store_id, g.current_epoch, "
     "(SELECT count(*) FROM gateway_epochs x "
     " WHERE x.store_id = g.store_id AND x.gateway_id = g.gateway_id), "
     "e.applied_seq, "
     "(SELECT coalesce(sum(p.last_seq - p.first_seq + 1), 0) FROM pending_ranges p "
     " WHERE p.store_id = g.store_id AND p.gateway_id = g.gateway_id "
     " AND p.epoch = g.current_epoch), "
     "storegw_us(e.last_batch_at), g.status::text, storegw_us(g.status_received_at), "
     "storegw_us(g.online_since) "
     "FROM gateways g LEFT JOIN gateway_epochs e "
     "ON e.store_id = g.store_id AND e.gateway_id = g.gateway_id AND e.epoch = g.current_epoch "
     "ORDER BY g.store_id, g.gateway_id"},
    {"commit", "COMMIT"},
};

}  // namespace

struct PgStore::Impl {
  std::string conninfo;
  pg::Target target;
  PgStoreOptions options;

  std::mutex mu;
  std::unique_ptr<Conn> conn;     // null: connect on the next call
  std::set<int> partitions_made;  // month keys known to have a partition

  Status Connect() {
    auto c = Conn::Connect(conninfo, target);
    if (!c.ok()) return c.status();
    for (const Statement& s : kStatements) {
      if (Status st = (*c)->Prepare(s.name, s.sql); !st.ok()) return st;
    }
    if (options.row_writer == PgStoreOptions::RowWriter::kInsert) {
      const std::string many = pg::InsertEventsSql(kInsertRows), one = pg::InsertEventsSql(1);
      if (Status st = (*c)->Prepare("ev_insert_n", many.c_str()); !st.ok()) return st;
      if (Status st = (*c)->Prepare("ev_insert_1", one.c_str()); !st.ok()) return st;
    }
    conn = std::move(*c);
    return {};
  }

  Status EnsureConnected() {
    if (conn && conn->ok()) return {};
    conn.reset();
    return Connect();
  }

  // After a failed transaction: roll back, or drop a broken connection.
  void Abandon() {
    if (!conn) return;
    if (!conn->ok() || !conn->Exec("ROLLBACK").ok()) conn.reset();
  }

  // Runs `attempt` (one whole transaction) until it succeeds, fails for a
  // reason other than a deadlock or serialization failure, or runs out of
  // attempts.
  template <typename F>
  Status WithRetries(F&& attempt) {
    Status st;
    for (int i = 0; i < std::max(1, options.max_attempts); ++i) {
      if (st = EnsureConnected(); !st.ok()) return st;
      st = attempt();
      if (st.ok()) return st;
      const bool retry = conn && conn->ok() && Retryable(conn->last_sqlstate());
      Abandon();
      if (!retry) return st;
    }
    return st;
  }

  Status EnsurePartitions(const std::set<int>& months, int64_t now_us) {
    const int now_key = MonthKey(now_us);
    for (int m : months) {
      if (partitions_made.count(m) || m < now_key - kPartitionMonthsBack ||
          m > now_key + kPartitionMonthsAhead) {
        continue;
      }
      auto r = conn->ExecPrepared("ev_partition", Params().Text(MonthStart(m)));
      if (!r.ok()) return r.status();
      partitions_made.insert(m);
    }
    return {};
  }

  Status ApplyOnce(std::span<const IncomingBatch> batches,
                   const std::vector<std::optional<std::pair<RefuseReason, std::string>>>& shape,
                   const std::vector<std::vector<std::string>>& json, int64_t now_us,
                   std::vector<BatchOutcome>* outcomes);

  Status WriteRows(std::span<const IncomingBatch> batches, const pg::Plan& plan,
                   const std::vector<std::vector<std::string>>& json);
};

PgStore::PgStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PgStore::~PgStore() = default;

int PgStore::SchemaVersion() {
  return pg::LatestSchemaVersion();
}

std::string PgStore::Describe() const {
  return impl_->target.Describe();
}

Result<std::unique_ptr<PgStore>> PgStore::Open(const std::string& conninfo,
                                               PgStoreOptions options) {
  // Protobuf's lazily built statics (UnknownFieldSet::default_instance(),
  // the JSON printer's resolver) before the caller's threads apply: a
  // caller that opens its stores before starting threads needs no more.
  v1::WarmUpProtobuf();
  auto target = pg::ParseConninfo(conninfo);
  if (!target.ok()) return target.status();
  auto impl = std::make_unique<Impl>();
  impl->conninfo = conninfo;
  impl->target = std::move(*target);
  impl->options = options;
  {
    // Migrations first, on a connection of their own: the statements the
    // store prepares need the tables.
    auto c = Conn::Connect(conninfo, impl->target);
    if (!c.ok()) return c.status();
    if (Status s = pg::MigrateSchema(**c); !s.ok()) return s;
  }
  if (Status s = impl->Connect(); !s.ok()) return s;
  return std::unique_ptr<PgStore>(new PgStore(std::move(impl)));
}

Status PgStore::Impl::WriteRows(std::span<const IncomingBatch> batches, const pg::Plan& plan,
                                const std::vector<std::vector<std::string>>& json) {
  if (plan.rows.empty()) return {};
  if (options.row_writer == PgStoreOptions::RowWriter::kCopy) {
    std::string data;
    data.reserve(plan.rows.size() * 320 + 32);
    pg::AppendCopyHeader(&data);
    for (const auto& [bi, ei] : plan.rows) {
      const v1::EventBatch& b = batches[bi].batch;
      pg::AppendCopyRow(b, b.events(static_cast<int>(ei)), json[bi][ei], &data);
    }
    pg::AppendCopyTrailer(&data);
    return conn->CopyIn(pg::kCopyEventsSql, data);
  }
  std::vector<Call> calls;
  size_t i = 0;
  while (i < plan.rows.size()) {
    const size_t n = plan.rows.size() - i >= kInsertRows ? kInsertRows : 1;
    Call call{n == 1 ? "ev_insert_1" : "ev_insert_n", {}};
    for (size_t k = 0; k < n; ++k, ++i) {
      const auto [bi, ei] = plan.rows[i];
      const v1::EventBatch& b = batches[bi].batch;
      pg::AddInsertParams(b, b.events(static_cast<int>(ei)), json[bi][ei], &call.params);
    }
    calls.push_back(std::move(call));
  }
  std::vector<ResultPtr> results;
  return conn->Pipeline(calls, &results);
}

Status PgStore::Impl::ApplyOnce(
    std::span<const IncomingBatch> batches,
    const std::vector<std::optional<std::pair<RefuseReason, std::string>>>& shape,
    const std::vector<std::vector<std::string>>& json, int64_t now_us,
    std::vector<BatchOutcome>* outcomes) {
  // Gateways and (store, gateway, epoch) keys, sorted: every transaction
  // locks in this order, so concurrent applies wait for each other, never
  // deadlock.
  std::set<GatewayKey> gateway_keys;
  std::set<EpochKey> keys;
  for (size_t i = 0; i < batches.size(); ++i) {
    if (shape[i]) continue;
    const auto& b = batches[i].batch;
    gateway_keys.insert(GatewayKey{b.store_id(), b.gateway_id()});
    keys.insert(EpochKey{b.store_id(), b.gateway_id(), b.epoch()});
  }

  if (Status s = conn->Exec("BEGIN"); !s.ok()) return s;
  std::vector<Call> calls;
  for (const GatewayKey& g : gateway_keys) {
    calls.push_back({"gw_insert", Params().Text(g.store_id).Text(g.gateway_id).Int(now_us)});
    calls.push_back({"gw_lock", Params().Text(g.store_id).Text(g.gateway_id)});
  }
  for (const EpochKey& k : keys) {
    const int64_t epoch = pg::EpochToSql(k.epoch);
    calls.push_back({"ep_lock", Params().Text(k.gateway_id).Int(epoch)});
    calls.push_back({"ep_pending", Params().Text(k.store_id).Text(k.gateway_id).Int(epoch)});
  }
  std::vector<ResultPtr> res;
  if (Status s = conn->Pipeline(calls, &res); !s.ok()) return s;

  std::map<GatewayKey, GatewayState> gateways;
  std::map<EpochKey, EpochState> epochs;
  size_t n = 0;
  for (const GatewayKey& key : gateway_keys) {
    const PGresult* r = res[n + 1].get();
    GatewayState g;
    if (PQntuples(r) == 1) {
      g.has_current = !pg::IsNull(r, 0, 0);
      g.current_epoch = pg::EpochFromSql(pg::GetInt(r, 0, 0));
    }
    gateways.emplace(key, std::move(g));
    n += 2;
  }
  for (const EpochKey& k : keys) {
    const PGresult* lock = res[n].get();
    const PGresult* pending = res[n + 1].get();
    EpochState e;
    if (PQntuples(lock) == 1 && pg::GetText(lock, 0, 3) != k.store_id) {
      e.other_store = std::string(pg::GetText(lock, 0, 3));
    } else if (PQntuples(lock) == 1) {
      e.exists = true;
      e.applied_seq = static_cast<uint64_t>(pg::GetInt(lock, 0, 0));
      e.superseded = pg::GetText(lock, 0, 1) == "t";
      e.superseded_by = pg::EpochFromSql(pg::GetInt(lock, 0, 2));
      for (int row = 0; row < PQntuples(pending); ++row) {
        e.pending.push_back({static_cast<uint64_t>(pg::GetInt(pending, row, 0)),
                             static_cast<uint64_t>(pg::GetInt(pending, row, 1))});
      }
    }
    epochs.emplace(k, std::move(e));
    n += 2;
  }

  // Rows the batches repeat: read them for the conflict check.
  pg::StoredEvents stored;
  const auto repeated = pg::RepeatedRanges(batches, epochs);
  if (!repeated.empty()) {
    calls.clear();
    for (const auto& [k, r] : repeated) {
      calls.push_back({"ev_stored", Params()
                                        .Text(k.store_id)
                                        .Text(k.gateway_id)
                                        .Int(pg::EpochToSql(k.epoch))
                                        .Int(static_cast<int64_t>(r.first))
                                        .Int(static_cast<int64_t>(r.last))});
    }
    if (Status s = conn->Pipeline(calls, &res); !s.ok()) return s;
    for (size_t i = 0; i < repeated.size(); ++i) {
      auto& m = stored[repeated[i].first];
      const PGresult* r = res[i].get();
      for (int row = 0; row < PQntuples(r); ++row) {
        m[static_cast<uint64_t>(pg::GetInt(r, row, 0))] =
            pg::StoredEvent{std::string(pg::GetText(r, row, 1)), pg::GetInt(r, row, 2)};
      }
    }
  }

  pg::Plan plan = pg::BuildPlan(batches, shape, std::move(gateways), std::move(epochs), stored);
  if (Status s = WriteRows(batches, plan, json); !s.ok()) return s;

  calls.clear();
  for (const auto& w : plan.epochs) {
    const int64_t epoch = pg::EpochToSql(w.key.epoch);
    calls.push_back({"ep_upsert", Params()
                                      .Text(w.key.store_id)
                                      .Text(w.key.gateway_id)
                                      .Int(epoch)
                                      .Int(static_cast<int64_t>(w.applied_seq))
                                      .Int(now_us)
                                      .Int(now_us)});
    if (!w.pending_changed) continue;
    calls.push_back({"pr_delete", Params().Text(w.key.store_id).Text(w.key.gateway_id).Int(epoch)});
    for (const auto& r : w.pending) {
      calls.push_back({"pr_insert", Params()
                                        .Text(w.key.store_id)
                                        .Text(w.key.gateway_id)
                                        .Int(epoch)
                                        .Int(static_cast<int64_t>(r.first))
                                        .Int(static_cast<int64_t>(r.last))});
    }
  }
  for (const auto& g : plan.gateways) {
    const int64_t epoch = pg::EpochToSql(g.current_epoch);
    calls.push_back({"gw_update", Params().Text(g.key.store_id).Text(g.key.gateway_id).Int(epoch)});
    calls.push_back({"ep_supersede",
                     Params().Text(g.key.store_id).Text(g.key.gateway_id).Int(epoch).Int(now_us)});
  }
  calls.push_back({"commit", Params()});
  if (Status s = conn->Pipeline(calls, &res); !s.ok()) return s;
  *outcomes = std::move(plan.outcomes);
  return {};
}

Status PgStore::ApplyBatches(std::span<const IncomingBatch> batches,
                             std::vector<BatchOutcome>* outcomes) {
  outcomes->clear();
  if (batches.empty()) return {};
  // Checks and JSON once, outside the transaction (and its retries).
  std::vector<std::optional<std::pair<RefuseReason, std::string>>> shape(batches.size());
  std::vector<std::vector<std::string>> json(batches.size());
  std::set<int> months;
  for (size_t i = 0; i < batches.size(); ++i) {
    const v1::EventBatch& b = batches[i].batch;
    shape[i] = pg::CheckBatchShape(b);
    if (shape[i]) continue;
    json[i].resize(static_cast<size_t>(b.events_size()));
    for (int k = 0; k < b.events_size(); ++k) {
      const v1::JournaledEvent& je = b.events(k);
      std::string& j = json[i][static_cast<size_t>(k)];
      if (!pg::AppendProtoJson(je.event(), &j)) {
        shape[i] = {RefuseReason::kInvalidEvent,
                    "seq " + std::to_string(je.seq()) + ": cannot print the event as JSON"};
        break;
      }
      if (JsonHasNulEscape(j)) {
        shape[i] = {RefuseReason::kInvalidEvent,
                    "seq " + std::to_string(je.seq()) +
                        ": a string holds a NUL character, which PostgreSQL cannot store"};
        break;
      }
      months.insert(MonthKey(je.recorded_at()));
    }
    if (shape[i]) json[i].clear();
  }
  const int64_t now_us = NowMicros();
  std::lock_guard lock(impl_->mu);
  return impl_->WithRetries([&]() -> Status {
    if (Status s = impl_->EnsurePartitions(months, now_us); !s.ok()) return s;
    return impl_->ApplyOnce(batches, shape, json, now_us, outcomes);
  });
}

Status PgStore::RecordStatus(const v1::GatewayStatus& status, int64_t received_at_us) {
  if (status.store_id().empty()) return Status::InvalidArgument("store_id", "is empty");
  if (status.gateway_id().empty()) return Status::InvalidArgument("gateway_id", "is empty");
  std::string json;
  if (!pg::AppendProtoJson(status, &json)) {
    return Status::InvalidArgument("status", "cannot be printed as JSON");
  }
  if (JsonHasNulEscape(json) || status.gateway_id().find('\0') != std::string::npos ||
      status.store_id().find('\0') != std::string::npos) {
    return Status::InvalidArgument("status",
                                   "a string holds a NUL character, which PostgreSQL "
                                   "cannot store");
  }
  const std::string& store = status.store_id();
  const std::string& gw = status.gateway_id();
  const uint64_t epoch = status.epoch();
  std::lock_guard lock(impl_->mu);
  Impl& im = *impl_;
  return im.WithRetries([&]() -> Status {
    Conn& c = *im.conn;
    if (Status s = c.Exec("BEGIN"); !s.ok()) return s;
    std::vector<Call> calls;
    calls.push_back({"gw_insert", Params().Text(store).Text(gw).Int(received_at_us)});
    calls.push_back({"gw_lock", Params().Text(store).Text(gw)});
    if (epoch != 0) calls.push_back({"ep_lock", Params().Text(gw).Int(pg::EpochToSql(epoch))});
    std::vector<ResultPtr> res;
    if (Status s = c.Pipeline(calls, &res); !s.ok()) return s;
    const PGresult* g = res[1].get();
    const bool has_current = PQntuples(g) == 1 && !pg::IsNull(g, 0, 0);
    const uint64_t current = pg::EpochFromSql(pg::GetInt(g, 0, 0));

    calls.clear();
    std::optional<uint64_t> new_current;
    if (epoch != 0) {
      const PGresult* e = res[2].get();
      const bool exists = PQntuples(e) == 1;
      // The epoch is the journal of another store's gateway of the same id
      // (a journal copied between stores; its batches are refused): the
      // status is recorded, no epoch changes.
      const bool other_store = exists && pg::GetText(e, 0, 3) != store;
      if (exists && !other_store && pg::GetText(e, 0, 1) == "t") {
        // A status of a superseded journal (a late last will, say): stale.
        return c.Exec("ROLLBACK");
      }
      if (!other_store && (!has_current || current != epoch)) {
        new_current = epoch;
        if (!exists) {
          calls.push_back({"ep_upsert", Params()
                                            .Text(store)
                                            .Text(gw)
                                            .Int(pg::EpochToSql(epoch))
                                            .Int(0)
                                            .Int(received_at_us)
                                            .Null()});
        }
        calls.push_back(
            {"ep_supersede",
             Params().Text(store).Text(gw).Int(pg::EpochToSql(epoch)).Int(received_at_us)});
      }
    }
    Params p;
    p.Text(store).Text(gw);
    if (new_current) {
      p.Int(pg::EpochToSql(*new_current));
    } else {
      p.Null();
    }
    p.Text(json).Int(received_at_us);
    if (status.updated_at() != 0) {
      p.Int(status.updated_at());
    } else {
      p.Null();
    }
    p.Bool(status.online())
        .Int(static_cast<int64_t>(status.last_seq()))
        .Int(static_cast<int64_t>(status.watermark()))
        .Int(static_cast<int64_t>(status.backlog_events()))
        .Text(status.link())
        .Text(status.version());
    calls.push_back({"gw_status", std::move(p)});
    calls.push_back({"commit", Params()});
    return c.Pipeline(calls, &res);
  });
}

Status PgStore::AppliedSeq(const std::string& store_id, const std::string& gateway_id,
                           uint64_t epoch, uint64_t* seq) {
  *seq = 0;
  std::lock_guard lock(impl_->mu);
  if (Status s = impl_->EnsureConnected(); !s.ok()) return s;
  auto r = impl_->conn->ExecPrepared(
      "applied_seq", Params().Text(store_id).Text(gateway_id).Int(pg::EpochToSql(epoch)));
  if (!r.ok()) {
    impl_->Abandon();
    return r.status();
  }
  if (PQntuples(r->get()) == 1) *seq = static_cast<uint64_t>(pg::GetInt(r->get(), 0, 0));
  return {};
}

Status PgStore::Fleet(std::vector<FleetRow>* rows) {
  rows->clear();
  std::lock_guard lock(impl_->mu);
  if (Status s = impl_->EnsureConnected(); !s.ok()) return s;
  auto r = impl_->conn->ExecPrepared("fleet", Params());
  if (!r.ok()) {
    impl_->Abandon();
    return r.status();
  }
  const PGresult* res = r->get();
  google::protobuf::util::JsonParseOptions opts;
  opts.ignore_unknown_fields = true;  // a status from a newer gateway
  for (int i = 0; i < PQntuples(res); ++i) {
    FleetRow row;
    row.gateway_id = std::string(pg::GetText(res, i, 0));
    row.store_id = std::string(pg::GetText(res, i, 1));
    row.epoch = pg::EpochFromSql(pg::GetInt(res, i, 2));
    row.epochs_seen = static_cast<uint32_t>(pg::GetInt(res, i, 3));
    row.applied_seq = static_cast<uint64_t>(pg::GetInt(res, i, 4));
    row.pending_events = static_cast<uint64_t>(pg::GetInt(res, i, 5));
    row.last_batch_at_us = pg::GetInt(res, i, 6);
    if (!pg::IsNull(res, i, 7)) {
      v1::GatewayStatus st;
      const auto text = pg::GetText(res, i, 7);
      if (google::protobuf::util::JsonStringToMessage(
              google::protobuf::StringPiece(text.data(), text.size()), &st, opts)
              .ok()) {
        row.status = std::move(st);
      }
    }
    row.status_received_at_us = pg::GetInt(res, i, 8);
    row.online_since_us = pg::GetInt(res, i, 9);
    rows->push_back(std::move(row));
  }
  return {};
}

}  // namespace storegw::hq
