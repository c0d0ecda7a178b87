// journal verify and journal export: read-only, safe while a daemon writes
// (each runs in one read transaction: a consistent snapshot of the journal).
// journal backup (backup.cc) opens the journal the same way and verifies
// its copy with VerifyJournalFile.
#include <sqlite3.h>

#include <map>
#include <unordered_map>

#include "internal.h"
#include "offline.h"
#include "schema.h"
#include "sqlite_util.h"
#include "storegw/storage/journal.h"

namespace storegw::storage {

namespace fs = std::filesystem;

Status internal::OpenJournalReadOnly(const fs::path& path, sql::Db& db, OfflineMeta& meta) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return Status::NotFound("journal: no journal at " + path.string());
  if (Status s = internal::CheckHeader(path); !s.ok()) return s;
  if (Status s = db.Open(path.string(), SQLITE_OPEN_READONLY); !s.ok()) return s;
  if (Status s = db.Exec("PRAGMA busy_timeout=10000"); !s.ok()) return s;
  auto version = db.QueryInt("PRAGMA user_version");
  if (!version.ok()) return version.status();
  if (*version != kSchemaVersion) {
    return Status::FailedPrecondition("journal: " + path.string() + " has schema version " +
                                      std::to_string(*version) + ", this storegw reads " +
                                      std::to_string(kSchemaVersion));
  }
  sql::Stmt s;
  if (Status st = s.Prepare(db.get(), "SELECT key, value FROM meta"); !st.ok()) return st;
  std::unordered_map<std::string, std::string> kv;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) kv[std::string(s.Text(0))] = std::string(s.Text(1));
  if (rc != SQLITE_DONE) return db.Error(rc, "journal: read meta");
  for (const char* k : {"epoch", "store_id", "gateway_id", "watermark"}) {
    if (!kv.count(k)) return Status::Corruption(std::string("journal: meta has no '") + k + "'");
  }
  auto epoch = internal::ParseMetaUint(path.string(), "epoch", kv["epoch"]);
  if (!epoch.ok()) return epoch.status();
  auto watermark = internal::ParseMetaUint(path.string(), "watermark", kv["watermark"]);
  if (!watermark.ok()) return watermark.status();
  meta.epoch = *epoch;
  meta.watermark = *watermark;
  meta.store_id = kv["store_id"];
  meta.gateway_id = kv["gateway_id"];
  return {};
}

namespace {

struct Ledger {
  int64_t on_hand = 0, base_qty = 0;
  uint64_t as_of_seq = 0, hq_version = 0;
  bool exists = false;
  std::vector<std::pair<uint64_t, int64_t>> deltas;  // (seq, delta), ascending
};

}  // namespace

Result<VerifyReport> VerifyJournal(const fs::path& data_dir,
                                   const std::function<void(uint64_t, uint64_t)>& progress) {
  return VerifyJournalFile(data_dir / internal::kJournalFile, progress);
}

