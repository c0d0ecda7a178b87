// The reader pool (read-only connections with their prepared statements,
// reused across calls) and the read queries. Readers never wait for the
// writer: WAL gives each read its own snapshot.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "journal_impl.h"

namespace storegw::storage {

using internal::Reader;

Result<std::unique_ptr<Reader>> Journal::Impl::AcquireReader() {
  {
    std::lock_guard lk(rmu);
    if (!readers.empty()) {
      auto r = std::move(readers.back());
      readers.pop_back();
      return r;
    }
  }
  auto r = std::make_unique<Reader>();
  if (Status s = r->db.Open(path.string(), SQLITE_OPEN_READONLY); !s.ok()) return s;
  if (Status s = r->db.Exec("PRAGMA busy_timeout=10000"); !s.ok()) return s;
  if (Status s = r->stock.Prepare(
          r->db.get(),
          "SELECT sku, on_hand, base_qty, as_of_seq, hq_version, tracked FROM stock WHERE sku = ?");
      !s.ok()) {
    return s;
  }
  if (Status s = r->prefix.Prepare(r->db.get(),
                                   "SELECT sku, on_hand, base_qty, as_of_seq, hq_version, "
                                   "tracked FROM stock WHERE sku >= ? ORDER BY sku LIMIT ?");
      !s.ok()) {
    return s;
  }
  if (Status s = r->range.Prepare(r->db.get(),
                                  "SELECT seq, recorded_at, body FROM events WHERE seq >= ? "
                                  "ORDER BY seq LIMIT ?");
      !s.ok()) {
    return s;
  }
  if (Status s = r->alerts.Prepare(
          r->db.get(),
          "SELECT seq, kind, sku, on_hand, message, raised_at, acked_seq, acked_by, acked_at, "
          "ack_note, detail FROM alerts WHERE cleared_seq IS NULL AND "
          "(kind IN (1, 4, 5, 6, 7) OR raised_at >= ?) "
          "ORDER BY seq DESC LIMIT ?");
      !s.ok()) {
    return s;
  }
  if (Status s = r->alert_counts.Prepare(
          r->db.get(),
          "SELECT kind, count(*), count(acked_seq) FROM alerts WHERE cleared_seq IS NULL AND "
          "(kind IN (1, 4, 5, 6, 7) OR raised_at >= ?) GROUP BY kind");
      !s.ok()) {
    return s;
  }
  if (Status s = r->skus.Prepare(
          r->db.get(), "SELECT count(*), coalesce(sum(tracked = 0), 0) FROM stock");
      !s.ok()) {
    return s;
  }
  if (Status s = r->price_at.Prepare(
          r->db.get(),
          "SELECT seq, price, currency, effective_from FROM prices WHERE sku = ? AND "
          "effective_from <= ? ORDER BY effective_from DESC, seq DESC LIMIT 1");
      !s.ok()) {
    return s;
  }
  if (Status s = r->devices.Prepare(r->db.get(),
                                    "SELECT device_id, status FROM devices ORDER BY device_id");
      !s.ok()) {
    return s;
  }
  if (Status s = r->price_next.Prepare(
          r->db.get(),
          "SELECT seq, price, currency, effective_from FROM prices WHERE sku = ? AND "
          "effective_from > ? ORDER BY effective_from ASC, seq DESC LIMIT 1");
      !s.ok()) {
    return s;
  }
  return r;
}

void Journal::Impl::ReleaseReader(std::unique_ptr<Reader> r) {
  std::lock_guard lk(rmu);
  if (static_cast<int>(readers.size()) < opt.reader_connections) readers.push_back(std::move(r));
}

namespace {
StockRow RowFrom(const sql::Stmt& s) {
  StockRow row;
  row.sku = std::string(s.Text(0));
  row.on_hand = s.Int(1);
  row.base_qty = s.Int(2);
  row.as_of_seq = static_cast<uint64_t>(s.Int(3));
  row.hq_version = static_cast<uint64_t>(s.Int(4));
  row.tracked = s.Int(5) != 0;
  return row;
}
}  // namespace

Result<StockRow> Journal::Stock(const std::string& sku) {
  auto r = impl_->AcquireReader();
  if (!r.ok()) return r.status();
  Result<StockRow> out = Status::NotFound("sku " + sku + " has no stock record");
  {
    sql::ResetGuard g((*r)->stock);
    (*r)->stock.Bind(1, sku);
    int rc = (*r)->stock.Step();
    if (rc == SQLITE_ROW) {
      out = RowFrom((*r)->stock);
    } else if (rc != SQLITE_DONE) {
      out = (*r)->db.Error(rc, "journal: read stock");
    }
  }
  impl_->ReleaseReader(std::move(*r));
  return out;
}

Result<std::vector<StockRow>> Journal::StockByPrefix(const std::string& prefix, size_t limit,
                                                     const std::string& after) {
  auto r = impl_->AcquireReader();
  if (!r.ok()) return r.status();
  std::vector<StockRow> rows;
  Status st;
  {
    // From the greater of prefix and after; the row equal to `after` (the
    // last of the previous page) is skipped, so one more is read.
    const bool from_after = after > prefix;
    sql::ResetGuard g((*r)->prefix);
    (*r)->prefix.Bind(1, from_after ? after : prefix)
        .Bind(2, static_cast<int64_t>(limit) + (from_after ? 1 : 0));
    int rc = SQLITE_DONE;
    while (rows.size() < limit && (rc = (*r)->prefix.Step()) == SQLITE_ROW) {
      StockRow row = RowFrom((*r)->prefix);
      if (row.sku.compare(0, prefix.size(), prefix) != 0) break;
      if (from_after && row.sku == after) continue;
      rows.push_back(std::move(row));
    }
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) st = (*r)->db.Error(rc, "journal: read stock");
  }
  impl_->ReleaseReader(std::move(*r));
  if (!st.ok()) return st;
  return rows;
}

