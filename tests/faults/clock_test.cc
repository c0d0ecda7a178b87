// Clock faults, with the journal's injectable clock (JournalOptions::now_us):
// device clocks wrong by days, and the box clock jumping back and forth.
// Invariants after every step: seqs are dense and in the order of record,
// nothing undelivered is ever pruned, every acknowledged event that was not
// pruned after delivery is there once, and VerifyJournal passes.
#include <doctest/doctest.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "test_util.h"

namespace storegw::storage {
namespace {

using namespace testing;  // NOLINT
using std::chrono::hours;

constexpr int64_t kDayUs = int64_t{24} * 3600 * 1'000'000;

// Checks the three invariants against every acknowledged (event_id -> seq).
void CheckInvariants(Journal& j, const fs::path& dir, const std::map<std::string, uint64_t>& acked,
                     uint64_t delivered) {
  const JournalStats st = j.Stats();
  // The oldest retained seq; last_seq + 1 when retention pruned everything.
  const uint64_t first = st.first_seq ? st.first_seq : st.last_seq + 1;
  if (first > 1) {
    REQUIRE_MESSAGE(first - 1 <= delivered,
                    "seqs up to " << first - 1 << " pruned, only " << delivered << " delivered");
  }
  auto all = ReadAll(j);
  REQUIRE(all.size() == st.last_seq + 1 - first);
  std::map<std::string, uint64_t> present;
  for (size_t i = 0; i < all.size(); ++i) {
    REQUIRE(all[i].seq() == first + i);  // dense, in order
    REQUIRE(present.emplace(all[i].event().event_id(), all[i].seq()).second);
  }
  for (const auto& kv : acked) {
    const auto& id = kv.first;
    const auto& seq = kv.second;
    if (seq < first) {
      REQUIRE(seq <= delivered);
      continue;
    }
    auto it = present.find(id);
    REQUIRE_MESSAGE(it != present.end(), id << " (seq " << seq << ") is lost");
    REQUIRE(it->second == seq);
  }
  auto v = VerifyJournal(dir);
  REQUIRE_MESSAGE(v.ok(), v.status().ToString());
}

TEST_CASE("clocks: the journal keeps device clocks wrong by days (the device API refuses > 1 day ahead) - seqs follow the order of record") {
  TempDir dir(RamDirOrDefault());
  FakeClock clock;
  auto o = Options(dir.path());
  o.now_us = clock.fn();
  auto j = MustOpen(o);
  const int64_t offsets_days[] = {0, -30, +40, -1, +365, -365 * 3, 0};
  std::map<std::string, uint64_t> acked;
  uint64_t prev = 0;
  for (size_t i = 0; i < std::size(offsets_days); ++i) {
    v1::Event e = Receipt("dev-" + std::to_string(i), {{"sku-1", 1}});
    e.set_occurred_at(clock.now() + offsets_days[i] * kDayUs);
    auto r = MustAppend(*j, {e});
    CHECK(r[0].seq == prev + 1);  // the order of record, whatever the device says
    prev = r[0].seq;
    acked[e.event_id()] = r[0].seq;
    clock.Advance(std::chrono::seconds(1));
  }
  auto all = ReadAll(*j);
  REQUIRE(all.size() == std::size(offsets_days));
  for (size_t i = 0; i < all.size(); ++i) {
    CHECK(all[i].event().occurred_at() ==
          1'700'000'000'000'000 + offsets_days[i] * kDayUs + static_cast<int64_t>(i) * 1'000'000);
    // recorded_at is the box clock, not the device's.
    CHECK(all[i].recorded_at() == 1'700'000'000'000'000 + static_cast<int64_t>(i) * 1'000'000);
  }
  CHECK(OnHand(*j, "sku-1") == static_cast<int64_t>(std::size(offsets_days)));
  CheckInvariants(*j, dir.path(), acked, 0);
}

TEST_CASE(
    "clocks: the box clock jumping back and forth never prunes undelivered events nor "
    "breaks seq order") {
  TempDir dir(RamDirOrDefault());
  FakeClock clock;
  auto o = Options(dir.path());
  o.now_us = clock.fn();
  o.retention = hours(24);
  auto j = MustOpen(o);
  std::map<std::string, uint64_t> acked;
  uint64_t delivered = 0;
  // Each step: move the clock, append a batch, maybe deliver, prune.
  struct Step {
    int64_t jump_us;  // clock change before the step
    int events;
    uint64_t deliver;  // ack up to this many events behind the last seq
  };
  const Step steps[] = {
      {0, 5, 3},                // normal
      {+10 * kDayUs, 5, 100},   // clock jumps 10 days ahead: nothing new delivered
      {-20 * kDayUs, 5, 4},     // and 20 days back (NTP fixes a bad RTC)
      {+30 * kDayUs, 5, 2},     // far ahead: old delivered events may go
      {-kDayUs / 2, 3, 100},    // half a day back
      {+400 * kDayUs, 0, 100},  // a year ahead, nothing delivered: nothing undelivered goes
      {-800 * kDayUs, 4, 0},    // two years back: deliver everything
      {+900 * kDayUs, 0, 0},    // and forward again: prune what was delivered
  };
  uint64_t last = 0;
  int n = 0;
  for (const Step& s : steps) {
    CAPTURE(n);
    clock.us->fetch_add(s.jump_us);
    std::vector<v1::Event> batch;
    for (int i = 0; i < s.events; ++i) {
      batch.push_back(Receipt("c-" + std::to_string(n) + "-" + std::to_string(i), {{"sku-7", 1}}));
    }
    if (!batch.empty()) {
      auto r = MustAppend(*j, std::move(batch));
      for (const auto& x : r) {
        REQUIRE(x.seq == last + 1);  // seq order is the order of record, whatever the clock
        last = x.seq;
        acked[x.event_id] = x.seq;
      }
    }
    if (last > s.deliver && last - s.deliver > delivered) {
      delivered = last - s.deliver;
      REQUIRE(j->Ack(delivered).ok());
    }
    auto pruned = j->PruneNow();
    REQUIRE_MESSAGE(pruned.ok(), pruned.status().ToString());
    CheckInvariants(*j, dir.path(), acked, delivered);
    ++n;
  }
  // The last step (everything delivered, clock far ahead) pruned it all, and
  // the next seq continues: never reused after a clock jump.
  CHECK(j->Stats().backlog_events == 0);
  CHECK(j->Stats().first_seq == 0);
  auto r = MustAppend(*j, {Receipt("after-all", {{"sku-7", 1}})});
  CHECK(r[0].seq == last + 1);
  CHECK(OnHand(*j, "sku-7") == static_cast<int64_t>(acked.size()) + 1);
}

// Found by the power-loss test: pruning folded only the first line of an
// event whose lines repeat a sku, so the ledger drifted from its events.
TEST_CASE("clocks: pruning an event whose lines repeat a sku keeps the ledger exact") {
  TempDir dir(RamDirOrDefault());
  FakeClock clock;
  auto o = Options(dir.path());
  o.now_us = clock.fn();
  o.retention = hours(1);
  auto j = MustOpen(o);
  MustAppend(
      *j, {Receipt("r1", {{"sku-a", 10}, {"sku-a", 5}}),
           Sale("s1", {{"sku-a", 2}, {"sku-b", 1}, {"sku-a", 3}}), Receipt("r2", {{"sku-a", 1}})});
  REQUIRE(j->Ack(2).ok());
  clock.Advance(hours(2));
  auto pruned = j->PruneNow();
  REQUIRE(pruned.ok());
  CHECK(*pruned == 2);
  auto row = j->Stock("sku-a");
  REQUIRE(row.ok());
  CHECK(row->on_hand == 11);
  CHECK(row->base_qty == 10);  // 10 + 5 - 2 - 3 folded
  CHECK(row->as_of_seq == 2);
  auto v = VerifyJournal(dir.path());
  CHECK_MESSAGE(v.ok(), v.status().ToString());
}

}  // namespace
}  // namespace storegw::storage
