#include "schema.h"

#include <iterator>
#include <string>

namespace storegw::hq::pg {
namespace {

// pg_advisory_xact_lock keys: "storegw" in ASCII, then a byte per use
// (0x73746f72656777 01: the schema, 02: events partitions).
constexpr const char* kLockSchema = "SELECT pg_advisory_xact_lock(8319396948778383105)";

struct Migration {
  const char* name;
  const char* sql;
};

// Migration N (1-based) brings the schema from version N-1 to N. Never edit
// a shipped migration: add the next one. Constant SQL only.
constexpr Migration kMigrations[] = {
    {"events, gateways, gateway_epochs, pending_ranges", R"sql(
-- Epochs are fixed64 on the wire and bigint here: the same 64 bits, read as
-- two's complement. storegw_u64 gives the unsigned number the gateway shows.
CREATE FUNCTION storegw_u64(v bigint) RETURNS numeric
  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
  AS $$ SELECT CASE WHEN v < 0 THEN v::numeric + 18446744073709551616 ELSE v::numeric END $$;

-- Microseconds since the Unix epoch (the wire's timestamps) and back, exact.
CREATE FUNCTION storegw_from_us(us bigint) RETURNS timestamptz
  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
  AS $$ SELECT timestamptz 'epoch' + us * interval '1 microsecond' $$;
CREATE FUNCTION storegw_us(t timestamptz) RETURNS bigint
  LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
  AS $$ SELECT (extract(epoch FROM t) * 1000000)::bigint $$;

-- One row per gateway: its current epoch and its last GatewayStatus. A
-- gateway is (store_id, gateway_id): gateway ids are unique only within a
-- store (every store's first gateway is "gw-01" by default).
CREATE TABLE gateways (
  store_id           text NOT NULL,
  gateway_id         text NOT NULL,
  current_epoch      bigint,       -- NULL until a batch or a status names one
  first_seen         timestamptz NOT NULL,
  status             jsonb,        -- the last GatewayStatus (proto3 JSON), NULL: none yet
  status_received_at timestamptz,  -- HQ clock
  status_updated_at  timestamptz,  -- status.updated_at (the gateway's clock)
  online             boolean,
  online_since       timestamptz,  -- HQ clock: when `online` last changed
  last_seq           bigint,
  watermark          bigint,
  backlog_events     bigint,
  link               text,
  version            text,
  PRIMARY KEY (store_id, gateway_id)
);

-- One row per journal (epoch) of a gateway. applied_seq: every seq in
-- 1..applied_seq is in `events` (the prefix HqAck names). An epoch belongs
-- to one store's gateway (epochs are random 64-bit numbers; a journal
-- copied into another store's gateway is refused): the row the apply locks
-- for (gateway_id, epoch), which keeps events' (gateway_id, epoch, seq)
-- unique.
CREATE TABLE gateway_epochs (
  store_id      text NOT NULL,
  gateway_id    text NOT NULL,
  epoch         bigint NOT NULL,
  applied_seq   bigint NOT NULL DEFAULT 0,
  first_seen    timestamptz NOT NULL,
  last_batch_at timestamptz,
  superseded_at timestamptz,  -- NULL while it is the gateway's current epoch
  superseded_by bigint,       -- the gateway's current epoch when this one was superseded
  PRIMARY KEY (store_id, gateway_id, epoch),
  CONSTRAINT gateway_epochs_gateway_epoch UNIQUE (gateway_id, epoch)
);

-- Seqs stored past a gap (beyond applied_seq), as ranges; removed as soon
-- as the gap fills and applied_seq moves over them.
CREATE TABLE pending_ranges (
  store_id   text NOT NULL,
  gateway_id text NOT NULL,
  epoch      bigint NOT NULL,
  first_seq  bigint NOT NULL,
  last_seq   bigint NOT NULL,
  PRIMARY KEY (store_id, gateway_id, epoch, first_seq),
  CHECK (first_seq <= last_seq)
);

-- Every event, once. Partitioned by month of recorded_at (UTC):
-- events_YYYY_MM, created on demand by storegw_events_partition; events
-- outside the months storegw-hq creates land in events_default.
CREATE TABLE events (
  store_id    text NOT NULL,
  gateway_id  text NOT NULL,
  epoch       bigint NOT NULL,
  seq         bigint NOT NULL,
  event_id    text NOT NULL,
  kind        text NOT NULL,         -- the body's field name: sale, sale_return, count, ...
  recorded_at timestamptz NOT NULL,  -- gateway clock at journal commit
  occurred_at timestamptz,           -- device clock; NULL when the device sent none
  device_id   text NOT NULL,
  event       jsonb NOT NULL         -- storegw.v1.Event, proto3 JSON, .proto field names
) PARTITION BY RANGE (recorded_at);
CREATE TABLE events_default PARTITION OF events DEFAULT;
-- A unique index of a partitioned table must hold the partition key. The
-- store's apply (row locks on gateway_epochs, one row per (gateway_id,
-- epoch)) is what keeps one row per (gateway_id, epoch, seq); this index
-- also refuses an exact repeat.
CREATE UNIQUE INDEX events_gateway_epoch_seq ON events (gateway_id, epoch, seq, recorded_at);

-- The partition of the month of `month_of` (UTC), created when missing:
-- rows of that month already in events_default move into it.
CREATE FUNCTION storegw_events_partition(month_of timestamptz) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  lo   timestamptz := date_trunc('month', month_of, 'UTC');
  hi   timestamptz := (date_trunc('month', month_of AT TIME ZONE 'UTC') + interval '1 month')
                      AT TIME ZONE 'UTC';
  part text := 'events_' || to_char(month_of AT TIME ZONE 'UTC', 'YYYY_MM');
BEGIN
  IF to_regclass(quote_ident(part)) IS NOT NULL THEN
    RETURN part;
  END IF;
  PERFORM pg_advisory_xact_lock(8319396948778383106);
  -- A relation lock also reads the catalog changes of transactions that
  -- committed meanwhile (an advisory lock does not): then look again.
  LOCK TABLE events_default IN ACCESS EXCLUSIVE MODE;
  IF to_regclass(quote_ident(part)) IS NOT NULL THEN
    RETURN part;
  END IF;
  EXECUTE format('CREATE TABLE %I (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part);
  EXECUTE format('WITH moved AS (DELETE FROM events_default WHERE recorded_at >= %L '
                 'AND recorded_at < %L RETURNING *) INSERT INTO %I SELECT * FROM moved',
                 lo, hi, part);
  EXECUTE format('ALTER TABLE events ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                 part, lo, hi);
  RETURN part;
END $$;

-- Retention: drops every monthly partition that ends at or before
-- `cutoff` and returns their names. gateway_epochs keeps applied_seq, so a
-- batch resent after its rows were dropped is still a duplicate.
CREATE FUNCTION storegw_drop_events_before(cutoff timestamptz) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
  part text;
BEGIN
  PERFORM pg_advisory_xact_lock(8319396948778383106);
  FOR part IN
    SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = 'events'::regclass AND c.relname ~ '^events_[0-9]{4}_[0-9]{2}$'
     ORDER BY c.relname
  LOOP
    IF (to_date(substr(part, 8), 'YYYY_MM') + interval '1 month') AT TIME ZONE 'UTC'
       <= cutoff THEN
      EXECUTE format('DROP TABLE %I', part);
      RETURN NEXT part;
    END IF;
  END LOOP;
END $$;
)sql"},
};

constexpr int kLatest = static_cast<int>(std::size(kMigrations));

Result<int> CurrentVersion(Conn& conn) {
  auto r = conn.Query("SELECT coalesce(max(version), 0) FROM schema_migrations");
  if (!r.ok()) return r.status();
  return static_cast<int>(GetInt(r->get(), 0, 0));
}

Status Rollback(Conn& conn, Status why) {
  if (conn.ok()) (void)conn.Exec("ROLLBACK");
  return why;
}

}  // namespace

int LatestSchemaVersion() {
  return kLatest;
}

Status MigrateSchema(Conn& conn) {
  if (Status s = conn.Exec("BEGIN"); !s.ok()) return s;
  if (Status s = conn.Exec(kLockSchema); !s.ok()) return Rollback(conn, s);
  if (Status s = conn.Exec(R"sql(
      CREATE TABLE IF NOT EXISTS schema_migrations (
        version    integer PRIMARY KEY,
        name       text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now()
      ))sql");
      !s.ok()) {
    return Rollback(conn, s);
  }
  auto v = CurrentVersion(conn);
  if (!v.ok()) return Rollback(conn, v.status());
  if (*v > kLatest) {
    return Rollback(conn, Status::FailedPrecondition(
                              "the database's schema is version " + std::to_string(*v) +
                              ", newer than this storegw-hq knows (" + std::to_string(kLatest) +
                              "): upgrade storegw-hq, or point [hq] database at another database"));
  }
  if (Status s = conn.Exec("COMMIT"); !s.ok()) return Rollback(conn, s);
  if (Status s = conn.Prepare("schema_record",
                              "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)");
      !s.ok()) {
    return s;
  }

  for (int version = 1; version <= kLatest; ++version) {
    if (Status s = conn.Exec("BEGIN"); !s.ok()) return s;
    if (Status s = conn.Exec(kLockSchema); !s.ok()) return Rollback(conn, s);
    auto cur = CurrentVersion(conn);  // another replica may have migrated meanwhile
    if (!cur.ok()) return Rollback(conn, cur.status());
    if (*cur >= version) {
      if (Status s = conn.Exec("COMMIT"); !s.ok()) return Rollback(conn, s);
      continue;
    }
    const Migration& m = kMigrations[version - 1];
    if (Status s = conn.Exec(m.sql); !s.ok()) {
      return Rollback(conn, Status(s.code(), "schema migration " + std::to_string(version) + " (" +
                                                 m.name + "): " + s.message()));
    }
    auto rec = conn.ExecPrepared("schema_record", Params().Int(version).Text(m.name));
    if (!rec.ok()) return Rollback(conn, rec.status());
    if (Status s = conn.Exec("COMMIT"); !s.ok()) return Rollback(conn, s);
  }
  return {};
}

}  // namespace storegw::hq::pg
