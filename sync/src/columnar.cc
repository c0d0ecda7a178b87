// The columnar batch encoding: see columnar.h.
#include "columnar.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/reflection.h>
#include <google/protobuf/unknown_field_set.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace storegw::sync {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

enum Column {
  kRecorded,    // zigzag(recorded_at - previous recorded_at)
  kOccurred,    // zigzag(occurred_at - the previous event's; the first: - its recorded_at),
                //   split: every value's low byte, then every second byte, then
                //   varints of the value >> 16 (Split16)
  kDevice,      // device table index; == table size: a new entry (kDeviceTable)
  kDeviceTable, // new device ids, length-prefixed
  kEventId,     // 2 * zigzag(counter delta) + 1, or 0: the id is in kEventIdRaw
  kEventIdRaw,  // event ids, length-prefixed
  kSku,         // per sku reference: its rank in kSkuTable
  kSkuTable,    // the batch's skus, most referenced first, length-prefixed
  kPrice,       // per SaleLine of a sku priced before: 1 price and currency as then, 0 kept
  kBody,        // the rest of each event, length-prefixed protobuf
  kBasket,      // per sale or return: 1 its basket_id is the event_id (dropped), 0 kept
  kLines,       // per sale or return: 0 its lines are in the body, else 1 + their number
  kQty,         // per line in columns: zigzag(qty)
  kPriceValue,  // per line in columns whose price changed: zigzag(unit_price)
  kCurrency,    // and its currency: table index; == table size: new, its string follows
  kString,      // per interned string field: table index; == table size: new (kStringTable)
  kStringTable, // new interned strings, length-prefixed
  kNumber,      // per moved integer field: zigzag(value)
  kColumns
};

constexpr const char* kNames[kColumns] = {
    "recorded_at column", "occurred_at column", "device column",      "device table",
    "event id column",    "event id strings",   "sku column",         "sku table",
    "price column",       "body column",        "basket column",      "lines column",
    "qty column",         "price value column", "currency column",    "string column",
    "string table",       "number column"};

// The fields format 1 moves out of the body, by full name: fixed with the
// format (a field added to the schema later stays in the body until a new
// format names it), so both ends walk the same fields whatever their
// build knows. Skus go to the ranked sku table, the others are interned.
constexpr const char* kSkuFields[] = {
    "storegw.v1.StockLine.sku",  "storegw.v1.AdjustmentLine.sku", "storegw.v1.StockCount.sku",
    "storegw.v1.Alert.sku",      "storegw.v1.AlertAck.sku",       "storegw.v1.SnapshotLine.sku",
    "storegw.v1.SaleLine.sku"};
constexpr const char* kStringFields[] = {
    "storegw.v1.Sale.tender",          "storegw.v1.SaleReturn.tender",
    "storegw.v1.Receipt.delivery_id",  "storegw.v1.AdjustmentLine.reason",
    "storegw.v1.SensorReading.sensor_id", "storegw.v1.SensorReading.metric",
    "storegw.v1.Alert.message"};
constexpr const char* kNumberFields[] = {
    "storegw.v1.StockLine.qty", "storegw.v1.AdjustmentLine.qty", "storegw.v1.StockCount.qty",
    "storegw.v1.SnapshotLine.qty"};

enum class Moved { kNo, kSku, kString, kNumber };

// What format 1 does with field f.
Moved MovedField(const google::protobuf::FieldDescriptor* f) {
  static const auto* table = [] {
    auto* t = new std::unordered_map<const google::protobuf::FieldDescriptor*, Moved>;
    const auto* pool = google::protobuf::DescriptorPool::generated_pool();
    // Make sure the file is in the pool before looking fields up.
    (void)v1::Event::descriptor();
    for (const char* n : kSkuFields) {
      if (const auto* fd = pool->FindFieldByName(n)) (*t)[fd] = Moved::kSku;
    }
    for (const char* n : kStringFields) {
      if (const auto* fd = pool->FindFieldByName(n)) (*t)[fd] = Moved::kString;
    }
    for (const char* n : kNumberFields) {
      if (const auto* fd = pool->FindFieldByName(n)) (*t)[fd] = Moved::kNumber;
    }
    return t;
  }();
  auto it = table->find(f);
  return it == table->end() ? Moved::kNo : it->second;
}

