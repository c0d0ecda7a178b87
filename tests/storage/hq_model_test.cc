// Randomized reconciliation test: local events and HQ snapshots
// interleaved, the snapshots built by a model HQ that has seen a prefix of
// the journal.
//
// The model HQ holds its own base per sku (what it knows and the store does
// not: deliveries it booked, audits) plus the stock deltas of the journal's
// events up to `seen`, a prefix it advances as the uplink would. It builds
// snapshots of its truth as of `seen` with increasing hq_version; they are
// delivered late, out of order (older hq_version after newer), again
// (stale), in chunks, or for another epoch. After EVERY step the journal's
// on_hand of every sku must equal the model's truth: the base of the newest
// snapshot the sku accepted + the local deltas after its as_of_seq. At the
// end VerifyJournal must pass.
//
// The model's stock deltas are its own (HqExpectedDeltas, from the event
// bodies by the rules the proto documents), never the library's
// StockDeltas(): the code under test is not its own oracle.
//
// STOREGW_HQ_SEEDS (count) and STOREGW_HQ_STEPS override the defaults; the
// seed is printed with any failure.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "test_util.h"

namespace storegw::storage {
namespace {

using namespace testing;  // NOLINT

const std::vector<std::string> kHqSkus = {"a1", "b2", "c3", "d4", "e5", "f6", "g7", "h8"};

// The stock effect of one device event by the documented rules: sale -qty,
// sale_return +qty, receipt +qty, adjustment its signed qty, transfer -qty
// OUT of this store and +qty IN, pickup -qty; reservation and sensor none.
// A count (absolute) is handled by the caller.
std::vector<std::pair<std::string, int64_t>> HqExpectedDeltas(const v1::Event& e) {
  std::vector<std::pair<std::string, int64_t>> out;
  auto each = [&](const auto& lines, int64_t sign) {
    for (const auto& l : lines) out.emplace_back(l.sku(), sign * l.qty());
  };
  switch (e.body_case()) {
    case v1::Event::kSale:
      each(e.sale().lines(), -1);
      break;
    case v1::Event::kSaleReturn:
      each(e.sale_return().lines(), +1);
      break;
    case v1::Event::kReceipt:
      each(e.receipt().lines(), +1);
      break;
    case v1::Event::kAdjustment:
      each(e.adjustment().lines(), +1);  // qty carries its own sign
      break;
    case v1::Event::kTransfer:
      REQUIRE((e.transfer().direction() == v1::Transfer::OUT ||
               e.transfer().direction() == v1::Transfer::IN));
      each(e.transfer().lines(), e.transfer().direction() == v1::Transfer::OUT ? -1 : +1);
      break;
    case v1::Event::kPickup:
      each(e.pickup().lines(), -1);
      break;
    case v1::Event::kReservation:
    case v1::Event::kSensor:
      break;
    default:
      FAIL("the model has no rule for body " << static_cast<int>(e.body_case()));
  }
  return out;
}

struct StoreSku {
  bool known = false;  // has a stock row
  int64_t base = 0;
  uint64_t as_of = 0, version = 0;
};

class HqModelRun {
 public:
  HqModelRun(uint64_t seed, const fs::path& dir) : rng_(seed) {
    opts_ = Options(dir);
    opts_.now_us = clock_.fn();
    opts_.snapshot_chunk_lines = 3;
    opts_.count_mismatch_threshold = 5;
    j_ = MustOpen(opts_);
    epoch_ = j_->epoch();
    for (const auto& s : kHqSkus) hq_base_[s] = Uniform(0, 30);
  }

  // One random step; "" when the journal agrees with the model.
  std::string Step(int step) {
    step_ = step;
    clock_.Advance(std::chrono::milliseconds(Uniform(1, 20)));
    const int r = Uniform(0, 99);
    std::string err;
    if (r < 40) {
      err = LocalEvents();
    } else if (r < 52) {
      hq_seen_ =
          static_cast<uint64_t>(Uniform(static_cast<int>(hq_seen_), static_cast<int>(Last())));
      counts["hq_advance"]++;
    } else if (r < 58) {
      hq_base_[AnySku()] += Uniform(-3, 12);  // HQ books a delivery or an audit
      counts["hq_base_change"]++;
    } else if (r < 72) {
      BuildSnapshot();
    } else if (r < 94) {
      err = Deliver();
    } else if (r < 97) {
      err = Foreign();
    } else {
      err = Reopen();
    }
    if (!err.empty()) return err;
    return Check();
  }

