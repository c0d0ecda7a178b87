// storegw-hq's PostgreSQL schema: numbered migrations, applied by Open().
// docs/hq-schema.md describes the result.
#pragma once

#include "pg_conn.h"
#include "storegw/status.h"

namespace storegw::hq::pg {

// The newest schema version this build knows.
int LatestSchemaVersion();

// Creates `schema_migrations` when missing and applies every migration the
// database lacks, each in a transaction of its own that first takes the
// schema's advisory lock (replicas starting together wait for each other,
// then find the work done). Refuses (failed_precondition, nothing changed) a
// database whose schema is newer than this build.
Status MigrateSchema(Conn& conn);

}  // namespace storegw::hq::pg
