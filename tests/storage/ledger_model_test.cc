// Model-based test of the journal and its stock ledger: thousands of random
// operations (every body type, duplicates, invalid events, counts, snapshots
// early, late, stale and foreign) checked after every one against a small
// in-memory model of the journal's rules (dense seqs, duplicates answered
// with their original seq, a reused event_id with another body refusing the
// whole call, atomic batches) and the ledger's (deltas per body,
// counts, snapshot rebasing, alerts).
//
// The model keeps the per-seq deltas itself and computes
//   on_hand(sku) = base_qty + sum(deltas of sku with seq > as_of_seq)
// and predicts every journaled event, including the gateway's alerts.
//
// STOREGW_MODEL_SEED and STOREGW_MODEL_OPS override the seed and the number
// of operations; the seed is printed with any failure.
#include <doctest/doctest.h>
#include <google/protobuf/util/message_differencer.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "test_util.h"

namespace storegw::storage {
namespace {

using namespace testing;  // NOLINT
using google::protobuf::util::MessageDifferencer;

const std::vector<std::string> kSkus = {"apple", "bread", "cheese", "dates", "eggs"};
const std::string kUnusedSku = "zucchini";  // never mentioned: must stay unknown

// The alert options the runner opens its journal with (the model applies
// the same rules): count mismatch above 4, low stock under 2 by default,
// under 6 for eggs, never for apple; snapshots in chunks of 2 lines.
constexpr int64_t kMismatchThreshold = 4;
constexpr int64_t kLowDefault = 2;
const std::map<std::string, int64_t> kLowThresholds = {{"eggs", 6}, {"apple", -1}};
constexpr size_t kChunkLines = 2;

// What the model expects at one seq.
struct Expect {
  enum class Kind { kDevice, kSnapshot, kOversell, kRejected, kCountMismatch, kLowStock } kind;
  v1::Event event;             // kDevice
  v1::StockSnapshot snapshot;  // kSnapshot (one chunk)
  std::string sku;             // alerts
  int64_t on_hand = 0;         // alerts
  uint64_t cause = 0;          // alerts
};

class Model {
 public:
  struct Sku {
    bool known = false;
    int64_t base = 0;
    uint64_t as_of = 0;
    uint64_t version = 0;
    bool oversold = false;
    bool low = false;
    bool tracked = false;  // has a baseline: a snapshot line, a count or a receipt
    std::vector<std::pair<uint64_t, int64_t>> deltas;  // (seq, delta), seq ascending
    int64_t on_hand = 0;                               // cached; see Recompute()
  };

  uint64_t last = 0;
  std::map<std::string, Sku> skus;
  std::map<std::string, uint64_t> ids;  // event_id -> seq
  std::map<std::string, v1::Event> journaled;  // event_id -> the event as journaled
  std::vector<Expect> pending;          // what the last operation journaled

  int64_t Recompute(const Sku& s) const {
    int64_t v = s.base;
    for (const auto& [seq, d] : s.deltas) {
      if (seq > s.as_of) v += d;
    }
    return v;
  }

  // Applies one new device event; returns its seq.
  uint64_t ApplyEvent(const v1::Event& e) {
    const uint64_t seq = ++last;
    ids[e.event_id()] = seq;
    journaled[e.event_id()] = e;
    pending.push_back({Expect::Kind::kDevice, e, {}, {}, 0, 0});
    std::vector<std::pair<std::string, int64_t>> deltas;
    if (e.has_count()) {
      deltas.emplace_back(e.count().sku(), e.count().qty() - skus[e.count().sku()].on_hand);
    } else {
      deltas = ModelDeltas(e);
    }
    std::vector<std::string> touched;
    for (const auto& [sku, d] : deltas) {
      Sku& s = skus[sku];
      s.known = true;
      s.deltas.emplace_back(seq, d);
      s.on_hand += d;
      if (std::find(touched.begin(), touched.end(), sku) == touched.end()) touched.push_back(sku);
    }
    // The first count of an untracked sku is its baseline, not a mismatch.
    if (e.has_count() && skus[e.count().sku()].tracked &&
        std::abs(deltas[0].second) > kMismatchThreshold) {
      ++last;
      pending.push_back(
          {Expect::Kind::kCountMismatch, {}, {}, e.count().sku(), e.count().qty(), seq});
    }
    if (e.has_count() || e.has_receipt()) {
      for (const auto& sku : touched) skus[sku].tracked = true;
    }
    for (const auto& sku : touched) StockAlerts(sku, seq);
    return seq;
  }

