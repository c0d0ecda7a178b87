// The journal: one writer thread with group commit, a pool of readers, a
// checkpointer. See storegw/storage/journal.h for the contract.
//
// Durability, in order of writes:
//   1. Append() enqueues its request and blocks.
//   2. The writer takes every pending request, runs them in ONE transaction
//      (events, stock rows, alerts, watermark) and commits. The connection
//      runs WAL with synchronous=FULL, so COMMIT returns only after the WAL
//      frames holding the transaction are fsynced.
//   3. Only then is each caller answered. A crash before 3 loses nothing
//      that was acknowledged; a crash inside 2 rolls the whole group back.
// The in-memory counters (next seq, cumulative bytes) are rolled back with a
// failed transaction, so a seq is never handed out twice nor skipped.
#include <sqlite3.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <deque>
#include <fstream>
#include <future>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "internal.h"
#include "schema.h"
#include "sqlite_util.h"
#include "storegw/storage/journal.h"

namespace storegw::storage {

namespace fs = std::filesystem;

namespace internal {

Status CheckHeader(const fs::path& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return {};
  auto size = fs::file_size(path, ec);
  if (ec) return Status::IoError("journal: cannot stat " + path.string() + ": " + ec.message());
  if (size == 0) return {};
  std::ifstream in(path, std::ios::binary);
  char header[16] = {};
  in.read(header, sizeof header);
  if (!in || std::memcmp(header, "SQLite format 3", 16) != 0) {
    return Status::Corruption("journal: " + path.string() + " is not a database");
  }
  return {};
}

std::string UtcStamp() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

int64_t SystemNowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace internal

namespace {

constexpr int kPruneBatch = 1000;
// WAL size (pages) at which the checkpointer starts a passive checkpoint,
// and the size at which it insists (RESTART) so the WAL cannot grow forever
// under constant load.
constexpr int kCheckpointPages = 1000;
constexpr int kForceCheckpointPages = 16384;

// Moves journal.db (and its -wal/-shm) aside as journal.db.corrupt-<stamp>;
// never overwrites: adds a counter when the name is taken.
Result<std::string> MoveAside(const fs::path& path) {
  std::string base = path.string() + ".corrupt-" + internal::UtcStamp();
  std::string target = base;
  std::error_code ec;
  for (int i = 1; fs::exists(target, ec); ++i) target = base + "." + std::to_string(i);
  fs::rename(path, target, ec);
  if (ec) {
    return Status::IoError("journal: cannot move corrupt " + path.string() + " aside to " +
                           target + ": " + ec.message());
  }
  for (const char* suffix : {"-wal", "-shm"}) {
    fs::path side = path.string() + suffix;
    if (fs::exists(side, ec)) fs::rename(side, target + suffix, ec);
  }
  return target;
}

uint64_t RandomEpoch() {
  std::random_device rd;
  uint64_t v = 0;
  while (v == 0) v = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  return v;
}

struct StockState {
  bool exists = false;
  bool dirty = false;
  int64_t on_hand = 0;
  int64_t base_qty = 0;
  uint64_t as_of_seq = 0;
  uint64_t hq_version = 0;
  bool oversold = false;
  bool low = false;  // a LOW_STOCK alert is open
  uint64_t updated_seq = 0;
};

// One ApplySnapshot across its chunks. The caller fills `after` from a
// reader (deltas of events in (as_of_seq, scanned]); each chunk's writer
// transaction adds only the events in (scanned, its own seq) and moves
// `scanned` up, so the events after as_of_seq are read once, not per chunk.
struct SnapshotRun {
  const v1::StockSnapshot* snap = nullptr;
  std::unordered_map<std::string, int64_t> after;  // every sku of the snapshot
  uint64_t scanned = 0;
  bool checked = false;  // the first chunk passed the epoch/store/as_of checks
};

struct Request {
  enum class Kind { kAppend, kSnapshot, kPrice, kPrune } kind = Kind::kAppend;
  std::vector<v1::Event>* events = nullptr;
  SnapshotRun* run = nullptr;  // kSnapshot: lines [begin, end) of run->snap
  int begin = 0, end = 0;
  const v1::PriceUpdate* price = nullptr;
  Status status;
  std::vector<AppendResult> results;
  SnapshotResult snap;
  PriceResult price_result;
  uint64_t pruned = 0;
  std::promise<void> done;
};

// A read-only connection with its statements, owned by one thread at a time.
struct Reader {
  sql::Db db;
  sql::Stmt stock, prefix, range, alerts, price_at, price_next;
};

}  // namespace

struct Journal::Impl {
  ~Impl() {
    if (lock_fd >= 0) ::close(lock_fd);  // releases the writer lock
  }

  JournalOptions opt;
  fs::path path;
  int lock_fd = -1;  // <data_dir>/journal.lock, flock'ed for our lifetime
  OpenReport report;
  uint64_t epoch = 0;
  std::string store_id, gateway_id;

  // ---- writer-thread state (and Open/Close, before/after the thread runs)
  sql::Db wdb;
  sql::Stmt ins_event, find_event, get_stock, put_stock, ins_alert, clear_alert, set_meta,
      cum_before, scan_deltas, prune_scan, prune_delete, prune_alerts, q_page_count, q_freelist,
      q_page_size, q_first, find_price, ins_price;
  uint64_t next_seq = 1;
  uint64_t last_cum = 0;            // cum_bytes of the newest event
  uint64_t persisted_watermark = 0;
  uint64_t txn_watermark = 0;       // the watermark the open transaction puts in meta
  uint64_t stats_watermark = 0;     // watermark the derived stats were computed for
  uint64_t wm_base_cum = 0;         // cum_bytes of every event <= watermark
  std::unordered_map<std::string, StockState> dirty;
  // The disk refused a write (SQLITE_FULL). Appends are refused without
  // touching the disk until next_disk_probe, then one group tries again:
  // the status stays "full" instead of flickering with every request.
  bool disk_full = false;
  std::chrono::steady_clock::time_point next_disk_probe{};
  static constexpr std::chrono::seconds kDiskProbeInterval{1};

  // ---- queue
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Request*> queue;  // guarded by mu
  bool stopping = false;       // guarded by mu
  bool closed = false;         // guarded by mu
  std::thread writer;

  // ---- checkpointer
  std::mutex ck_mu;
  std::condition_variable ck_cv;
  bool ck_stop = false;  // guarded by ck_mu
  std::atomic<int> wal_pages{0};
  std::thread checkpointer;

  // ---- readers
  std::mutex rmu;
  std::vector<std::unique_ptr<Reader>> readers;  // guarded by rmu

  // ---- published state (atomics: read by any thread)
  std::atomic<uint64_t> acked{0};  // newest Ack()
  std::atomic<uint64_t> a_first{0}, a_last{0}, a_watermark{0}, a_journal_bytes{0},
      a_backlog_bytes{0}, a_appended{0}, a_dups{0}, a_commits{0};
  std::atomic<int64_t> a_oldest{0};
  std::atomic<bool> a_full{false};

  // Signalled after each commit that added events (WaitForSeqAbove).
  std::mutex seq_mu;
  std::condition_variable seq_cv;

  int64_t Now() const { return opt.now_us ? opt.now_us() : internal::SystemNowUs(); }

  // ------------------------------------------------------------ open

