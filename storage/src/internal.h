// Pieces shared by the journal (the writer) and verify.cc (the offline
// checker), so that both apply the very same ledger rules.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "storegw/status.h"
#include "storegw/storage/journal.h"

namespace storegw::storage::internal {

inline constexpr const char* kJournalFile = "journal.db";

// Fails (kCorruption) when `path` exists, is non-empty and does not start
// with SQLite's header. A missing or empty file is fine (a new journal).
Status CheckHeader(const std::filesystem::path& path);

// True when a snapshot line (as_of_seq, hq_version) is older than the sku's
// current base and must be ignored.
inline bool SnapshotIsStale(bool exists, uint64_t cur_as_of, uint64_t cur_version,
                            uint64_t as_of, uint64_t version) {
  if (!exists) return false;
  if (as_of < cur_as_of) return true;
  return as_of == cur_as_of && version < cur_version;
}

// The stock effect of one stored event: normal deltas, or for a count the
// stored delta that achieved the counted value.
template <typename F>
void ForEachDelta(const v1::Event& e, int64_t count_delta, F&& f) {
  if (e.body_case() == v1::Event::kCount) {
    f(e.count().sku(), count_delta);
    return;
  }
  for (auto& [sku, d] : StockDeltas(e)) f(sku, d);
}

// Reads a number the journal keeps as text in its meta table (epoch,
// watermark, last_seq, last_cum): decimal digits only, fitting in 64 bits.
// Anything else (a damaged file: "12x", "-1", " 3", "", 2^64) is
// kCorruption naming `file`, the key and the value, never an exception.
Result<uint64_t> ParseMetaUint(const std::string& file, std::string_view key,
                               std::string_view value);

// "20261127T101200Z" for now (UTC).
std::string UtcStamp();

int64_t SystemNowUs();

}  // namespace storegw::storage::internal