  struct SnapOutcome {
    SnapshotResult::Outcome outcome;
    uint64_t seq;
    size_t applied = 0, stale = 0;
  };

  SnapOutcome ApplySnapshot(const v1::StockSnapshot& snap, uint64_t epoch,
                            const std::string& store) {
    if (snap.epoch() != epoch || snap.store_id() != store || snap.as_of_seq() > last) {
      const uint64_t seq = ++last;
      Expect x{Expect::Kind::kRejected, {}, {}, {}, 0, 0};
      pending.push_back(x);
      return {SnapshotResult::Outcome::kRejected, seq};
    }
    SnapOutcome out{SnapshotResult::Outcome::kApplied, 0};
    // One stock_snapshot event per chunk of kChunkLines lines, each
    // followed by the alerts its lines raise.
    for (int begin = 0; begin < snap.lines_size(); begin += static_cast<int>(kChunkLines)) {
      const int end = std::min(snap.lines_size(), begin + static_cast<int>(kChunkLines));
      v1::StockSnapshot part = snap;
      part.clear_lines();
      for (int i = begin; i < end; ++i) *part.add_lines() = snap.lines(i);
      out.seq = ++last;
      pending.push_back({Expect::Kind::kSnapshot, {}, part, {}, 0, 0});
      for (const auto& l : part.lines()) {
        Sku& s = skus[l.sku()];
        // Stale: older than the sku's current base (HQ versions only grow in
        // this test, so an equal as_of_seq is never stale here).
        if (s.known && snap.as_of_seq() < s.as_of) {
          ++out.stale;
          continue;
        }
        s.known = true;
        s.tracked = true;
        s.base = l.qty();
        s.as_of = snap.as_of_seq();
        s.version = snap.hq_version();
        s.on_hand = Recompute(s);
        ++out.applied;
        StockAlerts(l.sku(), out.seq);
      }
    }
    if (out.applied == 0) out.outcome = SnapshotResult::Outcome::kStale;
    return out;
  }

 private:
  static std::vector<std::pair<std::string, int64_t>> ModelDeltas(const v1::Event& e) {
    std::vector<std::pair<std::string, int64_t>> out;
    if (e.has_sale()) {
      for (const auto& l : e.sale().lines()) out.emplace_back(l.sku(), -l.qty());
    } else if (e.has_sale_return()) {
      for (const auto& l : e.sale_return().lines()) out.emplace_back(l.sku(), l.qty());
    } else if (e.has_receipt()) {
      for (const auto& l : e.receipt().lines()) out.emplace_back(l.sku(), l.qty());
    } else if (e.has_adjustment()) {
      for (const auto& l : e.adjustment().lines()) out.emplace_back(l.sku(), l.qty());
    } else if (e.has_transfer()) {
      const int64_t sign = e.transfer().direction() == v1::Transfer::OUT ? -1 : 1;
      for (const auto& l : e.transfer().lines()) out.emplace_back(l.sku(), sign * l.qty());
    } else if (e.has_pickup()) {
      for (const auto& l : e.pickup().lines()) out.emplace_back(l.sku(), -l.qty());
    }
    // reservation, sensor: no stock effect
    return out;
  }

  // Oversell: raised once when on_hand goes below zero, again only after
  // it was back at or above zero. Low stock: the same under the sku's
  // threshold. Oversell first. An untracked sku raises neither.
  void StockAlerts(const std::string& sku, uint64_t cause) {
    Sku& s = skus[sku];
    if (s.on_hand < 0 && !s.oversold && s.tracked) {
      s.oversold = true;
      ++last;
      pending.push_back({Expect::Kind::kOversell, {}, {}, sku, s.on_hand, cause});
    } else if (s.on_hand >= 0 && s.oversold) {
      s.oversold = false;
    }
    auto it = kLowThresholds.find(sku);
    const int64_t threshold = it != kLowThresholds.end() ? it->second : kLowDefault;
    const bool below = threshold >= 0 && s.on_hand < threshold;
    if (below && !s.low && s.tracked) {
      s.low = true;
      ++last;
      pending.push_back({Expect::Kind::kLowStock, {}, {}, sku, s.on_hand, cause});
    } else if (!below && s.low) {
      s.low = false;
    }
  }
};

class Runner {
 public:
  Runner(uint64_t seed, const fs::path& dir) : rng_(seed), dir_(dir) {
    opts_ = Options(dir);
    opts_.now_us = clock_.fn();
    opts_.count_mismatch_threshold = kMismatchThreshold;
    opts_.low_stock_default = kLowDefault;
    opts_.low_stock_thresholds = kLowThresholds;
    opts_.snapshot_chunk_lines = kChunkLines;
    j_ = MustOpen(opts_);
    epoch_ = j_->epoch();
  }