  Status OpenFile(bool& corrupt) {
    corrupt = false;
    if (Status s = internal::CheckHeader(path); !s.ok()) {
      corrupt = s.code() == StatusCode::kCorruption;
      return s;
    }
    if (Status s = wdb.Open(path.string(), SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE); !s.ok()) {
      return s;
    }
    auto fail = [&](Status s) {
      corrupt = s.code() == StatusCode::kCorruption;
      wdb.Close();
      return s;
    };
    if (Status s = wdb.Exec("PRAGMA busy_timeout=10000"); !s.ok()) return fail(s);
    // Every check runs before anything is written, so that a file we move
    // aside as corrupt is byte-identical to what we found.
    // Quick integrity check (b-tree structure and page accounting, not index
    // contents; journal verify does the full check). Open time must not grow
    // with the journal, so only the small tables are checked here and the
    // events table in the background -- unless a background check failed
    // before (marker file), then the whole file is checked now.
    // A schema migration writes to the file: check all of it first, so that
    // a damaged journal is moved aside as found, never migrated.
    auto stored_version = wdb.QueryInt("PRAGMA user_version");
    if (!stored_version.ok()) return fail(stored_version.status());
    const bool full_check = fs::exists(CheckFailedMarker()) ||
                            (*stored_version > 0 && *stored_version < kSchemaVersion);
    auto tables = wdb.QueryInt("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND "
                               "name IN ('meta', 'stock', 'alerts')");
    if (!tables.ok()) return fail(tables.status());
    std::vector<std::string> checks;
    if (full_check || *tables != 3) {
      checks.push_back("PRAGMA quick_check");
    } else {
      for (const char* t : {"meta", "stock", "alerts"}) {
        checks.push_back(std::string("PRAGMA quick_check(") + t + ")");
      }
    }
    for (const auto& check : checks) {
      auto qc = wdb.QueryText(check);
      if (!qc.ok()) return fail(qc.status());
      if (*qc != "ok") {
        return fail(Status::Corruption("journal: " + path.string() +
                                       " failed its integrity check: " + *qc));
      }
    }
    if (full_check) {
      std::error_code ec;
      fs::remove(CheckFailedMarker(), ec);
    }
    auto version = wdb.QueryInt("PRAGMA user_version");
    if (!version.ok()) return fail(version.status());
    if (*version > kSchemaVersion) {
      wdb.Close();
      return Status::FailedPrecondition(
          "journal: " + path.string() + " has schema version " + std::to_string(*version) +
          ", newer than this storegw understands (" + std::to_string(kSchemaVersion) +
          "); it was written by a newer release: upgrade storegw (the file is left untouched)");
    }
    if (*version == 0) {
      auto tables = wdb.QueryInt("SELECT count(*) FROM sqlite_master");
      if (!tables.ok()) return fail(tables.status());
      if (*tables != 0) {
        return fail(Status::Corruption("journal: " + path.string() +
                                       " is a database without a storegw schema version"));
      }
    }
    auto mode = wdb.QueryText("PRAGMA journal_mode=WAL");
    if (!mode.ok()) return fail(mode.status());
    if (*mode != "wal") return fail(Status::IoError("journal: cannot switch " + path.string() +
                                                    " to WAL mode (got " + *mode + ")"));
    // FULL: the WAL is fsynced at every commit, so an acknowledged event
    // survives power loss, not just a process crash.
    for (const char* pragma :
         {"PRAGMA synchronous=FULL", "PRAGMA secure_delete=OFF", "PRAGMA cache_size=-8192",
          "PRAGMA journal_size_limit=67108864", "PRAGMA temp_store=MEMORY"}) {
      if (Status s = wdb.Exec(pragma); !s.ok()) return fail(s);
    }
    if (*version < kSchemaVersion) {
      const bool fresh = *version == 0;
      std::function<Status()> identity;
      if (fresh) identity = [this] { return WriteIdentity(); };
      if (Status s = MigrateSchema(wdb, static_cast<int>(*version), identity); !s.ok()) {
        return fail(s);
      }
      if (fresh) {
        report.created = true;
      } else {
        report.migrated_from = static_cast<int>(*version);
      }
    }
    if (Status s = FinishUnidentified(); !s.ok()) return fail(s);
    if (Status s = LoadIdentity(); !s.ok()) {
      if (s.code() == StatusCode::kFailedPrecondition) {
        wdb.Close();
        return s;
      }
      return fail(s);
    }
    return {};
  }

  // A journal with the schema but no identity and no events (cut off by a
  // crash in a release that created them in two steps) is finished, not
  // declared corrupt: nothing was ever acknowledged from it.
  Status FinishUnidentified() {
    auto has_epoch = wdb.QueryInt("SELECT count(*) FROM meta WHERE key = 'epoch'");
    if (!has_epoch.ok()) return has_epoch.status();
    if (*has_epoch != 0) return {};
    auto events = wdb.QueryInt("SELECT count(*) FROM events");
    if (!events.ok()) return events.status();
    if (*events != 0) return {};  // LoadIdentity reports the missing epoch
    return RewriteIdentity();
  }

  // Replaces the identity (new epoch, configured ids) of a journal that
  // never held an event, in one transaction.
  Status RewriteIdentity() {
    if (Status s = wdb.Exec("BEGIN IMMEDIATE"); !s.ok()) return s;
    Status s = wdb.Exec("DELETE FROM meta");
    if (s.ok()) s = WriteIdentity();
    if (s.ok()) s = wdb.Exec("COMMIT");
    if (!s.ok()) {
      (void)wdb.Exec("ROLLBACK");
      return s;
    }
    report.created = true;
    return {};
  }

  fs::path CheckFailedMarker() const { return path.string() + ".check-failed"; }

  // Background quick_check of the whole file on its own read-only
  // connection. A failure is published in Stats() and leaves a marker so
  // the next Open checks (and if need be moves aside) the whole file.
  std::mutex ic_mu;
  sqlite3* ic_db = nullptr;  // guarded by ic_mu; interrupted by Close
  bool ic_stop = false;      // guarded by ic_mu
  std::string ic_error;      // guarded by ic_mu
  std::atomic<bool> ic_done{false};
  std::thread ic_thread;

  void IntegrityLoop() {
    sql::Db db;
    Status st = db.Open(path.string(), SQLITE_OPEN_READONLY);
    if (st.ok()) {
      std::lock_guard lk(ic_mu);
      if (ic_stop) return;
      ic_db = db.get();
    }
    std::string error;
    if (!st.ok()) {
      error = st.message();
    } else {
      (void)db.Exec("PRAGMA busy_timeout=10000");
      auto qc = db.QueryText("PRAGMA quick_check");
      if (!qc.ok()) {
        if ((sqlite3_errcode(db.get()) & 0xff) == SQLITE_INTERRUPT) {
          std::lock_guard lk(ic_mu);
          ic_db = nullptr;
          return;  // Close() interrupted us: not a verdict
        }
        error = qc.status().message();
      } else if (*qc != "ok") {
        error = "journal: " + path.string() + " failed its background integrity check: " + *qc;
      }
    }
    {
      std::lock_guard lk(ic_mu);
      ic_db = nullptr;
      ic_error = error;
    }
    if (!error.empty()) {
      std::ofstream marker(CheckFailedMarker());
      marker << error << "\n";
    }
    ic_done = true;
  }

  // Runs inside the schema-creating transaction (MigrateSchema).
  Status WriteIdentity() {
    epoch = RandomEpoch();
    sql::Stmt s;
    if (Status st = s.Prepare(wdb.get(), "INSERT INTO meta(key, value) VALUES(?, ?)"); !st.ok()) {
      return st;
    }
    const std::pair<const char*, std::string> rows[] = {
        {"epoch", std::to_string(epoch)},
        {"store_id", opt.store_id},
        {"gateway_id", opt.gateway_id},
        {"created_at", std::to_string(Now())},
        {"watermark", "0"},
    };
    for (const auto& [k, v] : rows) {
      s.Bind(1, std::string_view(k)).Bind(2, v);
      int rc = s.Step();
      s.Reset();
      if (rc != SQLITE_DONE) return wdb.Error(rc, "journal: write identity");
    }
    return {};
  }

  Status LoadIdentity() {
    sql::Stmt s;
    if (Status st = s.Prepare(wdb.get(), "SELECT key, value FROM meta"); !st.ok()) return st;
    std::unordered_map<std::string, std::string> meta;
    int rc;
    while ((rc = s.Step()) == SQLITE_ROW) meta[std::string(s.Text(0))] = std::string(s.Text(1));
    if (rc != SQLITE_DONE) return wdb.Error(rc, "journal: read meta");
    for (const char* k : {"epoch", "store_id", "gateway_id", "watermark"}) {
      if (!meta.count(k)) {
        return Status::Corruption("journal: " + path.string() + " has no '" + k +
                                  "' in its meta table");
      }
    }
    epoch = std::stoull(meta["epoch"]);
    store_id = meta["store_id"];
    gateway_id = meta["gateway_id"];
    if ((store_id != opt.store_id || gateway_id != opt.gateway_id) && !meta.count("last_seq")) {
      // A journal that never held an event (e.g. the packaged service started
      // once on the default ids before the store's config was put in place)
      // takes the configured identity, with a new epoch: nothing of the old
      // identity was ever acknowledged or sent.
      auto events = wdb.QueryInt("SELECT count(*) FROM events");
      if (!events.ok()) return events.status();
      if (*events == 0) {
        if (Status s = RewriteIdentity(); !s.ok()) return s;
        return LoadIdentity();
      }
    }
    if (store_id != opt.store_id || gateway_id != opt.gateway_id) {
      return Status::FailedPrecondition(
          "journal: " + path.string() + " belongs to store '" + store_id + "' gateway '" +
          gateway_id + "', not store '" + opt.store_id + "' gateway '" + opt.gateway_id +
          "'; a journal never changes identity (point data_dir elsewhere)");
    }
    persisted_watermark = std::stoull(meta["watermark"]);
    auto last = wdb.QueryInt("SELECT coalesce(max(seq), 0) FROM events");
    if (!last.ok()) return last.status();
    auto first = wdb.QueryInt("SELECT coalesce(min(seq), 0) FROM events");
    if (!first.ok()) return first.status();
    auto cum = wdb.QueryInt("SELECT coalesce((SELECT cum_bytes FROM events ORDER BY seq DESC LIMIT 1), 0)");
    if (!cum.ok()) return cum.status();
    // The highest seq ever handed out is kept in meta too, so that pruning
    // every event cannot make a seq be reused.
    uint64_t last_seq = static_cast<uint64_t>(*last);
    if (meta.count("last_seq")) last_seq = std::max<uint64_t>(last_seq, std::stoull(meta["last_seq"]));
    uint64_t last_cum_meta = meta.count("last_cum") ? std::stoull(meta["last_cum"]) : 0;
    next_seq = last_seq + 1;
    last_cum = std::max<uint64_t>(static_cast<uint64_t>(*cum), last_cum_meta);
    if (persisted_watermark > last_seq) persisted_watermark = last_seq;
    acked = persisted_watermark;
    a_first = static_cast<uint64_t>(*first);
    a_last = last_seq;
    return {};
  }