Result<VerifyReport> VerifyJournalFile(const fs::path& file,
                                       const std::function<void(uint64_t, uint64_t)>& progress) {
  sql::Db db;
  internal::OfflineMeta meta;
  if (Status s = internal::OpenJournalReadOnly(file, db, meta); !s.ok()) return s;
  const std::string where = file.string();
  auto corrupt = [&](const std::string& what) {
    return Status::Corruption("journal verify: " + where + ": " + what);
  };

  auto ic = db.QueryText("PRAGMA integrity_check");
  if (!ic.ok()) return ic.status();
  if (*ic != "ok") return corrupt("integrity_check: " + *ic);

  if (Status s = db.Exec("BEGIN"); !s.ok()) return s;
  VerifyReport rep;
  auto first = db.QueryInt("SELECT coalesce(min(seq), 0) FROM events");
  auto last = db.QueryInt("SELECT coalesce(max(seq), 0) FROM events");
  auto count = db.QueryInt("SELECT count(*) FROM events");
  if (!first.ok() || !last.ok() || !count.ok()) return Status::IoError("journal verify: count");
  // Re-read meta inside the transaction: the watermark may have moved.
  auto wm = db.QueryText("SELECT value FROM meta WHERE key = 'watermark'");
  if (!wm.ok()) return wm.status();
  auto wm_value = internal::ParseMetaUint(where, "watermark", *wm);
  if (!wm_value.ok()) return wm_value.status();
  meta.watermark = *wm_value;
  rep.first_seq = static_cast<uint64_t>(*first);
  rep.last_seq = static_cast<uint64_t>(*last);
  rep.watermark = meta.watermark;
  rep.events = static_cast<uint64_t>(*count);
  rep.epoch = meta.epoch;
  rep.store_id = meta.store_id;
  rep.gateway_id = meta.gateway_id;
  if (rep.events != 0 && rep.events != rep.last_seq - rep.first_seq + 1) {
    return corrupt("seqs are not dense: " + std::to_string(rep.events) + " events between seq " +
                   std::to_string(rep.first_seq) + " and " + std::to_string(rep.last_seq));
  }
  if (rep.events != 0 && meta.watermark + 1 < rep.first_seq) {
    return corrupt("watermark " + std::to_string(meta.watermark) +
                   " is below pruned events (first retained seq " +
                   std::to_string(rep.first_seq) + "): undelivered events were pruned");
  }
  if (meta.watermark > rep.last_seq && rep.events != 0) {
    return corrupt("watermark " + std::to_string(meta.watermark) + " is beyond the last seq " +
                   std::to_string(rep.last_seq));
  }

  // Replay. With nothing pruned the whole ledger is recomputed from the
  // events; otherwise each sku's invariant is checked over retained events.
  // An empty events table is a full replay only if no seq was ever handed
  // out (meta last_seq records the high-water mark when pruning ran).
  uint64_t ever = 0;
  if (auto hw = db.QueryText("SELECT value FROM meta WHERE key = 'last_seq'"); hw.ok()) {
    auto v = internal::ParseMetaUint(where, "last_seq", *hw);
    if (!v.ok()) return v.status();
    ever = *v;
  }
  rep.full_replay = rep.events == 0 ? ever == 0 : rep.first_seq == 1;
  std::map<std::string, Ledger> ledger;
  sql::Stmt ev;
  if (Status s = ev.Prepare(db.get(),
                            "SELECT seq, event_id, cum_bytes, count_delta, body FROM events "
                            "ORDER BY seq");
      !s.ok()) {
    return s;
  }
  uint64_t prev = 0;
  int64_t prev_cum = -1;
  int rc;
  v1::Event e;
  uint64_t done = 0;
  std::map<uint64_t, v1::PriceUpdate> prices;  // retained price_update events by seq
  while ((rc = ev.Step()) == SQLITE_ROW) {
    const uint64_t seq = static_cast<uint64_t>(ev.Int(0));
    if (prev != 0 && seq != prev + 1) {
      return corrupt("seq gap after " + std::to_string(prev) + ": next is " + std::to_string(seq));
    }
    auto blob = ev.Blob(4);
    if (!e.ParseFromArray(blob.data(), static_cast<int>(blob.size()))) {
      return corrupt("event " + std::to_string(seq) + " does not decode");
    }
    if (e.event_id() != ev.Text(1)) {
      return corrupt("event " + std::to_string(seq) + ": event_id column '" +
                     std::string(ev.Text(1)) + "' differs from the body's '" + e.event_id() + "'");
    }
    const int64_t cum = ev.Int(2);
    if (prev_cum >= 0 && cum != prev_cum + static_cast<int64_t>(blob.size())) {
      return corrupt("event " + std::to_string(seq) + ": cum_bytes does not add up");
    }
    prev_cum = cum;
    prev = seq;
    if (e.body_case() == v1::Event::kCount) {
      if (ev.IsNull(3)) return corrupt("count event " + std::to_string(seq) + " has no delta");
      Ledger& l = ledger[e.count().sku()];
      if (rep.full_replay && ev.Int(3) != e.count().qty() - l.on_hand) {
        return corrupt("count event " + std::to_string(seq) + " of " + e.count().sku() +
                       " recorded delta " + std::to_string(ev.Int(3)) + ", replay gives " +
                       std::to_string(e.count().qty() - l.on_hand));
      }
    }
    if (e.body_case() == v1::Event::kPriceUpdate) prices.emplace(seq, e.price_update());
    if (e.body_case() == v1::Event::kStockSnapshot && rep.full_replay) {
      const auto& snap = e.stock_snapshot();
      for (const auto& line : snap.lines()) {
        Ledger& l = ledger[line.sku()];
        if (internal::SnapshotIsStale(l.exists, l.as_of_seq, l.hq_version, snap.as_of_seq(),
                                      snap.hq_version())) {
          continue;
        }
        int64_t after = 0;
        for (auto& [s, d] : l.deltas) {
          if (s > snap.as_of_seq()) after += d;
        }
        l.base_qty = line.qty();
        l.as_of_seq = snap.as_of_seq();
        l.hq_version = snap.hq_version();
        l.on_hand = line.qty() + after;
        l.exists = true;
      }
    }
    internal::ForEachDelta(e, ev.Int(3), [&](const std::string& sku, int64_t d) {
      Ledger& l = ledger[sku];
      l.on_hand += d;
      l.exists = true;
      if (!l.deltas.empty() && l.deltas.back().first == seq) {
        l.deltas.back().second += d;
      } else {
        l.deltas.emplace_back(seq, d);
      }
    });
    if (progress && (++done % 4096) == 0) progress(done, rep.events);
  }
  if (rc != SQLITE_DONE) return db.Error(rc, "journal verify: read events");
  if (progress) progress(rep.events, rep.events);

  sql::Stmt st;
  if (Status s = st.Prepare(db.get(),
                            "SELECT sku, on_hand, base_qty, as_of_seq, hq_version FROM stock");
      !s.ok()) {
    return s;
  }
  size_t stored = 0;
  while ((rc = st.Step()) == SQLITE_ROW) {
    ++stored;
    const std::string sku(st.Text(0));
    const int64_t on_hand = st.Int(1), base = st.Int(2);
    const uint64_t as_of = static_cast<uint64_t>(st.Int(3));
    auto it = ledger.find(sku);
    int64_t after = 0;
    if (it != ledger.end()) {
      for (auto& [s, d] : it->second.deltas) {
        if (s > as_of) after += d;
      }
    }
    if (on_hand != base + after) {
      return corrupt("stock of " + sku + ": on_hand " + std::to_string(on_hand) +
                     " != base_qty " + std::to_string(base) + " + deltas after seq " +
                     std::to_string(as_of) + " (" + std::to_string(after) + ")");
    }
    if (rep.full_replay) {
      if (it == ledger.end()) return corrupt("stock row " + sku + " has no events");
      const Ledger& l = it->second;
      if (l.on_hand != on_hand || l.base_qty != base || l.as_of_seq != as_of ||
          l.hq_version != static_cast<uint64_t>(st.Int(4))) {
        return corrupt("stock of " + sku + " is on_hand " + std::to_string(on_hand) +
                       " (base " + std::to_string(base) + " as of " + std::to_string(as_of) +
                       "), replaying the events gives " + std::to_string(l.on_hand) + " (base " +
                       std::to_string(l.base_qty) + " as of " + std::to_string(l.as_of_seq) + ")");
      }
    }
  }
  if (rc != SQLITE_DONE) return db.Error(rc, "journal verify: read stock");
  if (rep.full_replay) {
    size_t expected = 0;
    for (auto& [sku, l] : ledger) expected += l.exists ? 1 : 0;
    if (expected != stored) {
      return corrupt("the events touch " + std::to_string(expected) + " skus, the stock table has " +
                     std::to_string(stored));
    }
  }
  rep.skus = stored;

  // Prices: every row is a retained price_update event with the same
  // fields (rows of pruned events stay), and every retained price_update
  // event has its row.
  sql::Stmt pr;
  if (Status s =
          pr.Prepare(db.get(), "SELECT seq, sku, effective_from, price, currency FROM prices");
      !s.ok()) {
    return s;
  }
  size_t matched = 0;
  while ((rc = pr.Step()) == SQLITE_ROW) {
    const uint64_t seq = static_cast<uint64_t>(pr.Int(0));
    const std::string sku(pr.Text(1));
    auto it = prices.find(seq);
    if (it == prices.end()) {
      if (rep.events != 0 && seq >= rep.first_seq) {
        return corrupt("price of " + sku + " recorded at seq " + std::to_string(seq) +
                       ", which is not a price_update event");
      }
      continue;
    }
    const v1::PriceUpdate& p = it->second;
    if (p.sku() != sku || p.effective_from() != pr.Int(2) || p.price() != pr.Int(3) ||
        p.currency() != pr.Text(4)) {
      return corrupt("price of " + sku + " at seq " + std::to_string(seq) +
                     " differs from its price_update event");
    }
    ++matched;
  }
  if (rc != SQLITE_DONE) return db.Error(rc, "journal verify: read prices");
  if (matched != prices.size()) {
    return corrupt(std::to_string(prices.size() - matched) +
                   " price_update event(s) have no row in the prices table");
  }
  (void)db.Exec("COMMIT");
  return rep;
}