  // One random operation; returns a description of the first mismatch with
  // the model, or "" when everything agrees.
  std::string Step(int op) {
    op_ = op;
    model_.pending.clear();
    clock_.Advance(std::chrono::milliseconds(1 + Uniform(0, 50)));
    const int r = Uniform(0, 99);
    std::string err;
    if (r < 62) {
      err = AppendBatch();
    } else if (r < 90) {
      err = ApplySnapshot();
    } else {
      err = AppendBatch(/*force_invalid=*/true);
    }
    if (!err.empty()) return err;
    return CheckState();
  }

  std::string Reopen() {
    j_.reset();
    auto r = Journal::Open(opts_);
    if (!r.ok()) return "reopen: " + r.status().ToString();
    j_ = std::move(r).value();
    if (j_->epoch() != epoch_) return "epoch changed on reopen";
    return CheckState();
  }

  Journal& journal() { return *j_; }
  const Model& model() const { return model_; }
  std::map<std::string, int> counts;

 private:
  int Uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  bool Chance(int percent) { return Uniform(0, 99) < percent; }
  const std::string& AnySku() { return kSkus[static_cast<size_t>(Uniform(0, 4))]; }

  std::string NewId() { return "ev-" + std::to_string(next_id_++); }

  // 1..3 skus; mostly distinct, sometimes one repeated.
  std::vector<std::string> LineSkus() {
    std::vector<std::string> v = kSkus;
    std::shuffle(v.begin(), v.end(), rng_);
    v.resize(static_cast<size_t>(Uniform(1, 3)));
    if (Chance(10)) v.push_back(v.front());
    return v;
  }

  v1::Event RandomEvent(const std::string& id) {
    v1::Event e = Base(id);
    e.set_device_id("dev-" + std::to_string(Uniform(1, 4)));
    e.set_occurred_at(clock_.now() - Uniform(0, 1000000));
    const int kind = Uniform(0, 99);
    if (kind < 30) {
      auto* s = e.mutable_sale();
      s->set_basket_id("b" + id);
      for (const auto& sku : LineSkus()) {
        auto* l = s->add_lines();
        l->set_sku(sku);
        l->set_qty(Uniform(1, 4));
        l->set_unit_price(Uniform(0, 999));
        l->set_currency("EUR");
      }
      counts["sale"]++;
    } else if (kind < 35) {
      auto* s = e.mutable_sale_return();
      for (const auto& sku : LineSkus()) {
        auto* l = s->add_lines();
        l->set_sku(sku);
        l->set_qty(Uniform(1, 3));
        l->set_unit_price(Uniform(0, 999));
        l->set_currency("GBP");
      }
      counts["sale_return"]++;
    } else if (kind < 48) {
      auto* r = e.mutable_receipt();
      for (const auto& sku : LineSkus()) {
        auto* l = r->add_lines();
        l->set_sku(sku);
        l->set_qty(Uniform(1, 10));
      }
      counts["receipt"]++;
    } else if (kind < 58) {
      auto* a = e.mutable_adjustment();
      for (const auto& sku : LineSkus()) {
        auto* l = a->add_lines();
        l->set_sku(sku);
        int q = Uniform(1, 5);
        l->set_qty(Chance(60) ? -q : q);
        l->set_reason(Chance(50) ? "shrink" : "found");
      }
      counts["adjustment"]++;
    } else if (kind < 66) {
      e.mutable_count()->set_sku(AnySku());
      e.mutable_count()->set_qty(Uniform(0, 15));
      counts["count"]++;
    } else if (kind < 74) {
      auto* t = e.mutable_transfer();
      t->set_direction(Chance(50) ? v1::Transfer::OUT : v1::Transfer::IN);
      t->set_other_store_id("store-0099");
      for (const auto& sku : LineSkus()) {
        auto* l = t->add_lines();
        l->set_sku(sku);
        l->set_qty(Uniform(1, 6));
      }
      counts["transfer"]++;
    } else if (kind < 80) {
      auto* r = e.mutable_reservation();
      r->set_order_id("o" + id);
      for (const auto& sku : LineSkus()) {
        auto* l = r->add_lines();
        l->set_sku(sku);
        l->set_qty(Uniform(1, 3));
      }
      counts["reservation"]++;
    } else if (kind < 92) {
      auto* p = e.mutable_pickup();
      p->set_order_id("o" + id);
      for (const auto& sku : LineSkus()) {
        auto* l = p->add_lines();
        l->set_sku(sku);
        l->set_qty(Uniform(1, 3));
      }
      counts["pickup"]++;
    } else {
      auto* s = e.mutable_sensor();
      s->set_sensor_id("fridge-" + std::to_string(Uniform(1, 3)));
      s->set_metric("temp_mc");
      s->set_value(Uniform(-20000, 9000));
      counts["sensor"]++;
    }
    return e;
  }