  Status Prepare() {
    struct {
      sql::Stmt* stmt;
      const char* sql;
    } stmts[] = {
        {&ins_event,
         "INSERT INTO events(seq, event_id, recorded_at, cum_bytes, count_delta, body) "
         "VALUES(?, ?, ?, ?, ?, ?) ON CONFLICT(event_id) DO NOTHING"},
        {&find_event, "SELECT seq FROM events WHERE event_id = ?"},
        {&get_stock,
         "SELECT on_hand, base_qty, as_of_seq, hq_version, oversold, updated_seq, low_stock "
         "FROM stock WHERE sku = ?"},
        {&put_stock,
         "INSERT INTO stock(sku, on_hand, base_qty, as_of_seq, hq_version, oversold, updated_seq, "
         "low_stock) VALUES(?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(sku) DO UPDATE SET "
         "on_hand = excluded.on_hand, base_qty = excluded.base_qty, "
         "as_of_seq = excluded.as_of_seq, hq_version = excluded.hq_version, "
         "oversold = excluded.oversold, updated_seq = excluded.updated_seq, "
         "low_stock = excluded.low_stock"},
        {&find_price,
         "SELECT seq FROM prices WHERE sku = ? AND effective_from = ? AND price = ? AND "
         "currency = ? ORDER BY seq LIMIT 1"},
        {&ins_price,
         "INSERT INTO prices(sku, effective_from, seq, price, currency) VALUES(?, ?, ?, ?, ?)"},
        {&ins_alert,
         "INSERT INTO alerts(seq, kind, sku, on_hand, message, raised_at) VALUES(?, ?, ?, ?, ?, "
         "?)"},
        {&clear_alert,
         "UPDATE alerts SET cleared_seq = ? WHERE sku = ? AND kind = ? AND cleared_seq IS NULL"},
        {&set_meta,
         "INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET "
         "value = excluded.value"},
        {&cum_before, "SELECT cum_bytes - length(body), recorded_at FROM events WHERE seq = ?"},
        {&q_page_count, "PRAGMA page_count"},
        {&q_freelist, "PRAGMA freelist_count"},
        {&q_page_size, "PRAGMA page_size"},
        {&q_first, "SELECT coalesce(min(seq), 0) FROM events"},
        {&scan_deltas,
         "SELECT body, count_delta FROM events WHERE seq > ? AND seq < ? ORDER BY seq"},
        {&prune_scan,
         "SELECT seq, recorded_at, body, count_delta FROM events WHERE seq <= ? ORDER BY seq "
         "LIMIT ?"},
        {&prune_delete, "DELETE FROM events WHERE seq <= ?"},
        {&prune_alerts, "DELETE FROM alerts WHERE seq <= ? AND cleared_seq IS NOT NULL"},
    };
    for (auto& [stmt, text] : stmts) {
      if (Status s = stmt->Prepare(wdb.get(), text); !s.ok()) return s;
    }
    return {};
  }

  // ------------------------------------------------------------ readers

  Result<std::unique_ptr<Reader>> AcquireReader() {
    {
      std::lock_guard lk(rmu);
      if (!readers.empty()) {
        auto r = std::move(readers.back());
        readers.pop_back();
        return r;
      }
    }
    auto r = std::make_unique<Reader>();
    if (Status s = r->db.Open(path.string(), SQLITE_OPEN_READONLY); !s.ok()) return s;
    if (Status s = r->db.Exec("PRAGMA busy_timeout=10000"); !s.ok()) return s;
    if (Status s = r->stock.Prepare(
            r->db.get(),
            "SELECT sku, on_hand, base_qty, as_of_seq, hq_version FROM stock WHERE sku = ?");
        !s.ok()) {
      return s;
    }
    if (Status s = r->prefix.Prepare(r->db.get(),
                                     "SELECT sku, on_hand, base_qty, as_of_seq, hq_version FROM "
                                     "stock WHERE sku >= ? ORDER BY sku LIMIT ?");
        !s.ok()) {
      return s;
    }
    if (Status s = r->range.Prepare(r->db.get(),
                                    "SELECT seq, recorded_at, body FROM events WHERE seq >= ? "
                                    "ORDER BY seq LIMIT ?");
        !s.ok()) {
      return s;
    }
    if (Status s = r->alerts.Prepare(
            r->db.get(),
            "SELECT seq, kind, sku, on_hand, message, raised_at FROM alerts WHERE "
            "cleared_seq IS NULL AND (kind IN (1, 4) OR raised_at >= ?) ORDER BY seq DESC "
            "LIMIT ?");
        !s.ok()) {
      return s;
    }
    if (Status s = r->price_at.Prepare(
            r->db.get(),
            "SELECT seq, price, currency, effective_from FROM prices WHERE sku = ? AND "
            "effective_from <= ? ORDER BY effective_from DESC, seq DESC LIMIT 1");
        !s.ok()) {
      return s;
    }
    if (Status s = r->price_next.Prepare(
            r->db.get(),
            "SELECT seq, price, currency, effective_from FROM prices WHERE sku = ? AND "
            "effective_from > ? ORDER BY effective_from ASC, seq DESC LIMIT 1");
        !s.ok()) {
      return s;
    }
    return r;
  }

  void ReleaseReader(std::unique_ptr<Reader> r) {
    std::lock_guard lk(rmu);
    if (static_cast<int>(readers.size()) < opt.reader_connections) readers.push_back(std::move(r));
  }

  // ------------------------------------------------------------ writer helpers

  Result<StockState*> Stock(const std::string& sku) {
    auto it = dirty.find(sku);
    if (it != dirty.end()) return &it->second;
    StockState st;
    sql::ResetGuard g(get_stock);
    get_stock.Bind(1, sku);
    int rc = get_stock.Step();
    if (rc == SQLITE_ROW) {
      st.exists = true;
      st.on_hand = get_stock.Int(0);
      st.base_qty = get_stock.Int(1);
      st.as_of_seq = static_cast<uint64_t>(get_stock.Int(2));
      st.hq_version = static_cast<uint64_t>(get_stock.Int(3));
      st.oversold = get_stock.Int(4) != 0;
      st.updated_seq = static_cast<uint64_t>(get_stock.Int(5));
      st.low = get_stock.Int(6) != 0;
    } else if (rc != SQLITE_DONE) {
      return wdb.Error(rc, "journal: read stock of " + sku);
    }
    return &dirty.emplace(sku, st).first->second;
  }

  Status FlushStock() {
    for (auto& [sku, st] : dirty) {
      if (!st.dirty) continue;
      sql::ResetGuard g(put_stock);
      put_stock.Bind(1, sku)
          .Bind(2, st.on_hand)
          .Bind(3, st.base_qty)
          .Bind(4, static_cast<int64_t>(st.as_of_seq))
          .Bind(5, static_cast<int64_t>(st.hq_version))
          .Bind(6, int64_t{st.oversold ? 1 : 0})
          .Bind(7, static_cast<int64_t>(st.updated_seq))
          .Bind(8, int64_t{st.low ? 1 : 0});
      int rc = put_stock.Step();
      if (rc != SQLITE_DONE) return wdb.Error(rc, "journal: write stock of " + sku);
      st.dirty = false;
      st.exists = true;
    }
    return {};
  }

  Status SetMeta(std::string_view key, const std::string& value) {
    sql::ResetGuard g(set_meta);
    set_meta.Bind(1, key).Bind(2, value);
    int rc = set_meta.Step();
    if (rc != SQLITE_DONE) return wdb.Error(rc, "journal: write meta " + std::string(key));
    return {};
  }

  // Inserts one event row with the next seq. Sets `inserted` false when the
  // event_id is already journaled (nothing written, no seq consumed).
  Status InsertRow(const v1::Event& e, std::optional<int64_t> count_delta, int64_t now,
                   uint64_t& seq, bool& inserted) {
    std::string body;
    e.SerializeToString(&body);
    seq = next_seq;
    const uint64_t cum = last_cum + body.size();
    {
      sql::ResetGuard g(ins_event);
      ins_event.Bind(1, static_cast<int64_t>(seq))
          .Bind(2, e.event_id())
          .Bind(3, now)
          .Bind(4, static_cast<int64_t>(cum));
      if (count_delta) ins_event.Bind(5, *count_delta);
      ins_event.BindBlob(6, body.data(), body.size());
      int rc = ins_event.Step();
      if (rc != SQLITE_DONE) return wdb.Error(rc, "journal: insert event " + e.event_id());
    }
    inserted = sqlite3_changes(wdb.get()) > 0;
    if (inserted) {
      ++next_seq;
      last_cum = cum;
    }
    return {};
  }

  Result<uint64_t> FindSeq(const std::string& event_id) {
    sql::ResetGuard g(find_event);
    find_event.Bind(1, event_id);
    int rc = find_event.Step();
    if (rc == SQLITE_ROW) return static_cast<uint64_t>(find_event.Int(0));
    if (rc == SQLITE_DONE) return Status::NotFound("event " + event_id);
    return wdb.Error(rc, "journal: look up event " + event_id);
  }

