// Rows of the `events` table as the store writes them: COPY BINARY data and
// the binary parameters of a multi-row INSERT, from a batch's events.
// Shared by PgStore and hq_store_bench (its raw COPY).
#pragma once

#include <string>

#include "pg_conn.h"
#include "storegw/v1/storegw.pb.h"

namespace storegw::hq::pg {

// The columns, in the order of the rows below.
inline constexpr int kEventColumns = 10;
inline constexpr const char* kEventColumnList =
    "store_id, gateway_id, epoch, seq, event_id, kind, recorded_at, occurred_at, device_id, event";
inline constexpr const char* kCopyEventsSql =
    "COPY events (store_id, gateway_id, epoch, seq, event_id, kind, recorded_at, occurred_at, "
    "device_id, event) FROM STDIN (FORMAT binary)";

// COPY BINARY: header, one row per event, trailer.
void AppendCopyHeader(std::string* out);
// `json`: the event's proto3 JSON (AppendProtoJson). occurred_at 0 is NULL.
void AppendCopyRow(const v1::EventBatch& batch, const v1::JournaledEvent& event,
                   const std::string& json, std::string* out);
void AppendCopyTrailer(std::string* out);

// The same row as kEventColumns binary parameters.
void AddInsertParams(const v1::EventBatch& batch, const v1::JournaledEvent& event,
                     const std::string& json, Params* params);

// INSERT INTO events (...) VALUES (...), ... of `rows` rows.
std::string InsertEventsSql(int rows);

}  // namespace storegw::hq::pg