  // An invalid event and the field the journal must name.
  std::pair<v1::Event, std::string> InvalidEvent() {
    v1::Event e = RandomEvent(NewId());
    switch (Uniform(0, 7)) {
      case 0:
        e.clear_event_id();
        return {e, "event_id"};
      case 1: {
        v1::Event b = Base(NewId());
        return {b, "body"};
      }
      case 2:
        e = Sale(NewId(), {{"apple", 1}, {"", 1}});
        return {e, "sale.lines[1].sku"};
      case 3:
        e = Sale(NewId(), {{"apple", 0}});
        return {e, "sale.lines[0].qty"};
      case 4:
        e = Sale(NewId(), {{"apple", 1}});
        e.mutable_sale()->mutable_lines(0)->set_currency("Eur");
        return {e, "sale.lines[0].currency"};
      case 5:
        e = Base(NewId());
        e.mutable_alert()->set_kind(v1::Alert::OVERSELL);
        e.mutable_alert()->set_sku("apple");
        return {e, "alert"};
      case 6:
        e = Count(NewId(), "apple", -1);
        return {e, "count.qty"};
      default:
        e = Receipt(NewId(), {{"bread", 0}});
        return {e, "receipt.lines[0].qty"};
    }
  }

  std::string AppendBatch(bool force_invalid = false) {
    const int n = Uniform(1, 5);
    std::vector<v1::Event> batch;
    std::optional<size_t> invalid_at;
    std::string invalid_field;
    for (int i = 0; i < n; ++i) {
      if (Chance(8) && !model_.ids.empty()) {
        // A retry of something journaled before: mostly the same event (a
        // duplicate), sometimes the same event_id with another body (a
        // conflict, which refuses the whole call).
        auto it = model_.journaled.begin();
        std::advance(it, Uniform(0, static_cast<int>(std::min<size_t>(model_.journaled.size(),
                                                                      1000)) -
                                        1));
        if (Chance(4)) {
          batch.push_back(RandomEvent(it->first));
          counts["conflict"]++;
        } else {
          batch.push_back(it->second);
          counts["duplicate"]++;
        }
      } else if (Chance(5) && !batch.empty()) {
        const v1::Event& earlier = batch[static_cast<size_t>(Uniform(0, i - 1))];
        if (Chance(4)) {
          batch.push_back(RandomEvent(earlier.event_id()));
          counts["conflict_in_call"]++;
        } else {
          batch.push_back(v1::Event(earlier));
          counts["duplicate_in_call"]++;
        }
      } else {
        batch.push_back(RandomEvent(NewId()));
      }
    }
    if (force_invalid) {
      auto [e, field] = InvalidEvent();
      invalid_at = static_cast<size_t>(Uniform(0, n));
      batch.insert(batch.begin() + static_cast<long>(*invalid_at), e);
      invalid_field = "events[" + std::to_string(*invalid_at) + "]." + field;
      counts["invalid"]++;
    }

    const uint64_t last_before = model_.last;
    auto r = j_->Append(batch);
    if (invalid_at) {
      if (r.ok()) return "an invalid batch was accepted (expected " + invalid_field + ")";
      if (r.status().code() != StatusCode::kInvalidArgument ||
          r.status().field() != invalid_field) {
        return "invalid batch: expected invalid_argument on " + invalid_field + ", got " +
               r.status().ToString();
      }
      return NewEventsMatch(last_before);
    }
    if (!r.ok()) return "Append: " + r.status().ToString();
    if (r->size() != batch.size())
      return "Append answered " + std::to_string(r->size()) + " results for " +
             std::to_string(batch.size());
    // Conflicts, by the model: an event_id journaled (or earlier in the
    // call) with a different body. Then nothing of the call lands.
    std::vector<bool> want_conflict(batch.size(), false);
    std::vector<uint64_t> conflict_seq(batch.size(), 0);
    bool any_conflict = false;
    std::map<std::string, size_t> first_in_call;
    for (size_t i = 0; i < batch.size(); ++i) {
      const std::string body = batch[i].SerializeAsString();
      auto [f, fresh] = first_in_call.emplace(batch[i].event_id(), i);
      if (!fresh) {
        if (batch[f->second].SerializeAsString() != body) {
          want_conflict[i] = true;
          auto m = model_.ids.find(batch[i].event_id());
          conflict_seq[i] = m == model_.ids.end() ? 0 : m->second;
        }
      } else if (auto m = model_.journaled.find(batch[i].event_id());
                 m != model_.journaled.end() && m->second.SerializeAsString() != body) {
        want_conflict[i] = true;
        conflict_seq[i] = model_.ids.at(batch[i].event_id());
      }
      any_conflict = any_conflict || want_conflict[i];
    }
    if (any_conflict) {
      for (size_t i = 0; i < batch.size(); ++i) {
        const AppendResult& got = (*r)[i];
        const uint64_t want_seq = want_conflict[i] ? conflict_seq[i] : 0;
        if (got.conflict != want_conflict[i] || got.seq != want_seq || got.duplicate) {
          std::ostringstream os;
          os << "result[" << i << "] of a conflicting call, " << batch[i].ShortDebugString()
             << ": got (seq " << got.seq << ", conflict=" << got.conflict
             << ", dup=" << got.duplicate << "), model says (seq " << want_seq
             << ", conflict=" << want_conflict[i] << ")";
          return os.str();
        }
      }
      counts["conflict_refused"]++;
      return NewEventsMatch(last_before);
    }
    for (size_t i = 0; i < batch.size(); ++i) {
      const auto& e = batch[i];
      uint64_t want_seq = 0;
      bool want_dup = true;
      if (auto it = model_.ids.find(e.event_id()); it != model_.ids.end()) {
        want_seq = it->second;
      } else {
        want_seq = model_.ApplyEvent(e);
        want_dup = false;
      }
      const AppendResult& got = (*r)[i];
      if (got.event_id != e.event_id() || got.seq != want_seq || got.duplicate != want_dup) {
        std::ostringstream os;
        os << "result[" << i << "] of " << e.ShortDebugString() << ": got (" << got.event_id << ", "
           << got.seq << ", dup=" << got.duplicate << "), model says (" << want_seq
           << ", dup=" << want_dup << ")";
        return os.str();
      }
    }
    return NewEventsMatch(last_before);
  }