  // Journals an event the gateway writes itself (alert, snapshot, price).
  Result<uint64_t> InsertGatewayEvent(v1::Event e, int64_t now) {
    e.set_event_id("gw:" + gateway_id + ":" + std::to_string(next_seq));
    e.set_device_id(gateway_id);
    e.set_occurred_at(now);
    uint64_t seq = 0;
    bool inserted = false;
    if (Status s = InsertRow(e, std::nullopt, now, seq, inserted); !s.ok()) return s;
    if (!inserted) {
      return Status::Corruption("journal: gateway event id " + e.event_id() + " already exists");
    }
    if (e.body_case() == v1::Event::kAlert) {
      const auto& a = e.alert();
      sql::ResetGuard g(ins_alert);
      ins_alert.Bind(1, static_cast<int64_t>(seq))
          .Bind(2, static_cast<int64_t>(a.kind()))
          .Bind(3, a.sku())
          .Bind(4, a.on_hand())
          .Bind(5, a.message())
          .Bind(6, now);
      int rc = ins_alert.Step();
      if (rc != SQLITE_DONE) return wdb.Error(rc, "journal: insert alert");
    }
    return seq;
  }

  Result<uint64_t> RaiseAlert(v1::Alert::Kind kind, const std::string& sku, int64_t on_hand,
                              std::string message, uint64_t cause_seq, int64_t now) {
    v1::Event e;
    auto* a = e.mutable_alert();
    a->set_kind(kind);
    a->set_sku(sku);
    a->set_on_hand(on_hand);
    a->set_message(std::move(message));
    a->set_cause_seq(cause_seq);
    return InsertGatewayEvent(std::move(e), now);
  }

  // Applies the oversell rule to `sku` after a change at `seq`: raise once
  // when on_hand goes below zero, clear when it is back at or above zero.
  Status CheckOversell(const std::string& sku, StockState& st, uint64_t seq, int64_t now) {
    if (st.on_hand < 0 && !st.oversold) {
      st.oversold = true;
      st.dirty = true;
      auto r = RaiseAlert(v1::Alert::OVERSELL, sku, st.on_hand,
                          "on_hand of " + sku + " went below zero (" + std::to_string(st.on_hand) +
                              ") at seq " + std::to_string(seq) +
                              ": sold more than the ledger holds; check for a missed receipt "
                              "or a miscount",
                          seq, now);
      if (!r.ok()) return r.status();
    } else if (st.on_hand >= 0 && st.oversold) {
      st.oversold = false;
      st.dirty = true;
      return ClearAlert(v1::Alert::OVERSELL, sku, seq);
    }
    return {};
  }

  Status ClearAlert(v1::Alert::Kind kind, const std::string& sku, uint64_t seq) {
    sql::ResetGuard g(clear_alert);
    clear_alert.Bind(1, static_cast<int64_t>(seq)).Bind(2, sku).Bind(3, static_cast<int64_t>(kind));
    int rc = clear_alert.Step();
    if (rc != SQLITE_DONE) return wdb.Error(rc, "journal: clear alert");
    return {};
  }

  // The low-stock threshold of `sku` (per-sku map first, else the default);
  // < 0: no low-stock alert for it.
  int64_t LowStockThreshold(const std::string& sku) const {
    auto it = opt.low_stock_thresholds.find(sku);
    return it != opt.low_stock_thresholds.end() ? it->second : opt.low_stock_default;
  }

  // The low-stock rule, like oversell: raise once when on_hand falls below
  // the sku's threshold, clear when it is back at or above it.
  Status CheckLowStock(const std::string& sku, StockState& st, uint64_t seq, int64_t now) {
    const int64_t threshold = LowStockThreshold(sku);
    const bool below = threshold >= 0 && st.on_hand < threshold;
    if (below && !st.low) {
      st.low = true;
      st.dirty = true;
      auto r = RaiseAlert(v1::Alert::LOW_STOCK, sku, st.on_hand,
                          "on_hand of " + sku + " fell to " + std::to_string(st.on_hand) +
                              ", below its low-stock threshold " + std::to_string(threshold) +
                              " at seq " + std::to_string(seq) + ": reorder or restock the shelf",
                          seq, now);
      if (!r.ok()) return r.status();
    } else if (!below && st.low) {
      st.low = false;
      st.dirty = true;
      return ClearAlert(v1::Alert::LOW_STOCK, sku, seq);
    }
    return {};
  }

  // Every rule that watches on_hand, after a change of `sku` at `seq`.
  Status CheckStockAlerts(const std::string& sku, StockState& st, uint64_t seq, int64_t now) {
    if (Status s = CheckOversell(sku, st, seq, now); !s.ok()) return s;
    return CheckLowStock(sku, st, seq, now);
  }

  // ------------------------------------------------------------ requests

  // Runs inside the group's transaction. A non-ok return is an SQLite
  // failure that aborts the whole group.
  Status DoAppend(Request& r, int64_t now) {
    std::unordered_map<std::string, uint64_t> in_request;  // event_id -> seq
    r.results.clear();
    r.results.reserve(r.events->size());
    for (const v1::Event& e : *r.events) {
      AppendResult res;
      res.event_id = e.event_id();
      if (auto it = in_request.find(e.event_id()); it != in_request.end()) {
        res.seq = it->second;
        res.duplicate = true;
        r.results.push_back(std::move(res));
        continue;
      }
      std::optional<int64_t> count_delta;
      StockState* count_st = nullptr;
      if (e.body_case() == v1::Event::kCount) {
        auto st = Stock(e.count().sku());
        if (!st.ok()) return st.status();
        count_st = *st;
        count_delta = e.count().qty() - count_st->on_hand;
      }
      uint64_t seq = 0;
      bool inserted = false;
      if (Status s = InsertRow(e, count_delta, now, seq, inserted); !s.ok()) return s;
      if (!inserted) {
        auto found = FindSeq(e.event_id());
        if (!found.ok()) return found.status();
        res.seq = *found;
        res.duplicate = true;
        in_request.emplace(e.event_id(), res.seq);
        r.results.push_back(std::move(res));
        continue;
      }
      res.seq = seq;
      in_request.emplace(e.event_id(), seq);
      r.results.push_back(std::move(res));
      // Apply the stock effect, then the oversell rule per touched sku, in
      // line order; alerts get the seqs right after the event.
      std::vector<std::pair<std::string, StockState*>> touched;
      Status err;
      internal::ForEachDelta(e, count_delta.value_or(0),
                             [&](const std::string& sku, int64_t d) {
                               if (!err.ok()) return;
                               auto st = Stock(sku);
                               if (!st.ok()) {
                                 err = st.status();
                                 return;
                               }
                               (*st)->on_hand += d;
                               (*st)->dirty = true;
                               (*st)->updated_seq = seq;
                               if (std::none_of(touched.begin(), touched.end(),
                                                [&](auto& t) { return t.first == sku; })) {
                                 touched.emplace_back(sku, *st);
                               }
                             });
      if (!err.ok()) return err;
      // A cycle count far from the ledger: alert right after the count.
      if (count_delta && opt.count_mismatch_threshold >= 0 &&
          (*count_delta < 0 ? -*count_delta : *count_delta) > opt.count_mismatch_threshold) {
        const auto& c = e.count();
        auto a = RaiseAlert(v1::Alert::COUNT_MISMATCH, c.sku(), c.qty(),
                            "cycle count of " + c.sku() + " at seq " + std::to_string(seq) +
                                " found " + std::to_string(c.qty()) + ", the ledger held " +
                                std::to_string(c.qty() - *count_delta) + " (difference " +
                                std::to_string(*count_delta) + ", threshold " +
                                std::to_string(opt.count_mismatch_threshold) +
                                "): check for unrecorded receipts, shrink or a miscount",
                            seq, now);
        if (!a.ok()) return a.status();
      }
      for (auto& [sku, st] : touched) {
        if (Status s = CheckStockAlerts(sku, *st, seq, now); !s.ok()) return s;
      }
    }
    return {};
  }