  std::string Finish() {
    j_.reset();
    auto v = VerifyJournal(opts_.data_dir);
    if (!v.ok()) return "verify: " + v.status().ToString();
    if (!v->full_replay) return "verify did not replay the whole journal";
    return "";
  }

  std::map<std::string, int> counts;

 private:
  int Uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  const std::string& AnySku() { return kHqSkus[static_cast<size_t>(Uniform(0, 7))]; }
  uint64_t Last() { return j_->Stats().last_seq; }

  int64_t LocalAfter(const std::string& sku, uint64_t as_of) const {
    int64_t v = 0;
    auto it = deltas_.find(sku);
    if (it == deltas_.end()) return 0;
    for (const auto& [seq, d] : it->second) {
      if (seq > as_of) v += d;
    }
    return v;
  }

  // The store's truth: the accepted base + local deltas after its as_of.
  int64_t Truth(const std::string& sku) const {
    auto it = store_.find(sku);
    const int64_t base = it == store_.end() ? 0 : it->second.base;
    const uint64_t as_of = it == store_.end() ? 0 : it->second.as_of;
    return base + LocalAfter(sku, as_of);
  }

  // HQ's truth of a sku as of `seen`: its own base + the deltas it has seen.
  int64_t HqTruth(const std::string& sku, uint64_t seen) const {
    int64_t v = hq_base_.at(sku);
    auto it = deltas_.find(sku);
    if (it == deltas_.end()) return v;
    for (const auto& [seq, d] : it->second) {
      if (seq <= seen) v += d;
    }
    return v;
  }

  v1::Event RandomEvent() {
    v1::Event e = Base("ev-" + std::to_string(next_id_++));
    const int k = Uniform(0, 99);
    auto lines = [&](auto* body, int lo, int hi) {
      std::vector<std::string> skus = kHqSkus;
      std::shuffle(skus.begin(), skus.end(), rng_);
      skus.resize(static_cast<size_t>(Uniform(1, 3)));
      for (const auto& s : skus) {
        auto* l = body->add_lines();
        l->set_sku(s);
        l->set_qty(Uniform(lo, hi));
      }
    };
    if (k < 45) {
      auto* s = e.mutable_sale();
      lines(s, 1, 4);
      for (auto& l : *s->mutable_lines()) l.set_currency("EUR");
    } else if (k < 60) {
      lines(e.mutable_receipt(), 1, 10);
    } else if (k < 72) {
      auto* a = e.mutable_adjustment();
      lines(a, 1, 3);
      for (auto& l : *a->mutable_lines()) {
        if (Uniform(0, 1)) l.set_qty(-l.qty());
        l.set_reason("shrink");
      }
    } else if (k < 82) {
      e.mutable_count()->set_sku(AnySku());
      e.mutable_count()->set_qty(Uniform(0, 25));
    } else if (k < 92) {
      auto* t = e.mutable_transfer();
      t->set_direction(Uniform(0, 1) ? v1::Transfer::OUT : v1::Transfer::IN);
      t->set_other_store_id("store-0100");
      lines(t, 1, 5);
    } else {
      e.mutable_pickup()->set_order_id("o-" + e.event_id());
      lines(e.mutable_pickup(), 1, 2);
    }
    return e;
  }

  std::string LocalEvents() {
    std::vector<v1::Event> batch;
    const int n = Uniform(1, 4);
    for (int i = 0; i < n; ++i) batch.push_back(RandomEvent());
    auto r = j_->Append(batch);
    if (!r.ok()) return "Append: " + r.status().ToString();
    for (size_t i = 0; i < batch.size(); ++i) {
      const auto& e = batch[i];
      const uint64_t seq = (*r)[i].seq;
      if ((*r)[i].duplicate) return "a fresh event answered as duplicate";
      std::vector<std::pair<std::string, int64_t>> ds;
      if (e.has_count()) {
        // The delta that sets on_hand to the counted value at its seq.
        ds.emplace_back(e.count().sku(), e.count().qty() - Truth(e.count().sku()));
        counts["count"]++;
      } else {
        ds = HqExpectedDeltas(e);
      }
      for (const auto& [sku, d] : ds) {
        auto& v = deltas_[sku];
        if (!v.empty() && v.back().first == seq) {
          v.back().second += d;
        } else {
          v.emplace_back(seq, d);
        }
        store_[sku].known = true;
      }
    }
    counts["local_events"] += n;
    return "";
  }