Result<std::vector<v1::JournaledEvent>> Journal::ReadEvents(uint64_t from_seq, size_t max_events,
                                                             size_t max_bytes) {
  auto r = impl_->AcquireReader();
  if (!r.ok()) return r.status();
  std::vector<v1::JournaledEvent> out;
  Status st;
  {
    sql::ResetGuard g((*r)->range);
    (*r)->range.Bind(1, static_cast<int64_t>(from_seq)).Bind(2, static_cast<int64_t>(max_events));
    int rc;
    size_t bytes = 0;
    while ((rc = (*r)->range.Step()) == SQLITE_ROW) {
      auto blob = (*r)->range.Blob(2);
      if (!out.empty() && bytes + blob.size() > max_bytes) break;
      v1::JournaledEvent je;
      if (!je.mutable_event()->ParseFromArray(blob.data(), static_cast<int>(blob.size()))) {
        st = Status::Corruption("journal: event " + std::to_string((*r)->range.Int(0)) +
                                " does not decode");
        break;
      }
      je.set_seq(static_cast<uint64_t>((*r)->range.Int(0)));
      je.set_epoch(impl_->epoch);
      je.set_recorded_at((*r)->range.Int(1));
      je.set_store_id(impl_->store_id);
      je.set_gateway_id(impl_->gateway_id);
      bytes += blob.size();
      out.push_back(std::move(je));
    }
    if (st.ok() && rc != SQLITE_DONE && rc != SQLITE_ROW) {
      st = (*r)->db.Error(rc, "journal: read events");
    }
  }
  impl_->ReleaseReader(std::move(*r));
  if (!st.ok()) return st;
  return out;
}

Result<std::vector<v1::StatusAlert>> Journal::OpenAlerts(size_t limit) {
  auto r = impl_->AcquireReader();
  if (!r.ok()) return r.status();
  std::vector<v1::StatusAlert> out;
  Status st;
  {
    // Oversell, low-stock, perishables and cold-chain alerts stay until
    // cleared; the other kinds are shown for a day.
    const int64_t since = impl_->Now() - int64_t{24} * 3600 * 1000000;
    sql::ResetGuard g((*r)->alerts);
    (*r)->alerts.Bind(1, since).Bind(2, static_cast<int64_t>(limit));
    int rc;
    while ((rc = (*r)->alerts.Step()) == SQLITE_ROW) {
      v1::StatusAlert a;
      a.set_seq(static_cast<uint64_t>((*r)->alerts.Int(0)));
      a.set_kind(static_cast<v1::Alert::Kind>((*r)->alerts.Int(1)));
      a.set_sku(std::string((*r)->alerts.Text(2)));
      a.set_on_hand((*r)->alerts.Int(3));
      a.set_message(std::string((*r)->alerts.Text(4)));
      a.set_raised_at((*r)->alerts.Int(5));
      if (!(*r)->alerts.IsNull(6)) {
        a.set_acked_seq(static_cast<uint64_t>((*r)->alerts.Int(6)));
        a.set_acked_by(std::string((*r)->alerts.Text(7)));
        a.set_acked_at((*r)->alerts.Int(8));
        a.set_ack_note(std::string((*r)->alerts.Text(9)));
      }
      if (!(*r)->alerts.IsNull(10)) {
        // The perishables / cold-chain fields, kept with the alert.
        v1::Alert d;
        const std::string_view blob = (*r)->alerts.Blob(10);
        if (d.ParseFromArray(blob.data(), static_cast<int>(blob.size()))) {
          a.set_location(d.location());
          a.set_sensor_id(d.sensor_id());
          a.set_batch_seq(d.batch_seq());
          a.set_qty(d.qty());
          a.set_since(d.since());
          a.set_min_seen(d.min_seen());
          a.set_max_seen(d.max_seen());
          a.set_escalated(d.escalated());
        }
      }
      out.push_back(std::move(a));
    }
    if (rc != SQLITE_DONE) st = (*r)->db.Error(rc, "journal: read alerts");
  }
  impl_->ReleaseReader(std::move(*r));
  if (!st.ok()) return st;
  return out;
}

