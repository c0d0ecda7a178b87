// The journal's own rules: identity and epoch, dense seqs, duplicates,
// atomic batches, back-pressure, the ack watermark, retention, and what
// Open() does with files that are not right.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <google/protobuf/util/message_differencer.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/ids.h"
#include "test_util.h"

namespace storegw::storage {
namespace {

using namespace testing;  // NOLINT
using google::protobuf::util::MessageDifferencer;
using std::chrono::hours;

uint64_t LastSeq(Journal& j) {
  return j.Stats().last_seq;
}

TEST_CASE("open: a new journal gets a random epoch that survives re-opening") {
  TempDir a, b;
  uint64_t epoch_a = 0;
  {
    auto o = Options(a / "nested/data");  // created when missing
    auto j = MustOpen(o);
    CHECK(j->open_report().created);
    CHECK(j->open_report().corrupt_moved_to.empty());
    epoch_a = j->epoch();
    CHECK(epoch_a != 0);
    CHECK(j->store_id() == "store-0042");
    CHECK(j->gateway_id() == "gw-test");
    CHECK(j->path() == a / "nested/data/journal.db");
    CHECK(j->Stats().epoch == epoch_a);
    CHECK(j->Stats().last_seq == 0);
    CHECK(fs::exists(a / "nested/data/journal.db"));
    struct stat st {};
    REQUIRE(stat((a / "nested/data").c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0700);
  }
  {
    auto j = MustOpen(Options(a / "nested/data"));
    CHECK_FALSE(j->open_report().created);
    CHECK(j->epoch() == epoch_a);
  }
  // A different journal (a replaced box, a wiped disk) is a different stream.
  auto jb = MustOpen(Options(b.path()));
  CHECK(jb->epoch() != 0);
  CHECK(jb->epoch() != epoch_a);
}

TEST_CASE("append: seqs are dense from 1 and every journaled event carries its identity") {
  TempDir dir;
  FakeClock clock;
  auto o = Options(dir.path());
  o.now_us = clock.fn();
  auto j = MustOpen(o);

  std::vector<v1::Event> sent = {
      Receipt("r1", {{"milk", 10}}),    Sale("s1", {{"milk", 2}}), Sensor("t1"),
      Reservation("c1", {{"milk", 1}}), Count("k1", "milk", 8),
  };
  auto r1 = MustAppend(*j, {sent[0]});
  REQUIRE(r1.size() == 1);
  CHECK(r1[0].event_id == "r1");
  CHECK(r1[0].seq == 1);
  CHECK_FALSE(r1[0].duplicate);

  clock.Advance(std::chrono::seconds(5));
  auto r2 = MustAppend(*j, {sent[1], sent[2], sent[3], sent[4]});
  REQUIRE(r2.size() == 4);
  for (size_t i = 0; i < r2.size(); ++i) {
    CHECK(r2[i].event_id == sent[i + 1].event_id());  // request order
    CHECK(r2[i].seq == i + 2);
    CHECK_FALSE(r2[i].duplicate);
  }
  CHECK(LastSeq(*j) == 5);
  CHECK(j->Stats().first_seq == 1);

  auto all = ReadAll(*j);
  REQUIRE(all.size() == 5);
  for (size_t i = 0; i < all.size(); ++i) {
    CAPTURE(i);
    CHECK(all[i].seq() == i + 1);
    CHECK(all[i].epoch() == j->epoch());
    CHECK(all[i].store_id() == "store-0042");
    CHECK(all[i].gateway_id() == "gw-test");
    CHECK(all[i].recorded_at() == (i == 0 ? clock.now() - 5'000'000 : clock.now()));
    CHECK_MESSAGE(MessageDifferencer::Equals(all[i].event(), sent[i]),
                  all[i].event().ShortDebugString() << " != " << sent[i].ShortDebugString());
  }
  JournalStats st = j->Stats();
  CHECK(st.events_appended == 5);
  CHECK(st.duplicates == 0);
  CHECK(st.commits >= 1);
  CHECK(st.commits <= 2);
  CHECK(st.backlog_events == 5);
  CHECK(st.backlog_bytes > 0);
  CHECK(st.oldest_undelivered_recorded_at == clock.now() - 5'000'000);
  CHECK(st.journal_bytes > 0);

  // Seqs keep counting after a restart and are never reused.
  j.reset();
  j = MustOpen(o);
  CHECK(LastSeq(*j) == 5);
  auto r3 = MustAppend(*j, {Sale("s2", {{"milk", 1}})});
  CHECK(r3[0].seq == 6);
}

TEST_CASE("append: a duplicate event_id gets its original seq and changes nothing") {
  TempDir dir;
  auto o = Options(dir.path());
  auto j = MustOpen(o);
  MustAppend(*j, {Receipt("r1", {{"bread", 20}})});
  auto first = MustAppend(*j, {Sale("s1", {{"bread", 3}})});
  REQUIRE(first[0].seq == 2);
  CHECK(OnHand(*j, "bread") == 17);

  SUBCASE("retried alone") {
    auto r = MustAppend(*j, {Sale("s1", {{"bread", 3}})});
    REQUIRE(r.size() == 1);
    CHECK(r[0].seq == 2);
    CHECK(r[0].duplicate);
    CHECK_FALSE(r[0].conflict);
    CHECK(LastSeq(*j) == 2);
    CHECK(OnHand(*j, "bread") == 17);
    CHECK(j->Stats().duplicates == 1);
    CHECK(j->Stats().events_appended == 2);
  }
  SUBCASE("the same event_id with a different body is a conflict: nothing of the call lands") {
    auto r = MustAppend(*j, {Sale("s9", {{"bread", 1}}), Sale("s1", {{"bread", 9}})});
    REQUIRE(r.size() == 2);
    CHECK_FALSE(r[0].conflict);
    CHECK(r[0].seq == 0);
    CHECK(r[1].conflict);
    CHECK_FALSE(r[1].duplicate);
    CHECK(r[1].seq == 2);  // the seq s1 already has
    CHECK(LastSeq(*j) == 2);
    CHECK(OnHand(*j, "bread") == 17);
    CHECK(j->Stats().conflicts == 1);
    CHECK(j->Stats().duplicates == 0);
    CHECK(j->Stats().events_appended == 2);
    CHECK(ReadAll(*j).size() == 2);
  }
  SUBCASE("retried inside a batch with new events") {
    auto r = MustAppend(
        *j, {Sale("s2", {{"bread", 1}}), Sale("s1", {{"bread", 3}}), Sale("s3", {{"bread", 1}})});
    REQUIRE(r.size() == 3);
    CHECK(r[0].seq == 3);
    CHECK_FALSE(r[0].duplicate);
    CHECK(r[1].seq == 2);
    CHECK(r[1].duplicate);
    CHECK(r[1].event_id == "s1");
    CHECK(r[2].seq == 4);  // no seq is spent on the duplicate
    CHECK_FALSE(r[2].duplicate);
    CHECK(LastSeq(*j) == 4);
    CHECK(OnHand(*j, "bread") == 15);
  }
  SUBCASE("repeated within one call") {
    auto r = MustAppend(
        *j, {Sale("s4", {{"bread", 1}}), Sale("s4", {{"bread", 1}}), Sale("s4", {{"bread", 1}})});
    REQUIRE(r.size() == 3);
    CHECK(r[0].seq == 3);
    CHECK_FALSE(r[0].duplicate);
    CHECK(r[1].seq == 3);
    CHECK(r[1].duplicate);
    CHECK(r[2].seq == 3);
    CHECK(r[2].duplicate);
    CHECK(LastSeq(*j) == 3);
    CHECK(OnHand(*j, "bread") == 16);
    CHECK(ReadAll(*j).size() == 3);
  }
  SUBCASE("repeated within one call with another body: a conflict, nothing lands") {
    auto r = MustAppend(
        *j, {Sale("s4", {{"bread", 1}}), Sale("s5", {{"bread", 1}}), Sale("s4", {{"bread", 5}})});
    REQUIRE(r.size() == 3);
    CHECK_FALSE(r[0].conflict);
    CHECK(r[2].conflict);
    CHECK(r[2].seq == 0);  // the other body is in the same call: no seq yet
    CHECK(LastSeq(*j) == 2);
    CHECK(OnHand(*j, "bread") == 17);
  }
  SUBCASE("after a restart") {
    j.reset();
    j = MustOpen(o);
    auto r = MustAppend(*j, {Sale("s1", {{"bread", 3}})});
    CHECK(r[0].seq == 2);
    CHECK(r[0].duplicate);
    CHECK(LastSeq(*j) == 2);
    CHECK(OnHand(*j, "bread") == 17);
  }
  // Whatever the path, the stored s1 is the original one.
  auto all = ReadAll(*j);
  REQUIRE(all.size() >= 2);
  CHECK(all[1].event().sale().lines(0).qty() == 3);
}

TEST_CASE("append: a batch is atomic - the first invalid event fails it, field prefixed") {
  TempDir dir;
  auto j = MustOpen(Options(dir.path()));
  MustAppend(*j, {Receipt("r1", {{"eggs", 12}})});
  const auto before = j->Stats();

  struct Bad {
    v1::Event event;
    std::string field;
  };
  v1::Event no_body = Base("x-nobody");
  v1::Event alert = Base("x-alert");
  alert.mutable_alert()->set_kind(v1::Alert::OVERSELL);
  v1::Event bad_currency = Sale("x-cur", {{"eggs", 1}});
  bad_currency.mutable_sale()->mutable_lines(0)->set_currency("eur");
  const Bad bads[] = {
      {Sale("", {{"eggs", 1}}), "event_id"},
      {no_body, "body"},
      {Sale("x-sku", {{"", 1}}), "sale.lines[0].sku"},
      {Sale("x-qty", {{"eggs", 1}, {"ham", 0}}), "sale.lines[1].qty"},
      {Receipt("x-rq", {{"eggs", 0}}), "receipt.lines[0].qty"},
      {bad_currency, "sale.lines[0].currency"},
      {alert, "alert"},
  };
  for (const auto& bad : bads) {
    for (size_t pos : {0u, 2u}) {
      CAPTURE(bad.field);
      CAPTURE(pos);
      std::vector<v1::Event> batch = {Sale("ok-1", {{"eggs", 1}}), Sale("ok-2", {{"eggs", 1}})};
      batch.insert(batch.begin() + static_cast<long>(pos), bad.event);
      auto r = j->Append(batch);
      REQUIRE_FALSE(r.ok());
      CHECK(r.status().code() == StatusCode::kInvalidArgument);
      CHECK(r.status().field() == test::Id("events[", pos) + "]." + bad.field);
    }
  }
  // Nothing of any refused batch reached the journal.
  CHECK(LastSeq(*j) == before.last_seq);
  CHECK(OnHand(*j, "eggs") == 12);
  CHECK(ReadAll(*j).size() == 1);
  CHECK(j->Stats().events_appended == before.events_appended);
  // A refused batch spends no event_id: the same ids go through later.
  auto r = MustAppend(*j, {Sale("ok-1", {{"eggs", 1}}), Sale("ok-2", {{"eggs", 1}})});
  CHECK(r[0].seq == 2);
  CHECK_FALSE(r[0].duplicate);
  CHECK(r[1].seq == 3);
  CHECK(OnHand(*j, "eggs") == 10);
}

TEST_CASE("append: many threads get unique, dense seqs") {
  TempDir dir;
  auto j = MustOpen(Options(dir.path()));
  constexpr int kThreads = 6, kCalls = 60;
  std::vector<std::vector<AppendResult>> got(kThreads);
  std::vector<std::string> errors(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int c = 0; c < kCalls; ++c) {
        std::vector<v1::Event> batch;
        for (int k = 0; k <= (c % 4); ++k) {
          batch.push_back(
              Receipt(test::Id("t", t) + test::Id("-", c) + test::Id("-", k),
                      {{test::Id("sku-", k), 1}}));
        }
        auto r = j->Append(batch);
        if (!r.ok()) {
          errors[t] = r.status().ToString();
          return;
        }
        for (auto& x : *r) got[t].push_back(x);
      }
    });
  }
  for (auto& th : threads) th.join();
  for (const auto& e : errors) CHECK_MESSAGE(e.empty(), e);

