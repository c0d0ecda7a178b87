// Helpers shared by the storage tests: temporary data directories, a clock
// the test controls, event builders and small file utilities.
#pragma once

#include <doctest/doctest.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/files.h"
#include "common/ids.h"
#include "storegw/storage/journal.h"

namespace storegw::storage::testing {

namespace fs = std::filesystem;

// TempDir: tests/common/files.h (a fresh directory, removed with its
// content when the object dies; optional parent directory).
using test::TempDir;

// A RAM-backed directory (/dev/shm) when there is one, else "" (the
// default). For tests of logic that commit thousands of times: fsync there
// costs nothing. Durability is tested on a real disk by the crash test.
inline std::string RamDirOrDefault() {
  std::error_code ec;
  if (fs::is_directory("/dev/shm", ec) && access("/dev/shm", W_OK) == 0) return "/dev/shm";
  return {};
}

// A clock the test moves by hand; safe to read from the writer thread.
struct FakeClock {
  std::shared_ptr<std::atomic<int64_t>> us =
      std::make_shared<std::atomic<int64_t>>(1'700'000'000'000'000);  // Nov 2023
  std::function<int64_t()> fn() const {
    auto p = us;
    return [p] { return p->load(); };
  }
  void Advance(std::chrono::microseconds d) { us->fetch_add(d.count()); }
  int64_t now() const { return us->load(); }
};

inline JournalOptions Options(const fs::path& dir) {
  JournalOptions o;
  o.data_dir = dir;
  o.store_id = "store-0042";
  o.gateway_id = "gw-test";
  // Maintenance (pruning, checkpoints) only when a test asks for it.
  o.maintenance_interval = std::chrono::hours(1);
  o.reader_connections = 2;
  return o;
}

inline std::unique_ptr<Journal> MustOpen(const JournalOptions& o) {
  auto r = Journal::Open(o);
  REQUIRE_MESSAGE(r.ok(),
                  "Journal::Open(" << o.data_dir.string() << "): " << r.status().ToString());
  return std::move(r).value();
}

struct Line {
  std::string sku;
  int64_t qty;
};

inline v1::Event Base(const std::string& id) {
  v1::Event e;
  e.set_event_id(id);
  e.set_device_id("till-1");
  e.set_occurred_at(1'700'000'000'000'000);
  return e;
}

inline v1::Event Sale(const std::string& id, std::initializer_list<Line> lines) {
  v1::Event e = Base(id);
  auto* s = e.mutable_sale();
  s->set_basket_id("b-" + id);
  s->set_tender("card");
  for (const auto& l : lines) {
    auto* x = s->add_lines();
    x->set_sku(l.sku);
    x->set_qty(l.qty);
    x->set_unit_price(199);
    x->set_currency("EUR");
  }
  return e;
}

inline v1::Event Return(const std::string& id, std::initializer_list<Line> lines) {
  v1::Event e = Base(id);
  auto* s = e.mutable_sale_return();
  for (const auto& l : lines) {
    auto* x = s->add_lines();
    x->set_sku(l.sku);
    x->set_qty(l.qty);
    x->set_unit_price(199);
    x->set_currency("EUR");
  }
  return e;
}

// Appends (sku, qty) lines to any body whose lines are StockLine.
template <typename Body>
void AddStockLines(Body* body, std::initializer_list<Line> lines) {
  for (const auto& l : lines) {
    auto* x = body->add_lines();
    x->set_sku(l.sku);
    x->set_qty(l.qty);
  }
}

inline v1::Event Receipt(const std::string& id, std::initializer_list<Line> lines) {
  v1::Event e = Base(id);
  auto* r = e.mutable_receipt();
  r->set_delivery_id("dn-" + id);
  AddStockLines(r, lines);
  return e;
}

inline v1::Event Adjust(const std::string& id, std::initializer_list<Line> lines) {
  v1::Event e = Base(id);
  auto* a = e.mutable_adjustment();
  for (const auto& l : lines) {
    auto* x = a->add_lines();
    x->set_sku(l.sku);
    x->set_qty(l.qty);
    x->set_reason("damage");
  }
  return e;
}

inline v1::Event Count(const std::string& id, const std::string& sku, int64_t qty) {
  v1::Event e = Base(id);
  e.mutable_count()->set_sku(sku);
  e.mutable_count()->set_qty(qty);
  return e;
}

inline v1::Event Transfer(const std::string& id, v1::Transfer::Direction dir,
                          std::initializer_list<Line> lines) {
  v1::Event e = Base(id);
  auto* t = e.mutable_transfer();
  t->set_direction(dir);
  t->set_other_store_id("store-0007");
  t->set_transfer_id("tr-" + id);
  AddStockLines(t, lines);
  return e;
}

inline v1::Event Reservation(const std::string& id, std::initializer_list<Line> lines) {
  v1::Event e = Base(id);
  auto* r = e.mutable_reservation();
  r->set_order_id("order-" + id);
  AddStockLines(r, lines);
  return e;
}

inline v1::Event Pickup(const std::string& id, std::initializer_list<Line> lines) {
  v1::Event e = Base(id);
  auto* r = e.mutable_pickup();
  r->set_order_id("order-" + id);
  AddStockLines(r, lines);
  return e;
}

inline v1::Event Sensor(const std::string& id) {
  v1::Event e = Base(id);
  e.set_device_id("fridge-3");
  auto* s = e.mutable_sensor();
  s->set_sensor_id("fridge-3");
  s->set_metric("temp_mc");
  s->set_value(4200);
  return e;
}

inline v1::StockSnapshot Snapshot(uint64_t epoch, uint64_t as_of_seq, uint64_t hq_version,
                                  std::initializer_list<Line> lines,
                                  const std::string& store_id = "store-0042") {
  v1::StockSnapshot s;
  s.set_store_id(store_id);
  s.set_epoch(epoch);
  s.set_as_of_seq(as_of_seq);
  s.set_hq_version(hq_version);
  for (const auto& l : lines) {
    auto* x = s.add_lines();
    x->set_sku(l.sku);
    x->set_qty(l.qty);
  }
  return s;
}

// Appends and requires success.
inline std::vector<AppendResult> MustAppend(Journal& j, std::vector<v1::Event> events) {
  auto r = j.Append(std::move(events));
  REQUIRE_MESSAGE(r.ok(), "Append: " << r.status().ToString());
  return std::move(r).value();
}

// 2,000 sales (40 commits of 50) over 7 skus: a journal with some history.
inline void AppendHistory(Journal& j) {
  for (int i = 0; i < 40; ++i) {
    std::vector<v1::Event> batch;
    for (int k = 0; k < 50; ++k) {
      batch.push_back(Sale(test::Id("pre-", i) + test::Id("-", k), {{test::Id("sku-", k % 7), 1}}));
    }
    MustAppend(j, batch);
  }
}

// A thread committing a receipt and a sale at a time to `j` (at most
// 100,000 commits) until Stop() or destruction; a failed append ends it
// and is kept in error().
class BackgroundAppender {
 public:
  explicit BackgroundAppender(Journal& j) {
    thread_ = std::thread([this, &j] {
      for (int i = 0; !stop_.load() && i < 100000; ++i) {
        auto r = j.Append({Receipt(test::Id("live-", i), {{"sku-1", 2}}),
                           Sale(test::Id("live-s-", i), {{"sku-2", 1}})});
        if (!r.ok()) {
          error_ = r.status().ToString();
          failed_ = true;
          return;
        }
        appended_ += r->size();
      }
    });
  }
  ~BackgroundAppender() { Stop(); }
  BackgroundAppender(const BackgroundAppender&) = delete;
  BackgroundAppender& operator=(const BackgroundAppender&) = delete;

  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  uint64_t appended() const { return appended_.load(); }
  // Waits (at most `limit` ms) until `n` more events were appended.
  void WaitForMore(uint64_t n, int limit = 10000) const {
    const uint64_t target = appended_.load() + n;
    for (int i = 0; i < limit && appended_.load() < target && !failed_; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  const std::string& error() const { return error_; }  // after Stop()

 private:
  std::atomic<bool> stop_{false}, failed_{false};
  std::atomic<uint64_t> appended_{0};
  std::string error_;
  std::thread thread_;
};

inline int64_t OnHand(Journal& j, const std::string& sku) {
  auto r = j.Stock(sku);
  REQUIRE_MESSAGE(r.ok(), "Stock(" << sku << "): " << r.status().ToString());
  return r->on_hand;
}

// Every retained event, in seq order, read through the journal's readers.
inline std::vector<v1::JournaledEvent> ReadAll(Journal& j, uint64_t from = 1) {
  std::vector<v1::JournaledEvent> out;
  for (;;) {
    auto r = j.ReadEvents(from, 1000, 1u << 24);
    REQUIRE_MESSAGE(r.ok(), "ReadEvents(" << from << "): " << r.status().ToString());
    if (r->empty()) break;
    for (auto& e : *r) out.push_back(std::move(e));
    from = out.back().seq() + 1;
  }
  return out;
}

inline std::string FileBytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), "cannot read " << p.string());
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline void WriteFile(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE_MESSAGE(out.good(), "cannot write " << p.string());
}

// Files in `dir` whose name starts with `prefix`.
inline std::vector<fs::path> FilesWithPrefix(const fs::path& dir, const std::string& prefix) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().filename().string().rfind(prefix, 0) == 0) out.push_back(e.path());
  }
  return out;
}

