// Journal schema and its numbered migrations. The schema version lives in
// SQLite's `PRAGMA user_version` (0 = empty file).
#pragma once

#include <functional>

#include "sqlite_util.h"

namespace storegw::storage {

// The schema this build writes. A journal with a higher user_version was
// written by a newer storegw and is refused (never downgraded or moved).
inline constexpr int kSchemaVersion = 5;

// Brings `db` from `from` (0 for a new file) to kSchemaVersion in one
// transaction. `in_txn`, when set, runs inside that same transaction after
// the migrations (a new journal writes its identity there, so a crash can
// never leave a schema without an identity). On failure nothing changes.
Status MigrateSchema(sql::Db& db, int from, const std::function<Status()>& in_txn = {});

}  // namespace storegw::storage