  std::string ApplySnapshot() {
    v1::StockSnapshot s;
    s.set_store_id("store-0042");
    s.set_epoch(epoch_);
    s.set_hq_version(++hq_version_);
    std::vector<std::string> line_skus = kSkus;
    std::shuffle(line_skus.begin(), line_skus.end(), rng_);
    line_skus.resize(static_cast<size_t>(Uniform(1, 3)));

    uint64_t newest_base = 0;
    for (const auto& sku : line_skus) {
      auto it = model_.skus.find(sku);
      if (it != model_.skus.end()) newest_base = std::max(newest_base, it->second.as_of);
    }
    const int kind = Uniform(0, 99);
    uint64_t as_of = 0;
    if (kind < 25) {  // early: as of everything we have
      as_of = model_.last;
      counts["snapshot_early"]++;
    } else if (kind < 55) {  // late: in the past but not older than the bases
      as_of = newest_base +
              static_cast<uint64_t>(Uniform(0, static_cast<int>(model_.last - newest_base)));
      counts["snapshot_late"]++;
    } else if (kind < 80) {  // stale: older than every line's base, or than some
      auto base_of = [&](const std::string& sku) {
        auto it = model_.skus.find(sku);
        return it == model_.skus.end() ? uint64_t{0} : it->second.as_of;
      };
      std::sort(line_skus.begin(), line_skus.end(),
                [&](const auto& a, const auto& b) { return base_of(a) > base_of(b); });
      const uint64_t hi = base_of(line_skus.front()), lo = base_of(line_skus.back());
      if (Chance(50) && hi > lo) {
        // Mixed: stale for the newest base, fresh for the oldest.
        as_of = lo + static_cast<uint64_t>(Uniform(0, static_cast<int>(hi - lo) - 1));
      } else if (lo > 0) {
        as_of = static_cast<uint64_t>(Uniform(0, static_cast<int>(lo) - 1));
      } else {
        as_of = hi > 0 ? static_cast<uint64_t>(Uniform(0, static_cast<int>(hi) - 1)) : 0;
      }
      counts["snapshot_stale"]++;
    } else if (kind < 88) {
      s.set_epoch(epoch_ ^ (1ull << Uniform(0, 63)));
      as_of = model_.last;
      counts["snapshot_foreign_epoch"]++;
    } else if (kind < 93) {
      s.set_store_id("store-0043");
      as_of = model_.last;
      counts["snapshot_foreign_store"]++;
    } else {
      as_of = model_.last + static_cast<uint64_t>(Uniform(1, 3));
      counts["snapshot_future"]++;
    }
    s.set_as_of_seq(as_of);
    for (const auto& sku : line_skus) {
      auto* l = s.add_lines();
      l->set_sku(sku);
      l->set_qty(Uniform(0, 20));
    }

    const uint64_t last_before = model_.last;
    auto want = model_.ApplySnapshot(s, epoch_, "store-0042");
    auto r = j_->ApplySnapshot(s);
    if (!r.ok()) return "ApplySnapshot(" + s.ShortDebugString() + "): " + r.status().ToString();
    std::ostringstream os;
    if (r->outcome != want.outcome || r->seq != want.seq ||
        (want.outcome != SnapshotResult::Outcome::kRejected &&
         (r->skus_applied != want.applied || r->skus_stale != want.stale))) {
      os << "ApplySnapshot(" << s.ShortDebugString() << "): got outcome "
         << static_cast<int>(r->outcome) << " seq " << r->seq << " applied " << r->skus_applied
         << " stale " << r->skus_stale << "; model says outcome " << static_cast<int>(want.outcome)
         << " seq " << want.seq << " applied " << want.applied << " stale " << want.stale;
      return os.str();
    }
    counts["snapshot_stale_lines"] += static_cast<int>(want.stale);
    if (want.outcome != SnapshotResult::Outcome::kRejected && s.lines_size() > 2) {
      counts["snapshot_chunked"]++;
      if (r->chunks != 2 || r->chunk_micros.size() != 2) {
        return "a 3-line snapshot was applied in " + std::to_string(r->chunks) + " chunks, not 2";
      }
    }
    if (want.outcome == SnapshotResult::Outcome::kStale) counts["snapshot_all_stale"]++;
    if (want.outcome == SnapshotResult::Outcome::kApplied && want.stale > 0) {
      counts["snapshot_mixed"]++;
    }
    if (want.outcome != SnapshotResult::Outcome::kApplied && r->reason.empty()) {
      return "snapshot not applied without a reason";
    }
    return NewEventsMatch(last_before);
  }