  std::map<uint64_t, std::string> by_seq;
  for (const auto& v : got) {
    for (const auto& x : v) {
      CHECK_FALSE(x.duplicate);
      CHECK_MESSAGE(by_seq.emplace(x.seq, x.event_id).second, "seq " << x.seq << " twice");
    }
  }
  REQUIRE(!by_seq.empty());
  CHECK(by_seq.begin()->first == 1);
  CHECK(by_seq.rbegin()->first == by_seq.size());
  CHECK(LastSeq(*j) == by_seq.size());
  auto all = ReadAll(*j);
  REQUIRE(all.size() == by_seq.size());
  for (const auto& e : all) CHECK(by_seq[e.seq()] == e.event().event_id());
  // Every call's events were journaled together, in request order (ids
  // end in "-k"; k = 0 starts a new call).
  for (const auto& v : got) {
    for (size_t i = 1; i < v.size(); ++i) {
      if (!v[i].event_id.ends_with("-0")) CHECK(v[i].seq == v[i - 1].seq + 1);
    }
  }
  const auto st = j->Stats();
  CHECK(st.events_appended == by_seq.size());
  CHECK(st.commits >= 1);
  CHECK(st.commits <= static_cast<uint64_t>(kThreads * kCalls));  // group commit never adds
  CHECK(OnHand(*j, "sku-0") == kThreads * kCalls);
}