  void BuildSnapshot() {
    v1::StockSnapshot s;
    s.set_store_id("store-0042");
    s.set_epoch(epoch_);
    s.set_as_of_seq(hq_seen_);
    s.set_hq_version(++hq_version_);
    std::vector<std::string> skus = kHqSkus;
    std::shuffle(skus.begin(), skus.end(), rng_);
    skus.resize(static_cast<size_t>(Uniform(1, static_cast<int>(kHqSkus.size()))));
    for (const auto& sku : skus) {
      auto* l = s.add_lines();
      l->set_sku(sku);
      l->set_qty(std::max<int64_t>(0, HqTruth(sku, hq_seen_)));
    }
    in_flight_.push_back(s);
    counts["hq_build"]++;
  }

  std::string Deliver() {
    v1::StockSnapshot s;
    const int how = Uniform(0, 99);
    if (in_flight_.empty() || (how < 15 && !delivered_.empty())) {
      if (delivered_.empty()) return "";
      // A resend of something delivered before: stale by now (or a no-op).
      s = delivered_[static_cast<size_t>(Uniform(0, static_cast<int>(delivered_.size()) - 1))];
      counts["resend"]++;
    } else {
      // Usually the oldest; sometimes any (out of hq_version order).
      size_t i = 0;
      if (how < 45) {
        i = static_cast<size_t>(Uniform(0, static_cast<int>(in_flight_.size()) - 1));
        if (i != 0) counts["out_of_order"]++;
      }
      s = in_flight_[i];
      in_flight_.erase(in_flight_.begin() + static_cast<long>(i));
      delivered_.push_back(s);
      if (delivered_.size() > 20) delivered_.erase(delivered_.begin());
    }
    // The model's verdict per line.
    size_t applied = 0, stale = 0;
    for (const auto& l : s.lines()) {
      StoreSku& m = store_[l.sku()];
      if (internal_stale(m, s)) {
        ++stale;
        continue;
      }
      m.known = true;
      m.base = l.qty();
      m.as_of = s.as_of_seq();
      m.version = s.hq_version();
      ++applied;
    }
    auto r = j_->ApplySnapshot(s);
    if (!r.ok()) return "ApplySnapshot: " + r.status().ToString();
    const auto want =
        applied == 0 ? SnapshotResult::Outcome::kStale : SnapshotResult::Outcome::kApplied;
    if (r->outcome != want || r->skus_applied != applied || r->skus_stale != stale) {
      std::ostringstream os;
      os << "ApplySnapshot(" << s.ShortDebugString() << "): outcome "
         << static_cast<int>(r->outcome) << " applied " << r->skus_applied << " stale "
         << r->skus_stale << "; model: outcome " << static_cast<int>(want) << " applied " << applied
         << " stale " << stale;
      return os.str();
    }
    const size_t chunks = (static_cast<size_t>(s.lines_size()) + 2) / 3;
    if (r->chunks != chunks) return "snapshot in " + std::to_string(r->chunks) + " chunks";
    counts["delivered"]++;
    counts["lines_applied"] += static_cast<int>(applied);
    counts["lines_stale"] += static_cast<int>(stale);
    if (chunks > 1) counts["chunked"]++;
    return "";
  }

  static bool internal_stale(const StoreSku& m, const v1::StockSnapshot& s) {
    if (!m.known) return false;
    if (s.as_of_seq() < m.as_of) return true;
    return s.as_of_seq() == m.as_of && s.hq_version() < m.version;
  }

