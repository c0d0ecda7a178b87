// What the offline tools (verify.cc: journal verify and export; backup.cc:
// journal backup) share: opening a journal file read-only, with its header,
// schema version and identity checked, so that they refuse the same files
// with the same words.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "sqlite_util.h"
#include "storegw/status.h"

namespace storegw::storage::internal {

// A journal's identity and watermark, as its meta table holds them.
struct OfflineMeta {
  uint64_t epoch = 0;
  uint64_t watermark = 0;
  std::string store_id, gateway_id;
};

// Opens `path` read-only into `db` (busy_timeout 10 s) after checking that
// it exists, starts with SQLite's header and has this build's schema
// version, and reads its meta into `meta`. kNotFound ("journal: no journal
// at PATH"), kCorruption, kFailedPrecondition (another schema version).
Status OpenJournalReadOnly(const std::filesystem::path& path, sql::Db& db, OfflineMeta& meta);

}  // namespace storegw::storage::internal