TEST_CASE("append: after Close() it answers unavailable, and Close() is idempotent") {
  TempDir dir;
  auto j = MustOpen(Options(dir.path()));
  MustAppend(*j, {Receipt("r1", {{"a", 1}})});
  j->Close();
  j->Close();
  auto r = j->Append({Receipt("r2", {{"a", 1}})});
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == StatusCode::kUnavailable);
  j.reset();
  auto again = MustOpen(Options(dir.path()));
  CHECK(LastSeq(*again) == 1);
}

TEST_CASE("close: concurrent Close() calls shut down once, and each returns once it is closed") {
  // Several threads (e.g. a signal handler's and main's) may close the same
  // journal. Only one may shut it down (joining a thread twice, closing the
  // connection twice, would crash); every other caller must wait for it, so
  // that when any Close() returns the journal lock is free and appends are
  // refused.
  constexpr int kClosers = 4;
  for (int round = 0; round < 10; ++round) {
    CAPTURE(round);
    TempDir dir;
    auto j = MustOpen(Options(dir.path()));
    MustAppend(*j, {Receipt("r1", {{"a", 1}})});
    std::atomic<int> ready{0}, lock_free{0}, refused{0}, returned{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> closers;
    for (int i = 0; i < kClosers; ++i) {
      closers.emplace_back([&] {
        ++ready;
        while (!go.load()) std::this_thread::yield();
        j->Close();
        ++returned;
        // A shared lock is granted only once the journal's exclusive one is
        // gone (the closers' shared locks do not exclude each other).
        const int fd = ::open((dir / "journal.lock").c_str(), O_RDWR | O_CLOEXEC);
        if (fd >= 0 && ::flock(fd, LOCK_SH | LOCK_NB) == 0) ++lock_free;
        if (fd >= 0) ::close(fd);
        auto r = j->Append({Receipt("r2", {{"a", 1}})});
        if (!r.ok() && r.status().code() == StatusCode::kUnavailable) ++refused;
      });
    }
    while (ready.load() < kClosers) std::this_thread::yield();
    go = true;
    // Two shutdowns at once can hang for ever (both joining the same
    // thread): fail the run then instead of waiting for the ctest timeout.
    for (int i = 0; i < 6000 && returned.load() < kClosers; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (returned.load() < kClosers) {
      std::fprintf(stderr, "FAILED: %d of %d concurrent Close() calls still hang after 60 s\n",
                   kClosers - returned.load(), kClosers);
      std::fflush(stderr);
      std::_Exit(1);  // the hung threads cannot be joined
    }
    for (auto& t : closers) t.join();
    CHECK(lock_free.load() == kClosers);
    CHECK(refused.load() == kClosers);
    j->Close();  // and once more, afterwards
    j.reset();
    auto again = MustOpen(Options(dir.path()));
    CHECK(LastSeq(*again) == 1);
  }
}

v1::Event Bulky(const std::string& id) {
  v1::Event e = Receipt(id, {{"bulk", 1}});
  e.mutable_receipt()->set_delivery_id(std::string(900, 'd'));
  return e;
}

TEST_CASE("max_bytes: a full journal refuses with resource exhausted and changes nothing") {
  TempDir dir;
  FakeClock clock;
  auto o = Options(dir.path());
  o.now_us = clock.fn();
  o.max_bytes = 256 * 1024;
  auto j = MustOpen(o);

  uint64_t accepted = 0;
  Status refused;
  for (int i = 0; i < 5000; ++i) {
    auto r = j->Append({Bulky(test::Id("b", i)), Bulky(test::Id("c", i))});
    if (!r.ok()) {
      refused = r.status();
      break;
    }
    accepted += r->size();
  }
  REQUIRE_MESSAGE(!refused.ok(), "the journal never filled up");
  CHECK(refused.code() == StatusCode::kResourceExhausted);
  CHECK_FALSE(refused.message().empty());
  REQUIRE(accepted > 0);

  JournalStats st = j->Stats();
  CHECK(st.full);
  CHECK(st.max_bytes == 256 * 1024);
  CHECK(st.last_seq == accepted);
  CHECK(st.journal_bytes >= st.max_bytes);
  CHECK(OnHand(*j, "bulk") == static_cast<int64_t>(accepted));
  // Every acknowledged event is still there; the refused ones are not.
  CHECK(ReadAll(*j).size() == accepted);

  // Still refusing, and nothing is dropped to make room.
  auto again = j->Append({Bulky("later")});
  CHECK(again.status().code() == StatusCode::kResourceExhausted);
  auto pruned = j->PruneNow();
  REQUIRE(pruned.ok());
  CHECK(*pruned == 0);
  CHECK(j->Append({Bulky("later")}).status().code() == StatusCode::kResourceExhausted);
  CHECK(LastSeq(*j) == accepted);

  // Once delivered events age out, there is room again; the id refused
  // before was never journaled, so it is new now.
  REQUIRE(j->Ack(accepted).ok());
  clock.Advance(hours(24 * 8));
  uint64_t total_pruned = 0;
  for (int pass = 0; pass < 1000 && total_pruned < accepted; ++pass) {
    auto p = j->PruneNow();
    REQUIRE(p.ok());
    if (*p == 0) break;
    total_pruned += *p;
  }
  CHECK(total_pruned == accepted);
  auto ok = j->Append({Bulky("later")});
  REQUIRE_MESSAGE(ok.ok(), ok.status().ToString());
  CHECK((*ok)[0].seq == accepted + 1);
  CHECK_FALSE((*ok)[0].duplicate);
  CHECK_FALSE(j->Stats().full);
  CHECK(OnHand(*j, "bulk") == static_cast<int64_t>(accepted + 1));
}

TEST_CASE("max_bytes: reopening a journal already over a smaller cap refuses appends") {
  TempDir dir;
  auto o = Options(dir.path());
  uint64_t bytes = 0;
  {
    auto j = MustOpen(o);
    for (int i = 0; i < 40; ++i) MustAppend(*j, {Bulky(test::Id("b", i))});
    bytes = j->Stats().journal_bytes;
  }
  o.max_bytes = bytes / 2;
  auto j = MustOpen(o);  // reading and draining must still work
  CHECK(j->Stats().full);
  auto r = j->Append({Sale("s", {{"bulk", 1}})});
  CHECK(r.status().code() == StatusCode::kResourceExhausted);
  CHECK(LastSeq(*j) == 40);
  CHECK(OnHand(*j, "bulk") == 40);
  CHECK(ReadAll(*j).size() == 40);
}

TEST_CASE("ack: the watermark only moves forward and never past last_seq") {
  TempDir dir;
  auto o = Options(dir.path());
  auto j = MustOpen(o);
  for (int i = 0; i < 10; ++i) MustAppend(*j, {Receipt(test::Id("r", i), {{"a", 1}})});
  CHECK(j->Stats().watermark == 0);
  CHECK(j->Stats().backlog_events == 10);

  const uint64_t all_bytes = j->Stats().backlog_bytes;
  REQUIRE(j->Ack(4).ok());
  // Ack() is folded into the writer's next round; a retention pass goes
  // through the writer too, and prunes nothing here (nothing is old).
  REQUIRE(j->PruneNow().ok());
  CHECK(j->Stats().watermark == 4);
  CHECK(j->Stats().backlog_events == 6);
  CHECK(j->Stats().backlog_bytes < all_bytes);
  CHECK(j->Stats().backlog_bytes > 0);

  (void)j->Ack(2);  // backwards: ignored
  REQUIRE(j->PruneNow().ok());
  CHECK(j->Stats().watermark == 4);

  (void)j->Ack(99);  // beyond last_seq: at most last_seq
  REQUIRE(j->PruneNow().ok());
  CHECK(j->Stats().watermark <= 10);
  CHECK(j->Stats().watermark >= 4);

  REQUIRE(j->Ack(7).ok());
  REQUIRE(j->PruneNow().ok());
  CHECK(j->Stats().watermark >= 7);
  CHECK(j->Stats().watermark <= 10);
  CHECK(j->Stats().backlog_events == 10 - j->Stats().watermark);
  // Events are never dropped by an ack alone.
  CHECK(ReadAll(*j).size() == 10);
  REQUIRE(j->Ack(10).ok());
  REQUIRE(j->PruneNow().ok());
  CHECK(j->Stats().watermark == 10);
  CHECK(j->Stats().backlog_events == 0);
  CHECK(j->Stats().backlog_bytes == 0);
  CHECK(j->Stats().oldest_undelivered_recorded_at == 0);
  const uint64_t wm = j->Stats().watermark;

  // A clean close persists the watermark.
  j.reset();
  j = MustOpen(o);
  CHECK(j->Stats().watermark == wm);
  // A new event is not delivered.
  MustAppend(*j, {Receipt("r-new", {{"a", 1}})});
  CHECK(j->Stats().watermark == wm);
  CHECK(j->Stats().backlog_events == 11 - wm);
}

TEST_CASE("retention: prunes only delivered events older than retention, on_hand unchanged") {
  TempDir dir;
  FakeClock clock;
  auto o = Options(dir.path());
  o.now_us = clock.fn();
  o.retention = hours(24 * 7);
  auto j = MustOpen(o);

  // seq 1..10 at t0, 11..15 eight days later.
  MustAppend(*j, {Receipt("r0", {{"a", 100}, {"b", 50}})});
  for (int i = 1; i < 10; ++i) {
    MustAppend(*j, {Sale(test::Id("s", i), {{"a", 1}, {"b", 2}})});
  }
  clock.Advance(hours(24 * 8));
  for (int i = 10; i < 15; ++i) {
    MustAppend(*j, {Sale(test::Id("s", i), {{"a", 1}})});
  }
  REQUIRE(LastSeq(*j) == 15);
  const int64_t a = OnHand(*j, "a"), b = OnHand(*j, "b");
  CHECK(a == 100 - 14);
  CHECK(b == 50 - 18);

  // Nothing delivered: nothing pruned, however old.
  auto p0 = j->PruneNow();
  REQUIRE(p0.ok());
  CHECK(*p0 == 0);

  // Delivered up to 5: only 1..5 go; 6..10 are old but undelivered.
  REQUIRE(j->Ack(5).ok());
  auto p1 = j->PruneNow();
  REQUIRE(p1.ok());
  CHECK(*p1 == 5);
  CHECK(j->Stats().first_seq == 6);
  auto rest = ReadAll(*j, 1);
  REQUIRE(rest.size() == 10);
  CHECK(rest.front().seq() == 6);
  CHECK(rest.back().seq() == 15);
  CHECK(OnHand(*j, "a") == a);
  CHECK(OnHand(*j, "b") == b);

  // Delivered up to 12: 6..10 are old enough, 11 and 12 are too young.
  REQUIRE(j->Ack(12).ok());
  auto p2 = j->PruneNow();
  REQUIRE(p2.ok());
  CHECK(*p2 == 5);
  CHECK(j->Stats().first_seq == 11);
  CHECK(j->Stats().last_seq == 15);
  CHECK(OnHand(*j, "a") == a);
  CHECK(OnHand(*j, "b") == b);

  // Later they age too; 13..15 stay until delivered.
  clock.Advance(hours(24 * 8));
  auto p3 = j->PruneNow();
  REQUIRE(p3.ok());
  CHECK(*p3 == 2);
  CHECK(j->Stats().first_seq == 13);
  CHECK(j->Stats().backlog_events == 3);

  // Pruning changes no stock, and the ledger still works on top of it.
  j.reset();
  j = MustOpen(o);
  CHECK(OnHand(*j, "a") == a);
  CHECK(OnHand(*j, "b") == b);
  auto r = MustAppend(*j, {Sale("s-after", {{"a", 1}})});
  CHECK(r[0].seq == 16);
  CHECK(OnHand(*j, "a") == a - 1);
  j.reset();
  auto v = VerifyJournal(dir.path());
  REQUIRE_MESSAGE(v.ok(), v.status().ToString());
  CHECK(v->first_seq == 13);
  CHECK(v->last_seq == 16);
  CHECK(v->events == 4);
  CHECK_FALSE(v->full_replay);
}

TEST_CASE("retention: the writer prunes on its own at maintenance_interval") {
  TempDir dir;
  FakeClock clock;
  auto o = Options(dir.path());
  o.now_us = clock.fn();
  auto j = MustOpen(o);
  for (int i = 0; i < 20; ++i) MustAppend(*j, {Receipt(test::Id("r", i), {{"a", 1}})});
  REQUIRE(j->Ack(20).ok());
  clock.Advance(hours(24 * 8));
  j.reset();
  o.maintenance_interval = std::chrono::milliseconds(20);
  j = MustOpen(o);
  // Bounded wait for the writer's own pass (not a timing assertion).
  for (int i = 0; i < 1000 && j->Stats().first_seq != 0 && j->Stats().first_seq <= 20; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CHECK(ReadAll(*j).empty());
  CHECK(OnHand(*j, "a") == 20);
  CHECK(j->Stats().last_seq == 20);

  // With every event pruned, a restart must still not reuse a seq.
  j.reset();
  auto v = VerifyJournal(dir.path());
  CHECK_MESSAGE(v.ok(), v.status().ToString());
  j = MustOpen(o);
  CHECK(j->Stats().last_seq == 20);
  CHECK(OnHand(*j, "a") == 20);
  auto r = MustAppend(*j, {Receipt("r-after", {{"a", 1}})});
  CHECK(r[0].seq == 21);
  CHECK(OnHand(*j, "a") == 21);
  j.reset();
  v = VerifyJournal(dir.path());
  CHECK_MESSAGE(v.ok(), v.status().ToString());
}

// ----------------------------------------------------------------- Open()

std::string Garbage(size_t n, unsigned seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) {
    seed = seed * 1103515245u + 12345u;
    s[i] = static_cast<char>(seed >> 16);
  }
  return s;
}

// A closed journal with some events in it; returns its epoch.
uint64_t MakeJournal(const fs::path& dir, int events) {
  auto j = MustOpen(Options(dir));
  for (int i = 0; i < events; ++i) {
    MustAppend(*j, {Bulky(test::Id("e", i))});
  }
  return j->epoch();
}

void ExpectMovedAside(Journal& j, const fs::path& dir, const std::string& bytes) {
  const auto& rep = j.open_report();
  CHECK(rep.created);
  CHECK_FALSE(rep.corrupt_reason.empty());
  REQUIRE_FALSE(rep.corrupt_moved_to.empty());
  fs::path moved = rep.corrupt_moved_to;
  if (moved.is_relative()) moved = dir / moved;
  CHECK(moved.filename().string().rfind("journal.db.corrupt-", 0) == 0);
  REQUIRE(fs::exists(moved));
  CHECK(FileBytes(moved) == bytes);
}

TEST_CASE("open: a file that is not a database is moved aside and a new journal created") {
  TempDir dir;
  const uint64_t old_epoch = MakeJournal(dir.path(), 3);
  const std::string junk = Garbage(20000, 7);
  WriteFile(dir / "journal.db", junk);
  fs::remove(dir / "journal.db-wal");
  fs::remove(dir / "journal.db-shm");

  auto j = MustOpen(Options(dir.path()));
  ExpectMovedAside(*j, dir.path(), junk);
  CHECK(j->epoch() != old_epoch);
  CHECK(j->Stats().last_seq == 0);
  // The new journal works.
  CHECK(MustAppend(*j, {Sale("s1", {{"a", 1}})})[0].seq == 1);
  CHECK(FilesWithPrefix(dir.path(), "journal.db.corrupt-").size() >= 1);
}

TEST_CASE("open: a truncated journal is moved aside, byte-identical") {
  TempDir dir;
  const uint64_t old_epoch = MakeJournal(dir.path(), 200);
  // Close() folds the WAL into the main file: what we cut is the journal.
  const bool wal_has_frames =
      fs::exists(dir / "journal.db-wal") && fs::file_size(dir / "journal.db-wal") > 0;
  REQUIRE_FALSE(wal_has_frames);
  std::string bytes = FileBytes(dir / "journal.db");
  REQUIRE(bytes.size() > 64 * 1024);
  bytes.resize(bytes.size() / 2);
  WriteFile(dir / "journal.db", bytes);

  auto j = MustOpen(Options(dir.path()));
  ExpectMovedAside(*j, dir.path(), bytes);
  CHECK(j->epoch() != old_epoch);
  CHECK(j->Stats().last_seq == 0);
}

// Waits (bounded) for the background integrity check of the events table.
JournalStats WaitForIntegrityCheck(Journal& j) {
  for (int i = 0; i < 3000 && !j.Stats().integrity_checked; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  JournalStats st = j.Stats();
  REQUIRE_MESSAGE(st.integrity_checked, "the background integrity check never finished");
  return st;
}

TEST_CASE("open: a damaged events page is found in the background and moved aside at next open") {
  TempDir dir;
  const uint64_t old_epoch = MakeJournal(dir.path(), 200);
  std::string bytes = FileBytes(dir / "journal.db");
  REQUIRE(bytes.size() > 20 * 4096);
  // Page 16 (a b-tree page of the events table) becomes noise; the header
  // and the small tables stay valid, so only the integrity check can tell.
  bytes.replace(15 * 4096, 4096, Garbage(4096, 5));
  WriteFile(dir / "journal.db", bytes);

  {
    // Open checks the small tables only (open time must not grow with the
    // journal); the events table is checked in the background.
    auto j = MustOpen(Options(dir.path()));
    CHECK(j->open_report().corrupt_moved_to.empty());
    const JournalStats st = WaitForIntegrityCheck(*j);
    CHECK_FALSE(st.integrity_error.empty());
    CHECK(st.integrity_error.find("journal.db") != std::string::npos);
  }
  // The next Open checks the whole file and moves it aside, untouched.
  auto j = MustOpen(Options(dir.path()));
  ExpectMovedAside(*j, dir.path(), bytes);
  CHECK(j->epoch() != old_epoch);
  const JournalStats st = WaitForIntegrityCheck(*j);
  CHECK(st.integrity_error.empty());
  // And once the new journal checked out, the open after it is a normal one.
  j.reset();
  j = MustOpen(Options(dir.path()));
  CHECK(j->open_report().corrupt_moved_to.empty());
  CHECK(FilesWithPrefix(dir.path(), "journal.db.corrupt-").size() == 1);
}

TEST_CASE("open: a healthy journal passes the background integrity check") {
  TempDir dir;
  MakeJournal(dir.path(), 50);
  auto j = MustOpen(Options(dir.path()));
  const JournalStats st = WaitForIntegrityCheck(*j);
  CHECK(st.integrity_error.empty());
}

TEST_CASE("open: an SQLite database that is not a journal is moved aside untouched") {
  TempDir dir;
  // Someone else's database (rollback-journal mode), e.g. a data_dir that
  // points at the wrong place: it must be kept exactly as it was.
  Sql(dir / "journal.db",
      "CREATE TABLE inventory(sku TEXT, qty INTEGER);"
      "INSERT INTO inventory VALUES('a', 1), ('b', 2);",
      /*create=*/true);
  const std::string bytes = FileBytes(dir / "journal.db");
  auto j = MustOpen(Options(dir.path()));
  ExpectMovedAside(*j, dir.path(), bytes);
  CHECK(j->Stats().last_seq == 0);
}

TEST_CASE("open: a journal cut off between its schema and its identity is not corrupt") {
  // Creating a journal commits the schema, then the identity (epoch, ids).
  // A crash in between leaves a file with the schema, no events and no
  // identity: the next start must finish creating it, not report a corrupt
  // journal and move it aside.
  TempDir dir;
  { auto j = MustOpen(Options(dir.path())); }
  Sql(dir / "journal.db", "DELETE FROM meta");
  auto j = MustOpen(Options(dir.path()));
  CHECK(j->open_report().corrupt_moved_to.empty());
  CHECK(j->open_report().corrupt_reason.empty());
  CHECK(FilesWithPrefix(dir.path(), "journal.db.corrupt-").empty());
  CHECK(j->epoch() != 0);
  CHECK(MustAppend(*j, {Sale("s1", {{"a", 1}})})[0].seq == 1);
}

TEST_CASE("open: kMoveAsideAndFail moves the corrupt file and fails with corruption") {
  TempDir dir;
  const std::string junk = Garbage(8192, 11);
  WriteFile(dir / "journal.db", junk);
  auto o = Options(dir.path());
  o.on_corrupt = OnCorrupt::kMoveAsideAndFail;
  auto r = Journal::Open(o);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == StatusCode::kCorruption);
  CHECK(r.status().message().find("journal.db") != std::string::npos);
  CHECK_FALSE(fs::exists(dir / "journal.db"));
  auto moved = FilesWithPrefix(dir.path(), "journal.db.corrupt-");
  REQUIRE(moved.size() == 1);
  CHECK(FileBytes(moved[0]) == junk);
  // The message tells the operator where the file went.
  CHECK(r.status().message().find(moved[0].filename().string()) != std::string::npos);
}

TEST_CASE("open: a damaged number in the meta table is corruption naming key and value") {
  // The meta table keeps epoch, watermark, last_seq and last_cum as text. A
  // damaged value must be reported as a corrupt journal (moved aside like
  // any other), never as an internal error, nor read as another number
  // ("12x" is not 12, "-1" is not 2^64 - 1).
  struct Damage {
    const char* key;
    const char* value;
  };
  const Damage cases[] = {{"epoch", "x12"},           {"epoch", ""},
                          {"watermark", "12x"},       {"watermark", "-1"},
                          {"watermark", " 3"},        {"last_seq", "99999999999999999999999"},
                          {"last_cum", "0x10"}};
  for (const Damage& d : cases) {
    CAPTURE(d.key);
    CAPTURE(d.value);
    TempDir dir;
    const uint64_t old_epoch = MakeJournal(dir.path(), 3);
    Sql(dir / "journal.db", std::string("INSERT INTO meta(key, value) VALUES('") + d.key +
                                "', '" + d.value +
                                "') ON CONFLICT(key) DO UPDATE SET value = excluded.value");
    const std::string bytes = FileBytes(dir / "journal.db");

    auto fail = Options(dir.path());
    fail.on_corrupt = OnCorrupt::kMoveAsideAndFail;
    auto r = Journal::Open(fail);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == StatusCode::kCorruption);
    CHECK(r.status().message().find(std::string("'") + d.key + "'") != std::string::npos);
    CHECK(r.status().message().find(std::string("'") + d.value + "'") != std::string::npos);
    auto moved = FilesWithPrefix(dir.path(), "journal.db.corrupt-");
    REQUIRE(moved.size() == 1);
    CHECK(FileBytes(moved[0]) == bytes);

    // The default: moved aside and a new journal created.
    fs::rename(moved[0], dir / "journal.db");
    auto j = MustOpen(Options(dir.path()));
    ExpectMovedAside(*j, dir.path(), bytes);
    CHECK(j->open_report().corrupt_reason.find(d.key) != std::string::npos);
    CHECK(j->epoch() != old_epoch);
    CHECK(j->Stats().last_seq == 0);
  }
}

TEST_CASE("open: a corrupt WAL goes aside with its database, and two corruptions keep both") {
  TempDir dir;
  const std::string junk1 = Garbage(8192, 1), wal1 = Garbage(4096, 2);
  WriteFile(dir / "journal.db", junk1);
  WriteFile(dir / "journal.db-wal", wal1);
  {
    auto j = MustOpen(Options(dir.path()));
    ExpectMovedAside(*j, dir.path(), junk1);
    MustAppend(*j, {Sale("s1", {{"a", 1}})});
  }
  // The second corruption happens within the same second: nothing may be
  // overwritten.
  const std::string junk2 = Garbage(8192, 3);
  WriteFile(dir / "journal.db", junk2);
  fs::remove(dir / "journal.db-wal");
  fs::remove(dir / "journal.db-shm");
  auto j = MustOpen(Options(dir.path()));
  ExpectMovedAside(*j, dir.path(), junk2);

  std::multiset<std::string> kept;
  for (const auto& p : FilesWithPrefix(dir.path(), "journal.db.corrupt-")) {
    kept.insert(FileBytes(p));
  }
  CHECK(kept.count(junk1) == 1);
  CHECK(kept.count(wal1) == 1);
  CHECK(kept.count(junk2) == 1);
}

TEST_CASE("open: a journal of a newer schema version is refused and left untouched") {
  TempDir dir;
  MakeJournal(dir.path(), 5);
  // The schema version lives in PRAGMA user_version (storage/src/schema.h).
  REQUIRE(SqlInt(dir / "journal.db", "PRAGMA user_version") >= 1);
  Sql(dir / "journal.db", "PRAGMA user_version=999");
  Sql(dir / "journal.db", "PRAGMA wal_checkpoint(TRUNCATE)");
  const std::string before = FileBytes(dir / "journal.db");

  for (auto mode : {OnCorrupt::kMoveAsideAndCreate, OnCorrupt::kMoveAsideAndFail}) {
    auto o = Options(dir.path());
    o.on_corrupt = mode;
    auto r = Journal::Open(o);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == StatusCode::kFailedPrecondition);
    CHECK(r.status().message().find("999") != std::string::npos);
    CHECK(FileBytes(dir / "journal.db") == before);
    CHECK(FilesWithPrefix(dir.path(), "journal.db.corrupt-").empty());
  }
}

