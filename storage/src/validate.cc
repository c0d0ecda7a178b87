// Validation of device events and the stock deltas of each body type.
#include <string>
#include <unordered_map>

#include "storegw/storage/journal.h"

namespace storegw::storage {
namespace {

// Quantities are bounded so that sums over years of events cannot overflow
// int64 (10^12 base units is a million tonnes in grams).
constexpr int64_t kMaxQty = 1'000'000'000'000;
constexpr size_t kMaxLines = 1000;

bool PrintableAscii(const std::string& s) {
  for (unsigned char c : s) {
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

Status CheckId(const std::string& field, const std::string& v, size_t max_len) {
  if (v.empty()) return Status::InvalidArgument(field, "is required");
  if (v.size() > max_len) {
    return Status::InvalidArgument(field, "is longer than " + std::to_string(max_len) +
                                              " characters");
  }
  if (!PrintableAscii(v)) {
    return Status::InvalidArgument(field, "must be printable ASCII without spaces");
  }
  return {};
}

Status CheckSku(const std::string& field, const std::string& sku) { return CheckId(field, sku, 64); }

Status CheckQty(const std::string& field, int64_t qty, bool allow_zero, bool allow_negative) {
  if (qty == 0 && !allow_zero) return Status::InvalidArgument(field, "must not be 0");
  if (qty < 0 && !allow_negative) return Status::InvalidArgument(field, "must be > 0");
  if (qty > kMaxQty || qty < -kMaxQty) {
    return Status::InvalidArgument(field, "is out of range (|qty| <= 10^12)");
  }
  return {};
}

Status CheckCurrency(const std::string& field, const std::string& c) {
  if (c.size() != 3 || !(c[0] >= 'A' && c[0] <= 'Z') || !(c[1] >= 'A' && c[1] <= 'Z') ||
      !(c[2] >= 'A' && c[2] <= 'Z')) {
    return Status::InvalidArgument(field, "must be an ISO 4217 code of three capital letters, "
                                          "e.g. \"EUR\"");
  }
  return {};
}

template <typename Lines>
Status CheckLineCount(const std::string& field, const Lines& lines) {
  if (lines.empty()) return Status::InvalidArgument(field, "needs at least one line");
  if (static_cast<size_t>(lines.size()) > kMaxLines) {
    return Status::InvalidArgument(field, "has more than 1000 lines");
  }
  return {};
}

// A name for people (a counter, a fridge's place): 1..64 bytes (0.. when
// optional), UTF-8 allowed, no control characters.
Status CheckLabel(const std::string& field, const std::string& v, bool required) {
  if (v.empty()) {
    return required ? Status::InvalidArgument(field, "is required (e.g. \"hot counter 1\")")
                    : Status();
  }
  if (v.size() > 64) return Status::InvalidArgument(field, "is longer than 64 bytes");
  for (unsigned char c : v) {
    if (c < 0x20 || c == 0x7f) {
      return Status::InvalidArgument(field, "must not hold control characters");
    }
  }
  return {};
}

std::string At(const std::string& field, int i) { return field + "[" + std::to_string(i) + "]"; }

Status CheckSaleLines(const std::string& body,
                      const google::protobuf::RepeatedPtrField<v1::SaleLine>& lines) {
  const std::string f = body + ".lines";
  if (Status s = CheckLineCount(f, lines); !s.ok()) return s;
  for (int i = 0; i < lines.size(); ++i) {
    const auto& l = lines[i];
    const std::string p = At(f, i);
    if (Status s = CheckSku(p + ".sku", l.sku()); !s.ok()) return s;
    if (Status s = CheckQty(p + ".qty", l.qty(), false, false); !s.ok()) return s;
    if (l.unit_price() < 0) return Status::InvalidArgument(p + ".unit_price", "must be >= 0");
    if (Status s = CheckCurrency(p + ".currency", l.currency()); !s.ok()) return s;
  }
  return {};
}

Status CheckStockLines(const std::string& body,
                       const google::protobuf::RepeatedPtrField<v1::StockLine>& lines) {
  const std::string f = body + ".lines";
  if (Status s = CheckLineCount(f, lines); !s.ok()) return s;
  for (int i = 0; i < lines.size(); ++i) {
    const std::string p = At(f, i);
    if (Status s = CheckSku(p + ".sku", lines[i].sku()); !s.ok()) return s;
    if (Status s = CheckQty(p + ".qty", lines[i].qty(), false, false); !s.ok()) return s;
  }
  return {};
}

}  // namespace

Status ValidateDeviceEvent(const v1::Event& e) {
  if (Status s = CheckId("event_id", e.event_id(), 128); !s.ok()) return s;
  if (e.event_id().rfind("gw:", 0) == 0) {
    return Status::InvalidArgument("event_id", "must not start with \"gw:\" (reserved for "
                                               "events the gateway writes itself)");
  }
  if (Status s = CheckId("device_id", e.device_id(), 64); !s.ok()) return s;
  switch (e.body_case()) {
    case v1::Event::BODY_NOT_SET:
      return Status::InvalidArgument(
          "body", "is missing: set exactly one of sale, sale_return, receipt, adjustment, "
                  "count, transfer, reservation, pickup, sensor, production");
    case v1::Event::kProduction: {
      const auto& p = e.production();
      if (Status s = CheckSku("production.sku", p.sku()); !s.ok()) return s;
      if (Status s = CheckQty("production.qty", p.qty(), false, false); !s.ok()) return s;
      return CheckLabel("production.location", p.location(), true);
    }
    case v1::Event::kAlertCleared:
      return Status::InvalidArgument("alert_cleared", "is written only by the gateway itself");
    case v1::Event::kPriceInForce:
      return Status::InvalidArgument("price_in_force", "is written only by the gateway itself");
    case v1::Event::kStoreRules:
      return Status::InvalidArgument("store_rules", "is written only by the gateway itself");
    case v1::Event::kSale:
      return CheckSaleLines("sale", e.sale().lines());
    case v1::Event::kSaleReturn:
      return CheckSaleLines("sale_return", e.sale_return().lines());
    case v1::Event::kReceipt:
      return CheckStockLines("receipt", e.receipt().lines());
    case v1::Event::kAdjustment: {
      const auto& lines = e.adjustment().lines();
      if (Status s = CheckLineCount("adjustment.lines", lines); !s.ok()) return s;
      for (int i = 0; i < lines.size(); ++i) {
        const std::string p = At("adjustment.lines", i);
        if (Status s = CheckSku(p + ".sku", lines[i].sku()); !s.ok()) return s;
        if (Status s = CheckQty(p + ".qty", lines[i].qty(), false, true); !s.ok()) return s;
        if (lines[i].reason().empty()) {
          return Status::InvalidArgument(p + ".reason",
                                         "is required (e.g. \"shrink\", \"damage\", \"waste\")");
        }
      }
      return {};
    }
    case v1::Event::kCount:
      if (Status s = CheckSku("count.sku", e.count().sku()); !s.ok()) return s;
      if (e.count().qty() < 0) return Status::InvalidArgument("count.qty", "must be >= 0");
      return CheckQty("count.qty", e.count().qty(), true, false);
    case v1::Event::kTransfer: {
      const auto& t = e.transfer();
      if (t.direction() != v1::Transfer::OUT && t.direction() != v1::Transfer::IN) {
        return Status::InvalidArgument("transfer.direction", "must be OUT or IN");
      }
      if (Status s = CheckId("transfer.other_store_id", t.other_store_id(), 64); !s.ok()) return s;
      return CheckStockLines("transfer", t.lines());
    }
    case v1::Event::kReservation:
      if (Status s = CheckId("reservation.order_id", e.reservation().order_id(), 128); !s.ok()) {
        return s;
      }
      return CheckStockLines("reservation", e.reservation().lines());
    case v1::Event::kPickup:
      if (Status s = CheckId("pickup.order_id", e.pickup().order_id(), 128); !s.ok()) return s;
      return CheckStockLines("pickup", e.pickup().lines());
    case v1::Event::kSensor:
      if (Status s = CheckId("sensor.sensor_id", e.sensor().sensor_id(), 64); !s.ok()) return s;
      return CheckId("sensor.metric", e.sensor().metric(), 64);
    case v1::Event::kAlert:
      return Status::InvalidArgument("alert", "is written only by the gateway itself");
    case v1::Event::kStockSnapshot:
      return Status::InvalidArgument("stock_snapshot", "is written only by the gateway itself");
    case v1::Event::kPriceUpdate:
      return Status::InvalidArgument("price_update", "is written only by the gateway itself");
    case v1::Event::kAlertAck:
      return Status::InvalidArgument("alert_ack",
                                     "is written only by the gateway itself (acknowledge an "
                                     "alert with POST /v1/alerts/{seq}/ack)");
  }
  return Status::InvalidArgument("body", "is of an unknown type");
}

Status ValidateSnapshot(const v1::StockSnapshot& snap) {
  // store_id, epoch and as_of_seq are checked against the journal by
  // Journal::ApplySnapshot (a mismatch is rejected with an alert, not
  // refused as malformed); as_of_seq 0 (HQ's view before any event) is valid.
  const auto& lines = snap.lines();
  if (lines.empty()) return Status::InvalidArgument("lines", "needs at least one line");
  std::unordered_map<std::string_view, int> seen;
  seen.reserve(static_cast<size_t>(lines.size()));
  for (int i = 0; i < lines.size(); ++i) {
    const std::string p = At("lines", i);
    if (Status s = CheckSku(p + ".sku", lines[i].sku()); !s.ok()) return s;
    if (lines[i].qty() < 0)
      return Status::InvalidArgument(p + ".qty", "must be >= 0 in a snapshot");
    if (Status s = CheckQty(p + ".qty", lines[i].qty(), true, false); !s.ok()) return s;
    auto [it, fresh] = seen.emplace(lines[i].sku(), i);
    if (!fresh) {
      return Status::InvalidArgument(
          p + ".sku", "repeats sku \"" + lines[i].sku() + "\" of " + At("lines", it->second));
    }
  }
  return {};
}

Status ValidateStoreRules(const v1::StoreRules& r) {
  constexpr int64_t kWeek = 7 * 24 * 3600;
  if (r.hold_times().empty() && r.sensor_limits().empty()) {
    return Status::InvalidArgument("hold_times", "store rules need at least one hold time or "
                                                 "sensor limit");
  }
  if (static_cast<size_t>(r.hold_times_size() + r.sensor_limits_size()) > 100000) {
    return Status::InvalidArgument("hold_times", "more than 100000 rules in one message");
  }
  std::unordered_map<std::string_view, int> seen;
  for (int i = 0; i < r.hold_times_size(); ++i) {
    const auto& h = r.hold_times(i);
    const std::string p = At("hold_times", i);
    if (Status s = CheckSku(p + ".sku", h.sku()); !s.ok()) return s;
    if (h.hold_s() != 0 && (h.hold_s() < 60 || h.hold_s() > kWeek)) {
      return Status::InvalidArgument(p + ".hold_s", "must be 0 (remove) or 60..604800 seconds, "
                                                    "got " + std::to_string(h.hold_s()));
    }
    if (auto [it, fresh] = seen.emplace(h.sku(), i); !fresh) {
      return Status::InvalidArgument(p + ".sku", "repeats sku \"" + h.sku() + "\" of " +
                                                     At("hold_times", it->second));
    }
  }
  seen.clear();
  for (int i = 0; i < r.sensor_limits_size(); ++i) {
    const auto& l = r.sensor_limits(i);
    const std::string p = At("sensor_limits", i);
    if (Status s = CheckId(p + ".sensor_id", l.sensor_id(), 64); !s.ok()) return s;
    if (auto [it, fresh] = seen.emplace(l.sensor_id(), i); !fresh) {
      return Status::InvalidArgument(p + ".sensor_id", "repeats sensor \"" + l.sensor_id() +
                                                           "\" of " +
                                                           At("sensor_limits", it->second));
    }
    if (l.remove()) continue;
    if (Status s = CheckLabel(p + ".location", l.location(), false); !s.ok()) return s;
    if (!l.metric().empty()) {
      if (Status s = CheckId(p + ".metric", l.metric(), 64); !s.ok()) return s;
    }
    if (l.min_value() > l.max_value()) {
      return Status::InvalidArgument(p + ".max_value",
                                     "is below min_value (" + std::to_string(l.max_value()) +
                                         " < " + std::to_string(l.min_value()) + ")");
    }
    if (l.grace_s() < 0 || l.grace_s() > kWeek) {
      return Status::InvalidArgument(p + ".grace_s", "must be 0..604800 seconds");
    }
    if (l.silent_after_s() < 0 || l.silent_after_s() > kWeek) {
      return Status::InvalidArgument(p + ".silent_after_s", "must be 0..604800 seconds");
    }
  }
  return {};
}

Status ValidatePriceUpdate(const v1::PriceUpdate& p) {
  if (Status s = CheckSku("sku", p.sku()); !s.ok()) return s;
  if (p.price() < 0) return Status::InvalidArgument("price", "must be >= 0");
  if (p.price() > kMaxQty) return Status::InvalidArgument("price", "is out of range (<= 10^12)");
  if (Status s = CheckCurrency("currency", p.currency()); !s.ok()) return s;
  if (p.effective_from() <= 0) {
    return Status::InvalidArgument("effective_from",
                                   "must be > 0 (microseconds since the Unix epoch)");
  }
  return {};
}

std::vector<std::pair<std::string, int64_t>> StockDeltas(const v1::Event& e) {
  std::vector<std::pair<std::string, int64_t>> out;
  switch (e.body_case()) {
    case v1::Event::kSale:
      for (const auto& l : e.sale().lines()) out.emplace_back(l.sku(), -l.qty());
      break;
    case v1::Event::kSaleReturn:
      for (const auto& l : e.sale_return().lines()) out.emplace_back(l.sku(), l.qty());
      break;
    case v1::Event::kReceipt:
      for (const auto& l : e.receipt().lines()) out.emplace_back(l.sku(), l.qty());
      break;
    case v1::Event::kAdjustment:
      for (const auto& l : e.adjustment().lines()) out.emplace_back(l.sku(), l.qty());
      break;
    case v1::Event::kTransfer: {
      const int64_t sign = e.transfer().direction() == v1::Transfer::OUT ? -1 : 1;
      for (const auto& l : e.transfer().lines()) out.emplace_back(l.sku(), sign * l.qty());
      break;
    }
    case v1::Event::kPickup:
      for (const auto& l : e.pickup().lines()) out.emplace_back(l.sku(), -l.qty());
      break;
    case v1::Event::kProduction:
      out.emplace_back(e.production().sku(), e.production().qty());
      break;
    default:
      break;  // count (absolute), reservation, sensor, alert, snapshot, price: no delta
  }
  return out;
}

}  // namespace storegw::storage
