// Journal schema and its numbered migrations. The schema version lives in
// SQLite's `PRAGMA user_version` (0 = empty file).
#pragma once

#include "sqlite_util.h"

namespace storegw::storage {

// The schema this build writes. A journal with a higher user_version was
// written by a newer storegw and is refused (never downgraded or moved).
inline constexpr int kSchemaVersion = 1;

// Brings `db` from `from` (0 for a new file) to kSchemaVersion in one
// transaction. On failure nothing changes.
Status MigrateSchema(sql::Db& db, int from);

}  // namespace storegw::storage