// Direct SQL on a closed journal, the way an attacker or a bad disk would
// change it. Fails the test when the SQL fails.
inline void Sql(const fs::path& db_path, const std::string& sql, bool create = false) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(db_path.c_str(), &db,
                           SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0), nullptr);
  REQUIRE_MESSAGE(rc == SQLITE_OK, "sqlite3_open " << db_path.string() << ": " << rc);
  char* err = nullptr;
  rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  std::string msg = err ? err : "";
  sqlite3_free(err);
  sqlite3_close(db);
  REQUIRE_MESSAGE(rc == SQLITE_OK, "sql `" << sql << "`: " << msg);
}

inline int64_t SqlInt(const fs::path& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr);
  REQUIRE_MESSAGE(rc == SQLITE_OK, "sqlite3_open " << db_path.string() << ": " << rc);
  sqlite3_stmt* st = nullptr;
  rc = sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr);
  std::string msg = rc == SQLITE_OK ? "" : sqlite3_errmsg(db);
  int64_t v = 0;
  bool row = false;
  if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
    v = sqlite3_column_int64(st, 0);
    row = true;
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  REQUIRE_MESSAGE(rc == SQLITE_OK, "sql `" << sql << "`: " << msg);
  REQUIRE_MESSAGE(row, "sql `" << sql << "` returned no row");
  return v;
}