Status ExportJournal(const fs::path& data_dir,
                     const std::function<Status(const v1::JournaledEvent&)>& sink,
                     const std::function<void(uint64_t, uint64_t)>& progress) {
  sql::Db db;
  internal::OfflineMeta meta;
  if (Status s = internal::OpenJournalReadOnly(data_dir / internal::kJournalFile, db, meta);
      !s.ok()) {
    return s;
  }
  if (Status s = db.Exec("BEGIN"); !s.ok()) return s;
  auto count = db.QueryInt("SELECT count(*) FROM events");
  if (!count.ok()) return count.status();
  sql::Stmt ev;
  if (Status s = ev.Prepare(db.get(), "SELECT seq, recorded_at, body FROM events ORDER BY seq");
      !s.ok()) {
    return s;
  }
  int rc;
  uint64_t done = 0;
  v1::JournaledEvent je;
  while ((rc = ev.Step()) == SQLITE_ROW) {
    auto blob = ev.Blob(2);
    je.Clear();
    if (!je.mutable_event()->ParseFromArray(blob.data(), static_cast<int>(blob.size()))) {
      return Status::Corruption("journal export: event " + std::to_string(ev.Int(0)) +
                                " does not decode");
    }
    je.set_seq(static_cast<uint64_t>(ev.Int(0)));
    je.set_epoch(meta.epoch);
    je.set_recorded_at(ev.Int(1));
    je.set_store_id(meta.store_id);
    je.set_gateway_id(meta.gateway_id);
    if (Status s = sink(je); !s.ok()) return s;
    if (progress && (++done % 4096) == 0) progress(done, static_cast<uint64_t>(*count));
  }
  if (rc != SQLITE_DONE) return db.Error(rc, "journal export: read events");
  if (progress) progress(static_cast<uint64_t>(*count), static_cast<uint64_t>(*count));
  (void)db.Exec("COMMIT");
  return {};
}

}  // namespace storegw::storage