Result<AlertSummary> Journal::Alerts() {
  auto r = impl_->AcquireReader();
  if (!r.ok()) return r.status();
  AlertSummary out;
  const auto* kinds = v1::Alert::Kind_descriptor();
  for (int i = 0; i < kinds->value_count(); ++i) {
    if (kinds->value(i)->number() == v1::Alert::KIND_UNSPECIFIED) continue;
    out.counts.emplace_back().set_kind(static_cast<v1::Alert::Kind>(kinds->value(i)->number()));
  }
  Status st = (*r)->db.Exec("BEGIN");  // both counts from one snapshot
  if (st.ok()) {
    const int64_t since = impl_->Now() - int64_t{24} * 3600 * 1000000;  // as OpenAlerts
    sql::ResetGuard g((*r)->alert_counts);
    (*r)->alert_counts.Bind(1, since);
    int rc;
    while ((rc = (*r)->alert_counts.Step()) == SQLITE_ROW) {
      const int64_t kind = (*r)->alert_counts.Int(0);
      const auto open = static_cast<uint64_t>((*r)->alert_counts.Int(1));
      out.open_total += open;
      for (auto& c : out.counts) {
        if (c.kind() != kind) continue;
        c.set_open(open);
        c.set_acknowledged(static_cast<uint64_t>((*r)->alert_counts.Int(2)));
      }
    }
    if (rc != SQLITE_DONE) st = (*r)->db.Error(rc, "journal: count alerts");
  }
  if (st.ok()) {
    sql::ResetGuard g((*r)->skus);
    if (int rc = (*r)->skus.Step(); rc == SQLITE_ROW) {
      out.skus_total = static_cast<uint64_t>((*r)->skus.Int(0));
      out.skus_untracked = static_cast<uint64_t>((*r)->skus.Int(1));
    } else {
      st = (*r)->db.Error(rc, "journal: count skus");
    }
  }
  (void)(*r)->db.Exec("COMMIT");
  impl_->ReleaseReader(std::move(*r));
  if (!st.ok()) return st;
  return out;
}

Result<std::vector<std::pair<std::string, std::string>>> Journal::LoadDevices() {
  auto r = impl_->AcquireReader();
  if (!r.ok()) return r.status();
  std::vector<std::pair<std::string, std::string>> out;
  Status st;
  {
    sql::ResetGuard g((*r)->devices);
    int rc;
    while ((rc = (*r)->devices.Step()) == SQLITE_ROW) {
      out.emplace_back(std::string((*r)->devices.Text(0)), std::string((*r)->devices.Blob(1)));
    }
    if (rc != SQLITE_DONE) st = (*r)->db.Error(rc, "journal: read devices");
  }
  impl_->ReleaseReader(std::move(*r));
  if (!st.ok()) return st;
  return out;
}

Result<PriceRow> Journal::PriceAt(const std::string& sku, int64_t at_us) {
  auto r = impl_->AcquireReader();
  if (!r.ok()) return r.status();
  Result<PriceRow> out = Status::NotFound("sku " + sku + " has no price in force");
  Status st;
  {
    // Both statements in one read transaction: a consistent pair.
    st = (*r)->db.Exec("BEGIN");
    if (st.ok()) {
      sql::ResetGuard g((*r)->price_at);
      (*r)->price_at.Bind(1, sku).Bind(2, at_us);
      int rc = (*r)->price_at.Step();
      if (rc == SQLITE_ROW) {
        PriceRow row;
        row.sku = sku;
        row.seq = static_cast<uint64_t>((*r)->price_at.Int(0));
        row.price = (*r)->price_at.Int(1);
        row.currency = std::string((*r)->price_at.Text(2));
        row.effective_from = (*r)->price_at.Int(3);
        out = std::move(row);
      } else if (rc != SQLITE_DONE) {
        st = (*r)->db.Error(rc, "journal: read price");
      }
    }
    if (st.ok() && out.ok()) {
      sql::ResetGuard g((*r)->price_next);
      (*r)->price_next.Bind(1, sku).Bind(2, at_us);
      int rc = (*r)->price_next.Step();
      if (rc == SQLITE_ROW) {
        v1::PriceUpdate next;
        next.set_store_id(impl_->store_id);
        next.set_sku(sku);
        next.set_price((*r)->price_next.Int(1));
        next.set_currency(std::string((*r)->price_next.Text(2)));
        next.set_effective_from((*r)->price_next.Int(3));
        out->next = std::move(next);
      } else if (rc != SQLITE_DONE) {
        st = (*r)->db.Error(rc, "journal: read next price");
      }
    }
    (void)(*r)->db.Exec("COMMIT");
  }
  impl_->ReleaseReader(std::move(*r));
  if (!st.ok()) return st;
  return out;
}

}  // namespace storegw::storage