uint64_t ZigZag(int64_t v) {
  return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63);
}
int64_t UnZigZag(uint64_t v) {
  return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1);
}

void PutVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
}

void PutBytes(std::string& out, std::string_view s) {
  PutVarint(out, s.size());
  out.append(s);
}

// Reads from one column; every read is bounds-checked.
class Reader {
 public:
  Reader(std::string_view s, const char* name) : s_(s), name_(name) {}
  bool Varint(uint64_t* v) {
    uint64_t r = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= s_.size()) return Fail("ends inside a number");
      const auto b = static_cast<uint8_t>(s_[pos_++]);
      r |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) {
        *v = r;
        return true;
      }
    }
    return Fail("holds a number longer than 64 bits");
  }
  bool Bytes(std::string_view* out) {
    uint64_t n = 0;
    if (!Varint(&n)) return false;
    if (n > s_.size() - pos_) return Fail("holds a length beyond its end");
    *out = s_.substr(pos_, n);
    pos_ += n;
    return true;
  }
  bool Fixed64(uint64_t* v) {
    if (s_.size() - pos_ < 8) return Fail("ends inside the epoch");
    uint64_t r = 0;
    for (int i = 0; i < 8; ++i) r |= static_cast<uint64_t>(static_cast<uint8_t>(s_[pos_ + i])) << (8 * i);
    pos_ += 8;
    *v = r;
    return true;
  }
  bool done() const { return pos_ == s_.size(); }
  const char* name() const { return name_; }
  const std::string& error() const { return error_; }

 private:
  bool Fail(const char* why) {
    if (error_.empty()) error_ = std::string(name_) + " " + why;
    return false;
  }
  std::string_view s_;
  size_t pos_ = 0;
  const char* name_;
  std::string error_;
};

// "till-03-42" with device "till-03": 42. Only a canonical decimal (no
// sign, no leading zero) so that printing it back gives the same id.
bool CounterOf(const std::string& id, const std::string& device, uint64_t* n) {
  if (device.empty() || id.size() <= device.size() + 1 || id.compare(0, device.size(), device) != 0 ||
      id[device.size()] != '-') {
    return false;
  }
  const char* b = id.data() + device.size() + 1;
  const char* e = id.data() + id.size();
  if (*b == '0' && e - b > 1) return false;
  auto [p, ec] = std::from_chars(b, e, *n);
  return ec == std::errc() && p == e;
}

// Visits every field format 1 moves (MovedField) and every SaleLine, in
// field-number order, recursing into set message fields: the same walk on
// both sides finds the same fields in the same order.
template <typename OnField, typename OnSaleLine>
void Walk(Message& m, OnField&& on_field, OnSaleLine&& on_sale_line) {
  const auto* d = m.GetDescriptor();
  const auto* r = m.GetReflection();
  if (d == v1::SaleLine::descriptor()) on_sale_line(static_cast<v1::SaleLine&>(m));
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      if (f->is_repeated()) {
        const int n = r->FieldSize(m, f);
        for (int k = 0; k < n; ++k) {
          Walk(*r->MutableRepeatedMessage(&m, f, k), on_field, on_sale_line);
        }
      } else if (r->HasField(m, f)) {
        Walk(*r->MutableMessage(&m, f), on_field, on_sale_line);
      }
    } else if (const Moved how = MovedField(f); how != Moved::kNo) {
      on_field(how, m, r, f);
    }
  }
}

// A column of numbers that are mostly 9-17 bits of noise (the time between
// two events): the low bytes of all, then the second bytes of all, then the
// rest as varints. Each byte plane has its own statistics, which the
// compressor's entropy coder uses; varints would mix them.
std::string Split16(const std::vector<uint64_t>& v) {
  std::string out;
  out.reserve(v.size() * 3);
  for (uint64_t x : v) out += static_cast<char>(x & 0xff);
  for (uint64_t x : v) out += static_cast<char>((x >> 8) & 0xff);
  for (uint64_t x : v) PutVarint(out, x >> 16);
  return out;
}

struct PriceKey {
  int64_t price;
  std::string currency;
};

// Interns strings in order of first appearance: index, and the string
// itself into `table` the first time.
class Interner {
 public:
  void Put(const std::string& v, std::string& index_col, std::string& table) {
    auto [it, fresh] = ids_.emplace(v, ids_.size());
    PutVarint(index_col, it->second);
    if (fresh) PutBytes(table, v);
  }