  // One chunk (lines [r.begin, r.end)) of an HQ snapshot, journaled as its
  // own stock_snapshot event holding just those lines, in the transaction
  // that rebases them: a crash between chunks leaves every sku either
  // rebased or not, each correct on its own.
  Status DoSnapshot(Request& r, int64_t now) {
    SnapshotRun& run = *r.run;
    const v1::StockSnapshot& snap = *run.snap;
    if (!run.checked) {
      const uint64_t last = next_seq - 1;
      std::string reject;
      if (snap.epoch() != epoch) {
        reject = "snapshot is for epoch " + std::to_string(snap.epoch()) +
                 ", this journal is epoch " + std::to_string(epoch);
      } else if (snap.store_id() != store_id) {
        reject =
            "snapshot is for store '" + snap.store_id() + "', this is store '" + store_id + "'";
      } else if (snap.as_of_seq() > last) {
        reject = "snapshot as_of_seq " + std::to_string(snap.as_of_seq()) +
                 " is beyond the journal's last seq " + std::to_string(last);
      }
      if (!reject.empty()) {
        r.snap.outcome = SnapshotResult::Outcome::kRejected;
        r.snap.reason = reject;
        auto seq = RaiseAlert(v1::Alert::SNAPSHOT_REJECTED, "", 0,
                              "HQ stock snapshot (hq_version " + std::to_string(snap.hq_version()) +
                                  ") rejected: " + reject,
                              0, now);
        if (!seq.ok()) return seq.status();
        r.snap.seq = *seq;
        return {};
      }
      run.checked = true;
    }
    v1::Event e;
    auto* part = e.mutable_stock_snapshot();
    part->set_store_id(snap.store_id());
    part->set_epoch(snap.epoch());
    part->set_as_of_seq(snap.as_of_seq());
    part->set_hq_version(snap.hq_version());
    for (int i = r.begin; i < r.end; ++i) *part->add_lines() = snap.lines(i);
    auto seq = InsertGatewayEvent(std::move(e), now);
    if (!seq.ok()) return seq.status();
    r.snap.seq = *seq;

    // Only the events the caller's scan did not see: (scanned, this event).
    {
      const uint64_t from = std::max(run.scanned, snap.as_of_seq());
      sql::ResetGuard g(scan_deltas);
      scan_deltas.Bind(1, static_cast<int64_t>(from)).Bind(2, static_cast<int64_t>(*seq));
      int rc;
      v1::Event ev;
      while ((rc = scan_deltas.Step()) == SQLITE_ROW) {
        auto blob = scan_deltas.Blob(0);
        if (!ev.ParseFromArray(blob.data(), static_cast<int>(blob.size()))) {
          return Status::Corruption("journal: an event after seq " + std::to_string(from) +
                                    " does not decode");
        }
        internal::ForEachDelta(ev, scan_deltas.Int(1), [&](const std::string& sku, int64_t d) {
          if (auto it = run.after.find(sku); it != run.after.end()) it->second += d;
        });
      }
      if (rc != SQLITE_DONE) return wdb.Error(rc, "journal: scan deltas");
      run.scanned = *seq;  // the chunk's own event has no stock delta
    }
    for (int i = r.begin; i < r.end; ++i) {
      const auto& l = snap.lines(i);
      auto st = Stock(l.sku());
      if (!st.ok()) return st.status();
      StockState& s = **st;
      if (internal::SnapshotIsStale(s.exists || s.dirty, s.as_of_seq, s.hq_version,
                                    snap.as_of_seq(), snap.hq_version())) {
        ++r.snap.skus_stale;
        continue;
      }
      s.base_qty = l.qty();
      s.as_of_seq = snap.as_of_seq();
      s.hq_version = snap.hq_version();
      s.on_hand = l.qty() + run.after[l.sku()];
      s.updated_seq = *seq;
      s.dirty = true;
      ++r.snap.skus_applied;
      if (Status c = CheckStockAlerts(l.sku(), s, *seq, now); !c.ok()) return c;
    }
    return {};
  }

  // An HQ price: journaled as a price_update event and recorded, unless an
  // identical one (sku, effective_from, price, currency) is recorded already.
  Status DoPrice(Request& r, int64_t now) {
    const v1::PriceUpdate& p = *r.price;
    {
      sql::ResetGuard g(find_price);
      find_price.Bind(1, p.sku())
          .Bind(2, p.effective_from())
          .Bind(3, p.price())
          .Bind(4, p.currency());
      int rc = find_price.Step();
      if (rc == SQLITE_ROW) {
        r.price_result.seq = static_cast<uint64_t>(find_price.Int(0));
        r.price_result.duplicate = true;
        return {};
      }
      if (rc != SQLITE_DONE) return wdb.Error(rc, "journal: look up price of " + p.sku());
    }
    v1::Event e;
    *e.mutable_price_update() = p;
    auto seq = InsertGatewayEvent(std::move(e), now);
    if (!seq.ok()) return seq.status();
    sql::ResetGuard g(ins_price);
    ins_price.Bind(1, p.sku())
        .Bind(2, p.effective_from())
        .Bind(3, static_cast<int64_t>(*seq))
        .Bind(4, p.price())
        .Bind(5, p.currency());
    int rc = ins_price.Step();
    if (rc != SQLITE_DONE) return wdb.Error(rc, "journal: record price of " + p.sku());
    r.price_result.seq = *seq;
    r.price_result.duplicate = false;
    return {};
  }

  // Folds pruned events' deltas into each sku's base so that
  // on_hand == base_qty + sum(deltas with seq > as_of_seq) stays true.
  Result<uint64_t> PruneBatch(int64_t now) {
    const uint64_t wm = acked.load();
    const int64_t cutoff = now - std::chrono::duration_cast<std::chrono::microseconds>(
                                     opt.retention).count();
    uint64_t upto = 0;
    {
      sql::ResetGuard g(prune_scan);
      prune_scan.Bind(1, static_cast<int64_t>(wm)).Bind(2, int64_t{kPruneBatch});
      int rc;
      v1::Event ev;
      while ((rc = prune_scan.Step()) == SQLITE_ROW) {
        const uint64_t seq = static_cast<uint64_t>(prune_scan.Int(0));
        // Stop at the first event still inside retention: the retained range
        // stays contiguous even when the clock went backwards.
        if (prune_scan.Int(1) >= cutoff) break;
        auto blob = prune_scan.Blob(2);
        if (!ev.ParseFromArray(blob.data(), static_cast<int>(blob.size()))) {
          return Status::Corruption("journal: event " + std::to_string(seq) + " does not decode");
        }
        Status err;
        // A sku may appear on several lines of one event: every line is
        // folded, not only the first (after which as_of_seq == seq).
        std::unordered_set<std::string> folded_here;
        internal::ForEachDelta(ev, prune_scan.Int(3), [&](const std::string& sku, int64_t d) {
          if (!err.ok()) return;
          auto st = Stock(sku);
          if (!st.ok()) {
            err = st.status();
            return;
          }
          if (seq > (*st)->as_of_seq || folded_here.count(sku)) {
            (*st)->base_qty += d;
            (*st)->as_of_seq = seq;
            (*st)->dirty = true;
            folded_here.insert(sku);
          }
        });
        if (!err.ok()) return err;
        upto = seq;
      }
      if (rc != SQLITE_DONE && rc != SQLITE_ROW) return wdb.Error(rc, "journal: scan for pruning");
    }
    if (upto == 0) return uint64_t{0};
    {
      sql::ResetGuard g(prune_delete);
      prune_delete.Bind(1, static_cast<int64_t>(upto));
      int rc = prune_delete.Step();
      if (rc != SQLITE_DONE) return wdb.Error(rc, "journal: prune events");
    }
    const uint64_t n = static_cast<uint64_t>(sqlite3_changes(wdb.get()));
    {
      sql::ResetGuard g(prune_alerts);
      prune_alerts.Bind(1, static_cast<int64_t>(upto));
      int rc = prune_alerts.Step();
      if (rc != SQLITE_DONE) return wdb.Error(rc, "journal: prune alerts");
    }
    return n;
  }

  // ------------------------------------------------------------ the writer

  Status PersistWatermarkInTxn() {
    const uint64_t wm = acked.load();
    txn_watermark = wm;
    if (wm == persisted_watermark) return {};
    if (Status s = SetMeta("watermark", std::to_string(wm)); !s.ok()) return s;
    return {};
  }

  // Records the high-water marks so that a seq is never reused, even when
  // retention has pruned every event.
  Status PersistCountersInTxn() {
    if (Status s = SetMeta("last_seq", std::to_string(next_seq - 1)); !s.ok()) return s;
    return SetMeta("last_cum", std::to_string(last_cum));
  }

  void Rollback(uint64_t seq0, uint64_t cum0) {
    (void)wdb.Exec("ROLLBACK");
    next_seq = seq0;
    last_cum = cum0;
    dirty.clear();
  }

  uint64_t UsedBytes() {
    int64_t v[3];
    sql::Stmt* stmts[3] = {&q_page_count, &q_freelist, &q_page_size};
    for (int i = 0; i < 3; ++i) {
      sql::ResetGuard g(*stmts[i]);
      if (stmts[i]->Step() != SQLITE_ROW) return a_journal_bytes.load();
      v[i] = stmts[i]->Int(0);
    }
    return static_cast<uint64_t>((v[0] - v[1]) * v[2]);
  }

  // Refreshes what Stats() shows; called by the writer after each change.
  void Publish(bool sizes, bool pruned = false) {
    const uint64_t last = next_seq - 1;
    const uint64_t wm = std::min(acked.load(), last);
    if (wm != stats_watermark || a_oldest.load() == 0) {
      stats_watermark = wm;
      wm_base_cum = last_cum;
      int64_t oldest = 0;
      if (wm < last) {
        sql::ResetGuard g(cum_before);
        cum_before.Bind(1, static_cast<int64_t>(wm + 1));
        if (cum_before.Step() == SQLITE_ROW) {
          wm_base_cum = static_cast<uint64_t>(cum_before.Int(0));
          oldest = cum_before.Int(1);
        }
      }
      a_oldest = oldest;
    }
    a_watermark = wm;
    a_last = last;
    a_backlog_bytes = last_cum >= wm_base_cum ? last_cum - wm_base_cum : 0;
    if (sizes) a_journal_bytes = UsedBytes();
    if (pruned) {
      sql::ResetGuard g(q_first);
      if (q_first.Step() == SQLITE_ROW) a_first = static_cast<uint64_t>(q_first.Int(0));
    }
    a_full = disk_full || a_journal_bytes.load() >= opt.max_bytes;
  }

