// The store's own time rules, inside the writer's transactions:
//
//   * perishables: a `production` event records a batch (a tray of a sku at
//     a counter) with its due time (the hold clock starts when the tray was
//     put out); sales, pickups and waste adjustments use batches up, oldest
//     due first; a due batch still out raises REMOVE_FROM_SHELF, and one
//     still out escalate_after later an escalated alert in its place;
//   * cold chain: readings of a sensor's metric against its limits (HQ's,
//     else the local configuration): outside past the grace raises
//     TEMPERATURE_EXCURSION once per excursion, back inside for clear_after
//     clears it; a watched sensor silent for silent_after raises
//     SENSOR_SILENT, its next reading clears it;
//   * prices: a price_in_force event when an update comes into force (at
//     once, or when its future effective_from is reached).
//
// Every due time lives in the journal's tables (batches, sensors, prices),
// written in the same transaction as the event that set it, so a restart
// resumes exactly where the journal was: nothing is kept only in memory
// but `timer_due`, a hint recomputed from the tables by every timer run.
// Alerts are journaled `alert` events and close with `alert_cleared`
// events, so HQ sees what the store did and when.
#include <algorithm>
#include <climits>
#include <ctime>
#include <string>
#include <utility>
#include <vector>

#include "journal_impl.h"