  // The events journaled since `from` are exactly what the model expects.
  // Alerts raised by one cause are compared as a set (their order among
  // themselves is not part of the contract).
  std::string NewEventsMatch(uint64_t last_before) {
    auto got = j_->ReadEvents(last_before + 1, 1000, 1u << 26);
    if (!got.ok()) return "ReadEvents: " + got.status().ToString();
    const auto& want = model_.pending;
    if (got->size() != want.size()) {
      std::ostringstream os;
      os << "journaled " << got->size() << " events after seq " << last_before << ", model expects "
         << want.size() << ":";
      for (const auto& e : *got) os << "\n  got " << e.seq() << " " << e.event().ShortDebugString();
      return os.str();
    }
    auto sort_key = [](const v1::JournaledEvent& e) {
      return std::make_pair(e.event().alert().sku(), static_cast<int>(e.event().alert().kind()));
    };
    auto stock_alert = [](const v1::JournaledEvent& e) {
      return e.event().has_alert() && (e.event().alert().kind() == v1::Alert::OVERSELL ||
                                       e.event().alert().kind() == v1::Alert::LOW_STOCK);
    };
    auto expect_key = [](const Expect& x) {
      return std::make_pair(x.sku, x.kind == Expect::Kind::kOversell
                                       ? static_cast<int>(v1::Alert::OVERSELL)
                                       : static_cast<int>(v1::Alert::LOW_STOCK));
    };
    std::vector<v1::JournaledEvent> g = *got;
    std::vector<Expect> w = want;
    // Sort runs of oversell/low-stock alerts with one cause by (sku, kind),
    // on both sides.
    for (size_t i = 0; i < g.size();) {
      size_t k = i;
      while (k < g.size() && stock_alert(g[k]) &&
             g[k].event().alert().cause_seq() == g[i].event().alert().cause_seq()) {
        ++k;
      }
      if (k > i + 1) {
        std::sort(g.begin() + static_cast<long>(i), g.begin() + static_cast<long>(k),
                  [&](const auto& a, const auto& b) { return sort_key(a) < sort_key(b); });
        // seqs stay in place: sort only the bodies.
        for (size_t m = i; m < k; ++m) g[m].set_seq(got->at(m).seq());
      }
      i = k > i ? k : i + 1;
    }
    for (size_t i = 0; i < w.size();) {
      size_t k = i;
      while (k < w.size() &&
             (w[k].kind == Expect::Kind::kOversell || w[k].kind == Expect::Kind::kLowStock) &&
             w[k].cause == w[i].cause) {
        ++k;
      }
      if (k > i + 1) {
        std::sort(w.begin() + static_cast<long>(i), w.begin() + static_cast<long>(k),
                  [&](const Expect& a, const Expect& b) { return expect_key(a) < expect_key(b); });
      }
      i = k > i ? k : i + 1;
    }
    for (size_t i = 0; i < w.size(); ++i) {
      const auto& e = g[i];
      const auto& x = w[i];
      std::ostringstream os;
      os << "seq " << e.seq() << ": got " << e.event().ShortDebugString() << "; ";
      if (e.seq() != last_before + 1 + i) return os.str() + "seq not dense";
      if (e.epoch() != epoch_) return os.str() + "wrong epoch";
      if (e.recorded_at() != clock_.now()) return os.str() + "recorded_at is not the commit time";
      switch (x.kind) {
        case Expect::Kind::kDevice:
          if (!MessageDifferencer::Equals(e.event(), x.event)) {
            return os.str() + "expected device event " + x.event.ShortDebugString();
          }
          break;
        case Expect::Kind::kSnapshot:
          if (!e.event().has_stock_snapshot() ||
              !MessageDifferencer::Equals(e.event().stock_snapshot(), x.snapshot) ||
              e.event().device_id() != "gw-test") {
            return os.str() + "expected stock_snapshot " + x.snapshot.ShortDebugString();
          }
          break;
        case Expect::Kind::kRejected:
          if (!e.event().has_alert() || e.event().alert().kind() != v1::Alert::SNAPSHOT_REJECTED ||
              e.event().device_id() != "gw-test") {
            return os.str() + "expected a SNAPSHOT_REJECTED alert";
          }
          break;
        case Expect::Kind::kOversell: {
          const auto& a = e.event().alert();
          if (!e.event().has_alert() || a.kind() != v1::Alert::OVERSELL || a.sku() != x.sku ||
              a.on_hand() != x.on_hand || a.cause_seq() != x.cause ||
              e.event().device_id() != "gw-test") {
            os << "expected OVERSELL sku " << x.sku << " on_hand " << x.on_hand << " cause "
               << x.cause;
            return os.str();
          }
          counts["oversell_alert"]++;
          break;
        }
        case Expect::Kind::kCountMismatch:
        case Expect::Kind::kLowStock: {
          const auto kind =
              x.kind == Expect::Kind::kLowStock ? v1::Alert::LOW_STOCK : v1::Alert::COUNT_MISMATCH;
          const auto& a = e.event().alert();
          if (!e.event().has_alert() || a.kind() != kind || a.sku() != x.sku ||
              a.on_hand() != x.on_hand || a.cause_seq() != x.cause || a.message().empty() ||
              e.event().device_id() != "gw-test") {
            os << "expected " << v1::Alert::Kind_Name(kind) << " sku " << x.sku << " on_hand "
               << x.on_hand << " cause " << x.cause;
            return os.str();
          }
          counts[kind == v1::Alert::LOW_STOCK ? "low_stock_alert" : "count_mismatch_alert"]++;
          break;
        }
      }
    }
    return "";
  }

