// GET /v1/changes over cpp-httplib 0.11.4: see changes_feed.h for the
// design and devices/API.md for the contract.
//
// httplib runs a chunked content provider on the request's worker thread
// until the provider ends the stream: RunStream() is that provider and
// blocks for the whole stream. The stream's response is "text/event-stream"
// exactly, which httplib never compresses (a gzip stream would sit in the
// compressor's buffer).
#include "changes_feed.h"

#include <httplib.h>

#include <algorithm>
#include <charconv>
#include <utility>

#include <spdlog/spdlog.h>

#include "auth.h"
#include "storegw/devices/json_out.h"

namespace storegw::devices::feed {
namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kJson = "application/json";
constexpr size_t kMaxSkus = 1000;
constexpr int kDefaultWaitS = 25;
constexpr int kMaxWaitS = 60;
constexpr size_t kMaxLongPollChanges = 1000;
constexpr size_t kFlushBytes = 64 * 1024;  // SSE text written per sink.write
constexpr size_t kHubReadEvents = 1024;
constexpr size_t kHubReadBytes = 4u << 20;
constexpr size_t kCatchUpEvents = 512;
constexpr size_t kCatchUpBytes = 1u << 20;
constexpr auto kHubWait = std::chrono::milliseconds(100);

std::string SeqId(uint64_t seq, int64_t index, bool last) {
  std::string id = std::to_string(seq);
  if (!last) {
    id += '.';
    id += std::to_string(index);
  }
  return id;
}

std::string FormatPosition(const Position& p) {
  if (p.partial < 0) return std::to_string(p.done_seq);
  return SeqId(p.done_seq + 1, p.partial, false);
}

bool ParseU64(std::string_view s, uint64_t* out) {
  if (s.empty() || s.size() > 20) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

// The on_hand of a sku as the ledger has it now, looked up at most once per
// batch (Journal::Stock); nullopt when the journal cannot say.
class OnHandCache {
 public:
  explicit OnHandCache(storage::Journal& j) : journal_(j) {}
  std::optional<int64_t> Get(const std::string& sku) {
    if (auto it = cache_.find(sku); it != cache_.end()) return it->second;
    std::optional<int64_t> v;
    if (auto row = journal_.Stock(sku); row.ok()) v = row->on_hand;
    cache_.emplace(sku, v);
    return v;
  }
  void Clear() { cache_.clear(); }

 private:
  storage::Journal& journal_;
  std::unordered_map<std::string, std::optional<int64_t>> cache_;
};

// The data object of change `i` of `e`.
std::string DataJson(const ChangeEntry& e, size_t i, OnHandCache& on_hand) {
  std::string out = "{\"seq\":";
  out += JsonUint64(e.seq);
  out += ",\"recorded_at\":";
  out += JsonInt64(e.recorded_at);
  if (e.kind != ChangeKind::kStock) {
    out += e.members;
    out += '}';
    return out;
  }
  const StockItem& it = e.stock[i];
  out += ",\"sku\":";
  out += JsonString(it.sku);
  out += ",\"source\":";
  out += JsonString(e.source);
  switch (it.type) {
    case StockItem::Type::kDelta:
      out += ",\"delta\":";
      break;
    case StockItem::Type::kCount:
      out += ",\"count\":";
      break;
    case StockItem::Type::kSnapshot:
      out += ",\"snapshot_qty\":";
      break;
  }
  out += JsonInt64(it.value);
  const std::optional<int64_t> oh = it.on_hand ? it.on_hand : on_hand.Get(it.sku);
  if (oh) {
    out += ",\"on_hand\":";
    out += JsonInt64(*oh);
  }
  out += '}';
  return out;
}

// The indices of the changes of `e` that `f` wants, after `skip`.
std::vector<size_t> Visible(const ChangeEntry& e, const Filter& f, int64_t skip) {
  std::vector<size_t> v;
  if (e.kind == ChangeKind::kStock) {
    if (!f.stock || !f.has_skus) return v;
    for (size_t i = 0; i < e.stock.size(); ++i) {
      if (static_cast<int64_t>(i) > skip && f.skus.count(e.stock[i].sku)) v.push_back(i);
    }
  } else if (skip < 0 && f.Wants(e)) {
    v.push_back(0);
  }
  return v;
}

// Appends the SSE events of what `f` wants of `e`; returns how many.
size_t RenderSse(const ChangeEntry& e, const Filter& f, int64_t skip, OnHandCache& on_hand,
                 std::string* out, std::string* last_id) {
  const std::vector<size_t> v = Visible(e, f, skip);
  for (size_t k = 0; k < v.size(); ++k) {
    const std::string id = SeqId(e.seq, static_cast<int64_t>(v[k]), k + 1 == v.size());
    *out += "id: ";
    *out += id;
    *out += "\nevent: ";
    *out += KindName(e.kind);
    *out += "\ndata: ";
    *out += DataJson(e, v[k], on_hand);
    *out += "\n\n";
    *last_id = id;
  }
  return v.size();
}

// Appends the long-poll objects (each after a ',' unless *first).
size_t RenderJson(const ChangeEntry& e, const Filter& f, int64_t skip, OnHandCache& on_hand,
                  std::string* out, bool* first) {
  const std::vector<size_t> v = Visible(e, f, skip);
  for (size_t k = 0; k < v.size(); ++k) {
    if (!*first) *out += ',';
    *first = false;
    *out += "{\"id\":";
    *out += JsonString(SeqId(e.seq, static_cast<int64_t>(v[k]), k + 1 == v.size()));
    *out += ",\"kind\":\"";
    *out += KindName(e.kind);
    *out += "\",\"data\":";
    *out += DataJson(e, v[k], on_hand);
    *out += '}';
  }
  return v.size();
}

void SetError(httplib::Response& res, int status, std::string_view code, const std::string& message,
              const std::string& field = {}) {
  res.status = status;
  res.set_content(ErrorJson(code, message, field), kJson);
}

std::vector<std::string_view> SplitComma(std::string_view s) {
  std::vector<std::string_view> out;
  size_t pos = 0;
  while (true) {
    const size_t c = s.find(',', pos);
    out.push_back(s.substr(pos, c == std::string_view::npos ? std::string_view::npos : c - pos));
    if (c == std::string_view::npos) break;
    pos = c + 1;
  }
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

// ------------------------------------------------------------------ decoding

std::string_view KindName(ChangeKind k) {
  switch (k) {
    case ChangeKind::kPrice:
      return "price";
    case ChangeKind::kStock:
      return "stock";
    case ChangeKind::kAlert:
      return "alert";
    case ChangeKind::kAlertCleared:
      return "alert_cleared";
  }
  return "?";
}

bool Filter::Wants(const ChangeEntry& e) const {
  switch (e.kind) {
    case ChangeKind::kPrice:
      return price && (!has_skus || skus.count(e.sku) != 0);
    case ChangeKind::kStock:
      return stock && has_skus;
    case ChangeKind::kAlert:
    case ChangeKind::kAlertCleared:
      return alert;
  }
  return false;
}

std::optional<Position> ParsePosition(std::string_view text) {
  const size_t dot = text.find('.');
  uint64_t seq = 0;
  if (dot == std::string_view::npos) {
    if (!ParseU64(text, &seq)) return std::nullopt;
    return Position{seq, -1};
  }
  uint64_t index = 0;
  if (!ParseU64(text.substr(0, dot), &seq) || seq == 0 || !ParseU64(text.substr(dot + 1), &index) ||
      index > 1000000) {
    return std::nullopt;
  }
  return Position{seq - 1, static_cast<int64_t>(index)};
}

std::optional<ChangeEntry> DecodeChange(const v1::JournaledEvent& je) {
  const v1::Event& ev = je.event();
  ChangeEntry e;
  e.seq = je.seq();
  e.recorded_at = je.recorded_at();
  switch (ev.body_case()) {
    case v1::Event::kPriceInForce: {
      const v1::PriceInForce& p = ev.price_in_force();
      e.kind = ChangeKind::kPrice;
      e.sku = p.sku();
      e.members = ",\"sku\":" + JsonString(p.sku()) + ",\"price\":" + JsonInt64(p.price()) +
                  ",\"currency\":" + JsonString(p.currency()) +
                  ",\"effective_from\":" + JsonInt64(p.effective_from()) +
                  ",\"update_seq\":" + JsonUint64(p.update_seq());
      break;
    }
    case v1::Event::kAlert: {
      const v1::Alert& a = ev.alert();
      e.kind = ChangeKind::kAlert;
      e.members = ",\"kind\":" + JsonString(v1::Alert_Kind_Name(a.kind())) +
                  ",\"sku\":" + JsonString(a.sku()) + ",\"sensor_id\":" + JsonString(a.sensor_id()) +
                  ",\"location\":" + JsonString(a.location()) + ",\"qty\":" + JsonInt64(a.qty()) +
                  ",\"since\":" + JsonInt64(a.since()) + ",\"message\":" + JsonString(a.message()) +
                  ",\"on_hand\":" + JsonInt64(a.on_hand()) +
                  ",\"cause_seq\":" + JsonUint64(a.cause_seq()) +
                  ",\"batch_seq\":" + JsonUint64(a.batch_seq()) +
                  ",\"min_seen\":" + JsonInt64(a.min_seen()) +
                  ",\"max_seen\":" + JsonInt64(a.max_seen()) +
                  ",\"duration_s\":" + JsonInt64(a.duration_s()) +
                  ",\"escalated\":" + (a.escalated() ? "true" : "false");
      break;
    }
    case v1::Event::kAlertCleared: {
      const v1::AlertCleared& c = ev.alert_cleared();
      e.kind = ChangeKind::kAlertCleared;
      e.members = ",\"alert_seq\":" + JsonUint64(c.alert_seq()) +
                  ",\"kind\":" + JsonString(v1::Alert_Kind_Name(c.kind())) +
                  ",\"sku\":" + JsonString(c.sku()) + ",\"sensor_id\":" + JsonString(c.sensor_id()) +
                  ",\"reason\":" + JsonString(c.reason()) +
                  ",\"cause_seq\":" + JsonUint64(c.cause_seq()) +
                  ",\"min_seen\":" + JsonInt64(c.min_seen()) +
                  ",\"max_seen\":" + JsonInt64(c.max_seen()) +
                  ",\"duration_s\":" + JsonInt64(c.duration_s());
      break;
    }
    case v1::Event::kCount:
      e.kind = ChangeKind::kStock;
      e.source = "count";
      e.stock.push_back({ev.count().sku(), StockItem::Type::kCount, ev.count().qty(), {}});
      break;
    case v1::Event::kStockSnapshot:
      e.kind = ChangeKind::kStock;
      e.source = "stock_snapshot";
      e.stock.reserve(static_cast<size_t>(ev.stock_snapshot().lines_size()));
      for (const v1::SnapshotLine& l : ev.stock_snapshot().lines()) {
        e.stock.push_back({l.sku(), StockItem::Type::kSnapshot, l.qty(), {}});
      }
      break;
    default: {
      auto deltas = storage::StockDeltas(ev);
      if (deltas.empty()) return std::nullopt;
      e.kind = ChangeKind::kStock;
      const auto* field = v1::Event::descriptor()->FindFieldByNumber(static_cast<int>(ev.body_case()));
      e.source = field ? field->name() : "event";
      // One change per sku: a sku on several lines is summed.
      std::unordered_map<std::string, size_t> at;
      for (auto& [sku, delta] : deltas) {
        auto [it, fresh] = at.emplace(sku, e.stock.size());
        if (fresh) {
          e.stock.push_back({std::move(sku), StockItem::Type::kDelta, delta, {}});
        } else {
          e.stock[it->second].value += delta;
        }
      }
      break;
    }
  }
  if (e.kind == ChangeKind::kStock && e.stock.empty()) return std::nullopt;
  e.bytes = sizeof(ChangeEntry) + 64 + e.members.size() + e.sku.size() + e.source.size();
  for (const StockItem& it : e.stock) e.bytes += sizeof(StockItem) + it.sku.size();
  return e;
}

// ----------------------------------------------------------------------- hub

Hub::Hub(storage::Journal& journal, const ChangesFeedOptions& options)
    : journal_(journal), options_(options) {}

Hub::~Hub() { Stop(); }

void Hub::Start() {
  {
    std::lock_guard lk(mu_);
    head_ = floor_ = journal_.Stats().last_seq;
  }
  thread_ = std::thread([this] { Run(); });
}

void Hub::Stop() {
  std::lock_guard once(stop_mu_);
  if (stopped_) return;
  stopped_ = true;
  {
    std::lock_guard lk(mu_);
    stopping_.store(true);
    for (const auto& c : clients_) c->cv.notify_all();
  }
  hub_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::shared_ptr<ClientSlot> Hub::Register(const Filter& f) {
  auto c = std::make_shared<ClientSlot>(f);
  std::lock_guard lk(mu_);
  clients_.push_back(c);
  if (f.has_skus) {
    for (const std::string& s : f.skus) by_sku_[s].push_back(c.get());
  } else {
    no_skus_.push_back(c.get());
  }
  return c;
}

void Hub::Unregister(const std::shared_ptr<ClientSlot>& c) {
  const auto drop = [&](std::vector<ClientSlot*>& v) {
    v.erase(std::remove(v.begin(), v.end(), c.get()), v.end());
  };
  std::lock_guard lk(mu_);
  if (c->filter.has_skus) {
    for (const std::string& s : c->filter.skus) {
      if (auto it = by_sku_.find(s); it != by_sku_.end()) {
        drop(it->second);
        if (it->second.empty()) by_sku_.erase(it);
      }
    }
  } else {
    drop(no_skus_);
  }
  clients_.erase(std::remove(clients_.begin(), clients_.end(), c), clients_.end());
}

Hub::RingView Hub::ring() const {
  std::lock_guard lk(mu_);
  return {ring_.size(), ring_bytes_, head_};
}

void Hub::FillOnHand(ChangeEntry* e) {
  if (e->kind != ChangeKind::kStock) return;
  std::vector<size_t> want;
  {
    std::lock_guard lk(mu_);
    if (by_sku_.empty()) return;
    for (size_t i = 0; i < e->stock.size(); ++i) {
      auto it = by_sku_.find(e->stock[i].sku);
      if (it == by_sku_.end()) continue;
      for (const ClientSlot* c : it->second) {
        if (c->filter.stock) {
          want.push_back(i);
          break;
        }
      }
    }
  }
  for (size_t i : want) {
    if (auto row = journal_.Stock(e->stock[i].sku); row.ok()) e->stock[i].on_hand = row->on_hand;
  }
}

void Hub::MarkRelevant(const ChangeEntry& e, uint64_t round) {
  switch (e.kind) {
    case ChangeKind::kStock:
      for (const StockItem& it : e.stock) {
        auto found = by_sku_.find(it.sku);
        if (found == by_sku_.end()) continue;
        for (ClientSlot* c : found->second) {
          if (c->filter.stock) c->relevant_round = round;
        }
      }
      return;
    case ChangeKind::kPrice:
      if (auto found = by_sku_.find(e.sku); found != by_sku_.end()) {
        for (ClientSlot* c : found->second) {
          if (c->filter.price) c->relevant_round = round;
        }
      }
      for (ClientSlot* c : no_skus_) {
        if (c->filter.price) c->relevant_round = round;
      }
      return;
    case ChangeKind::kAlert:
    case ChangeKind::kAlertCleared:
      for (const auto& c : clients_) {
        if (c->filter.alert) c->relevant_round = round;
      }
      return;
  }
}

void Hub::Run() {
  uint64_t cursor;
  {
    std::lock_guard lk(mu_);
    cursor = head_;
  }
  bool read_failing = false;
  const auto pause = [this](std::chrono::milliseconds d) {
    std::unique_lock lk(mu_);
    hub_cv_.wait_for(lk, d, [this] { return stopping_.load(); });
  };
  while (!stopping_.load()) {
    const auto t0 = Clock::now();
    const uint64_t last = journal_.WaitForSeqAbove(cursor, kHubWait);
    if (stopping_.load()) break;
    if (last <= cursor) {
      // A closed journal answers at once: do not spin.
      if (Clock::now() - t0 < kHubWait / 2) pause(kHubWait);
      continue;
    }
    auto events = journal_.ReadEvents(cursor + 1, kHubReadEvents, kHubReadBytes);
    if (!events.ok()) {
      if (!read_failing) {
        spdlog::warn("changes feed: cannot read the journal after seq {}: {} (retrying)", cursor,
                     events.status().message());
      }
      read_failing = true;
      pause(std::chrono::milliseconds(500));
      continue;
    }
    if (read_failing) spdlog::info("changes feed: reading the journal again");
    read_failing = false;
    uint64_t gap_floor = 0;
    uint64_t through = last;
    if (events->empty()) {
      // Everything after the cursor was pruned before the hub read it.
      gap_floor = last;
    } else {
      if (events->front().seq() != cursor + 1) gap_floor = events->front().seq() - 1;
      through = events->back().seq();
    }
    std::vector<EntryPtr> entries;
    entries.reserve(events->size());
    for (const v1::JournaledEvent& je : *events) {
      if (auto e = DecodeChange(je)) {
        FillOnHand(&*e);
        entries.push_back(std::make_shared<const ChangeEntry>(std::move(*e)));
      }
    }
    std::lock_guard lk(mu_);
    const uint64_t round = ++round_;
    if (gap_floor != 0) {
      ring_.clear();
      ring_bytes_ = 0;
      floor_ = gap_floor;
    }
    for (EntryPtr& e : entries) {
      MarkRelevant(*e, round);
      ring_bytes_ += e->bytes;
      ring_.push_back(std::move(e));
    }
    head_ = through;
    const size_t cap = options_.max_lag + 1;
    while (!ring_.empty() &&
           (ring_.size() > cap || (ring_bytes_ > options_.ring_max_bytes && ring_.size() > 1))) {
      floor_ = ring_.front()->seq;
      ring_bytes_ -= ring_.front()->bytes;
      ring_.pop_front();
    }
    for (const auto& c : clients_) {
      if (c->waiting) {
        // Asleep at the head: wake it for a change of its own (or a gap);
        // else the new entries are none of its business.
        if (c->wake) continue;
        if (c->relevant_round == round || gap_floor != 0) {
          c->wake = true;
          c->cv.notify_one();
        } else {
          c->skip_to = head_;
        }
        continue;
      }
      // The lag check: a client that caught up once and is now more than
      // max_lag changes behind is marked; its thread drops it.
      if (!c->live.load() || c->drop.load() != kNoDrop) continue;
      const uint64_t p = c->pos_seq.load();
      size_t lag = 0;
      if (p < floor_) {
        if (ring_.size() < options_.max_lag) continue;  // behind by bytes: it reads the journal
        lag = options_.max_lag + 1;
      } else {
        auto it = std::upper_bound(ring_.begin(), ring_.end(), p,
                                   [](uint64_t seq, const EntryPtr& e) { return seq < e->seq; });
        lag = static_cast<size_t>(ring_.end() - it);
      }
      int none = kNoDrop;
      if (lag > options_.max_lag && c->drop.compare_exchange_strong(none, kSlowClient)) {
        slow_marked_.fetch_add(1);
      }
    }
    cursor = through;
  }
}

Hub::Next Hub::Fetch(uint64_t after, size_t max, Clock::time_point deadline, ClientSlot* client,
                     std::vector<EntryPtr>* out, uint64_t* through) {
  std::unique_lock lk(mu_);
  for (;;) {
    if (stopping_.load()) return Next::kStopped;
    if (client->skip_to > after) {
      // What came while it slept was not for it.
      *through = client->skip_to;
      return Next::kOk;
    }
    if (after < floor_) {
      client->live.store(false);
      return Next::kBehind;
    }
    if (head_ > after) {
      auto it = std::upper_bound(ring_.begin(), ring_.end(), after,
                                 [](uint64_t s, const EntryPtr& e) { return s < e->seq; });
      for (; it != ring_.end() && out->size() < max; ++it) out->push_back(*it);
      *through = it == ring_.end() ? head_ : out->back()->seq;
      return Next::kOk;
    }
    // Caught up: from now on the lag check applies (pos_seq == after).
    client->live.store(true);
    client->waiting = true;
    client->wake = false;
    const bool woken = client->cv.wait_until(lk, deadline, [&] {
      return client->wake || stopping_.load();
    });
    client->waiting = false;
    client->wake = false;
    if (!woken) {
      *through = std::max(after, client->skip_to);
      return Next::kTimeout;
    }
  }
}

// -------------------------------------------------------------------- cursor

// Where a new client starts: after its resume id, or at the end (hello).
struct StartPoint {
  Position pos;
  bool hello = false;
  std::optional<std::string> reset;  // the resume id cannot be served
};

namespace {

// A client's way through the changes: the ring while it is in it, else the
// journal. Not thread-safe (one per client).
class Cursor {
 public:
  Cursor(Hub& hub, storage::Journal& journal, ClientSlot* slot, Position start, size_t batch)
      : hub_(hub), journal_(journal), slot_(slot), pos(start), batch_(batch) {}

  struct Batch {
    std::vector<EntryPtr> entries;
    uint64_t through = 0;
    std::optional<std::string> reset;  // a gap: the changes up to through - ... were pruned
    uint64_t reset_to = 0;
  };
  enum class R { kOk, kTimeout, kStopped, kError };

  R Fetch(Clock::time_point deadline, Batch* b, Status* error) {
    b->entries.clear();
    b->reset.reset();
    switch (hub_.Fetch(pos.done_seq, batch_, deadline, slot_, &b->entries, &b->through)) {
      case Hub::Next::kOk:
        return R::kOk;
      case Hub::Next::kTimeout:
        return R::kTimeout;  // b->through: seqs of no interest that passed meanwhile
      case Hub::Next::kStopped:
        return R::kStopped;
      case Hub::Next::kBehind:
        break;
    }
    // Behind the ring: read the journal.
    auto events = journal_.ReadEvents(pos.done_seq + 1, kCatchUpEvents, kCatchUpBytes);
    if (!events.ok()) {
      *error = events.status();
      return R::kError;
    }
    if (events->empty() || events->front().seq() != pos.done_seq + 1) {
      const uint64_t to =
          events->empty() ? journal_.Stats().last_seq : events->front().seq() - 1;
      b->reset = "the changes after " + FormatPosition(pos) +
                 " were pruned from the journal meanwhile (retention): resync from GET "
                 "/v1/stock and GET /v1/prices, then follow this stream";
      b->reset_to = to;
      pos = {to, -1};
      if (events->empty()) {
        b->through = to;
        return R::kOk;
      }
    }
    for (const v1::JournaledEvent& je : *events) {
      if (auto e = DecodeChange(je)) {
        b->entries.push_back(std::make_shared<const ChangeEntry>(std::move(*e)));
      }
    }
    b->through = events->back().seq();
    return R::kOk;
  }

  // The skip of entry `e` (the partial resume applies to seq done_seq + 1).
  int64_t SkipFor(const ChangeEntry& e) const {
    return e.seq == pos.done_seq + 1 ? pos.partial : -1;
  }

  Hub& hub_;
  storage::Journal& journal_;
  ClientSlot* slot_;
  Position pos;
  size_t batch_;
};

StartPoint StartFor(storage::Journal& journal, const std::optional<Position>& resume) {
  const storage::JournalStats st = journal.Stats();
  StartPoint sp;
  if (!resume) {
    sp.pos = {st.last_seq, -1};
    sp.hello = true;
    return sp;
  }
  sp.pos = *resume;
  const uint64_t id_seq = resume->partial >= 0 ? resume->done_seq + 1 : resume->done_seq;
  const std::string given = FormatPosition(*resume);
  if (id_seq > st.last_seq) {
    sp.reset = "id " + given + " is beyond the newest change of this gateway (" +
               std::to_string(st.last_seq) +
               "): its journal was replaced; resync from GET /v1/stock and GET /v1/prices, then "
               "follow this stream";
    sp.pos = {st.last_seq, -1};
  } else if (st.first_seq == 0 ? resume->done_seq < st.last_seq
                               : resume->done_seq + 1 < st.first_seq) {
    const uint64_t to = st.first_seq == 0 ? st.last_seq : st.first_seq - 1;
    sp.reset = "the changes after " + given +
               " are no longer in the journal (pruned by retention; the oldest kept is " +
               std::to_string(to + 1) +
               "): resync from GET /v1/stock and GET /v1/prices, then follow this stream";
    sp.pos = {to, -1};
  }
  return sp;
}

std::string ResetData(const std::string& message, uint64_t to) {
  return "{\"reason\":\"resync\",\"message\":" + JsonString(message) +
         ",\"resume_from\":" + JsonString(std::to_string(to)) + "}";
}

}  // namespace

// ---------------------------------------------------------------------- feed

struct ChangesFeed::Params {
  Filter filter;
  std::optional<Position> resume;
  bool json = false;
  int wait_s = kDefaultWaitS;
  std::string who;  // for the log: device or client address
};

struct ChangesFeed::Stream {
  Params p;
  std::shared_ptr<ClientSlot> slot;
  StartPoint start;
  std::atomic<bool> released{false};
};

ChangesFeed::ChangesFeed(storage::Journal& journal, const ChangesFeedOptions& options,
                         int retry_after_s, int io_timeout_s)
    : journal_(journal),
      options_(options),
      retry_after_s_(retry_after_s),
      io_timeout_s_(io_timeout_s),
      hub_(journal, options) {}

ChangesFeed::~ChangesFeed() { Stop(); }

FeedStats ChangesFeed::Stats() const {
  FeedStats s;
  s.clients = static_cast<uint64_t>(std::max(0, clients_.load()));
  s.clients_total = clients_total_.load();
  s.rejected_busy = rejected_busy_.load();
  s.long_polls = long_polls_.load();
  s.changes_sent = changes_sent_.load();
  s.resets = resets_.load();
  s.drops_by_reason = {{"slow_client", hub_.slow_marked()},
                       {"write_timeout", drops_write_timeout_.load()}};
  const Hub::RingView r = hub_.ring();
  s.ring_entries = r.entries;
  s.ring_bytes = r.bytes;
  s.head_seq = r.head_seq;
  return s;
}

bool ChangesFeed::ParseParams(const httplib::Request& req, httplib::Response& res, Params* p) {
  const auto bad = [&](const std::string& message, const std::string& field) {
    SetError(res, 400, "invalid_argument", message, field);
    return false;
  };
  for (const auto& [key, value] : req.params) {
    if (key != "after" && key != "kinds" && key != "skus" && key != "format" && key != "wait") {
      const bool printable = key.size() <= 64 && PrintableAscii(key);
      return bad("unknown query parameter \"" + (printable ? key : std::string("?")) +
                     "\": /v1/changes takes after, kinds, skus, format and wait",
                 printable ? key : "");
    }
    if (req.get_param_value_count(key) > 1) {
      return bad("query parameter " + key + " is given more than once", key);
    }
  }
  if (req.has_param("kinds")) {
    p->filter.price = p->filter.stock = p->filter.alert = false;
    const std::string kinds = req.get_param_value("kinds");
    for (std::string_view k : SplitComma(kinds)) {
      k = Trim(k);
      if (k == "price") {
        p->filter.price = true;
      } else if (k == "stock") {
        p->filter.stock = true;
      } else if (k == "alert") {
        p->filter.alert = true;
      } else {
        const std::string shown(k.substr(0, 32));
        return bad("kinds must list price, stock and/or alert, comma-separated (got \"" +
                       (PrintableAscii(shown) ? shown : std::string("?")) + "\")",
                   "kinds");
      }
    }
  }
  if (req.has_param("skus")) {
    const std::string skus = req.get_param_value("skus");
    const auto list = SplitComma(skus);
    if (list.size() > kMaxSkus) {
      return bad("skus lists " + std::to_string(list.size()) + " skus; at most " +
                     std::to_string(kMaxSkus) + " per client",
                 "skus");
    }
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string_view s = Trim(list[i]);
      if (s.empty() || s.size() > 64 || !PrintableAscii(s)) {
        return bad("skus[" + std::to_string(i) +
                       "] is not a sku: every sku must be 1..64 printable ASCII characters, "
                       "comma-separated",
                   "skus[" + std::to_string(i) + "]");
      }
      p->filter.skus.emplace(s);
    }
    p->filter.has_skus = true;
  }
  // Last-Event-ID (what an EventSource sends when it reconnects) wins over after.
  const std::string last_event_id(Trim(req.get_header_value("Last-Event-ID")));
  if (!last_event_id.empty()) {
    p->resume = ParsePosition(last_event_id);
    if (!p->resume) {
      return bad("the Last-Event-ID header must be an id this feed sent (a journal seq such as "
                 "1234, or 1234.5)",
                 "Last-Event-ID");
    }
  } else if (req.has_param("after")) {
    p->resume = ParsePosition(req.get_param_value("after"));
    if (!p->resume) {
      return bad("after must be an id this feed sent (a journal seq such as 1234, or 1234.5)",
                 "after");
    }
  }
  if (req.has_param("format")) {
    const std::string f = req.get_param_value("format");
    if (f == "json") {
      p->json = true;
    } else if (f != "sse") {
      return bad("format must be sse (Server-Sent Events) or json (long poll)", "format");
    }
  } else {
    const std::string accept = req.get_header_value("Accept");
    p->json = accept.find("application/json") != std::string::npos &&
              accept.find("text/event-stream") == std::string::npos;
  }
  if (req.has_param("wait")) {
    uint64_t w = 0;
    if (!ParseU64(req.get_param_value("wait"), &w) || w > static_cast<uint64_t>(kMaxWaitS)) {
      return bad("wait must be a number of seconds from 0 to " + std::to_string(kMaxWaitS), "wait");
    }
    p->wait_s = static_cast<int>(w);
  }
  return true;
}

void ChangesFeed::Serve(const httplib::Request& req, httplib::Response& res) {
  Params p;
  if (!ParseParams(req, res, &p)) return;
  const auto busy = [&](const std::string& message) {
    res.set_header("Retry-After", std::to_string(retry_after_s_));
    SetError(res, 503, "unavailable", message);
  };
  if (hub_.stopping()) return busy("the gateway is shutting down: reconnect after Retry-After");
  if (options_.max_clients <= 0) {
    return busy("the changes feed is turned off on this gateway (max_clients = 0)");
  }
  int n = clients_.load();
  do {
    if (n >= options_.max_clients) {
      rejected_busy_.fetch_add(1, std::memory_order_relaxed);
      return busy("too many changes feed clients: " + std::to_string(options_.max_clients) +
                  " are connected (the limit): reconnect after Retry-After seconds");
    }
  } while (!clients_.compare_exchange_weak(n, n + 1));
  clients_total_.fetch_add(1, std::memory_order_relaxed);
  p.who = req.remote_addr;
  if (p.json) {
    ServeLongPoll(req, res, std::move(p));
    clients_.fetch_sub(1);
    return;
  }
  ServeStream(res, std::move(p));
}

void ChangesFeed::ServeLongPoll(const httplib::Request&, httplib::Response& res, Params p) {
  long_polls_.fetch_add(1, std::memory_order_relaxed);
  auto slot = hub_.Register(p.filter);
  StartPoint sp = StartFor(journal_, p.resume);
  const size_t batch = std::clamp<size_t>(options_.max_lag / 2, 1, 256);
  Cursor cur(hub_, journal_, slot.get(), sp.pos, batch);
  OnHandCache on_hand(journal_);
  std::string changes;
  bool first = true;
  size_t n = 0;
  const auto add_reset = [&](const std::string& message, uint64_t to) {
    if (!first) changes += ',';
    first = false;
    changes += "{\"id\":" + JsonString(std::to_string(to)) + ",\"kind\":\"reset\",\"data\":" +
               ResetData(message, to) + "}";
    resets_.fetch_add(1, std::memory_order_relaxed);
  };
  if (sp.reset) add_reset(*sp.reset, sp.pos.done_seq);
  const auto deadline = Clock::now() + std::chrono::seconds(p.wait_s);
  Status error;
  bool failed = false;
  for (;;) {
    Cursor::Batch b;
    slot->pos_seq.store(cur.pos.done_seq);
    // Once there is something to answer, take only what is there already.
    const Cursor::R r = cur.Fetch(first ? deadline : Clock::now(), &b, &error);
    if (r == Cursor::R::kError) {
      failed = true;
      break;
    }
    if (r == Cursor::R::kTimeout && b.through > cur.pos.done_seq) cur.pos = {b.through, -1};
    if (r != Cursor::R::kOk) break;
    if (b.reset) add_reset(*b.reset, b.reset_to);
    bool full = false;
    for (const EntryPtr& e : b.entries) {
      n += RenderJson(*e, p.filter, cur.SkipFor(*e), on_hand, &changes, &first);
      cur.pos = {e->seq, -1};
      if (n >= kMaxLongPollChanges) {
        full = true;
        break;
      }
    }
    if (full) break;
    cur.pos = {b.through, -1};
    if (Clock::now() >= deadline) break;
  }
  hub_.Unregister(slot);
  if (failed) {
    res.set_header("Retry-After", std::to_string(retry_after_s_));
    SetError(res, 503, "unavailable",
             "cannot read the journal (" + error.message() + "): retry after Retry-After seconds");
    return;
  }
  changes_sent_.fetch_add(n, std::memory_order_relaxed);
  res.set_header("Cache-Control", "no-store");
  res.set_content("{\"changes\":[" + changes + "],\"last_id\":" +
                      JsonString(FormatPosition(cur.pos)) + "}",
                  kJson);
}

void ChangesFeed::ServeStream(httplib::Response& res, Params p) {
  auto s = std::make_shared<Stream>();
  s->slot = hub_.Register(p.filter);
  s->start = StartFor(journal_, p.resume);
  s->p = std::move(p);
  res.status = 200;
  res.set_header("Cache-Control", "no-store");
  res.set_header("X-Accel-Buffering", "no");
  // A stream never carries a second request: once it ends, the connection
  // closes (RunStreamOn).
  res.set_header("Connection", "close");
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, s](size_t, httplib::DataSink& sink) {
        return RunStreamOn(*s, sink);
      },
      [this, s](bool) {
        if (s->released.exchange(true)) return;
        hub_.Unregister(s->slot);
        clients_.fetch_sub(1);
      });
}

bool ChangesFeed::RunStreamOn(Stream& s, httplib::DataSink& sink) {
  const auto io_timeout = std::chrono::seconds(io_timeout_s_);
  bool timed_out = false;
  std::string last_id;
  const auto write = [&](const std::string& text) {
    const auto t0 = Clock::now();
    if (sink.write(text.data(), text.size())) return true;
    // 0.11's DataSink says only that the write failed: a write that gave up
    // after io_timeout is a stuck client, a quick failure a closed socket.
    timed_out = Clock::now() - t0 >= io_timeout - std::chrono::milliseconds(200);
    return false;
  };
  const auto finish = [&](bool ok) {
    int reason = s.slot->drop.load();
    if (reason == kNoDrop && timed_out) reason = kWriteTimeout;
    if (reason == kWriteTimeout) drops_write_timeout_.fetch_add(1, std::memory_order_relaxed);
    if (reason != kNoDrop) {
      spdlog::info("changes feed: dropped the client at {} ({}); it may resume with "
                   "Last-Event-ID {}",
                   s.p.who, reason == kSlowClient ? "slow_client" : "write_timeout", last_id);
    }
    // A stream never carries a second request: after the last chunk, false
    // makes httplib close the connection at once (0.11 keeps it open for
    // the next request otherwise, whatever the Connection header says, and
    // Stop() would wait for it to idle out).
    if (ok) sink.done();
    return false;
  };

  std::string out = "retry: " + std::to_string(options_.retry.count()) + "\n\n";
  const StartPoint& sp = s.start;
  if (sp.hello) {
    last_id = std::to_string(sp.pos.done_seq);
    out += "id: " + last_id + "\nevent: hello\ndata: {\"last_id\":" + JsonString(last_id) +
           ",\"message\":\"live changes from here on; after a disconnect, reconnect with "
           "Last-Event-ID\"}\n\n";
  } else if (sp.reset) {
    last_id = std::to_string(sp.pos.done_seq);
    out += "id: " + last_id + "\nevent: reset\ndata: " + ResetData(*sp.reset, sp.pos.done_seq) +
           "\n\n";
    resets_.fetch_add(1, std::memory_order_relaxed);
  } else {
    last_id = FormatPosition(sp.pos);
  }
  Position last_pos = sp.pos;  // what last_id says
  s.slot->pos_seq.store(sp.pos.done_seq);
  if (!write(out)) return finish(false);

  const size_t batch = std::clamp<size_t>(options_.max_lag / 2, 1, 256);
  Cursor cur(hub_, journal_, s.slot.get(), sp.pos, batch);
  OnHandCache on_hand(journal_);
  auto next_keep_alive = Clock::now() + options_.keep_alive;
  Cursor::Batch b;
  Status error;
  for (;;) {
    if (s.slot->drop.load() != kNoDrop) break;
    const Cursor::R r = cur.Fetch(next_keep_alive, &b, &error);
    if (r == Cursor::R::kStopped) return finish(true);
    if (r == Cursor::R::kError) {
      spdlog::warn("changes feed: cannot read the journal for the client at {}: {} (closing its "
                   "stream; it reconnects)",
                   s.p.who, error.message());
      return finish(true);
    }
    if (r == Cursor::R::kTimeout) {
      if (b.through > cur.pos.done_seq) {
        cur.pos = {b.through, -1};
        s.slot->pos_seq.store(b.through);
      }
      out = ": keep-alive\n";
      // Seqs without a change for this client move its id on too (an id
      // line without data sets the id and dispatches no event).
      if (cur.pos.partial < 0 && cur.pos.done_seq > last_pos.done_seq) {
        last_id = std::to_string(cur.pos.done_seq);
        last_pos = cur.pos;
        out += "id: " + last_id + "\n";
      }
      out += "\n";
      if (!write(out)) return finish(false);
      next_keep_alive = Clock::now() + options_.keep_alive;
      continue;
    }
    out.clear();
    if (b.reset) {
      last_id = std::to_string(b.reset_to);
      last_pos = {b.reset_to, -1};
      out += "id: " + last_id + "\nevent: reset\ndata: " + ResetData(*b.reset, b.reset_to) +
             "\n\n";
      resets_.fetch_add(1, std::memory_order_relaxed);
    }
    size_t pending = 0;  // changes in `out`
    const auto flush = [&] {
      // Counted before the write: a client may read them before it returns.
      changes_sent_.fetch_add(pending, std::memory_order_relaxed);
      pending = 0;
      const bool ok = write(out);
      out.clear();
      next_keep_alive = Clock::now() + options_.keep_alive;
      return ok;
    };
    std::string id;
    for (const EntryPtr& e : b.entries) {
      const size_t k = RenderSse(*e, s.p.filter, cur.SkipFor(*e), on_hand, &out, &id);
      cur.pos = {e->seq, -1};
      if (k > 0) {
        pending += k;
        last_id = id;
        last_pos = cur.pos;
      }
      if (out.size() >= kFlushBytes) {
        if (!flush()) return finish(false);
        s.slot->pos_seq.store(cur.pos.done_seq);
        if (s.slot->drop.load() != kNoDrop) break;
      }
    }
    on_hand.Clear();
    if (!out.empty() && !flush()) return finish(false);
    if (s.slot->drop.load() != kNoDrop) break;
    cur.pos = {b.through, -1};
    s.slot->pos_seq.store(b.through);
  }
  // Dropped as a slow client: say so when the socket takes it, then close.
  out = "event: drop\ndata: {\"reason\":\"slow_client\",\"message\":" +
        JsonString("this client fell more than " + std::to_string(options_.max_lag) +
                   " changes behind (it reads too slowly): reconnect and resume with "
                   "Last-Event-ID: " +
                   last_id) +
        ",\"last_id\":" + JsonString(last_id) + "}\n\n";
  if (!write(out)) return finish(false);
  return finish(true);
}

}  // namespace storegw::devices::feed