TEST_CASE("open: another store_id or gateway_id is refused and the file left untouched") {
  TempDir dir;
  const uint64_t epoch = MakeJournal(dir.path(), 2);
  const std::string before = FileBytes(dir / "journal.db");

  auto o = Options(dir.path());
  o.store_id = "store-9999";
  auto r1 = Journal::Open(o);
  REQUIRE_FALSE(r1.ok());
  CHECK(r1.status().code() == StatusCode::kFailedPrecondition);
  CHECK(r1.status().message().find("store-9999") != std::string::npos);

  o = Options(dir.path());
  o.gateway_id = "gw-other";
  auto r2 = Journal::Open(o);
  REQUIRE_FALSE(r2.ok());
  CHECK(r2.status().code() == StatusCode::kFailedPrecondition);
  CHECK(r2.status().message().find("gw-other") != std::string::npos);

  CHECK(FileBytes(dir / "journal.db") == before);
  CHECK(FilesWithPrefix(dir.path(), "journal.db.corrupt-").empty());
  auto j = MustOpen(Options(dir.path()));
  CHECK(j->epoch() == epoch);
  CHECK(j->Stats().last_seq == 2);
}

TEST_CASE("open: a journal that never held an event takes the configured identity") {
  // The packaged service may start once on the default ids before the
  // store's config is in place; nothing was acknowledged under them.
  TempDir dir;
  uint64_t first_epoch = 0;
  {
    auto j = MustOpen(Options(dir.path()));
    first_epoch = j->epoch();
  }
  auto o = Options(dir.path());
  o.store_id = "store-9999";
  auto j = MustOpen(o);
  CHECK(j->store_id() == "store-9999");
  CHECK(j->open_report().created);
  CHECK(j->epoch() != first_epoch);
  MustAppend(*j, {Receipt("r1", {{"x", 1}})});
  j->Close();
  // Once it holds an event the identity is fixed.
  auto back = Journal::Open(Options(dir.path()));
  REQUIRE_FALSE(back.ok());
  CHECK(back.status().code() == StatusCode::kFailedPrecondition);
}