  std::string CheckState() {
    const JournalStats st = j_->Stats();
    if (st.last_seq != model_.last) {
      return "last_seq " + std::to_string(st.last_seq) + ", model " + std::to_string(model_.last);
    }
    for (const auto& sku : kSkus) {
      auto it = model_.skus.find(sku);
      auto row = j_->Stock(sku);
      if (it == model_.skus.end() || !it->second.known) {
        if (row.ok() || row.status().code() != StatusCode::kNotFound) {
          return "sku " + sku + " should be unknown, Stock() says " +
                 (row.ok() ? std::to_string(row->on_hand) : row.status().ToString());
        }
        continue;
      }
      if (!row.ok()) return "Stock(" + sku + "): " + row.status().ToString();
      const auto& m = it->second;
      // Self-check of the model's cached value against its own formula.
      if (op_ % 97 == 0 && m.on_hand != model_.Recompute(m)) return "model broken for " + sku;
      if (row->on_hand != m.on_hand || row->base_qty != m.base || row->as_of_seq != m.as_of ||
          row->hq_version != m.version) {
        std::ostringstream os;
        os << "sku " << sku << ": journal on_hand " << row->on_hand << " base " << row->base_qty
           << " as_of " << row->as_of_seq << " v" << row->hq_version << "; model on_hand "
           << m.on_hand << " base " << m.base << " as_of " << m.as_of << " v" << m.version;
        return os.str();
      }
    }
    auto unused = j_->Stock(kUnusedSku);
    if (unused.ok() || unused.status().code() != StatusCode::kNotFound) {
      return "a sku never mentioned has a stock row";
    }
    // Open oversell (low-stock) alerts are exactly the skus the model holds
    // oversold (low).
    auto alerts = j_->OpenAlerts(100000);
    if (!alerts.ok()) return "OpenAlerts: " + alerts.status().ToString();
    for (const auto kind : {v1::Alert::OVERSELL, v1::Alert::LOW_STOCK}) {
      std::vector<std::string> open, want;
      for (const auto& a : *alerts) {
        if (a.kind() == kind) open.push_back(a.sku());
      }
      for (const auto& [sku, s] : model_.skus) {
        if (kind == v1::Alert::OVERSELL ? s.oversold : s.low) want.push_back(sku);
      }
      std::sort(open.begin(), open.end());
      if (open != want) {
        std::string o, w;
        for (const auto& x : open) o += x + " ";
        for (const auto& x : want) w += x + " ";
        return "open " + v1::Alert::Kind_Name(kind) + " alerts [" + o + "], model [" + w + "]";
      }
    }
    return "";
  }

