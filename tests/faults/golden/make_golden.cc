// Writes the corrupt golden journals of tests/faults/golden/ (README.md
// there says what each holds). Run once; the files are checked in and never
// regenerated (tests compare moved-aside files byte for byte with them):
//
//   ninja -C BUILD faults_make_golden
//   BUILD/tests/faults/faults_make_golden tests/faults/golden
#include <sqlite3.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>

#include "storegw/storage/journal.h"

namespace fs = std::filesystem;
using namespace storegw;           // NOLINT
using namespace storegw::storage;  // NOLINT

namespace {

int Fail(const std::string& what) {
  std::fprintf(stderr, "make_golden: %s\n", what.c_str());
  return 1;
}

v1::Event Receipt(int i) {
  v1::Event e;
  e.set_event_id("golden-" + std::to_string(i));
  e.set_device_id("till-1");
  e.set_occurred_at(1'700'000'000'000'000 + i);
  auto* l = e.mutable_receipt()->add_lines();
  l->set_sku("sku-" + std::to_string(i % 17));
  l->set_qty(1 + i % 5);
  e.mutable_receipt()->set_delivery_id("dn-" + std::to_string(i) +
                                       "-padding-to-spread-the-events-over-many-pages");
  return e;
}

// A cleanly closed journal (no -wal) with `events` receipts, watermark 0
// (nothing delivered: a gateway that opens it has nothing to prune, so it
// writes nothing to it unless events are appended).
Status MakeJournal(const fs::path& dir, int events) {
  JournalOptions o;
  o.data_dir = dir;
  o.store_id = "store-golden";
  o.gateway_id = "gw-golden";
  o.maintenance_interval = std::chrono::hours(1);
  int64_t t = 1'700'000'000'000'000;
  o.now_us = [&t] { return t += 1000; };
  auto j = Journal::Open(o);
  if (!j.ok()) return j.status();
  for (int i = 0; i < events; i += 50) {
    std::vector<v1::Event> batch;
    for (int k = i; k < i + 50 && k < events; ++k) batch.push_back(Receipt(k));
    auto r = (*j)->Append(std::move(batch));
    if (!r.ok()) return r.status();
  }
  (*j)->Close();
  return {};
}

std::string Bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void Put(const fs::path& p, const std::string& b) {
  std::ofstream(p, std::ios::binary | std::ios::trunc)
      .write(b.data(), static_cast<std::streamsize>(b.size()));
}

int64_t QueryInt(const fs::path& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr);
  sqlite3_stmt* st = nullptr;
  int64_t v = -1;
  if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW) {
    v = sqlite3_column_int64(st, 0);
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) return Fail("usage: faults_make_golden OUT_DIR");
  const fs::path out = argv[1];
  const fs::path work = fs::temp_directory_path() / ("make-golden-" + std::to_string(getpid()));
  fs::remove_all(work);

  // 1. Truncated: 600 events, file cut at 55% of its size, mid-page (a copy
  //    or a disk that stopped early).
  if (Status s = MakeJournal(work / "t", 600); !s.ok()) return Fail(s.ToString());
  std::string full = Bytes(work / "t" / "journal.db");
  const size_t cut = (full.size() * 55 / 100) / 4096 * 4096 + 1000;
  Put(out / "journal-truncated.db", full.substr(0, cut));
  std::printf("journal-truncated.db: %zu of %zu bytes\n", cut, full.size());

  // 2. Random bytes in the middle: the same kind of journal, with 3000
  //    seeded random bytes written over the middle leaf page of the events
  //    table (a bad sector, a bit-flipping disk).
  if (Status s = MakeJournal(work / "g", 600); !s.ok()) return Fail(s.ToString());
  const fs::path g = work / "g" / "journal.db";
  const int64_t leaves =
      QueryInt(g, "SELECT count(*) FROM dbstat WHERE name = 'events' AND pagetype = 'leaf'");
  const int64_t page = QueryInt(
      g,
      "SELECT pageno FROM dbstat WHERE name = 'events' AND pagetype = 'leaf' ORDER BY pageno "
      "LIMIT 1 OFFSET " +
          std::to_string(leaves / 2));
  if (leaves < 3 || page < 2) return Fail("the events table has too few leaf pages");
  std::string bytes = Bytes(g);
  std::mt19937 rng(20261127);
  const size_t at = static_cast<size_t>(page - 1) * 4096 + 500;
  for (size_t i = 0; i < 3000; ++i) bytes[at + i] = static_cast<char>(rng() & 0xff);
  Put(out / "journal-garbage.db", bytes);
  std::printf(
      "journal-garbage.db: random bytes at offset %zu..%zu (events leaf page %lld of %lld "
      "leaves)\n",
      at, at + 3000, static_cast<long long>(page), static_cast<long long>(leaves));

  // 3. A journal from a future schema version: a healthy journal whose
  //    PRAGMA user_version is 99, far above any schema this code knows.
  if (Status s = MakeJournal(work / "f", 20); !s.ok()) return Fail(s.ToString());
  const fs::path f = work / "f" / "journal.db";
  {
    sqlite3* db = nullptr;
    sqlite3_open_v2(f.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr);
    sqlite3_exec(db, "PRAGMA user_version = 99", nullptr, nullptr, nullptr);
    sqlite3_close(db);
  }
  fs::copy_file(f, out / "journal-future.db", fs::copy_options::overwrite_existing);
  std::printf("journal-future.db: 20 events, user_version 99\n");
  fs::remove_all(work);
  return 0;
}
