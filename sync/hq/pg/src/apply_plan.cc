#include "apply_plan.h"

#include <google/protobuf/descriptor.h>

#include <algorithm>
#include <limits>
#include <set>

namespace storegw::hq::pg {
namespace {

constexpr uint64_t kMaxSeq = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());

bool HasNul(const std::string& s) {
  return s.find('\0') != std::string::npos;
}

std::string KeyName(const EpochKey& k) {
  return "store " + k.store_id + " gateway " + k.gateway_id + " epoch " + std::to_string(k.epoch);
}

// [r] minus [1, applied] minus `pending`: the parts not stored yet.
Ranges Missing(Range r, uint64_t applied, const Ranges& pending) {
  Ranges out;
  if (r.first <= applied) r.first = applied + 1;
  if (r.first > r.last) return out;
  uint64_t next = r.first;
  for (const Range& p : pending) {
    if (p.last < next) continue;
    if (p.first > r.last) break;
    if (p.first > next) out.push_back({next, p.first - 1});
    if (p.last >= r.last) return out;
    next = p.last + 1;
  }
  if (next <= r.last) out.push_back({next, r.last});
  return out;
}

// [r] minus `parts` (sorted, inside r): the complement.
Ranges Complement(Range r, const Ranges& parts) {
  Ranges out;
  uint64_t next = r.first;
  for (const Range& p : parts) {
    if (p.first > next) out.push_back({next, p.first - 1});
    next = p.last + 1;
  }
  if (next <= r.last) out.push_back({next, r.last});
  return out;
}

uint64_t Count(const Ranges& rs) {
  uint64_t n = 0;
  for (const Range& r : rs) n += r.last - r.first + 1;
  return n;
}

}  // namespace

void AddRange(Ranges* set, Range r) {
  auto it = std::lower_bound(set->begin(), set->end(), r,
                             [](const Range& a, const Range& b) { return a.first < b.first; });
  it = set->insert(it, r);
  // Merge with the previous and the next range when adjacent.
  if (it != set->begin()) {
    auto prev = it - 1;
    if (prev->last + 1 == it->first) {
      prev->last = it->last;
      it = set->erase(it) - 1;
    }
  }
  if (it + 1 != set->end() && it->last + 1 == (it + 1)->first) {
    it->last = (it + 1)->last;
    set->erase(it + 1);
  }
}

void AdvancePrefix(uint64_t* applied, Ranges* set) {
  size_t n = 0;
  while (n < set->size() && (*set)[n].first <= *applied + 1) {
    *applied = std::max(*applied, (*set)[n].last);
    ++n;
  }
  set->erase(set->begin(), set->begin() + static_cast<std::ptrdiff_t>(n));
}

const std::string& EventKind(const v1::Event& e) {
  static const std::string kNone;
  const auto* oneof = v1::Event::descriptor()->FindOneofByName("body");
  const auto* f = e.GetReflection()->GetOneofFieldDescriptor(e, oneof);
  return f ? f->name() : kNone;
}

std::optional<std::pair<RefuseReason, std::string>> CheckBatchShape(const v1::EventBatch& b) {
  using R = std::pair<RefuseReason, std::string>;
  if (b.store_id().empty()) return R{RefuseReason::kInvalidEvent, "store_id is empty"};
  if (b.gateway_id().empty()) return R{RefuseReason::kInvalidEvent, "gateway_id is empty"};
  if (HasNul(b.gateway_id()) || HasNul(b.store_id())) {
    return R{RefuseReason::kInvalidEvent, "gateway_id or store_id holds a NUL character"};
  }
  if (b.first_seq() < 1 || b.last_seq() < b.first_seq()) {
    return R{RefuseReason::kNotContiguous, "seq range " + std::to_string(b.first_seq()) + ".." +
                                               std::to_string(b.last_seq()) +
                                               " is empty or starts at 0"};
  }
  if (b.last_seq() > kMaxSeq) {
    return R{RefuseReason::kInvalidEvent,
             "last_seq " + std::to_string(b.last_seq()) + " is beyond 2^63-1 (seq is a bigint)"};
  }
  if (static_cast<uint64_t>(b.events_size()) != b.last_seq() - b.first_seq() + 1) {
    return R{RefuseReason::kNotContiguous, "seq range " + std::to_string(b.first_seq()) + ".." +
                                               std::to_string(b.last_seq()) + " but " +
                                               std::to_string(b.events_size()) + " events"};
  }
  for (int i = 0; i < b.events_size(); ++i) {
    const auto& je = b.events(i);
    const uint64_t want = b.first_seq() + static_cast<uint64_t>(i);
    if (je.seq() != want) {
      return R{RefuseReason::kNotContiguous, "events[" + std::to_string(i) + "] has seq " +
                                                 std::to_string(je.seq()) + ", expected " +
                                                 std::to_string(want)};
    }
    if (je.recorded_at() == 0) {
      return R{RefuseReason::kInvalidEvent,
               "seq " + std::to_string(want) + ": recorded_at is unset"};
    }
    if (HasNul(je.event().event_id()) || HasNul(je.event().device_id())) {
      return R{RefuseReason::kInvalidEvent,
               "seq " + std::to_string(want) + ": event_id or device_id holds a NUL character"};
    }
  }
  return std::nullopt;
}