  std::string Foreign() {
    v1::StockSnapshot s;
    s.set_store_id("store-0042");
    s.set_epoch(epoch_ + 1 + static_cast<uint64_t>(Uniform(0, 5)));
    s.set_as_of_seq(hq_seen_);
    s.set_hq_version(++hq_version_);
    auto* l = s.add_lines();
    l->set_sku(AnySku());
    l->set_qty(999);
    auto r = j_->ApplySnapshot(s);
    if (!r.ok()) return "ApplySnapshot(foreign): " + r.status().ToString();
    if (r->outcome != SnapshotResult::Outcome::kRejected) return "a foreign epoch was not rejected";
    counts["foreign"]++;
    return "";
  }

  std::string Reopen() {
    j_.reset();
    auto r = Journal::Open(opts_);
    if (!r.ok()) return "reopen: " + r.status().ToString();
    j_ = std::move(r).value();
    counts["reopen"]++;
    return "";
  }

  std::string Check() {
    for (const auto& sku : kHqSkus) {
      auto row = j_->Stock(sku);
      const auto it = store_.find(sku);
      const bool known = it != store_.end() && it->second.known;
      if (!known) {
        if (row.ok()) return "sku " + sku + " has a row the model does not expect";
        continue;
      }
      if (!row.ok()) return "Stock(" + sku + "): " + row.status().ToString();
      const int64_t want = Truth(sku);
      if (row->on_hand != want || row->base_qty != it->second.base ||
          row->as_of_seq != it->second.as_of || row->hq_version != it->second.version) {
        std::ostringstream os;
        os << "step " << step_ << ", sku " << sku << ": journal on_hand " << row->on_hand
           << " (base " << row->base_qty << " as of " << row->as_of_seq << " v" << row->hq_version
           << "), model " << want << " (base " << it->second.base << " as of " << it->second.as_of
           << " v" << it->second.version << ")";
        return os.str();
      }
    }
    return "";
  }

  std::mt19937_64 rng_;
  FakeClock clock_;
  JournalOptions opts_;
  std::unique_ptr<Journal> j_;
  uint64_t epoch_ = 0;
  uint64_t next_id_ = 1;
  int step_ = 0;
  // The store, as the model sees it.
  std::map<std::string, StoreSku> store_;
  std::map<std::string, std::vector<std::pair<uint64_t, int64_t>>> deltas_;  // local, by seq
  // The model HQ.
  std::map<std::string, int64_t> hq_base_;
  uint64_t hq_seen_ = 0;
  uint64_t hq_version_ = 0;
  std::vector<v1::StockSnapshot> in_flight_, delivered_;
};

uint64_t HqEnvOr(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoull(v, nullptr, 10) : fallback;
}

TEST_CASE("hq model: local events and HQ snapshots interleaved, on_hand right after every step") {
  const uint64_t seeds = HqEnvOr("STOREGW_HQ_SEEDS", 4);
  const int steps = static_cast<int>(HqEnvOr("STOREGW_HQ_STEPS", 1500));
  std::map<std::string, int> total;
  for (uint64_t seed = 1; seed <= seeds; ++seed) {
    INFO("seed " << seed);
    TempDir dir(RamDirOrDefault());
    HqModelRun run(seed * 7919, dir.path());
    for (int step = 1; step <= steps; ++step) {
      const std::string err = run.Step(step);
      REQUIRE_MESSAGE(err.empty(), "seed " << seed << " step " << step << ": " << err);
    }
    const std::string err = run.Finish();
    REQUIRE_MESSAGE(err.empty(), "seed " << seed << ": " << err);
    for (const auto& [k, n] : run.counts) total[k] += n;
  }
  std::ostringstream mix;
  for (const auto& [k, n] : total) mix << k << "=" << n << " ";
  MESSAGE(seeds << " seeds x " << steps << " steps: " << mix.str());
  if (seeds >= 4 && steps >= 1500) {
    for (const char* k : {"local_events", "count", "hq_advance", "hq_base_change", "hq_build",
                          "delivered", "resend", "out_of_order", "lines_applied", "lines_stale",
                          "chunked", "foreign", "reopen"}) {
      CHECK_MESSAGE(total[k] > 20, k << " happened only " << total[k] << " times");
    }
  }
}

}  // namespace
}  // namespace storegw::storage