  void ProcessGroup(std::vector<Request*>& group) {
    const int64_t now = Now();
    const uint64_t seq0 = next_seq, cum0 = last_cum;
    const bool full = a_journal_bytes.load() >= opt.max_bytes ||
                      (disk_full && std::chrono::steady_clock::now() < next_disk_probe);
    bool tried_append = false;
    dirty.clear();
    Status st = wdb.Exec("BEGIN IMMEDIATE");
    uint64_t appended = 0, dups = 0;
    std::vector<Request*> live;
    for (Request* r : group) {
      if (!st.ok()) break;
      if (r->kind == Request::Kind::kAppend) {
        if (full) {
          r->status = Status::ResourceExhausted(
              "journal is full (" + std::to_string(a_journal_bytes.load()) + " bytes in use, " +
              "max_bytes " + std::to_string(opt.max_bytes) +
              (disk_full ? ", and the disk is full" : "") +
              "): undelivered events are kept; ingest resumes when delivery and retention "
              "free space");
          continue;
        }
        tried_append = true;
        st = DoAppend(*r, now);
        for (auto& res : r->results) (res.duplicate ? dups : appended)++;
      } else if (r->kind == Request::Kind::kSnapshot) {
        st = DoSnapshot(*r, now);
      } else if (r->kind == Request::Kind::kPrice) {
        st = DoPrice(*r, now);
      }
      live.push_back(r);
    }
    if (st.ok()) st = FlushStock();
    if (st.ok()) st = PersistWatermarkInTxn();
    // Size while the write transaction is open: no extra read transaction
    // (and WAL read lock) per commit.
    const uint64_t used = st.ok() ? UsedBytes() : 0;
    if (st.ok()) st = wdb.Exec("COMMIT");
    if (st.ok()) a_journal_bytes = used;
    if (!st.ok()) {
      Rollback(seq0, cum0);
      if (st.code() == StatusCode::kResourceExhausted) {
        disk_full = true;
        next_disk_probe = std::chrono::steady_clock::now() + kDiskProbeInterval;
      }
      for (Request* r : live) {
        r->status = st;
        r->results.clear();
      }
    } else {
      // What this transaction wrote, not acked.load(): an Ack() racing the
      // commit must still be written by a later one (retention prunes up to
      // acked, and the watermark on disk must cover what was pruned).
      persisted_watermark = std::max(persisted_watermark, txn_watermark);
      if (tried_append) disk_full = false;
      if (a_first.load() == 0 && next_seq != seq0) a_first = seq0;
      a_appended += appended;
      a_dups += dups;
      ++a_commits;
    }
    dirty.clear();
    Publish(!st.ok());
    if (next_seq != seq0) {
      { std::lock_guard lk(seq_mu); }
      seq_cv.notify_all();
    }
    for (Request* r : group) r->done.set_value();
  }

  // One retention batch in its own transaction, plus a lazy watermark write.
  Result<uint64_t> Maintain() {
    const uint64_t seq0 = next_seq, cum0 = last_cum;
    dirty.clear();
    if (Status s = wdb.Exec("BEGIN IMMEDIATE"); !s.ok()) return s;
    const uint64_t wm = acked.load();
    auto pruned = PruneBatch(Now());
    Status st = pruned.ok() ? Status() : pruned.status();
    if (st.ok()) st = FlushStock();
    if (st.ok()) st = PersistWatermarkInTxn();
    // Only pruning removes rows, so the high-water marks need to be on disk
    // only when it does (in the same transaction as the delete).
    if (st.ok() && *pruned > 0) st = PersistCountersInTxn();
    if (st.ok()) st = wdb.Exec("COMMIT");
    dirty.clear();
    if (!st.ok()) {
      Rollback(seq0, cum0);
      return st;
    }
    persisted_watermark = std::max(persisted_watermark, wm);
    if (*pruned > 0) disk_full = false;
    Publish(*pruned > 0, *pruned > 0);
    return *pruned;
  }

  void WriterLoop() {
    auto next_maint = std::chrono::steady_clock::now() + opt.maintenance_interval;
    uint64_t last_ack_seen = acked.load();
    for (;;) {
      std::vector<Request*> group;
      std::vector<Request*> prunes;
      bool stop = false;
      {
        std::unique_lock lk(mu);
        cv.wait_until(lk, next_maint, [&] {
          return stopping || !queue.empty() || acked.load() != last_ack_seen;
        });
        size_t events = 0;
        while (!queue.empty()) {
          Request* r = queue.front();
          if (r->kind == Request::Kind::kPrune) {
            prunes.push_back(r);
            queue.pop_front();
            continue;
          }
          size_t n = r->kind == Request::Kind::kAppend ? r->events->size() : 1;
          if (!group.empty() && events + n > opt.max_group_events) break;
          events += n;
          group.push_back(r);
          queue.pop_front();
        }
        stop = stopping && queue.empty();
      }
      if (!group.empty()) ProcessGroup(group);
      if (acked.load() != last_ack_seen) {
        last_ack_seen = acked.load();
        Publish(false);
      }
      for (Request* r : prunes) {
        uint64_t total = 0;
        for (;;) {
          auto n = Maintain();
          if (!n.ok()) {
            r->status = n.status();
            break;
          }
          total += *n;
          if (*n < static_cast<uint64_t>(kPruneBatch)) break;
        }
        r->pruned = total;
        r->done.set_value();
      }
      const auto now = std::chrono::steady_clock::now();
      if (now >= next_maint || stop) {
        // Small batches, and stop as soon as requests are waiting: retention
        // never holds ingest for more than one batch.
        for (int i = 0; i < 50; ++i) {
          auto n = Maintain();
          if (!n.ok() || *n < static_cast<uint64_t>(kPruneBatch)) break;
          std::lock_guard lk(mu);
          if (!queue.empty()) break;
        }
        next_maint = std::chrono::steady_clock::now() + opt.maintenance_interval;
      }
      if (stop) break;
    }
  }

  static int WalHook(void* self, sqlite3*, const char*, int pages) {
    auto* impl = static_cast<Impl*>(self);
    impl->wal_pages = pages;
    if (pages >= kCheckpointPages) impl->ck_cv.notify_one();
    return SQLITE_OK;
  }

  // Copies WAL frames into the main file off the writer thread, so commit
  // latency does not carry checkpoint I/O.
  void CheckpointLoop() {
    sql::Db db;
    if (!db.Open(path.string(), SQLITE_OPEN_READWRITE).ok()) return;
    (void)db.Exec("PRAGMA busy_timeout=2000");
    std::unique_lock lk(ck_mu);
    while (!ck_stop) {
      ck_cv.wait_for(lk, std::chrono::seconds(1),
                     [&] { return ck_stop || wal_pages.load() >= kCheckpointPages; });
      if (ck_stop) break;
      if (wal_pages.load() < kCheckpointPages) continue;
      const int mode = wal_pages.load() >= kForceCheckpointPages ? SQLITE_CHECKPOINT_RESTART
                                                                  : SQLITE_CHECKPOINT_PASSIVE;
      lk.unlock();
      int log = 0, done = 0;
      sqlite3_wal_checkpoint_v2(db.get(), nullptr, mode, &log, &done);
      lk.lock();
      if (log >= 0 && done >= log) wal_pages = 0;
      else wal_pages = log - done;
      // Avoid spinning when frames cannot be copied yet (a reader holds an
      // old snapshot): wait for the next notification or tick.
      if (wal_pages.load() >= kCheckpointPages) {
        ck_cv.wait_for(lk, std::chrono::milliseconds(100), [&] { return ck_stop; });
      }
    }
  }

  // Sums, on a reader, the stock deltas of every committed event after the
  // snapshot's as_of_seq for the skus in run.after, and records the newest
  // seq it saw in run.scanned. Never blocks the writer.
  Status ScanAfter(SnapshotRun& run) {
    auto r = AcquireReader();
    if (!r.ok()) return r.status();
    sql::Db& db = (*r)->db;
    Status st = db.Exec("BEGIN");
    uint64_t top = 0;
    if (st.ok()) {
      auto max = db.QueryInt("SELECT coalesce(max(seq), 0) FROM events");
      if (max.ok()) {
        top = static_cast<uint64_t>(*max);
      } else {
        st = max.status();
      }
    }
    const uint64_t from = run.snap->as_of_seq();
    if (st.ok() && top > from) {
      sql::Stmt scan;
      st = scan.Prepare(db.get(),
                        "SELECT body, count_delta FROM events WHERE seq > ? AND seq <= ? "
                        "ORDER BY seq");
      if (st.ok()) {
        scan.Bind(1, static_cast<int64_t>(from)).Bind(2, static_cast<int64_t>(top));
        int rc;
        v1::Event ev;
        while ((rc = scan.Step()) == SQLITE_ROW) {
          auto blob = scan.Blob(0);
          if (!ev.ParseFromArray(blob.data(), static_cast<int>(blob.size()))) {
            st = Status::Corruption("journal: an event after seq " + std::to_string(from) +
                                    " does not decode");
            break;
          }
          internal::ForEachDelta(ev, scan.Int(1), [&](const std::string& sku, int64_t d) {
            if (auto it = run.after.find(sku); it != run.after.end()) it->second += d;
          });
        }
        if (st.ok() && rc != SQLITE_DONE) st = db.Error(rc, "journal: scan deltas");
      }
    }
    (void)db.Exec("COMMIT");
    ReleaseReader(std::move(*r));
    if (!st.ok()) return st;
    run.scanned = std::max(top, from);
    return {};
  }