 private:
  std::unordered_map<std::string, uint64_t> ids_;
};

}  // namespace

Result<std::string> EncodeColumnar(const v1::EventBatch& batch) {
  const int n = batch.events_size();
  if (n == 0) return Status::InvalidArgument("batch", "an empty batch");
  if (batch.last_seq() != batch.first_seq() + static_cast<uint64_t>(n) - 1) {
    return Status::InvalidArgument("batch", "last_seq does not match the events");
  }
  // Fields this build does not know (a newer gateway's) have no column.
  if (!batch.GetReflection()->GetUnknownFields(batch).empty()) {
    return Status::InvalidArgument("batch", "unknown fields");
  }
  std::string col[kColumns];
  std::unordered_map<std::string, uint64_t> devices;
  Interner currencies, strings;
  // Skus get a temporary id in order of first appearance; once every
  // event is through, the table is written most referenced first and each
  // reference as its rank, so that the popular skus have the short numbers.
  std::unordered_map<std::string, uint32_t> sku_ids;
  std::vector<const std::string*> sku_names;
  std::vector<uint64_t> sku_refs;
  std::vector<uint32_t> sku_seq;  // every reference, in order
  const auto sku_id = [&](const std::string& sku) {
    auto [it, fresh] = sku_ids.emplace(sku, static_cast<uint32_t>(sku_names.size()));
    if (fresh) {
      sku_names.push_back(&it->first);
      sku_refs.push_back(0);
    }
    sku_refs[it->second] += 1;
    sku_seq.push_back(it->second);
    return it->second;
  };
  std::vector<uint64_t> last_counter;
  std::unordered_map<uint32_t, PriceKey> last_price;  // by sku id
  int64_t prev_recorded = 0;
  int64_t prev_occurred = 0;
  std::vector<uint64_t> occurred;
  occurred.reserve(static_cast<size_t>(n));
  v1::Event e;
  std::string body;
  for (int i = 0; i < n; ++i) {
    const v1::JournaledEvent& je = batch.events(i);
    if (je.seq() != batch.first_seq() + static_cast<uint64_t>(i) || je.epoch() != 0 ||
        !je.store_id().empty() || !je.gateway_id().empty() || !je.has_event() ||
        !je.GetReflection()->GetUnknownFields(je).empty()) {
      return Status::InvalidArgument("batch", "seqs not contiguous, or nested identity set");
    }
    PutVarint(col[kRecorded], ZigZag(je.recorded_at() - prev_recorded));
    prev_recorded = je.recorded_at();
    e = je.event();
    occurred.push_back(ZigZag(static_cast<int64_t>(
                                  static_cast<uint64_t>(e.occurred_at()) -
                                  static_cast<uint64_t>(i == 0 ? je.recorded_at() : prev_occurred))));
    prev_occurred = e.occurred_at();
    auto [dev, fresh_dev] = devices.emplace(e.device_id(), devices.size());
    PutVarint(col[kDevice], dev->second);
    if (fresh_dev) {
      PutBytes(col[kDeviceTable], e.device_id());
      last_counter.push_back(0);
    }
    uint64_t counter = 0;
    uint64_t& last = last_counter[dev->second];
    const uint64_t z = CounterOf(e.event_id(), e.device_id(), &counter)
                           ? ZigZag(static_cast<int64_t>(counter - last))
                           : UINT64_MAX;
    if (z < (uint64_t{1} << 62)) {  // 2z + 1 must not wrap
      PutVarint(col[kEventId], 2 * z + 1);
      last = counter;
    } else {
      PutVarint(col[kEventId], 0);
      PutBytes(col[kEventIdRaw], e.event_id());
    }
    std::string* basket = e.has_sale()          ? e.mutable_sale()->mutable_basket_id()
                          : e.has_sale_return() ? e.mutable_sale_return()->mutable_basket_id()
                                                : nullptr;
    if (basket) {
      const bool same = *basket == e.event_id();
      PutVarint(col[kBasket], same ? 1 : 0);
      if (same) basket->clear();
    }
    e.clear_event_id();
    e.clear_device_id();
    e.clear_occurred_at();
    // A sale's or return's lines go into columns when they hold nothing
    // but their four fields (always, for what this build writes).
    auto* lines = e.has_sale()          ? e.mutable_sale()->mutable_lines()
                  : e.has_sale_return() ? e.mutable_sale_return()->mutable_lines()
                                        : nullptr;
    if (lines) {
      bool movable = true;
      for (const auto& l : *lines) movable = movable && l.GetReflection()->GetUnknownFields(l).empty();
      PutVarint(col[kLines], movable ? static_cast<uint64_t>(lines->size()) + 1 : 0);
      if (movable) {
        for (const auto& l : *lines) {
          const uint32_t id = sku_id(l.sku());
          PutVarint(col[kQty], ZigZag(l.qty()));
          auto p = last_price.find(id);
          const bool same = p != last_price.end() && p->second.price == l.unit_price() &&
                            p->second.currency == l.currency();
          if (p != last_price.end()) PutVarint(col[kPrice], same ? 1 : 0);
          if (!same) {
            PutVarint(col[kPriceValue], ZigZag(l.unit_price()));
            currencies.Put(l.currency(), col[kCurrency], col[kCurrency]);
            last_price[id] = PriceKey{l.unit_price(), l.currency()};
          }
        }
        lines->Clear();
      }
    }
    Walk(
        e,
        [&](Moved how, Message& m, const google::protobuf::Reflection* r, const FieldDescriptor* f) {
          if (how == Moved::kNumber) {
            PutVarint(col[kNumber], ZigZag(r->GetInt64(m, f)));
            r->ClearField(&m, f);
            return;
          }
          const std::string v = r->GetString(m, f);
          if (how == Moved::kSku) {
            sku_id(v);
          } else {
            strings.Put(v, col[kString], col[kStringTable]);
          }
          r->ClearField(&m, f);
        },
        [&](v1::SaleLine& l) {
          // Called before its sku is visited: the sku is still there, and
          // gets the next id if it is new.
          auto it = sku_ids.find(l.sku());
          const uint32_t id =
              it != sku_ids.end() ? it->second : static_cast<uint32_t>(sku_names.size());
          auto p = last_price.find(id);
          const bool same = p != last_price.end() && p->second.price == l.unit_price() &&
                            p->second.currency == l.currency();
          if (p != last_price.end()) PutVarint(col[kPrice], same ? 1 : 0);
          last_price[id] = PriceKey{l.unit_price(), l.currency()};
          if (same) {
            l.clear_unit_price();
            l.clear_currency();
          }
        });
    body.clear();
    if (!e.SerializeToString(&body)) return Status::InvalidArgument("batch", "event did not serialize");
    PutBytes(col[kBody], body);
  }
  // The sku table, most referenced first (first appearance breaks ties).
  std::vector<uint32_t> order(sku_names.size());
  for (uint32_t k = 0; k < order.size(); ++k) order[k] = k;
  std::stable_sort(order.begin(), order.end(),
                   [&](uint32_t a, uint32_t b) { return sku_refs[a] > sku_refs[b]; });
  std::vector<uint32_t> rank(order.size());
  for (uint32_t k = 0; k < order.size(); ++k) {
    rank[order[k]] = k;
    PutBytes(col[kSkuTable], *sku_names[order[k]]);
  }
  for (uint32_t id : sku_seq) PutVarint(col[kSku], rank[id]);

  col[kOccurred] = Split16(occurred);

  std::string out(kColumnarMagic);
  PutBytes(out, batch.store_id());
  PutBytes(out, batch.gateway_id());
  for (int i = 0; i < 8; ++i) out += static_cast<char>((batch.epoch() >> (8 * i)) & 0xff);
  PutVarint(out, batch.first_seq());
  PutVarint(out, static_cast<uint64_t>(n));
  for (const auto& c : col) PutBytes(out, c);
  return out;
}

