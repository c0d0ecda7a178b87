#include "event_rows.h"

#include "apply_plan.h"

namespace storegw::hq::pg {
namespace {

std::string BinInt64(int64_t v) {
  std::string s;
  PutInt64(&s, v);
  return s;
}

}  // namespace

void AppendCopyHeader(std::string* out) {
  out->append("PGCOPY\n\377\r\n\0", 11);
  PutInt32(out, 0);  // flags
  PutInt32(out, 0);  // header extension length
}

void AppendCopyTrailer(std::string* out) {
  PutInt16(out, -1);
}

void AppendCopyRow(const v1::EventBatch& b, const v1::JournaledEvent& je, const std::string& json,
                   std::string* out) {
  auto text = [&](const std::string& s) {
    PutInt32(out, static_cast<int32_t>(s.size()));
    out->append(s);
  };
  auto int64 = [&](int64_t v) {
    PutInt32(out, 8);
    PutInt64(out, v);
  };
  const v1::Event& e = je.event();
  PutInt16(out, kEventColumns);
  text(b.store_id());
  text(b.gateway_id());
  int64(EpochToSql(b.epoch()));
  int64(static_cast<int64_t>(je.seq()));
  text(e.event_id());
  text(EventKind(e));
  int64(UnixMicrosToPg(je.recorded_at()));
  if (e.occurred_at() == 0) {
    PutInt32(out, -1);
  } else {
    int64(UnixMicrosToPg(e.occurred_at()));
  }
  text(e.device_id());
  PutInt32(out, static_cast<int32_t>(json.size() + 1));  // jsonb: version 1, then the text
  out->push_back('\1');
  out->append(json);
}

void AddInsertParams(const v1::EventBatch& b, const v1::JournaledEvent& je, const std::string& json,
                     Params* p) {
  const v1::Event& e = je.event();
  p->Binary(b.store_id()).Binary(b.gateway_id()).Binary(BinInt64(EpochToSql(b.epoch())));
  p->Binary(BinInt64(static_cast<int64_t>(je.seq()))).Binary(e.event_id()).Binary(EventKind(e));
  p->Binary(BinInt64(UnixMicrosToPg(je.recorded_at())));
  if (e.occurred_at() == 0) {
    p->Null();
  } else {
    p->Binary(BinInt64(UnixMicrosToPg(e.occurred_at())));
  }
  p->Binary(e.device_id()).Binary("\1" + json);
}

std::string InsertEventsSql(int rows) {
  static constexpr const char* kTypes[kEventColumns] = {
      "text", "text",        "bigint",      "bigint", "text",
      "text", "timestamptz", "timestamptz", "text",   "jsonb"};
  std::string sql = std::string("INSERT INTO events (") + kEventColumnList + ") VALUES ";
  for (int r = 0; r < rows; ++r) {
    sql += r ? ",(" : "(";
    for (int c = 0; c < kEventColumns; ++c) {
      if (c) sql += ",";
      // Appended piece by piece: "$" + std::to_string(...) trips GCC 12's
      // -Wrestrict false positive at -O3 (tests/common/ids.h).
      sql += '$';
      sql += std::to_string(r * kEventColumns + c + 1);
      sql += "::";
      sql += kTypes[c];
    }
    sql += ")";
  }
  return sql;
}

}  // namespace storegw::hq::pg