  Status Submit(Request& r) {
    auto fut = r.done.get_future();
    {
      std::lock_guard lk(mu);
      if (stopping || closed) return Status::Unavailable("journal is closed (shutting down)");
      queue.push_back(&r);
    }
    cv.notify_one();
    fut.wait();
    return r.status;
  }
};

// ------------------------------------------------------------------ Journal

Journal::Journal(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Journal::~Journal() { Close(); }

Result<std::unique_ptr<Journal>> Journal::Open(const JournalOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->opt = options;
  if (impl->opt.reader_connections < 1) impl->opt.reader_connections = 1;
  if (impl->opt.max_group_events < 1) impl->opt.max_group_events = 1;
  std::error_code ec;
  // The journal holds the store's sales: a new data_dir is private (0700).
  const bool made = fs::create_directories(options.data_dir, ec);
  if (!ec && made) fs::permissions(options.data_dir, fs::perms::owner_all, fs::perm_options::replace, ec);
  if (ec) {
    return Status::IoError("journal: cannot create data_dir " + options.data_dir.string() + ": " +
                           ec.message());
  }
  impl->path = options.data_dir / internal::kJournalFile;

  // One writer per journal: a second storegw on the same data_dir would
  // hand out the same seqs. flock is released by the kernel if we die.
  const fs::path lock_path = options.data_dir / "journal.lock";
  impl->lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (impl->lock_fd < 0) {
    return Status::IoError("journal: cannot open " + lock_path.string() + ": " +
                           std::strerror(errno));
  }
  if (::flock(impl->lock_fd, LOCK_EX | LOCK_NB) != 0) {
    char buf[32] = {};
    ssize_t n = ::pread(impl->lock_fd, buf, sizeof buf - 1, 0);
    std::string holder = n > 0 ? std::string(buf, static_cast<size_t>(n)) : "unknown";
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
    return Status::Unavailable("journal: " + impl->path.string() +
                               " is in use by another storegw (pid " + holder +
                               "); only one writer may hold a journal");
  }
  {
    const std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(impl->lock_fd, 0) == 0) {
      (void)!::pwrite(impl->lock_fd, pid.data(), pid.size(), 0);
    }
  }

  bool corrupt = false;
  Status s = impl->OpenFile(corrupt);
  if (!s.ok() && corrupt) {
    auto moved = MoveAside(impl->path);
    if (!moved.ok()) return moved.status();
    // SQLite's own words ("database disk image is malformed") do not say
    // which file: the operator reads the reason in the log.
    std::string reason = s.message();
    if (reason.find(impl->path.string()) == std::string::npos) {
      reason = "journal: " + impl->path.string() + " is damaged: " + reason;
    }
    impl->report.corrupt_moved_to = *moved;
    impl->report.corrupt_reason = reason;
    if (options.on_corrupt == OnCorrupt::kMoveAsideAndFail) {
      return Status::Corruption(reason + " (moved to " + *moved + ")");
    }
    impl->report.created = false;
    s = impl->OpenFile(corrupt);
  }
  if (!s.ok()) return s;
  if (Status p = impl->Prepare(); !p.ok()) return p;

  sqlite3_wal_hook(impl->wdb.get(), &Impl::WalHook, impl.get());
  impl->Publish(true, true);
  Impl* raw = impl.get();
  impl->writer = std::thread([raw] { raw->WriterLoop(); });
  impl->checkpointer = std::thread([raw] { raw->CheckpointLoop(); });
  impl->ic_thread = std::thread([raw] { raw->IntegrityLoop(); });
  return std::unique_ptr<Journal>(new Journal(std::move(impl)));
}

void Journal::Close() {
  if (!impl_) return;
  {
    std::lock_guard lk(impl_->mu);
    if (impl_->closed) return;
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  {
    std::lock_guard lk(impl_->ic_mu);
    impl_->ic_stop = true;
    if (impl_->ic_db) sqlite3_interrupt(impl_->ic_db);
  }
  if (impl_->ic_thread.joinable()) impl_->ic_thread.join();
  if (impl_->writer.joinable()) impl_->writer.join();
  {
    std::lock_guard lk(impl_->ck_mu);
    impl_->ck_stop = true;
  }
  impl_->ck_cv.notify_all();
  if (impl_->checkpointer.joinable()) impl_->checkpointer.join();
  {
    std::lock_guard lk(impl_->rmu);
    impl_->readers.clear();
  }
  // Fold the WAL back into the main file so the directory holds one file
  // at rest (what an operator copies for support).
  (void)impl_->wdb.Exec("PRAGMA wal_checkpoint(TRUNCATE)");
  sqlite3_wal_hook(impl_->wdb.get(), nullptr, nullptr);
  impl_->wdb.Close();
  if (impl_->lock_fd >= 0) {
    ::close(impl_->lock_fd);  // the journal may be opened again from now on
    impl_->lock_fd = -1;
  }
  {
    std::lock_guard lk(impl_->mu);
    impl_->closed = true;
  }
  { std::lock_guard lk(impl_->seq_mu); }
  impl_->seq_cv.notify_all();
}

uint64_t Journal::WaitForSeqAbove(uint64_t seq, std::chrono::milliseconds timeout) {
  std::unique_lock lk(impl_->seq_mu);
  impl_->seq_cv.wait_for(lk, timeout, [&] {
    if (impl_->a_last.load() > seq) return true;
    std::lock_guard qlk(impl_->mu);
    return impl_->stopping || impl_->closed;
  });
  return impl_->a_last.load();
}

Result<std::vector<AppendResult>> Journal::Append(std::vector<v1::Event> events) {
  if (events.empty()) return std::vector<AppendResult>{};
  for (size_t i = 0; i < events.size(); ++i) {
    if (Status s = ValidateDeviceEvent(events[i]); !s.ok()) {
      return s.WithFieldPrefix("events[" + std::to_string(i) + "]");
    }
  }
  Request r;
  r.kind = Request::Kind::kAppend;
  r.events = &events;
  if (Status s = impl_->Submit(r); !s.ok()) return s;
  return std::move(r.results);
}

Result<SnapshotResult> Journal::ApplySnapshot(const v1::StockSnapshot& snapshot) {
  if (Status s = ValidateSnapshot(snapshot); !s.ok()) return s;
  SnapshotRun run;
  run.snap = &snapshot;
  // Sum the deltas after as_of_seq once, on a reader (the writer keeps
  // committing meanwhile); each chunk then adds only what came after.
  if (snapshot.epoch() == impl_->epoch && snapshot.store_id() == impl_->store_id) {
    run.after.reserve(static_cast<size_t>(snapshot.lines_size()));
    for (const auto& l : snapshot.lines()) run.after.emplace(l.sku(), 0);
    if (Status s = impl_->ScanAfter(run); !s.ok()) return s;
  }
  const int n = snapshot.lines_size();
  const int chunk = static_cast<int>(
      std::clamp<size_t>(impl_->opt.snapshot_chunk_lines, 1, static_cast<size_t>(INT32_MAX)));
  SnapshotResult total;
  for (int begin = 0; begin < n; begin += chunk) {
    Request r;
    r.kind = Request::Kind::kSnapshot;
    r.run = &run;
    r.begin = begin;
    r.end = std::min(n, begin + chunk);
    const auto t0 = std::chrono::steady_clock::now();
    if (Status s = impl_->Submit(r); !s.ok()) return s;
    total.chunk_micros.push_back(
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0)
            .count());
    if (r.snap.outcome == SnapshotResult::Outcome::kRejected) {
      r.snap.chunk_micros = std::move(total.chunk_micros);
      return r.snap;
    }
    if (total.first_seq == 0) total.first_seq = r.snap.seq;
    total.seq = r.snap.seq;
    total.skus_applied += r.snap.skus_applied;
    total.skus_stale += r.snap.skus_stale;
    ++total.chunks;
  }
  if (total.skus_applied == 0 && total.skus_stale > 0) {
    total.outcome = SnapshotResult::Outcome::kStale;
    total.reason = "every line is older than the current base (as_of_seq " +
                   std::to_string(snapshot.as_of_seq()) + ", hq_version " +
                   std::to_string(snapshot.hq_version()) + ")";
  }
  return total;
}

Result<PriceResult> Journal::ApplyPriceUpdate(const v1::PriceUpdate& update) {
  if (Status s = ValidatePriceUpdate(update); !s.ok()) return s;
  if (update.store_id() != impl_->store_id) {
    return Status::InvalidArgument(
        "store_id", "is '" + update.store_id() + "', this is store '" + impl_->store_id + "'");
  }
  Request r;
  r.kind = Request::Kind::kPrice;
  r.price = &update;
  if (Status s = impl_->Submit(r); !s.ok()) return s;
  return r.price_result;
}

Result<PriceRow> Journal::PriceAt(const std::string& sku, int64_t at_us) {
  auto r = impl_->AcquireReader();
  if (!r.ok()) return r.status();
  Result<PriceRow> out = Status::NotFound("sku " + sku + " has no price in force");
  Status st;
  {
    // Both statements in one read transaction: a consistent pair.
    st = (*r)->db.Exec("BEGIN");
    if (st.ok()) {
      sql::ResetGuard g((*r)->price_at);
      (*r)->price_at.Bind(1, sku).Bind(2, at_us);
      int rc = (*r)->price_at.Step();
      if (rc == SQLITE_ROW) {
        PriceRow row;
        row.sku = sku;
        row.seq = static_cast<uint64_t>((*r)->price_at.Int(0));
        row.price = (*r)->price_at.Int(1);
        row.currency = std::string((*r)->price_at.Text(2));
        row.effective_from = (*r)->price_at.Int(3);
        out = std::move(row);
      } else if (rc != SQLITE_DONE) {
        st = (*r)->db.Error(rc, "journal: read price");
      }
    }
    if (st.ok() && out.ok()) {
      sql::ResetGuard g((*r)->price_next);
      (*r)->price_next.Bind(1, sku).Bind(2, at_us);
      int rc = (*r)->price_next.Step();
      if (rc == SQLITE_ROW) {
        v1::PriceUpdate next;
        next.set_store_id(impl_->store_id);
        next.set_sku(sku);
        next.set_price((*r)->price_next.Int(1));
        next.set_currency(std::string((*r)->price_next.Text(2)));
        next.set_effective_from((*r)->price_next.Int(3));
        out->next = std::move(next);
      } else if (rc != SQLITE_DONE) {
        st = (*r)->db.Error(rc, "journal: read next price");
      }
    }
    (void)(*r)->db.Exec("COMMIT");
  }
  impl_->ReleaseReader(std::move(*r));
  if (!st.ok()) return st;
  return out;
}

Status Journal::Ack(uint64_t seq) {
  const uint64_t last = impl_->a_last.load();
  if (seq > last) {
    return Status::InvalidArgument("seq", "ack of seq " + std::to_string(seq) +
                                              " is beyond the journal's last seq " +
                                              std::to_string(last));
  }
  uint64_t cur = impl_->acked.load();
  while (seq > cur && !impl_->acked.compare_exchange_weak(cur, seq)) {
  }
  if (seq > cur) {
    // Take the queue mutex so the wake-up cannot fall between the writer's
    // predicate check and its wait.
    { std::lock_guard lk(impl_->mu); }
    impl_->cv.notify_one();
  }
  return {};
}

Result<uint64_t> Journal::PruneNow() {
  Request r;
  r.kind = Request::Kind::kPrune;
  if (Status s = impl_->Submit(r); !s.ok()) return s;
  return r.pruned;
}

namespace {
StockRow RowFrom(const sql::Stmt& s) {
  StockRow row;
  row.sku = std::string(s.Text(0));
  row.on_hand = s.Int(1);
  row.base_qty = s.Int(2);
  row.as_of_seq = static_cast<uint64_t>(s.Int(3));
  row.hq_version = static_cast<uint64_t>(s.Int(4));
  return row;
}
}  // namespace

Result<StockRow> Journal::Stock(const std::string& sku) {
  auto r = impl_->AcquireReader();
  if (!r.ok()) return r.status();
  Result<StockRow> out = Status::NotFound("sku " + sku + " has no stock record");
  {
    sql::ResetGuard g((*r)->stock);
    (*r)->stock.Bind(1, sku);
    int rc = (*r)->stock.Step();
    if (rc == SQLITE_ROW) {
      out = RowFrom((*r)->stock);
    } else if (rc != SQLITE_DONE) {
      out = (*r)->db.Error(rc, "journal: read stock");
    }
  }
  impl_->ReleaseReader(std::move(*r));
  return out;
}

Result<std::vector<StockRow>> Journal::StockByPrefix(const std::string& prefix, size_t limit) {
  auto r = impl_->AcquireReader();
  if (!r.ok()) return r.status();
  std::vector<StockRow> rows;
  Status st;
  {
    sql::ResetGuard g((*r)->prefix);
    (*r)->prefix.Bind(1, prefix).Bind(2, static_cast<int64_t>(limit));
    int rc;
    while ((rc = (*r)->prefix.Step()) == SQLITE_ROW) {
      StockRow row = RowFrom((*r)->prefix);
      if (row.sku.compare(0, prefix.size(), prefix) != 0) break;
      rows.push_back(std::move(row));
    }
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) st = (*r)->db.Error(rc, "journal: read stock");
  }
  impl_->ReleaseReader(std::move(*r));
  if (!st.ok()) return st;
  return rows;
}

Result<std::vector<v1::JournaledEvent>> Journal::ReadEvents(uint64_t from_seq, size_t max_events,
                                                             size_t max_bytes) {
  auto r = impl_->AcquireReader();
  if (!r.ok()) return r.status();
  std::vector<v1::JournaledEvent> out;
  Status st;
  {
    sql::ResetGuard g((*r)->range);
    (*r)->range.Bind(1, static_cast<int64_t>(from_seq)).Bind(2, static_cast<int64_t>(max_events));
    int rc;
    size_t bytes = 0;
    while ((rc = (*r)->range.Step()) == SQLITE_ROW) {
      auto blob = (*r)->range.Blob(2);
      if (!out.empty() && bytes + blob.size() > max_bytes) break;
      v1::JournaledEvent je;
      if (!je.mutable_event()->ParseFromArray(blob.data(), static_cast<int>(blob.size()))) {
        st = Status::Corruption("journal: event " + std::to_string((*r)->range.Int(0)) +
                                " does not decode");
        break;
      }
      je.set_seq(static_cast<uint64_t>((*r)->range.Int(0)));
      je.set_epoch(impl_->epoch);
      je.set_recorded_at((*r)->range.Int(1));
      je.set_store_id(impl_->store_id);
      je.set_gateway_id(impl_->gateway_id);
      bytes += blob.size();
      out.push_back(std::move(je));
    }
    if (st.ok() && rc != SQLITE_DONE && rc != SQLITE_ROW) {
      st = (*r)->db.Error(rc, "journal: read events");
    }
  }
  impl_->ReleaseReader(std::move(*r));
  if (!st.ok()) return st;
  return out;
}

Result<std::vector<v1::StatusAlert>> Journal::OpenAlerts(size_t limit) {
  auto r = impl_->AcquireReader();
  if (!r.ok()) return r.status();
  std::vector<v1::StatusAlert> out;
  Status st;
  {
    // Oversell alerts stay until cleared; other kinds are shown for a day.
    const int64_t since = impl_->Now() - int64_t{24} * 3600 * 1000000;
    sql::ResetGuard g((*r)->alerts);
    (*r)->alerts.Bind(1, since).Bind(2, static_cast<int64_t>(limit));
    int rc;
    while ((rc = (*r)->alerts.Step()) == SQLITE_ROW) {
      v1::StatusAlert a;
      a.set_seq(static_cast<uint64_t>((*r)->alerts.Int(0)));
      a.set_kind(static_cast<v1::Alert::Kind>((*r)->alerts.Int(1)));
      a.set_sku(std::string((*r)->alerts.Text(2)));
      a.set_on_hand((*r)->alerts.Int(3));
      a.set_message(std::string((*r)->alerts.Text(4)));
      a.set_raised_at((*r)->alerts.Int(5));
      out.push_back(std::move(a));
    }
    if (rc != SQLITE_DONE) st = (*r)->db.Error(rc, "journal: read alerts");
  }
  impl_->ReleaseReader(std::move(*r));
  if (!st.ok()) return st;
  return out;
}

uint64_t Journal::epoch() const { return impl_->epoch; }
const std::string& Journal::store_id() const { return impl_->store_id; }
const std::string& Journal::gateway_id() const { return impl_->gateway_id; }
const OpenReport& Journal::open_report() const { return impl_->report; }
std::filesystem::path Journal::path() const { return impl_->path; }

JournalStats Journal::Stats() const {
  JournalStats s;
  const Impl& i = *impl_;
  s.epoch = i.epoch;
  s.last_seq = i.a_last.load();
  s.first_seq = i.a_first.load();
  s.watermark = i.a_watermark.load();
  s.backlog_events = s.last_seq - std::min(s.watermark, s.last_seq);
  s.backlog_bytes = s.backlog_events ? i.a_backlog_bytes.load() : 0;
  s.oldest_undelivered_recorded_at = s.backlog_events ? i.a_oldest.load() : 0;
  s.journal_bytes = i.a_journal_bytes.load();
  s.max_bytes = i.opt.max_bytes;
  s.full = i.a_full.load();
  s.events_appended = i.a_appended.load();
  s.duplicates = i.a_dups.load();
  s.commits = i.a_commits.load();
  s.integrity_checked = i.ic_done.load();
  {
    std::lock_guard lk(impl_->ic_mu);
    s.integrity_error = i.ic_error;
  }
  return s;
}

}  // namespace storegw::storage