std::string WireBatch(std::string payload, bool columnar) {
  if (!columnar) return payload;
  v1::EventBatch b;
  if (!b.ParseFromString(payload)) return payload;
  auto c = EncodeColumnar(b);
  return c.ok() ? std::move(*c) : payload;
}

namespace {

Status BadColumnar(const std::string& why) {
  return Status::InvalidArgument("payload", "columnar batch: " + why);
}

// The header and the columns' bytes.
Status ParseLayout(std::string_view payload, ColumnarHeader* h, std::string_view raw[kColumns]) {
  if (!IsColumnar(payload)) return BadColumnar("no SGC1 magic");
  Reader head(payload.substr(kColumnarMagic.size()), "the header");
  if (!head.Bytes(&h->store_id) || !head.Bytes(&h->gateway_id) || !head.Fixed64(&h->epoch) ||
      !head.Varint(&h->first_seq) || !head.Varint(&h->count)) {
    return BadColumnar(head.error());
  }
  for (int c = 0; c < kColumns; ++c) {
    if (!head.Bytes(&raw[c])) return BadColumnar(std::string(kNames[c]) + ": " + head.error());
  }
  if (!head.done()) return BadColumnar("bytes after the last column");
  return {};
}

}  // namespace

Result<ColumnarHeader> ReadColumnarHeader(std::string_view payload) {
  ColumnarHeader h;
  std::string_view raw[kColumns];
  if (Status s = ParseLayout(payload, &h, raw); !s.ok()) return s;
  return h;
}

