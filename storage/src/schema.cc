#include "schema.h"

#include <string>

namespace storegw::storage {
namespace {

// Migration N brings the schema from version N to N+1. Never edit a shipped
// migration: add a new one (and a golden file of the old schema in tests/).
constexpr const char* kMigrations[] = {
    // 0 -> 1: the first schema.
    R"sql(
    CREATE TABLE meta(
      key   TEXT PRIMARY KEY,
      value TEXT NOT NULL
    ) WITHOUT ROWID;

    -- One row per journaled event. seq is dense and never reused: rows leave
    -- only from the low end, by retention, after delivery.
    CREATE TABLE events(
      seq         INTEGER PRIMARY KEY,
      event_id    TEXT NOT NULL UNIQUE,
      recorded_at INTEGER NOT NULL,   -- gateway clock at commit, us since epoch
      cum_bytes   INTEGER NOT NULL,   -- sum of length(body) over seq' <= seq
      count_delta INTEGER,            -- count events: the delta that set on_hand
      body        BLOB NOT NULL       -- serialized storegw.v1.Event
    );

    -- The stock ledger: on_hand = base_qty + sum of deltas with seq > as_of_seq.
    CREATE TABLE stock(
      sku         TEXT PRIMARY KEY,
      on_hand     INTEGER NOT NULL,
      base_qty    INTEGER NOT NULL,
      as_of_seq   INTEGER NOT NULL,
      hq_version  INTEGER NOT NULL,
      oversold    INTEGER NOT NULL,   -- 1 while an oversell alert is open
      updated_seq INTEGER NOT NULL
    ) WITHOUT ROWID;

    -- Alerts the gateway raised (each is also a journaled `alert` event).
    CREATE TABLE alerts(
      seq         INTEGER PRIMARY KEY,
      kind        INTEGER NOT NULL,
      sku         TEXT NOT NULL,
      on_hand     INTEGER NOT NULL,
      message     TEXT NOT NULL,
      raised_at   INTEGER NOT NULL,
      cleared_seq INTEGER
    );
    CREATE INDEX alerts_open ON alerts(sku, kind) WHERE cleared_seq IS NULL;
    )sql",
    // 1 -> 2: HQ prices, and the low-stock alert state of each sku.
    R"sql(
    -- One row per applied PriceUpdate (each is also a journaled
    -- `price_update` event, seq). The price in force at time t is the row
    -- with the greatest effective_from <= t, ties to the greatest seq.
    CREATE TABLE prices(
      sku            TEXT NOT NULL,
      effective_from INTEGER NOT NULL,  -- us since epoch
      seq            INTEGER NOT NULL,
      price          INTEGER NOT NULL,  -- minor units per base unit
      currency       TEXT NOT NULL,
      PRIMARY KEY(sku, effective_from, seq)
    ) WITHOUT ROWID;