// A journal on a fake clock in a temp dir, with the reads ledger tests need.
// `tweak` adjusts the options before the first open (and every Reopen).
struct LedgerFixture {
  TempDir dir;
  FakeClock clock;
  JournalOptions opt;
  std::unique_ptr<Journal> j;
  explicit LedgerFixture(const std::function<void(JournalOptions&)>& tweak = {}) {
    opt = Options(dir.path());
    opt.now_us = clock.fn();
    if (tweak) tweak(opt);
    j = MustOpen(opt);
  }
  void Reopen() {
    j.reset();
    j = MustOpen(opt);
  }
  uint64_t Append1(const v1::Event& e) {
    auto r = MustAppend(*j, {e});
    REQUIRE(r.size() == 1);
    REQUIRE_FALSE(r[0].duplicate);
    return r[0].seq;
  }
  uint64_t last() { return j->Stats().last_seq; }
  StockRow Stock(const std::string& sku) {
    auto r = j->Stock(sku);
    REQUIRE_MESSAGE(r.ok(), r.status().ToString());
    return *r;
  }
  v1::JournaledEvent At(uint64_t seq) {
    auto r = j->ReadEvents(seq, 1, 1 << 24);
    REQUIRE(r.ok());
    REQUIRE(r->size() == 1);
    REQUIRE((*r)[0].seq() == seq);
    return (*r)[0];
  }
  SnapshotResult Snap(const v1::StockSnapshot& s) {
    auto r = j->ApplySnapshot(s);
    REQUIRE_MESSAGE(r.ok(), r.status().ToString());
    return *r;
  }
  StockRow Row(const std::string& sku) {
    auto r = j->Stock(sku);
    REQUIRE_MESSAGE(r.ok(), r.status().ToString());
    return *r;
  }
};

}  // namespace storegw::storage::testing