  std::mt19937_64 rng_;
  fs::path dir_;
  FakeClock clock_;
  JournalOptions opts_;
  std::unique_ptr<Journal> j_;
  uint64_t epoch_ = 0;
  Model model_;
  uint64_t next_id_ = 1;
  uint64_t hq_version_ = 0;
  int op_ = 0;
};

uint64_t EnvOr(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoull(v, nullptr, 10) : fallback;
}

TEST_CASE("model: 10,000 random operations agree with the ledger model") {
  const uint64_t seed = EnvOr("STOREGW_MODEL_SEED", 20241127);
  const int ops = static_cast<int>(EnvOr("STOREGW_MODEL_OPS", 10000));
  INFO("seed " << seed << " (set STOREGW_MODEL_SEED to replay)");
  // Ten thousand commits: on a RAM disk when there is one (this checks the
  // ledger's logic; the crash test checks durability on a real disk).
  TempDir dir(RamDirOrDefault());
  Runner run(seed, dir.path());
  for (int op = 1; op <= ops; ++op) {
    std::string err = run.Step(op);
    REQUIRE_MESSAGE(err.empty(), "seed " << seed << ", operation " << op << ": " << err);
    if (op % 2500 == 0) {
      err = run.Reopen();
      REQUIRE_MESSAGE(err.empty(), "seed " << seed << ", after reopen at " << op << ": " << err);
    }
    if (op % 1000 == 0) {
      auto v = VerifyJournal(dir.path());
      REQUIRE_MESSAGE(v.ok(), "seed " << seed << ", verify at operation " << op << ": "
                                      << v.status().ToString());
      CHECK(v->full_replay);
      CHECK(v->last_seq == run.model().last);
    }
  }
  // Every kind of operation really happened.
  std::ostringstream mix;
  for (const auto& [k, n] : run.counts) mix << k << "=" << n << " ";
  MESSAGE("seed " << seed << ", " << ops << " operations, last_seq " << run.model().last << ": "
                  << mix.str());
  if (ops >= 10000) {
    for (const char* k : {"sale",
                          "sale_return",
                          "receipt",
                          "adjustment",
                          "count",
                          "transfer",
                          "reservation",
                          "pickup",
                          "sensor",
                          "duplicate",
                          "duplicate_in_call",
                          "conflict",
                          "conflict_refused",
                          "invalid",
                          "snapshot_early",
                          "snapshot_late",
                          "snapshot_stale",
                          "snapshot_foreign_epoch",
                          "snapshot_foreign_store",
                          "snapshot_future",
                          "snapshot_stale_lines",
                          "snapshot_all_stale",
                          "snapshot_mixed",
                          "snapshot_chunked",
                          "oversell_alert",
                          "count_mismatch_alert",
                          "low_stock_alert"}) {
      CHECK_MESSAGE(run.counts[k] > 50, std::string(k)
                                            << " happened only " << run.counts[k] << " times");
    }
  }
}

}  // namespace
}  // namespace storegw::storage