TEST_CASE("open: a second writer on the same data_dir is refused while the first is open") {
  // Two daemons on one journal (a manual `storegw run` beside the service)
  // would each hand out seqs from their own counter. The second must be
  // refused at Open() with a clear error; the first keeps working.
  TempDir dir;
  auto first = MustOpen(Options(dir.path()));
  MustAppend(*first, {Receipt("r1", {{"x", 1}})});
  auto second = Journal::Open(Options(dir.path()));
  CHECK_FALSE(second.ok());
  if (second.ok()) {
    // What happens without a lock: the second instance's appends fail (or
    // worse) because its seq counter is stale.
    auto r = (*second)->Append({Receipt("b1", {{"x", 1}})});
    MESSAGE("second instance Append: " << (r.ok() ? "ok" : r.status().ToString()));
    (*second)->Close();
  } else {
    CHECK(second.status().message().find("journal") != std::string::npos);
  }
  auto r = first->Append({Receipt("r2", {{"x", 1}})});
  REQUIRE_MESSAGE(r.ok(), r.status().ToString());
  CHECK((*r)[0].seq == 2);
  // Readers are never locked out: verify and export work beside the writer.
  CHECK(VerifyJournal(dir.path()).ok());
  // Once the first is closed, the journal opens again.
  first.reset();
  auto again = MustOpen(Options(dir.path()));
  CHECK(again->Stats().last_seq == 2);
}