std::vector<std::pair<EpochKey, Range>> RepeatedRanges(
    std::span<const IncomingBatch> batches, const std::map<EpochKey, EpochState>& epochs) {
  std::map<EpochKey, Ranges> want;
  for (const IncomingBatch& in : batches) {
    const auto& b = in.batch;
    if (b.last_seq() < b.first_seq() || b.first_seq() == 0) continue;
    EpochKey key{b.store_id(), b.gateway_id(), b.epoch()};
    auto it = epochs.find(key);
    if (it == epochs.end() || !it->second.exists || it->second.superseded ||
        !it->second.other_store.empty()) {
      continue;
    }
    const EpochState& e = it->second;
    const Range r{b.first_seq(), b.last_seq()};
    const Ranges repeated = Complement(r, Missing(r, e.applied_seq, e.pending));
    Ranges& set = want[key];
    for (const Range& x : repeated) {
      // Merge into `set` (ranges of different batches may overlap).
      Ranges add = Missing(x, 0, set);
      for (const Range& a : add) AddRange(&set, a);
    }
  }
  std::vector<std::pair<EpochKey, Range>> out;
  for (auto& [key, set] : want) {
    for (const Range& r : set) out.emplace_back(key, r);
  }
  return out;
}

Plan BuildPlan(std::span<const IncomingBatch> batches,
               const std::vector<std::optional<std::pair<RefuseReason, std::string>>>& shape_errors,
               std::map<GatewayKey, GatewayState> gateways, std::map<EpochKey, EpochState> epochs,
               const StoredEvents& stored) {
  Plan plan;
  plan.outcomes.resize(batches.size());
  // Events added by earlier batches of this call: (range, batch index).
  std::map<EpochKey, std::vector<std::pair<Range, uint32_t>>> added;
  std::set<EpochKey> touched;                  // keys a stored batch touched
  std::map<EpochKey, Ranges> initial_pending;  // their pending ranges as locked
  std::set<GatewayKey> epoch_changed;          // gateways whose current epoch changed

  for (uint32_t i = 0; i < batches.size(); ++i) {
    const v1::EventBatch& b = batches[i].batch;
    BatchOutcome& out = plan.outcomes[i];
    if (i < shape_errors.size() && shape_errors[i]) {
      out.refused = shape_errors[i]->first;
      out.refuse_detail = shape_errors[i]->second;
      continue;
    }
    const EpochKey key{b.store_id(), b.gateway_id(), b.epoch()};
    GatewayState& g = gateways[key.gateway()];
    EpochState& e = epochs[key];
    if (!e.other_store.empty()) {
      out.refused = RefuseReason::kConflict;
      out.refuse_detail =
          "epoch " + std::to_string(key.epoch) + " of gateway " + key.gateway_id +
          " is already the journal of store " + e.other_store + "'s gateway " + key.gateway_id +
          ", not store " + key.store_id + "'s (a journal copied between stores?): batch seq " +
          std::to_string(b.first_seq()) + ".." + std::to_string(b.last_seq()) + " not stored";
      continue;
    }
    if (e.superseded) {
      out.refused = RefuseReason::kSupersededEpoch;
      out.refuse_detail = KeyName(key) + " was superseded by epoch " +
                          std::to_string(e.superseded_by) + ": batch seq " +
                          std::to_string(b.first_seq()) + ".." + std::to_string(b.last_seq()) +
                          " not stored";
      continue;
    }
    const Range r{b.first_seq(), b.last_seq()};
    const Ranges fresh = Missing(r, e.applied_seq, e.pending);
    const Ranges repeated = Complement(r, fresh);

    // A repeated seq must be the same event: same event_id, same recorded_at.
    std::string conflict;
    for (const Range& rep : repeated) {
      for (uint64_t s = rep.first; s <= rep.last && conflict.empty(); ++s) {
        const v1::JournaledEvent& mine = b.events(static_cast<int>(s - b.first_seq()));
        const std::string* their_id = nullptr;
        int64_t their_at = 0;
        for (const auto& [ar, bi] : added[key]) {
          if (s >= ar.first && s <= ar.last) {
            const auto& ob = batches[bi].batch;
            const auto& theirs = ob.events(static_cast<int>(s - ob.first_seq()));
            their_id = &theirs.event().event_id();
            their_at = theirs.recorded_at();
            break;
          }
        }
        if (!their_id) {
          auto sk = stored.find(key);
          if (sk != stored.end()) {
            auto se = sk->second.find(s);
            if (se != sk->second.end()) {
              their_id = &se->second.event_id;
              their_at = se->second.recorded_at_us;
            }
          }
        }
        // Not found: stored before and dropped by retention since.
        if (their_id && (*their_id != mine.event().event_id() || their_at != mine.recorded_at())) {
          conflict = KeyName(key) + " seq " + std::to_string(s) + " is stored as event_id " +
                     *their_id + " recorded_at " + std::to_string(their_at) +
                     "; the batch has event_id " + mine.event().event_id() + " recorded_at " +
                     std::to_string(mine.recorded_at());
        }
      }
      if (!conflict.empty()) break;
    }
    if (!conflict.empty()) {
      out.refused = RefuseReason::kConflict;
      out.refuse_detail = conflict + ": batch seq " + std::to_string(b.first_seq()) + ".." +
                          std::to_string(b.last_seq()) + " not stored";
      continue;
    }

    // A gateway's epoch other than its current one that is not superseded
    // is new (or, never in practice, an older one nobody superseded): it
    // becomes current and every other epoch of the same gateway of the
    // same store is superseded (another store's gateway of the same id is
    // another gateway).
    if (!g.has_current || g.current_epoch != b.epoch()) {
      if (g.has_current) {
        for (auto& [k, other] : epochs) {
          if (k.gateway() == key.gateway() && k.epoch != key.epoch && !other.superseded) {
            other.superseded = true;
            other.superseded_by = key.epoch;
          }
        }
      }
      g.has_current = true;
      g.current_epoch = b.epoch();
      epoch_changed.insert(key.gateway());
    }
    e.exists = true;
    initial_pending.try_emplace(key, e.pending);

    for (const Range& f : fresh) {
      AddRange(&e.pending, f);
      added[key].emplace_back(f, i);
      for (uint64_t s = f.first; s <= f.last; ++s) {
        plan.rows.emplace_back(i, static_cast<uint32_t>(s - b.first_seq()));
      }
    }
    AdvancePrefix(&e.applied_seq, &e.pending);
    touched.insert(key);
    out.events_stored = Count(fresh);
    out.events_duplicate = Count(repeated);
  }

  // Every outcome names the prefix as it stands after this transaction.
  for (uint32_t i = 0; i < batches.size(); ++i) {
    const auto& b = batches[i].batch;
    auto it = epochs.find(EpochKey{b.store_id(), b.gateway_id(), b.epoch()});
    if (it != epochs.end()) plan.outcomes[i].applied_seq = it->second.applied_seq;
  }
  for (const EpochKey& key : touched) {
    const EpochState& e = epochs[key];
    plan.epochs.push_back({key, e.applied_seq, e.pending != initial_pending[key], e.pending});
  }
  for (const GatewayKey& gw : epoch_changed) {
    plan.gateways.push_back({gw, gateways[gw].current_epoch});
  }
  return plan;
}

}  // namespace storegw::hq::pg