std::vector<std::pair<std::string, std::string_view>> ColumnarColumns(std::string_view payload) {
  std::vector<std::pair<std::string, std::string_view>> out;
  ColumnarHeader h;
  std::string_view raw[kColumns];
  if (!ParseLayout(payload, &h, raw).ok()) return out;
  for (int c = 0; c < kColumns; ++c) out.emplace_back(kNames[c], raw[c]);
  return out;
}

Result<v1::EventBatch> DecodeColumnar(std::string_view payload, size_t max_events,
                                      size_t max_bytes) {
  const auto bad = BadColumnar;
  ColumnarHeader h;
  std::string_view raw[kColumns];
  if (Status s = ParseLayout(payload, &h, raw); !s.ok()) return s;
  const std::string_view store = h.store_id, gateway = h.gateway_id;
  const uint64_t epoch = h.epoch, first = h.first_seq, count = h.count;
  if (count == 0 || count > max_events) {
    return bad("holds " + std::to_string(count) + " events (1.." + std::to_string(max_events) +
               " allowed)");
  }
  if (first == 0 || first > UINT64_MAX - count) return bad("first_seq out of range");
  std::vector<Reader> col;
  for (int c = 0; c < kColumns; ++c) col.emplace_back(raw[c], kNames[c]);

  size_t decoded = 0;  // bytes of bodies and strings put back, about
  const auto over = [&](size_t add) {
    decoded += add;
    return decoded > max_bytes;
  };
  const auto too_big = [&] {
    return bad("decodes to more than " + std::to_string(max_bytes) + " bytes");
  };
  // occurred_at: `count` values, split (Split16).
  if (raw[kOccurred].size() < 3 * count) return bad("occurred_at column ends inside its bytes");
  std::vector<uint64_t> occurred(count);
  {
    Reader rest(raw[kOccurred].substr(2 * count), kNames[kOccurred]);
    for (uint64_t k = 0; k < count; ++k) {
      uint64_t hi = 0;
      if (!rest.Varint(&hi)) return bad(rest.error());
      if (hi >> 48) return bad("occurred_at column holds a number longer than 64 bits");
      occurred[k] = (hi << 16) | (static_cast<uint64_t>(static_cast<uint8_t>(raw[kOccurred][count + k])) << 8) |
                    static_cast<uint8_t>(raw[kOccurred][k]);
    }
    if (!rest.done()) return bad("occurred_at column holds more than its events");
  }
  // The sku table comes whole, before the events that refer to it.
  std::vector<std::string_view> skus;
  while (!col[kSkuTable].done()) {
    std::string_view s;
    if (!col[kSkuTable].Bytes(&s)) return bad(col[kSkuTable].error());
    skus.push_back(s);
  }
  const auto sku_at = [&](uint64_t rank, std::string* err) -> const std::string_view* {
    if (rank >= skus.size()) {
      *err = "sku index beyond the table";
      return nullptr;
    }
    if (over(skus[rank].size() + 16)) {
      *err = "decodes to more than " + std::to_string(max_bytes) + " bytes";
      return nullptr;
    }
    return &skus[rank];
  };
  // An interned string: an index, and the string the first time.
  const auto interned = [&](Reader& index, Reader& table, std::vector<std::string>& seen,
                            std::string* out, std::string* err) {
    uint64_t idx = 0;
    if (!index.Varint(&idx)) {
      *err = index.error();
      return false;
    }
    if (idx > seen.size()) {
      *err = std::string(index.name()) + ": an index beyond its table";
      return false;
    }
    if (idx == seen.size()) {
      std::string_view s;
      if (!table.Bytes(&s)) {
        *err = table.error();
        return false;
      }
      seen.emplace_back(s);
    }
    if (over(seen[idx].size())) {
      *err = "decodes to more than " + std::to_string(max_bytes) + " bytes";
      return false;
    }
    *out = seen[idx];
    return true;
  };

  v1::EventBatch b;
  b.set_store_id(std::string(store));
  b.set_gateway_id(std::string(gateway));
  b.set_epoch(epoch);
  b.set_first_seq(first);
  b.set_last_seq(first + count - 1);
  std::vector<std::string> devices, currencies, strings;
  std::vector<uint64_t> last_counter;
  std::unordered_map<uint64_t, PriceKey> last_price;  // by sku rank
  int64_t prev_recorded = 0;
  int64_t prev_occurred = 0;
  std::string err;
  for (uint64_t i = 0; i < count; ++i) {
    uint64_t rec = 0, occ = 0, dev = 0, idk = 0;
    if (!col[kRecorded].Varint(&rec)) return bad(col[kRecorded].error());
    occ = occurred[i];
    if (!col[kDevice].Varint(&dev)) return bad(col[kDevice].error());
    if (!col[kEventId].Varint(&idk)) return bad(col[kEventId].error());
    std::string_view body;
    if (!col[kBody].Bytes(&body)) return bad(col[kBody].error());
    if (over(body.size() + 16)) return too_big();
    v1::JournaledEvent* je = b.add_events();
    je->set_seq(first + i);
    const int64_t recorded = static_cast<int64_t>(static_cast<uint64_t>(prev_recorded) +
                                                  static_cast<uint64_t>(UnZigZag(rec)));
    je->set_recorded_at(recorded);
    prev_recorded = recorded;
    v1::Event* e = je->mutable_event();
    if (!e->ParseFromArray(body.data(), static_cast<int>(body.size()))) {
      return bad("event " + std::to_string(i) + " does not decode");
    }
    if (dev > devices.size()) return bad("device index beyond the table");
    if (dev == devices.size()) {
      std::string_view id;
      if (!col[kDeviceTable].Bytes(&id)) return bad(col[kDeviceTable].error());
      devices.emplace_back(id);
      last_counter.push_back(0);
    }
    if (over(devices[dev].size() * 2 + 24)) return too_big();
    e->set_device_id(devices[dev]);
    if (idk == 0) {
      std::string_view id;
      if (!col[kEventIdRaw].Bytes(&id)) return bad(col[kEventIdRaw].error());
      if (over(id.size())) return too_big();
      e->set_event_id(std::string(id));
    } else {
      uint64_t& last = last_counter[dev];
      last += static_cast<uint64_t>(UnZigZag((idk - 1) / 2));
      e->set_event_id(devices[dev] + "-" + std::to_string(last));
    }
    prev_occurred = static_cast<int64_t>(static_cast<uint64_t>(i == 0 ? recorded : prev_occurred) +
                                         static_cast<uint64_t>(UnZigZag(occ)));
    e->set_occurred_at(prev_occurred);
    std::string* basket = e->has_sale()          ? e->mutable_sale()->mutable_basket_id()
                          : e->has_sale_return() ? e->mutable_sale_return()->mutable_basket_id()
                                                 : nullptr;
    if (basket) {
      uint64_t same = 0;
      if (!col[kBasket].Varint(&same) || same > 1) {
        return bad(col[kBasket].error().empty() ? "basket flag not 0 or 1" : col[kBasket].error());
      }
      if (same == 1) {
        if (!basket->empty()) return bad("a dropped basket_id that is not empty");
        if (over(e->event_id().size())) return too_big();
        *basket = e->event_id();
      }
    }
    // Lines in columns come first (as they were written), and join the
    // event after the walk, which must not see them.
    std::vector<v1::SaleLine> moved;
    const bool has_lines = e->has_sale() || e->has_sale_return();
    if (has_lines) {
      uint64_t nl = 0;
      if (!col[kLines].Varint(&nl)) return bad(col[kLines].error());
      if (nl > raw[kQty].size() + 1) return bad("more lines than the qty column holds");
      for (uint64_t k = 0; nl > 0 && k < nl - 1; ++k) {
        v1::SaleLine l;
        uint64_t rank = 0, qty = 0, same = 0;
        if (!col[kSku].Varint(&rank)) return bad(col[kSku].error());
        const std::string_view* sku = sku_at(rank, &err);
        if (!sku) return bad(err);
        l.set_sku(std::string(*sku));
        if (!col[kQty].Varint(&qty)) return bad(col[kQty].error());
        l.set_qty(UnZigZag(qty));
        auto p = last_price.find(rank);
        if (p != last_price.end() && (!col[kPrice].Varint(&same) || same > 1)) {
          return bad(col[kPrice].error().empty() ? "price flag not 0 or 1" : col[kPrice].error());
        }
        if (same == 1) {
          l.set_unit_price(p->second.price);
          l.set_currency(p->second.currency);
        } else {
          uint64_t price = 0;
          std::string currency;
          if (!col[kPriceValue].Varint(&price)) return bad(col[kPriceValue].error());
          if (!interned(col[kCurrency], col[kCurrency], currencies, &currency, &err)) {
            return bad(err);
          }
          l.set_unit_price(UnZigZag(price));
          l.set_currency(std::move(currency));
          last_price[rank] = PriceKey{l.unit_price(), l.currency()};
        }
        moved.push_back(std::move(l));
      }
      if (nl > 0) {
        const int kept = e->has_sale() ? e->sale().lines_size() : e->sale_return().lines_size();
        if (kept != 0) return bad("lines both in columns and in the body");
      }
    }
    std::vector<std::pair<v1::SaleLine*, uint64_t>> sale_lines;  // and their sku's rank
    Walk(
        *e,
        [&](Moved how, Message& m, const google::protobuf::Reflection* r, const FieldDescriptor* f) {
          if (!err.empty()) return;
          if (how == Moved::kNumber) {
            uint64_t v = 0;
            if (!col[kNumber].Varint(&v)) {
              err = col[kNumber].error();
              return;
            }
            r->SetInt64(&m, f, UnZigZag(v));
            return;
          }
          if (how == Moved::kString) {
            std::string v;
            if (interned(col[kString], col[kStringTable], strings, &v, &err)) {
              r->SetString(&m, f, std::move(v));
            }
            return;
          }
          uint64_t rank = 0;
          if (!col[kSku].Varint(&rank)) {
            err = col[kSku].error();
            return;
          }
          const std::string_view* sku = sku_at(rank, &err);
          if (!sku) return;
          r->SetString(&m, f, std::string(*sku));
          if (m.GetDescriptor() == v1::SaleLine::descriptor() && !sale_lines.empty() &&
              sale_lines.back().first == &m) {
            sale_lines.back().second = rank;
          }
        },
        [&](v1::SaleLine& l) { sale_lines.push_back({&l, UINT64_MAX}); });
    if (!err.empty()) return bad(err);
    // Prices, in line order, once each line has its sku back.
    for (auto& [l, rank] : sale_lines) {
      uint64_t same = 0;
      auto p = last_price.find(rank);
      if (p != last_price.end() && (!col[kPrice].Varint(&same) || same > 1)) {
        return bad(col[kPrice].error().empty() ? "price flag not 0 or 1" : col[kPrice].error());
      }
      if (same == 1) {
        if (!l->currency().empty() || l->unit_price() != 0) {
          return bad("a repeated price with a price in the body");
        }
        l->set_unit_price(p->second.price);
        l->set_currency(p->second.currency);
      }
      last_price[rank] = PriceKey{l->unit_price(), l->currency()};
    }
    if (!moved.empty()) {
      auto* lines = e->has_sale() ? e->mutable_sale()->mutable_lines()
                                  : e->mutable_sale_return()->mutable_lines();
      for (auto& l : moved) *lines->Add() = std::move(l);
    }
  }
  for (int c = 0; c < kColumns; ++c) {
    if (c != kOccurred && !col[c].done()) {
      return bad(std::string(kNames[c]) + " holds more than its events");
    }
  }
  return b;
}

}  // namespace storegw::sync