TEST_CASE("open: a data_dir that cannot be a directory is an I/O error naming it") {
  TempDir dir;
  WriteFile(dir / "not-a-dir", "x");
  auto r = Journal::Open(Options(dir / "not-a-dir"));
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == StatusCode::kIoError);
  CHECK(r.status().message().find("not-a-dir") != std::string::npos);
  CHECK(FileBytes(dir / "not-a-dir") == "x");
}

// -------------------------------------------------------------- read side

TEST_CASE("read: ReadEvents honours from_seq, max_events and max_bytes") {
  TempDir dir;
  auto j = MustOpen(Options(dir.path()));
  for (int i = 0; i < 30; ++i) MustAppend(*j, {Bulky(test::Id("b", i))});

  auto a = j->ReadEvents(11, 5, 1 << 20);
  REQUIRE(a.ok());
  REQUIRE(a->size() == 5);
  for (size_t i = 0; i < 5; ++i) CHECK((*a)[i].seq() == 11 + i);

  // Each event is about 1 KB stored: 3 KB gives a few, never none.
  auto b = j->ReadEvents(1, 100, 3000);
  REQUIRE(b.ok());
  CHECK(b->size() >= 1);
  CHECK(b->size() <= 4);
  CHECK(b->front().seq() == 1);
  auto c = j->ReadEvents(1, 100, 1);
  REQUIRE(c.ok());
  CHECK(c->size() == 1);

  auto d = j->ReadEvents(31, 10, 1 << 20);
  REQUIRE(d.ok());
  CHECK(d->empty());
  auto e = j->ReadEvents(29, 10, 1 << 20);
  REQUIRE(e.ok());
  CHECK(e->size() == 2);
}

TEST_CASE("read: Stock and StockByPrefix") {
  TempDir dir;
  auto j = MustOpen(Options(dir.path()));
  MustAppend(*j, {Receipt("r1", {{"fruit-apple", 5}, {"fruit-pear", 7}, {"veg-leek", 2}})});
  auto missing = j->Stock("fruit-kiwi");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().code() == StatusCode::kNotFound);

  auto rows = j->StockByPrefix("fruit-", 10);
  REQUIRE(rows.ok());
  REQUIRE(rows->size() == 2);
  std::map<std::string, int64_t> m;
  for (const auto& r : *rows) m[r.sku] = r.on_hand;
  CHECK(m == std::map<std::string, int64_t>{{"fruit-apple", 5}, {"fruit-pear", 7}});
  auto limited = j->StockByPrefix("", 2);
  REQUIRE(limited.ok());
  CHECK(limited->size() == 2);
  auto none = j->StockByPrefix("meat-", 10);
  REQUIRE(none.ok());
  CHECK(none->empty());
}

}  // namespace
}  // namespace storegw::storage