    -- 1 while a LOW_STOCK alert of the sku is open.
    ALTER TABLE stock ADD COLUMN low_stock INTEGER NOT NULL DEFAULT 0;
    )sql",
    // 2 -> 3: what the device API knows of each device (counters, last
    // error), so that it survives restarts. Not store history: never sent
    // upstream.
    R"sql(
    CREATE TABLE devices(
      device_id TEXT PRIMARY KEY,
      status    BLOB NOT NULL          -- serialized storegw.v1.DeviceStatus
    ) WITHOUT ROWID;
    )sql",
    // 3 -> 4: untracked skus and acknowledged alerts.
    R"sql(
    -- 0 until the sku has a baseline (a snapshot line, a count or a
    -- receipt): an untracked sku raises no stock alert. Skus of an older
    -- journal alerted before, so they stay tracked.
    ALTER TABLE stock ADD COLUMN tracked INTEGER NOT NULL DEFAULT 1;
    -- The acknowledgement (also the journaled alert_ack event acked_seq,
    -- kept here as that event may be pruned after delivery).
    ALTER TABLE alerts ADD COLUMN acked_seq INTEGER;
    ALTER TABLE alerts ADD COLUMN acked_by TEXT;
    ALTER TABLE alerts ADD COLUMN acked_at INTEGER;
    ALTER TABLE alerts ADD COLUMN ack_note TEXT;
    )sql",
    // 4 -> 5: perishables (production batches, HQ hold times), cold chain
    // (sensor limits and state) and prices coming into force.
    R"sql(
    -- One row per `production` event (seq): a tray put out at a counter.
    -- remaining = qty minus what sales and waste took (oldest due first);
    -- closed_seq is the event that used it up.
    CREATE TABLE batches(
      seq         INTEGER PRIMARY KEY,
      sku         TEXT NOT NULL,
      location    TEXT NOT NULL,
      qty         INTEGER NOT NULL,
      remaining   INTEGER NOT NULL,
      produced_at INTEGER NOT NULL,  -- us since epoch: the hold clock's start
      due_at      INTEGER NOT NULL,  -- produced_at + the hold time then in force
      alert_seq   INTEGER,           -- its open REMOVE_FROM_SHELF alert
      escalated   INTEGER NOT NULL DEFAULT 0,
      closed_seq  INTEGER
    );
    CREATE INDEX batches_open ON batches(sku, due_at, seq) WHERE closed_seq IS NULL;
    CREATE INDEX batches_due ON batches(due_at, seq) WHERE closed_seq IS NULL;
    CREATE INDEX batches_pending ON batches(due_at, seq)
      WHERE closed_seq IS NULL AND alert_seq IS NULL;
    CREATE INDEX batches_unescalated ON batches(due_at, seq)
      WHERE closed_seq IS NULL AND alert_seq IS NOT NULL AND escalated = 0;

    -- HQ's hold time per sku (the newest store_rules event that named it).
    CREATE TABLE hold_times(
      sku    TEXT PRIMARY KEY,
      hold_s INTEGER NOT NULL,
      seq    INTEGER NOT NULL
    ) WITHOUT ROWID;

    -- HQ's limits per sensor (they win over the local configuration).
    CREATE TABLE sensor_limits(
      sensor_id      TEXT PRIMARY KEY,
      location       TEXT NOT NULL,
      metric         TEXT NOT NULL,
      min_value      INTEGER NOT NULL,
      max_value      INTEGER NOT NULL,
      grace_s        INTEGER NOT NULL,
      silent_after_s INTEGER NOT NULL,
      seq            INTEGER NOT NULL
    ) WITHOUT ROWID;

    -- The state of each watched cold-chain sensor.
    CREATE TABLE sensors(
      sensor_id       TEXT PRIMARY KEY,
      watched_since   INTEGER NOT NULL,  -- us: silence is counted from here
      last_value      INTEGER NOT NULL DEFAULT 0,
      last_at         INTEGER NOT NULL DEFAULT 0,  -- 0: no reading yet
      out_since       INTEGER NOT NULL DEFAULT 0,  -- outside the limits since
      in_since        INTEGER NOT NULL DEFAULT 0,  -- back inside (alert open) since
      min_seen        INTEGER NOT NULL DEFAULT 0,
      max_seen        INTEGER NOT NULL DEFAULT 0,
      excursion_alert INTEGER NOT NULL DEFAULT 0,  -- open alert seq, 0: none
      silent_alert    INTEGER NOT NULL DEFAULT 0,
      excursions      INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;

    -- The alert's own fields (serialized storegw.v1.Alert) for the kinds
    -- that carry more than a sku.
    ALTER TABLE alerts ADD COLUMN detail BLOB;

    -- The price_in_force event of each update: NULL until its
    -- effective_from comes, 0 when it never was (a later update already
    -- held). Updates recorded before this schema are in force or past.
    ALTER TABLE prices ADD COLUMN in_force_seq INTEGER;
    UPDATE prices SET in_force_seq = 0
     WHERE effective_from <= CAST(strftime('%s', 'now') AS INTEGER) * 1000000;
    CREATE INDEX prices_pending ON prices(effective_from, seq) WHERE in_force_seq IS NULL;
    )sql",
};

static_assert(std::size(kMigrations) == kSchemaVersion);

}  // namespace

Status MigrateSchema(sql::Db& db, int from, const std::function<Status()>& in_txn) {
  if (from >= kSchemaVersion) return {};
  // No auto_vacuum: pages freed by retention stay in the file and are
  // reused by new events, which is what a journal of steady size wants (and
  // what lets ingest resume on a full disk once pruning frees pages).
  if (Status s = db.Exec("BEGIN IMMEDIATE"); !s.ok()) return s;
  for (int v = from; v < kSchemaVersion; ++v) {
    if (Status s = db.Exec(kMigrations[v]); !s.ok()) {
      (void)db.Exec("ROLLBACK");
      return Status(s.code(), "schema migration " + std::to_string(v) + " -> " +
                                  std::to_string(v + 1) + " failed: " + s.message());
    }
  }
  if (in_txn) {
    if (Status s = in_txn(); !s.ok()) {
      (void)db.Exec("ROLLBACK");
      return s;
    }
  }
  if (Status s = db.Exec("PRAGMA user_version=" + std::to_string(kSchemaVersion)); !s.ok()) {
    (void)db.Exec("ROLLBACK");
    return s;
  }
  return db.Exec("COMMIT");
}

}  // namespace storegw::storage
