// What each request does inside the writer's group transaction: device
// events and their stock effect, gateway events, alerts and prices. The
// ledger and alert rules themselves are in ledger_rules.h; this file loads
// and stores their state and journals what they decide.
#include <algorithm>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

#include "journal_impl.h"

namespace storegw::storage {

using internal::AlertAction;
using internal::AlertDecision;
using internal::Request;
using internal::StockState;

Result<StockState*> Journal::Impl::Stock(const std::string& sku) {
  auto it = dirty.find(sku);
  if (it != dirty.end()) return &it->second;
  StockState st;
  sql::ResetGuard g(get_stock);
  get_stock.Bind(1, sku);
  int rc = get_stock.Step();
  if (rc == SQLITE_ROW) {
    st.exists = true;
    st.on_hand = get_stock.Int(0);
    st.base_qty = get_stock.Int(1);
    st.as_of_seq = static_cast<uint64_t>(get_stock.Int(2));
    st.hq_version = static_cast<uint64_t>(get_stock.Int(3));
    st.oversold = get_stock.Int(4) != 0;
    st.updated_seq = static_cast<uint64_t>(get_stock.Int(5));
    st.low = get_stock.Int(6) != 0;
    st.tracked = get_stock.Int(7) != 0;
  } else if (rc != SQLITE_DONE) {
    return wdb.Error(rc, "journal: read stock of " + sku);
  }
  return &dirty.emplace(sku, st).first->second;
}

Status Journal::Impl::FlushStock() {
  for (auto& [sku, st] : dirty) {
    if (!st.dirty) continue;
    sql::ResetGuard g(put_stock);
    put_stock.Bind(1, sku)
        .Bind(2, st.on_hand)
        .Bind(3, st.base_qty)
        .Bind(4, static_cast<int64_t>(st.as_of_seq))
        .Bind(5, static_cast<int64_t>(st.hq_version))
        .Bind(6, int64_t{st.oversold ? 1 : 0})
        .Bind(7, static_cast<int64_t>(st.updated_seq))
        .Bind(8, int64_t{st.low ? 1 : 0})
        .Bind(9, int64_t{st.tracked ? 1 : 0});
    int rc = put_stock.Step();
    if (rc != SQLITE_DONE) return wdb.Error(rc, "journal: write stock of " + sku);
    st.dirty = false;
    st.exists = true;
  }
  return {};
}

Status Journal::Impl::SetMeta(std::string_view key, const std::string& value) {
  sql::ResetGuard g(set_meta);
  set_meta.Bind(1, key).Bind(2, value);
  int rc = set_meta.Step();
  if (rc != SQLITE_DONE) return wdb.Error(rc, "journal: write meta " + std::string(key));
  return {};
}

// Inserts one event row with the next seq. Sets `inserted` false when the
// event_id is already journaled (nothing written, no seq consumed).
Status Journal::Impl::InsertRow(const v1::Event& e, const std::string& body,
                                std::optional<int64_t> count_delta, int64_t now, uint64_t& seq,
                                bool& inserted) {
  seq = next_seq;
  const uint64_t cum = last_cum + body.size();
  {
    sql::ResetGuard g(ins_event);
    ins_event.Bind(1, static_cast<int64_t>(seq))
        .Bind(2, e.event_id())
        .Bind(3, now)
        .Bind(4, static_cast<int64_t>(cum));
    if (count_delta) ins_event.Bind(5, *count_delta);
    ins_event.BindBlob(6, body.data(), body.size());
    int rc = ins_event.Step();
    if (rc != SQLITE_DONE) return wdb.Error(rc, "journal: insert event " + e.event_id());
  }
  inserted = sqlite3_changes(wdb.get()) > 0;
  if (inserted) {
    ++next_seq;
    last_cum = cum;
  }
  return {};
}

Result<std::optional<std::pair<uint64_t, std::string>>> Journal::Impl::FindEvent(
    const std::string& event_id) {
  sql::ResetGuard g(find_event);
  find_event.Bind(1, event_id);
  int rc = find_event.Step();
  if (rc == SQLITE_ROW) {
    return std::optional(std::make_pair(static_cast<uint64_t>(find_event.Int(0)),
                                        std::string(find_event.Blob(1))));
  }
  if (rc == SQLITE_DONE) return std::optional<std::pair<uint64_t, std::string>>();
  return wdb.Error(rc, "journal: look up event " + event_id);
}

// Journals an event the gateway writes itself (alert, snapshot, price).
Result<uint64_t> Journal::Impl::InsertGatewayEvent(v1::Event e, int64_t now) {
  e.set_event_id("gw:" + gateway_id + ":" + std::to_string(next_seq));
  e.set_device_id(gateway_id);
  e.set_occurred_at(now);
  uint64_t seq = 0;
  bool inserted = false;
  std::string body;
  e.SerializeToString(&body);
  if (Status s = InsertRow(e, body, std::nullopt, now, seq, inserted); !s.ok()) return s;
  if (!inserted) {
    return Status::Corruption("journal: gateway event id " + e.event_id() + " already exists");
  }
  if (e.body_case() == v1::Event::kAlert) {
    const auto& a = e.alert();
    sql::ResetGuard g(ins_alert);
    ins_alert.Bind(1, static_cast<int64_t>(seq))
        .Bind(2, static_cast<int64_t>(a.kind()))
        .Bind(3, a.sku())
        .Bind(4, a.on_hand())
        .Bind(5, a.message())
        .Bind(6, now);
    int rc = ins_alert.Step();
    if (rc != SQLITE_DONE) return wdb.Error(rc, "journal: insert alert");
  }
  return seq;
}

Result<uint64_t> Journal::Impl::RaiseAlert(v1::Alert::Kind kind, const std::string& sku,
                                           int64_t on_hand, std::string message,
                                           uint64_t cause_seq, int64_t now) {
  v1::Event e;
  auto* a = e.mutable_alert();
  a->set_kind(kind);
  a->set_sku(sku);
  a->set_on_hand(on_hand);
  a->set_message(std::move(message));
  a->set_cause_seq(cause_seq);
  return InsertGatewayEvent(std::move(e), now);
}

Status Journal::Impl::ClearAlert(v1::Alert::Kind kind, const std::string& sku, uint64_t seq) {
  sql::ResetGuard g(clear_alert);
  clear_alert.Bind(1, static_cast<int64_t>(seq)).Bind(2, sku).Bind(3, static_cast<int64_t>(kind));
  int rc = clear_alert.Step();
  if (rc != SQLITE_DONE) return wdb.Error(rc, "journal: clear alert");
  return {};
}

// Carries out what an oversell or low-stock rule decided for `sku` at `seq`:
// records it in the stock state and journals (raise) or closes (clear) the
// alert. kNone costs nothing.
Status Journal::Impl::Enact(AlertDecision d, const std::string& sku, StockState& st, uint64_t seq,
                            int64_t now) {
  if (d.action == AlertAction::kNone) return {};
  internal::RecordDecision(st, d);
  if (d.action == AlertAction::kClear) return ClearAlert(d.kind, sku, seq);
  auto r = RaiseAlert(d.kind, sku, d.on_hand, std::move(d.message), seq, now);
  return r.ok() ? Status() : r.status();
}

// Every rule that watches on_hand, after a change of `sku` at `seq`:
// oversell first, then low stock (their alerts are journaled in that order).
Status Journal::Impl::CheckStockAlerts(const std::string& sku, StockState& st, uint64_t seq,
                                       int64_t now) {
  if (Status s = Enact(internal::OversellRule(st, sku, seq), sku, st, seq, now); !s.ok()) {
    return s;
  }
  return Enact(internal::LowStockRule(st, sku, seq, thresholds), sku, st, seq, now);
}

// Runs inside the group's transaction. A non-ok return is an SQLite
// failure that aborts the whole group.
Status Journal::Impl::DoAppend(internal::Request& r, int64_t now) {
  const std::vector<v1::Event>& events = *r.events;
  const size_t n = events.size();
  r.results.clear();
  r.results.resize(n);
  // First, with nothing written: each event's body as it would be stored,
  // and whether its event_id is journaled (or earlier in this request)
  // already. A retry is the same event; the same event_id with another
  // body is a conflict, and then nothing of the request is journaled.
  std::vector<std::string> bodies(n);
  std::vector<uint64_t> seqs(n, 0);  // the journaled seq of each event, once known
  std::unordered_map<std::string_view, size_t> first_in_request;  // event_id -> index
  bool conflict = false;
  for (size_t i = 0; i < n; ++i) {
    const v1::Event& e = events[i];
    AppendResult& res = r.results[i];
    res.event_id = e.event_id();
    e.SerializeToString(&bodies[i]);
    if (auto [it, fresh] = first_in_request.emplace(e.event_id(), i); !fresh) {
      const size_t first = it->second;
      if (bodies[first] != bodies[i]) {
        res.conflict = true;
        res.seq = seqs[first];
        conflict = true;
      }
      continue;
    }
    auto found = FindEvent(e.event_id());
    if (!found.ok()) return found.status();
    if (!found->has_value()) continue;
    seqs[i] = (*found)->first;
    if ((*found)->second != bodies[i]) {
      res.conflict = true;
      res.seq = seqs[i];
      conflict = true;
    }
  }
  if (conflict) {
    for (AppendResult& res : r.results) {
      if (!res.conflict) res.seq = 0;
    }
    return {};
  }

  for (size_t i = 0; i < n; ++i) {
    const v1::Event& e = events[i];
    AppendResult& res = r.results[i];
    if (auto it = first_in_request.find(e.event_id()); it->second != i) {
      res.seq = seqs[it->second];
      res.duplicate = true;
      continue;
    }
    if (seqs[i] != 0) {
      res.seq = seqs[i];
      res.duplicate = true;
      continue;
    }
    std::optional<int64_t> count_delta;
    StockState* count_st = nullptr;
    if (e.body_case() == v1::Event::kCount) {
      auto st = Stock(e.count().sku());
      if (!st.ok()) return st.status();
      count_st = *st;
      count_delta = internal::CountDelta(*count_st, e.count().qty());
    }
    uint64_t seq = 0;
    bool inserted = false;
    if (Status s = InsertRow(e, bodies[i], count_delta, now, seq, inserted); !s.ok()) return s;
    if (!inserted) {
      // FindEvent said it was not there, and only this thread writes.
      return Status::Corruption("journal: event_id " + e.event_id() +
                                " appeared while it was being appended");
    }
    res.seq = seqs[i] = seq;
    // Apply the stock effect, then the alert rules per touched sku, in
    // line order; alerts get the seqs right after the event.
    std::vector<std::pair<std::string, StockState*>> touched;
    Status err;
    internal::ForEachDelta(e, count_delta.value_or(0),
                           [&](const std::string& sku, int64_t d) {
                             if (!err.ok()) return;
                             auto st = Stock(sku);
                             if (!st.ok()) {
                               err = st.status();
                               return;
                             }
                             internal::ApplyDelta(**st, d, seq);
                             if (std::none_of(touched.begin(), touched.end(),
                                              [&](auto& t) { return t.first == sku; })) {
                               touched.emplace_back(sku, *st);
                             }
                           });
    if (!err.ok()) return err;
    // A cycle count far from the ledger: alert right after the count. The
    // first count of an untracked sku is its baseline, not a mismatch.
    if (count_delta) {
      const auto& c = e.count();
      AlertDecision d = internal::CountMismatchRule(*count_st, c.sku(), c.qty(), *count_delta,
                                                    seq, thresholds);
      if (d.action == AlertAction::kRaise) {
        auto a = RaiseAlert(d.kind, c.sku(), d.on_hand, std::move(d.message), seq, now);
        if (!a.ok()) return a.status();
      }
      internal::MarkTracked(*count_st);
    } else if (e.body_case() == v1::Event::kReceipt ||
               e.body_case() == v1::Event::kProduction) {
      for (auto& [sku, st] : touched) internal::MarkTracked(*st);
    }
    for (auto& [sku, st] : touched) {
      if (Status s = CheckStockAlerts(sku, *st, seq, now); !s.ok()) return s;
    }
    // Batches (production, sales, waste) and cold-chain readings.
    if (Status s = ApplyPerishables(e, seq, now); !s.ok()) return s;
  }
  return {};
}

// An HQ price: journaled as a price_update event and recorded, unless an
// identical one (sku, effective_from, price, currency) is recorded already.
Status Journal::Impl::DoPrice(internal::Request& r, int64_t now) {
  const v1::PriceUpdate& p = *r.price;
  {
    sql::ResetGuard g(find_price);
    find_price.Bind(1, p.sku())
        .Bind(2, p.effective_from())
        .Bind(3, p.price())
        .Bind(4, p.currency());
    int rc = find_price.Step();
    if (rc == SQLITE_ROW) {
      r.price_result.seq = static_cast<uint64_t>(find_price.Int(0));
      r.price_result.duplicate = true;
      return {};
    }
    if (rc != SQLITE_DONE) return wdb.Error(rc, "journal: look up price of " + p.sku());
  }
  v1::Event e;
  *e.mutable_price_update() = p;
  auto seq = InsertGatewayEvent(std::move(e), now);
  if (!seq.ok()) return seq.status();
  sql::ResetGuard g(ins_price);
  ins_price.Bind(1, p.sku())
      .Bind(2, p.effective_from())
      .Bind(3, static_cast<int64_t>(*seq))
      .Bind(4, p.price())
      .Bind(5, p.currency());
  int rc = ins_price.Step();
  if (rc != SQLITE_DONE) return wdb.Error(rc, "journal: record price of " + p.sku());
  // In force now: its price_in_force event right after it; else when its
  // effective_from comes (the timer).
  if (p.effective_from() <= now) {
    if (Status s = PriceComesIntoForce(p, *seq, now); !s.ok()) return s;
  } else {
    LowerTimerDue(p.effective_from());
  }
  r.price_result.seq = *seq;
  r.price_result.duplicate = false;
  return {};
}

// An acknowledgement: journaled as an alert_ack event and recorded on the
// alert row. Refusals (no such alert, cleared) are the request's status.
Status Journal::Impl::DoAck(internal::Request& r, int64_t now) {
  sql::ResetGuard g(find_alert);
  find_alert.Bind(1, static_cast<int64_t>(r.ack_seq));
  int rc = find_alert.Step();
  if (rc == SQLITE_DONE) {
    r.status = Status::NotFound("alert " + std::to_string(r.ack_seq) +
                                " does not exist (or was cleared and pruned)");
    return {};
  }
  if (rc != SQLITE_ROW) return wdb.Error(rc, "journal: read alert");
  v1::StatusAlert& a = r.ack.alert;
  a.set_seq(r.ack_seq);
  a.set_kind(static_cast<v1::Alert::Kind>(find_alert.Int(0)));
  a.set_sku(std::string(find_alert.Text(1)));
  if (!find_alert.IsNull(3)) {
    a.set_acked_seq(static_cast<uint64_t>(find_alert.Int(3)));
    a.set_acked_by(std::string(find_alert.Text(4)));
    a.set_acked_at(find_alert.Int(5));
    a.set_ack_note(std::string(find_alert.Text(6)));
    r.ack.already = true;
    return {};
  }
  if (!find_alert.IsNull(2)) {
    r.status = Status::FailedPrecondition(
        "alert " + std::to_string(r.ack_seq) + " was cleared at seq " +
        std::to_string(find_alert.Int(2)) + ": there is nothing left to acknowledge");
    return {};
  }
  v1::Event e;
  auto* ack = e.mutable_alert_ack();
  ack->set_alert_seq(r.ack_seq);
  ack->set_kind(a.kind());
  ack->set_sku(a.sku());
  ack->set_acked_by(r.ack_by);
  ack->set_note(r.ack_note);
  auto seq = InsertGatewayEvent(std::move(e), now);
  if (!seq.ok()) return seq.status();
  sql::ResetGuard g2(ack_alert);
  ack_alert.Bind(1, static_cast<int64_t>(*seq))
      .Bind(2, r.ack_by)
      .Bind(3, now)
      .Bind(4, r.ack_note)
      .Bind(5, static_cast<int64_t>(r.ack_seq));
  if (int rc2 = ack_alert.Step(); rc2 != SQLITE_DONE) {
    return wdb.Error(rc2, "journal: acknowledge alert");
  }
  a.set_acked_seq(*seq);
  a.set_acked_by(r.ack_by);
  a.set_acked_at(now);
  a.set_ack_note(r.ack_note);
  return {};
}

Result<AckResult> Journal::AcknowledgeAlert(uint64_t alert_seq, const std::string& by,
                                            const std::string& note) {
  if (alert_seq == 0) return Status::InvalidArgument("seq", "an alert's seq is at least 1");
  if (by.empty() || by.size() > 64) {
    return Status::InvalidArgument("by", "who acknowledges: 1 to 64 characters, got " +
                                             std::to_string(by.size()));
  }
  for (unsigned char c : by) {
    if (c < 0x20 || c == 0x7f) {
      return Status::InvalidArgument("by", "must not hold control characters");
    }
  }
  if (note.size() > 256) {
    return Status::InvalidArgument("note", "is at most 256 bytes, got " +
                                               std::to_string(note.size()));
  }
  for (unsigned char c : note) {
    if (c < 0x20 || c == 0x7f) {
      return Status::InvalidArgument("note", "must not hold control characters");
    }
  }
  Request r;
  r.kind = Request::Kind::kAck;
  r.ack_seq = alert_seq;
  r.ack_by = by;
  r.ack_note = note;
  if (Status s = impl_->Submit(r); !s.ok()) return s;
  return r.ack;
}

Result<PriceResult> Journal::ApplyPriceUpdate(const v1::PriceUpdate& update) {
  if (Status s = ValidatePriceUpdate(update); !s.ok()) return s;
  if (update.store_id() != impl_->store_id) {
    return Status::InvalidArgument(
        "store_id", "is '" + update.store_id() + "', this is store '" + impl_->store_id + "'");
  }
  Request r;
  r.kind = Request::Kind::kPrice;
  r.price = &update;
  if (Status s = impl_->Submit(r); !s.ok()) return s;
  return r.price_result;
}

// Device records: upserted in the group's transaction; no event, no seq.
Status Journal::Impl::DoDevices(internal::Request& r) {
  for (const auto& [id, blob] : *r.devices) {
    sql::ResetGuard g(put_device);
    put_device.Bind(1, id).BindBlob(2, blob.data(), blob.size());
    if (int rc = put_device.Step(); rc != SQLITE_DONE) {
      return wdb.Error(rc, "journal: save device " + id);
    }
  }
  return {};
}

Status Journal::SaveDevices(const std::vector<std::pair<std::string, std::string>>& records) {
  for (const auto& [id, blob] : records) {
    if (id.size() > 128) {
      return Status::InvalidArgument("device_id", "a device_id is at most 128 bytes");
    }
  }
  if (records.empty()) return {};
  Request r;
  r.kind = Request::Kind::kDevices;
  r.devices = &records;
  return impl_->Submit(r);
}

}  // namespace storegw::storage