namespace storegw::storage {

using internal::Request;
namespace {

constexpr int64_t kUs = 1'000'000;
// Due batches / escalations acted on per timer transaction (the rest in
// the next run, right after): a store with thousands of trays due at once
// must not stall ingest behind one long transaction.
constexpr int64_t kTimerChunk = 2000;

// "14:05:09 UTC" (with the date when it is not `now`'s day).
std::string ClockText(int64_t us, int64_t now) {
  const time_t t = static_cast<time_t>(us / kUs);
  const time_t n = static_cast<time_t>(now / kUs);
  std::tm tm{}, tn{};
  gmtime_r(&t, &tm);
  gmtime_r(&n, &tn);
  char buf[40];
  if (tm.tm_yday == tn.tm_yday && tm.tm_year == tn.tm_year) {
    std::strftime(buf, sizeof buf, "%H:%M:%S UTC", &tm);
  } else {
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  }
  return buf;
}

// "4 h", "90 min", "45 s".
std::string Span(int64_t seconds) {
  if (seconds < 0) seconds = 0;
  if (seconds >= 3600 && seconds % 3600 == 0) return std::to_string(seconds / 3600) + " h";
  if (seconds >= 120) return std::to_string(seconds / 60) + " min";
  return std::to_string(seconds) + " s";
}

int64_t SatAdd(int64_t a, int64_t b) {
  if (b > 0 && a > INT64_MAX - b) return INT64_MAX;
  return a + b;
}

// The limits that apply to one sensor (HQ's row, else the local config).
struct Limits {
  bool has = false;
  std::string from;  // "hq", "config", ""
  std::string location, metric;
  int64_t min_value = 0, max_value = 0;
  int64_t grace_us = 0, silent_us = 0, clear_us = 0;
};

// One row of the sensors table.
struct SensorRow {
  std::string id;
  bool exists = false;
  int64_t watched_since = 0, last_value = 0, last_at = 0, out_since = 0, in_since = 0,
          min_seen = 0, max_seen = 0;
  uint64_t excursion_alert = 0, silent_alert = 0, excursions = 0;
};

void ReadSensorCols(const sql::Stmt& q, int first, SensorRow& s) {
  s.exists = true;
  s.watched_since = q.Int(first + 0);
  s.last_value = q.Int(first + 1);
  s.last_at = q.Int(first + 2);
  s.out_since = q.Int(first + 3);
  s.in_since = q.Int(first + 4);
  s.min_seen = q.Int(first + 5);
  s.max_seen = q.Int(first + 6);
  s.excursion_alert = static_cast<uint64_t>(q.Int(first + 7));
  s.silent_alert = static_cast<uint64_t>(q.Int(first + 8));
  s.excursions = static_cast<uint64_t>(q.Int(first + 9));
}

constexpr const char* kSensorCols =
    "watched_since, last_value, last_at, out_since, in_since, min_seen, max_seen, "
    "excursion_alert, silent_alert, excursions";

std::string Where(const std::string& sensor, const std::string& location) {
  return location.empty() ? "sensor " + sensor : "sensor " + sensor + " (" + location + ")";
}

}  // namespace

Status Journal::Impl::PreparePerishables() {
  const std::string sensor_cols = kSensorCols;
  struct {
    sql::Stmt* stmt;
    std::string sql;
  } stmts[] = {
      {&ps.ins_batch,
       "INSERT INTO batches(seq, sku, location, qty, remaining, produced_at, due_at) "
       "VALUES(?, ?, ?, ?, ?, ?, ?)"},
      {&ps.open_batches,
       "SELECT seq, remaining, alert_seq FROM batches WHERE sku = ? AND closed_seq IS NULL "
       "ORDER BY due_at, seq"},
      {&ps.put_batch_remaining, "UPDATE batches SET remaining = ? WHERE seq = ?"},
      {&ps.close_batch, "UPDATE batches SET remaining = 0, closed_seq = ? WHERE seq = ?"},
      {&ps.due_batches,
       "SELECT seq, sku, location, remaining, produced_at, due_at FROM batches "
       "WHERE closed_seq IS NULL AND alert_seq IS NULL AND due_at <= ? ORDER BY due_at, seq "
       "LIMIT ?"},
      {&ps.set_batch_alert, "UPDATE batches SET alert_seq = ? WHERE seq = ?"},
      {&ps.escalate_batches,
       "SELECT seq, sku, location, remaining, produced_at, due_at, alert_seq FROM batches "
       "WHERE closed_seq IS NULL AND alert_seq IS NOT NULL AND escalated = 0 AND due_at <= ? "
       "ORDER BY due_at, seq LIMIT ?"},
      {&ps.set_batch_escalated, "UPDATE batches SET alert_seq = ?, escalated = 1 WHERE seq = ?"},
      {&ps.next_pending,
       "SELECT min(due_at) FROM batches WHERE closed_seq IS NULL AND alert_seq IS NULL"},
      {&ps.next_unescalated,
       "SELECT min(due_at) FROM batches WHERE closed_seq IS NULL AND alert_seq IS NOT NULL AND "
       "escalated = 0"},
      {&ps.get_hold, "SELECT hold_s FROM hold_times WHERE sku = ?"},
      {&ps.put_hold,
       "INSERT INTO hold_times(sku, hold_s, seq) VALUES(?, ?, ?) ON CONFLICT(sku) DO UPDATE "
       "SET hold_s = excluded.hold_s, seq = excluded.seq"},
      {&ps.del_hold, "DELETE FROM hold_times WHERE sku = ?"},
      {&ps.get_limits,
       "SELECT location, metric, min_value, max_value, grace_s, silent_after_s FROM "
       "sensor_limits WHERE sensor_id = ?"},
      {&ps.put_limits,
       "INSERT INTO sensor_limits(sensor_id, location, metric, min_value, max_value, grace_s, "
       "silent_after_s, seq) VALUES(?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(sensor_id) DO UPDATE "
       "SET location = excluded.location, metric = excluded.metric, "
       "min_value = excluded.min_value, max_value = excluded.max_value, "
       "grace_s = excluded.grace_s, silent_after_s = excluded.silent_after_s, "
       "seq = excluded.seq"},
      {&ps.del_limits, "DELETE FROM sensor_limits WHERE sensor_id = ?"},
      {&ps.get_sensor, "SELECT " + sensor_cols + " FROM sensors WHERE sensor_id = ?"},
      {&ps.put_sensor,
       "INSERT INTO sensors(sensor_id, " + sensor_cols +
           ") VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(sensor_id) DO UPDATE SET "
           "watched_since = excluded.watched_since, last_value = excluded.last_value, "
           "last_at = excluded.last_at, out_since = excluded.out_since, "
           "in_since = excluded.in_since, min_seen = excluded.min_seen, "
           "max_seen = excluded.max_seen, excursion_alert = excluded.excursion_alert, "
           "silent_alert = excluded.silent_alert, excursions = excluded.excursions"},
      {&ps.all_sensors, "SELECT sensor_id, " + sensor_cols + " FROM sensors ORDER BY sensor_id"},
      {&ps.seed_sensor,
       "INSERT INTO sensors(sensor_id, watched_since) VALUES(?, ?) ON CONFLICT(sensor_id) DO "
       "NOTHING"},
      {&ps.set_alert_detail, "UPDATE alerts SET detail = ? WHERE seq = ?"},
      {&ps.clear_alert_seq,
       "UPDATE alerts SET cleared_seq = ? WHERE seq = ? AND cleared_seq IS NULL"},
      {&ps.pending_prices,
       "SELECT sku, effective_from, seq, price, currency FROM prices WHERE in_force_seq IS NULL "
       "AND effective_from <= ? ORDER BY effective_from, seq LIMIT ?"},
      {&ps.superseded_price,
       "SELECT 1 FROM prices WHERE sku = ? AND effective_from <= ? AND (effective_from > ? OR "
       "(effective_from = ? AND seq > ?)) LIMIT 1"},
      {&ps.set_in_force, "UPDATE prices SET in_force_seq = ? WHERE sku = ? AND seq = ?"},
      {&ps.next_price, "SELECT min(effective_from) FROM prices WHERE in_force_seq IS NULL"},
      {&ps.prune_batches, "DELETE FROM batches WHERE closed_seq IS NOT NULL AND closed_seq <= ?"},
  };
  for (auto& [stmt, text] : stmts) {
    if (Status s = stmt->Prepare(wdb.get(), text); !s.ok()) return s;
  }
  return {};
}

void Journal::Impl::LowerTimerDue(int64_t at) {
  int64_t cur = timer_due.load();
  while (at < cur) {
    if (timer_due.compare_exchange_weak(cur, at)) {
      // Wake the timer so that it sleeps until the new, earlier time (it
      // may be sleeping towards a later one). Taking timer_mu orders this
      // with its check of timer_due: the wake-up cannot be lost.
      { std::lock_guard lk(timer_mu); }
      timer_cv.notify_all();
      return;
    }
  }
}

namespace {

// The limits in force for `id` (writer connection).
Result<Limits> ResolveLimits(sql::Db& db, sql::Stmt& get_limits, const JournalOptions& opt,
                             const std::string& id) {
  Limits l;
  l.clear_us = opt.cold_chain_clear_after.count() * kUs;
  {
    sql::ResetGuard g(get_limits);
    get_limits.Bind(1, id);
    int rc = get_limits.Step();
    if (rc == SQLITE_ROW) {
      l.has = true;
      l.from = "hq";
      l.location = std::string(get_limits.Text(0));
      l.metric = std::string(get_limits.Text(1));
      l.min_value = get_limits.Int(2);
      l.max_value = get_limits.Int(3);
      // 0 in HQ's limits: the local defaults.
      l.grace_us = get_limits.Int(4) > 0 ? get_limits.Int(4) * kUs : -1;
      l.silent_us = get_limits.Int(5) * kUs;
    } else if (rc != SQLITE_DONE) {
      return db.Error(rc, "journal: read limits of sensor " + id);
    }
  }
  if (!l.has) {
    auto it = opt.sensor_limits.find(id);
    if (it != opt.sensor_limits.end()) {
      l.has = true;
      l.from = "config";
      l.location = it->second.location;
      l.metric = it->second.metric;
      l.min_value = it->second.min_value;
      l.max_value = it->second.max_value;
      l.grace_us = it->second.grace ? it->second.grace->count() * kUs : -1;
      l.silent_us = it->second.silent_after ? it->second.silent_after->count() * kUs : -1;
    }
  }
  if (l.metric.empty()) l.metric = opt.cold_chain_metric;
  if (l.grace_us < 0) l.grace_us = opt.cold_chain_grace.count() * kUs;
  if (l.silent_us <= 0) l.silent_us = opt.silent_after.count() * kUs;
  return l;
}

Status LoadSensor(sql::Db& db, sql::Stmt& q, const std::string& id, SensorRow& s) {
  s = SensorRow{};
  s.id = id;
  sql::ResetGuard g(q);
  q.Bind(1, id);
  int rc = q.Step();
  if (rc == SQLITE_ROW) {
    ReadSensorCols(q, 0, s);
  } else if (rc != SQLITE_DONE) {
    return db.Error(rc, "journal: read sensor " + id);
  }
  return {};
}

Status StoreSensor(sql::Db& db, sql::Stmt& q, const SensorRow& s) {
  sql::ResetGuard g(q);
  q.Bind(1, s.id)
      .Bind(2, s.watched_since)
      .Bind(3, s.last_value)
      .Bind(4, s.last_at)
      .Bind(5, s.out_since)
      .Bind(6, s.in_since)
      .Bind(7, s.min_seen)
      .Bind(8, s.max_seen)
      .Bind(9, static_cast<int64_t>(s.excursion_alert))
      .Bind(10, static_cast<int64_t>(s.silent_alert))
      .Bind(11, static_cast<int64_t>(s.excursions));
  int rc = q.Step();
  if (rc != SQLITE_DONE) return db.Error(rc, "journal: write sensor " + s.id);
  return {};
}

// Every row of the sensors table, by sensor_id.
Status LoadSensors(sql::Db& db, sql::Stmt& q, std::vector<SensorRow>& out) {
  sql::ResetGuard g(q);
  int rc;
  while ((rc = q.Step()) == SQLITE_ROW) {
    SensorRow row;
    row.id = std::string(q.Text(0));
    ReadSensorCols(q, 1, row);
    out.push_back(std::move(row));
  }
  return rc == SQLITE_DONE ? Status() : db.Error(rc, "journal: read sensors");
}

// The next time a sensor's state needs the clock (INT64_MAX: never).
int64_t SensorDeadline(const SensorRow& s, const Limits& l) {
  int64_t due = INT64_MAX;
  if (s.silent_alert == 0) {
    due = std::min(due, SatAdd(std::max(s.last_at, s.watched_since), l.silent_us));
  }
  if (l.has && s.out_since > 0 && s.excursion_alert == 0) {
    due = std::min(due, SatAdd(s.out_since, l.grace_us));
  }
  if (s.excursion_alert != 0 && s.in_since > 0) due = std::min(due, SatAdd(s.in_since, l.clear_us));
  return due;
}

}  // namespace

Result<uint64_t> Journal::Impl::RaiseDetailed(const v1::Alert& a, int64_t now) {
  v1::Event e;
  *e.mutable_alert() = a;
  auto seq = InsertGatewayEvent(std::move(e), now);
  if (!seq.ok()) return seq.status();
  const std::string detail = a.SerializeAsString();
  sql::ResetGuard g(ps.set_alert_detail);
  ps.set_alert_detail.BindBlob(1, detail.data(), detail.size()).Bind(2, static_cast<int64_t>(*seq));
  if (int rc = ps.set_alert_detail.Step(); rc != SQLITE_DONE) {
    return wdb.Error(rc, "journal: record alert detail");
  }
  return *seq;
}

Status Journal::Impl::CloseAlert(uint64_t alert_seq, v1::AlertCleared c, int64_t now) {
  c.set_alert_seq(alert_seq);
  v1::Event e;
  *e.mutable_alert_cleared() = std::move(c);
  auto seq = InsertGatewayEvent(std::move(e), now);
  if (!seq.ok()) return seq.status();
  sql::ResetGuard g(ps.clear_alert_seq);
  ps.clear_alert_seq.Bind(1, static_cast<int64_t>(*seq)).Bind(2, static_cast<int64_t>(alert_seq));
  if (int rc = ps.clear_alert_seq.Step(); rc != SQLITE_DONE) {
    return wdb.Error(rc, "journal: clear alert " + std::to_string(alert_seq));
  }
  return {};
}

Status Journal::Impl::SeedSensors(int64_t now) {
  if (opt.sensor_limits.empty()) return {};
  if (Status s = wdb.Exec("BEGIN IMMEDIATE"); !s.ok()) return s;
  for (const auto& [id, lim] : opt.sensor_limits) {
    sql::ResetGuard g(ps.seed_sensor);
    ps.seed_sensor.Bind(1, id).Bind(2, now);
    if (int rc = ps.seed_sensor.Step(); rc != SQLITE_DONE) {
      (void)wdb.Exec("ROLLBACK");
      return wdb.Error(rc, "journal: watch sensor " + id);
    }
  }
  return wdb.Exec("COMMIT");
}

// What device events do to batches and sensors, right after their stock
// effect (same transaction, same seq).
Status Journal::Impl::ApplyPerishables(const v1::Event& e, uint64_t seq, int64_t now) {
  switch (e.body_case()) {
    case v1::Event::kProduction: {
      const auto& p = e.production();
      // The hold clock starts when the tray was put out: occurred_at when
      // the device set it (never later than its receipt here).
      const int64_t produced =
          e.occurred_at() > 0 && e.occurred_at() < now ? e.occurred_at() : now;
      int64_t hold_s = opt.default_hold.count();
      if (auto it = opt.hold_times.find(p.sku()); it != opt.hold_times.end()) {
        hold_s = it->second.count();
      }
      {
        sql::ResetGuard g(ps.get_hold);
        ps.get_hold.Bind(1, p.sku());
        int rc = ps.get_hold.Step();
        if (rc == SQLITE_ROW) {
          hold_s = ps.get_hold.Int(0);
        } else if (rc != SQLITE_DONE) {
          return wdb.Error(rc, "journal: read hold time of " + p.sku());
        }
      }
      const int64_t due = SatAdd(produced, hold_s * kUs);
      sql::ResetGuard g(ps.ins_batch);
      ps.ins_batch.Bind(1, static_cast<int64_t>(seq))
          .Bind(2, p.sku())
          .Bind(3, p.location())
          .Bind(4, p.qty())
          .Bind(5, p.qty())
          .Bind(6, produced)
          .Bind(7, due);
      if (int rc = ps.ins_batch.Step(); rc != SQLITE_DONE) {
        return wdb.Error(rc, "journal: record batch of " + p.sku());
      }
      LowerTimerDue(due);
      return {};
    }
    case v1::Event::kSale:
      for (const auto& l : e.sale().lines()) {
        if (Status s = ConsumeBatches(l.sku(), l.qty(), "sold", seq, now); !s.ok()) return s;
      }
      return {};
    case v1::Event::kPickup:
      for (const auto& l : e.pickup().lines()) {
        if (Status s = ConsumeBatches(l.sku(), l.qty(), "sold", seq, now); !s.ok()) return s;
      }
      return {};
    case v1::Event::kAdjustment:
      for (const auto& l : e.adjustment().lines()) {
        if (l.qty() < 0 && l.reason() == "waste") {
          if (Status s = ConsumeBatches(l.sku(), -l.qty(), "wasted", seq, now); !s.ok()) return s;
        }
      }
      return {};
    case v1::Event::kSensor:
      return ApplyReading(e.sensor(), seq, now);
    default:
      return {};
  }
}

// Takes `qty` of `sku` out of its open batches, the oldest due first; a
// batch used up closes (and its alert with it).
Status Journal::Impl::ConsumeBatches(const std::string& sku, int64_t qty, const char* reason,
                                     uint64_t seq, int64_t now) {
  struct Open {
    uint64_t seq;
    int64_t remaining;
    uint64_t alert_seq;
  };
  std::vector<Open> open;
  {
    sql::ResetGuard g(ps.open_batches);
    ps.open_batches.Bind(1, sku);
    int rc;
    int64_t covered = 0;  // only the batches this quantity reaches
    while (covered < qty && (rc = ps.open_batches.Step()) == SQLITE_ROW) {
      const auto& q = ps.open_batches;
      open.push_back({static_cast<uint64_t>(q.Int(0)), q.Int(1),
                      q.IsNull(2) ? 0 : static_cast<uint64_t>(q.Int(2))});
      covered += q.Int(1);
    }
    if (covered < qty && rc != SQLITE_DONE) {
      return wdb.Error(rc, "journal: read batches of " + sku);
    }
  }
  for (const Open& b : open) {
    if (qty <= 0) break;
    const int64_t take = std::min(qty, b.remaining);
    qty -= take;
    if (take < b.remaining) {
      sql::ResetGuard g(ps.put_batch_remaining);
      ps.put_batch_remaining.Bind(1, b.remaining - take).Bind(2, static_cast<int64_t>(b.seq));
      if (int rc = ps.put_batch_remaining.Step(); rc != SQLITE_DONE) {
        return wdb.Error(rc, "journal: update batch " + std::to_string(b.seq));
      }
      continue;
    }
    {
      sql::ResetGuard g(ps.close_batch);
      ps.close_batch.Bind(1, static_cast<int64_t>(seq)).Bind(2, static_cast<int64_t>(b.seq));
      if (int rc = ps.close_batch.Step(); rc != SQLITE_DONE) {
        return wdb.Error(rc, "journal: close batch " + std::to_string(b.seq));
      }
    }
    if (b.alert_seq != 0) {
      v1::AlertCleared c;
      c.set_kind(v1::Alert::REMOVE_FROM_SHELF);
      c.set_sku(sku);
      c.set_reason(reason);
      c.set_cause_seq(seq);
      if (Status s = CloseAlert(b.alert_seq, std::move(c), now); !s.ok()) return s;
    }
  }
  return {};
}

Status Journal::Impl::ApplyReading(const v1::SensorReading& r, uint64_t seq, int64_t now) {
  auto lim = ResolveLimits(wdb, ps.get_limits, opt, r.sensor_id());
  if (!lim.ok()) return lim.status();
  const Limits& l = *lim;
  if (r.metric() != l.metric) return {};  // another metric of the sensor: not cold chain
  SensorRow s;
  if (Status st = LoadSensor(wdb, ps.get_sensor, r.sensor_id(), s); !st.ok()) return st;
  if (!s.exists) s.watched_since = now;
  s.last_value = r.value();
  s.last_at = now;
  if (s.silent_alert != 0) {
    v1::AlertCleared c;
    c.set_kind(v1::Alert::SENSOR_SILENT);
    c.set_sensor_id(r.sensor_id());
    c.set_reason("reading");
    c.set_cause_seq(seq);
    if (Status st = CloseAlert(s.silent_alert, std::move(c), now); !st.ok()) return st;
    s.silent_alert = 0;
  }
  if (l.has) {
    const bool outside = r.value() < l.min_value || r.value() > l.max_value;
    if (outside) {
      if (s.out_since == 0) {
        s.out_since = now;
        s.min_seen = s.max_seen = r.value();
      } else {
        s.min_seen = std::min(s.min_seen, r.value());
        s.max_seen = std::max(s.max_seen, r.value());
      }
      s.in_since = 0;
    } else if (s.out_since != 0) {
      if (s.excursion_alert == 0) {
        s.out_since = 0;  // back before the grace ran out: no excursion
      } else if (s.in_since == 0) {
        s.in_since = now;
      }
    }
  }
  if (Status st = StoreSensor(wdb, ps.put_sensor, s); !st.ok()) return st;
  const int64_t due = SensorDeadline(s, l);
  // An excursion whose grace has run out (or a zero grace) is due now.
  LowerTimerDue(due);
  return {};
}

Status Journal::Impl::PriceComesIntoForce(const v1::PriceUpdate& p, uint64_t update_seq,
                                          int64_t now) {
  // Another update of the sku already in force with a later start (or the
  // same start, recorded later) means this one never holds.
  bool superseded = false;
  {
    sql::ResetGuard g(ps.superseded_price);
    ps.superseded_price.Bind(1, p.sku())
        .Bind(2, now)
        .Bind(3, p.effective_from())
        .Bind(4, p.effective_from())
        .Bind(5, static_cast<int64_t>(update_seq));
    int rc = ps.superseded_price.Step();
    if (rc == SQLITE_ROW) {
      superseded = true;
    } else if (rc != SQLITE_DONE) {
      return wdb.Error(rc, "journal: check prices of " + p.sku());
    }
  }
  int64_t in_force_seq = 0;
  if (!superseded) {
    v1::Event e;
    auto* f = e.mutable_price_in_force();
    f->set_sku(p.sku());
    f->set_price(p.price());
    f->set_currency(p.currency());
    f->set_effective_from(p.effective_from());
    f->set_update_seq(update_seq);
    auto seq = InsertGatewayEvent(std::move(e), now);
    if (!seq.ok()) return seq.status();
    in_force_seq = static_cast<int64_t>(*seq);
  }
  sql::ResetGuard g(ps.set_in_force);
  ps.set_in_force.Bind(1, in_force_seq).Bind(2, p.sku()).Bind(3, static_cast<int64_t>(update_seq));
  if (int rc = ps.set_in_force.Step(); rc != SQLITE_DONE) {
    return wdb.Error(rc, "journal: record price in force of " + p.sku());
  }
  return {};
}

// The earliest future time a timer run has something to do. `sensors_due`:
// the sensors' earliest deadline when the caller has it (a timer run just
// went through them all), else nullopt and they are read here.
Result<int64_t> Journal::Impl::NextDue(std::optional<int64_t> sensors_due) {
  int64_t due = INT64_MAX;
  auto min_of = [&](sql::Stmt& q, int64_t add, const char* what) -> Status {
    sql::ResetGuard g(q);
    int rc = q.Step();
    if (rc != SQLITE_ROW) return wdb.Error(rc, what);
    if (!q.IsNull(0)) due = std::min(due, SatAdd(q.Int(0), add));
    return {};
  };
  if (Status s = min_of(ps.next_pending, 0, "journal: next batch due"); !s.ok()) return s;
  if (Status s = min_of(ps.next_unescalated, opt.escalate_after.count() * kUs,
                        "journal: next escalation");
      !s.ok()) {
    return s;
  }
  if (Status s = min_of(ps.next_price, 0, "journal: next price"); !s.ok()) return s;
  if (sensors_due) return std::min(due, *sensors_due);
  std::vector<SensorRow> sensors;
  if (Status st = LoadSensors(wdb, ps.all_sensors, sensors); !st.ok()) return st;
  for (const SensorRow& row : sensors) {
    auto l = ResolveLimits(wdb, ps.get_limits, opt, row.id);
    if (!l.ok()) return l.status();
    due = std::min(due, SensorDeadline(row, *l));
  }
  return due;
}

// One timer run inside the writer's transaction (see RunTimers).
Status Journal::Impl::DoTimers(Request& r, int64_t now) {
  TimerResult& out = r.timers;
  const int64_t esc_us = opt.escalate_after.count() * kUs;
  bool more = false;  // a chunk limit was hit: run again right away

  // Batches whose hold time has come.
  struct Due {
    uint64_t seq;
    std::string sku, location;
    int64_t remaining, produced_at, due_at;
    uint64_t alert_seq;
    // Its REMOVE_FROM_SHELF alert, without the message.
    v1::Alert Alert() const {
      v1::Alert a;
      a.set_kind(v1::Alert::REMOVE_FROM_SHELF);
      a.set_sku(sku);
      a.set_location(location);
      a.set_batch_seq(seq);
      a.set_qty(remaining);
      a.set_since(due_at);
      a.set_cause_seq(seq);
      return a;
    }
  };
  std::vector<Due> due;
  {
    sql::ResetGuard g(ps.due_batches);
    ps.due_batches.Bind(1, now).Bind(2, kTimerChunk);
    int rc;
    while ((rc = ps.due_batches.Step()) == SQLITE_ROW) {
      auto& q = ps.due_batches;
      due.push_back({static_cast<uint64_t>(q.Int(0)), std::string(q.Text(1)),
                     std::string(q.Text(2)), q.Int(3), q.Int(4), q.Int(5), 0});
    }
    if (rc != SQLITE_DONE) return wdb.Error(rc, "journal: read due batches");
  }
  more = more || static_cast<int64_t>(due.size()) == kTimerChunk;
  for (const Due& b : due) {
    v1::Alert a = b.Alert();
    a.set_message("remove " + std::to_string(b.remaining) + " of " + b.sku + " from " +
                  b.location + ": put out at " + ClockText(b.produced_at, now) +
                  " (seq " + std::to_string(b.seq) + "), its hold time of " +
                  Span((b.due_at - b.produced_at) / kUs) + " ran out at " +
                  ClockText(b.due_at, now) +
                  "; record it as an adjustment with reason \"waste\" once removed");
    auto seq = RaiseDetailed(a, now);
    if (!seq.ok()) return seq.status();
    sql::ResetGuard g(ps.set_batch_alert);
    ps.set_batch_alert.Bind(1, static_cast<int64_t>(*seq)).Bind(2, static_cast<int64_t>(b.seq));
    if (int rc = ps.set_batch_alert.Step(); rc != SQLITE_DONE) {
      return wdb.Error(rc, "journal: record batch alert");
    }
    ++out.raised;
  }

  // Batches still out escalate_after past their due time.
  due.clear();
  {
    sql::ResetGuard g(ps.escalate_batches);
    ps.escalate_batches.Bind(1, now - esc_us).Bind(2, kTimerChunk);
    int rc;
    while ((rc = ps.escalate_batches.Step()) == SQLITE_ROW) {
      auto& q = ps.escalate_batches;
      due.push_back({static_cast<uint64_t>(q.Int(0)), std::string(q.Text(1)),
                     std::string(q.Text(2)), q.Int(3), q.Int(4), q.Int(5),
                     static_cast<uint64_t>(q.Int(6))});
    }
    if (rc != SQLITE_DONE) return wdb.Error(rc, "journal: read batches to escalate");
  }
  more = more || static_cast<int64_t>(due.size()) == kTimerChunk;
  for (const Due& b : due) {
    v1::Alert a = b.Alert();
    a.set_escalated(true);
    a.set_duration_s((now - b.due_at) / kUs);
    a.set_message("STILL OUT: " + std::to_string(b.remaining) + " of " + b.sku + " at " +
                  b.location + " should have left the shelf at " + ClockText(b.due_at, now) +
                  " (" + Span((now - b.due_at) / kUs) + " ago, batch seq " +
                  std::to_string(b.seq) + "); remove it now and record the waste");
    auto seq = RaiseDetailed(a, now);
    if (!seq.ok()) return seq.status();
    v1::AlertCleared c;
    c.set_kind(v1::Alert::REMOVE_FROM_SHELF);
    c.set_sku(b.sku);
    c.set_reason("escalated");
    c.set_cause_seq(*seq);
    if (Status s = CloseAlert(b.alert_seq, std::move(c), now); !s.ok()) return s;
    sql::ResetGuard g(ps.set_batch_escalated);
    ps.set_batch_escalated.Bind(1, static_cast<int64_t>(*seq))
        .Bind(2, static_cast<int64_t>(b.seq));
    if (int rc = ps.set_batch_escalated.Step(); rc != SQLITE_DONE) {
      return wdb.Error(rc, "journal: record escalation");
    }
    ++out.raised;
  }

  // Cold chain.
  std::vector<SensorRow> sensors;
  if (Status st = LoadSensors(wdb, ps.all_sensors, sensors); !st.ok()) return st;
  int64_t sensors_due = INT64_MAX;  // after this run's changes
  for (SensorRow& s : sensors) {
    auto lim = ResolveLimits(wdb, ps.get_limits, opt, s.id);
    if (!lim.ok()) return lim.status();
    const Limits& l = *lim;
    bool changed = false;
    if (l.has && s.out_since > 0 && s.excursion_alert == 0 && now >= SatAdd(s.out_since, l.grace_us)) {
      v1::Alert a;
      a.set_kind(v1::Alert::TEMPERATURE_EXCURSION);
      a.set_sensor_id(s.id);
      a.set_location(l.location);
      a.set_since(s.out_since);
      a.set_min_seen(s.min_seen);
      a.set_max_seen(s.max_seen);
      a.set_duration_s((now - s.out_since) / kUs);
      a.set_message(Where(s.id, l.location) + " has been outside its limits [" +
                    std::to_string(l.min_value) + ", " + std::to_string(l.max_value) + "] " +
                    l.metric + " since " + ClockText(s.out_since, now) + " (" +
                    Span((now - s.out_since) / kUs) + ", longer than the grace of " +
                    Span(l.grace_us / kUs) + "): lowest " + std::to_string(s.min_seen) +
                    ", highest " + std::to_string(s.max_seen) +
                    "; check the unit and move or assess the goods");
      auto seq = RaiseDetailed(a, now);
      if (!seq.ok()) return seq.status();
      s.excursion_alert = *seq;
      ++s.excursions;
      ++out.raised;
      changed = true;
    }
    if (s.excursion_alert != 0 && s.in_since > 0 && now >= SatAdd(s.in_since, l.clear_us)) {
      v1::AlertCleared c;
      c.set_kind(v1::Alert::TEMPERATURE_EXCURSION);
      c.set_sensor_id(s.id);
      c.set_reason("back_in_limits");
      c.set_min_seen(s.min_seen);
      c.set_max_seen(s.max_seen);
      c.set_duration_s((s.in_since - s.out_since) / kUs);
      if (Status st = CloseAlert(s.excursion_alert, std::move(c), now); !st.ok()) return st;
      s.excursion_alert = 0;
      s.out_since = s.in_since = 0;
      ++out.cleared;
      changed = true;
    }
    const int64_t heard = std::max(s.last_at, s.watched_since);
    if (s.silent_alert == 0 && now >= SatAdd(heard, l.silent_us)) {
      v1::Alert a;
      a.set_kind(v1::Alert::SENSOR_SILENT);
      a.set_sensor_id(s.id);
      a.set_location(l.location);
      a.set_since(heard);
      a.set_duration_s((now - heard) / kUs);
      a.set_message(Where(s.id, l.location) + " sent no " + l.metric + " reading " +
                    (s.last_at > 0 ? "since " + ClockText(s.last_at, now)
                                   : "since it is watched (" + ClockText(heard, now) + ")") +
                    ", longer than " + Span(l.silent_us / kUs) +
                    ": check its battery, its link and the unit itself");
      auto seq = RaiseDetailed(a, now);
      if (!seq.ok()) return seq.status();
      s.silent_alert = *seq;
      ++out.raised;
      changed = true;
    }
    if (changed) {
      if (Status st = StoreSensor(wdb, ps.put_sensor, s); !st.ok()) return st;
    }
    sensors_due = std::min(sensors_due, SensorDeadline(s, l));
  }

  // Prices whose effective_from has come.
  struct Pending {
    v1::PriceUpdate p;
    uint64_t seq;
  };
  std::vector<Pending> prices;
  {
    sql::ResetGuard g(ps.pending_prices);
    ps.pending_prices.Bind(1, now).Bind(2, kTimerChunk);
    int rc;
    while ((rc = ps.pending_prices.Step()) == SQLITE_ROW) {
      auto& q = ps.pending_prices;
      Pending pp;
      pp.p.set_store_id(store_id);
      pp.p.set_sku(std::string(q.Text(0)));
      pp.p.set_effective_from(q.Int(1));
      pp.seq = static_cast<uint64_t>(q.Int(2));
      pp.p.set_price(q.Int(3));
      pp.p.set_currency(std::string(q.Text(4)));
      prices.push_back(std::move(pp));
    }
    if (rc != SQLITE_DONE) return wdb.Error(rc, "journal: read prices coming into force");
  }
  more = more || static_cast<int64_t>(prices.size()) == kTimerChunk;
  for (const Pending& pp : prices) {
    if (Status s = PriceComesIntoForce(pp.p, pp.seq, now); !s.ok()) return s;
    ++out.prices;
  }

  auto next = NextDue(sensors_due);
  if (!next.ok()) return next.status();
  out.next_due_us = more ? now : (*next == INT64_MAX ? 0 : *next);
  timer_due.store(more ? now : *next);
  return {};
}

Status Journal::Impl::DoRules(Request& r, int64_t now) {
  const v1::StoreRules& rules = *r.rules;
  v1::Event e;
  *e.mutable_store_rules() = rules;
  auto seq = InsertGatewayEvent(std::move(e), now);
  if (!seq.ok()) return seq.status();
  for (const auto& h : rules.hold_times()) {
    sql::Stmt& q = h.hold_s() == 0 ? ps.del_hold : ps.put_hold;
    sql::ResetGuard g(q);
    q.Bind(1, h.sku());
    if (h.hold_s() != 0) q.Bind(2, h.hold_s()).Bind(3, static_cast<int64_t>(*seq));
    if (int rc = q.Step(); rc != SQLITE_DONE) {
      return wdb.Error(rc, "journal: record hold time of " + h.sku());
    }
  }
  for (const auto& l : rules.sensor_limits()) {
    if (l.remove()) {
      sql::ResetGuard g(ps.del_limits);
      ps.del_limits.Bind(1, l.sensor_id());
      if (int rc = ps.del_limits.Step(); rc != SQLITE_DONE) {
        return wdb.Error(rc, "journal: remove limits of " + l.sensor_id());
      }
      continue;
    }
    {
      sql::ResetGuard g(ps.put_limits);
      ps.put_limits.Bind(1, l.sensor_id())
          .Bind(2, l.location())
          .Bind(3, l.metric().empty() ? opt.cold_chain_metric : l.metric())
          .Bind(4, l.min_value())
          .Bind(5, l.max_value())
          .Bind(6, l.grace_s())
          .Bind(7, l.silent_after_s())
          .Bind(8, static_cast<int64_t>(*seq));
      if (int rc = ps.put_limits.Step(); rc != SQLITE_DONE) {
        return wdb.Error(rc, "journal: record limits of " + l.sensor_id());
      }
    }
    sql::ResetGuard g(ps.seed_sensor);
    ps.seed_sensor.Bind(1, l.sensor_id()).Bind(2, now);
    if (int rc = ps.seed_sensor.Step(); rc != SQLITE_DONE) {
      return wdb.Error(rc, "journal: watch sensor " + l.sensor_id());
    }
  }
  r.rules_result.seq = *seq;
  r.rules_result.hold_times = static_cast<size_t>(rules.hold_times_size());
  r.rules_result.sensor_limits = static_cast<size_t>(rules.sensor_limits_size());
  LowerTimerDue(now);  // new limits and watched sensors: look again
  return {};
}

void Journal::Impl::TimerLoop() {
  std::unique_lock lk(timer_mu);
  while (!timer_stop) {
    const int64_t now = Now();
    const int64_t due = timer_due.load();
    if (due <= now) {
      lk.unlock();
      Request r;
      r.kind = Request::Kind::kTimers;
      const Status s = Submit(r);
      lk.lock();
      if (!s.ok()) {
        // The journal is closing, full or failing: try again in a second.
        timer_due.store(now + kUs);
        timer_cv.wait_for(lk, std::chrono::seconds(1), [&] { return timer_stop; });
      }
      continue;
    }
    // Sleep until the due time, at most a second (the clock may be a
    // test's, or jump), or until the writer lowers the due time.
    const int64_t wait_us = std::min<int64_t>(due - now, kUs);
    timer_cv.wait_for(lk, std::chrono::microseconds(wait_us),
                      [&] { return timer_stop || timer_due.load() != due; });
  }
}

Result<TimerResult> Journal::RunTimers() {
  Request r;
  r.kind = Request::Kind::kTimers;
  if (Status s = impl_->Submit(r); !s.ok()) return s;
  return r.timers;
}

Result<RulesResult> Journal::ApplyStoreRules(const v1::StoreRules& rules) {
  if (Status s = ValidateStoreRules(rules); !s.ok()) return s;
  if (rules.store_id() != impl_->store_id) {
    return Status::InvalidArgument(
        "store_id", "is '" + rules.store_id() + "', this is store '" + impl_->store_id + "'");
  }
  Request r;
  r.kind = Request::Kind::kRules;
  r.rules = &rules;
  if (Status s = impl_->Submit(r); !s.ok()) return s;
  return r.rules_result;
}

Result<PerishablesView> Journal::Perishables(size_t next) {
  auto r = impl_->AcquireReader();
  if (!r.ok()) return r.status();
  sql::Db& db = (*r)->db;
  const int64_t now = impl_->Now();
  PerishablesView out;
  Status st = [&]() -> Status {
    sql::Stmt q;
    if (Status s = q.Prepare(db.get(),
                             "SELECT count(*), coalesce(sum(due_at <= ?), 0) FROM batches "
                             "WHERE closed_seq IS NULL");
        !s.ok()) {
      return s;
    }
    q.Bind(1, now);
    if (int rc = q.Step(); rc != SQLITE_ROW) return db.Error(rc, "journal: count batches");
    out.batches_open = static_cast<uint64_t>(q.Int(0));
    out.batches_overdue = static_cast<uint64_t>(q.Int(1));
    sql::Stmt b;
    if (Status s = b.Prepare(db.get(),
                             "SELECT seq, sku, location, remaining, produced_at, due_at, "
                             "alert_seq, escalated FROM batches WHERE closed_seq IS NULL "
                             "ORDER BY due_at, seq LIMIT ?");
        !s.ok()) {
      return s;
    }
    b.Bind(1, static_cast<int64_t>(next));
    int rc;
    while ((rc = b.Step()) == SQLITE_ROW) {
      v1::PerishableBatch pb;
      pb.set_seq(static_cast<uint64_t>(b.Int(0)));
      pb.set_sku(std::string(b.Text(1)));
      pb.set_location(std::string(b.Text(2)));
      pb.set_qty(b.Int(3));
      pb.set_produced_at(b.Int(4));
      pb.set_due_at(b.Int(5));
      if (!b.IsNull(6)) pb.set_alert_seq(static_cast<uint64_t>(b.Int(6)));
      pb.set_escalated(b.Int(7) != 0);
      out.due_next.push_back(std::move(pb));
    }
    if (rc != SQLITE_DONE) return db.Error(rc, "journal: read batches");
    sql::Stmt s;
    if (Status p = s.Prepare(
            db.get(), std::string("SELECT s.sensor_id, ") +
                          "s.watched_since, s.last_value, s.last_at, s.out_since, s.in_since, "
                          "s.min_seen, s.max_seen, s.excursion_alert, s.silent_alert, "
                          "s.excursions, l.location, l.metric, l.min_value, l.max_value "
                          "FROM sensors s LEFT JOIN sensor_limits l USING(sensor_id) "
                          "ORDER BY s.sensor_id");
        !p.ok()) {
      return p;
    }
    while ((rc = s.Step()) == SQLITE_ROW) {
      SensorRow row;
      row.id = std::string(s.Text(0));
      ReadSensorCols(s, 1, row);
      v1::SensorState ss;
      ss.set_sensor_id(row.id);
      ss.set_metric(impl_->opt.cold_chain_metric);
      if (!s.IsNull(11)) {
        ss.set_has_limits(true);
        ss.set_limits_from("hq");
        ss.set_location(std::string(s.Text(11)));
        ss.set_metric(std::string(s.Text(12)));
        ss.set_min_value(s.Int(13));
        ss.set_max_value(s.Int(14));
      } else if (auto it = impl_->opt.sensor_limits.find(row.id);
                 it != impl_->opt.sensor_limits.end()) {
        ss.set_has_limits(true);
        ss.set_limits_from("config");
        ss.set_location(it->second.location);
        ss.set_metric(it->second.metric.empty() ? impl_->opt.cold_chain_metric
                                                : it->second.metric);
        ss.set_min_value(it->second.min_value);
        ss.set_max_value(it->second.max_value);
      }
      ss.set_last_value(row.last_value);
      ss.set_last_at(row.last_at);
      ss.set_excursions(row.excursions);
      ss.set_excursion_alert_seq(row.excursion_alert);
      ss.set_silent_alert_seq(row.silent_alert);
      ss.set_out_since(row.out_since);
      out.sensors.push_back(std::move(ss));
    }
    if (rc != SQLITE_DONE) return db.Error(rc, "journal: read sensors");
    return {};
  }();
  impl_->ReleaseReader(std::move(*r));
  if (!st.ok()) return st;
  return out;
}

}  // namespace storegw::storage
