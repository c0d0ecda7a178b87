// Journal::Open: the writer lock, the header and integrity checks, moving a
// corrupt file aside, schema migrations and the journal's identity.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <ctime>
#include <fstream>
#include <random>
#include <thread>
#include <unordered_map>

#include "journal_impl.h"
#include "schema.h"

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

Result<uint64_t> ParseMetaUint(const std::string& file, std::string_view key,
                               std::string_view value) {
  uint64_t v = 0;
  const char* end = value.data() + value.size();
  auto [ptr, ec] = std::from_chars(value.data(), end, v);
  if (!value.empty() && ec == std::errc() && ptr == end) return v;
  // The value goes into a log line: printable ASCII only, and not too long.
  std::string shown;
  for (char c : value.substr(0, 40)) shown += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (value.size() > 40) shown += "...";
  return Status::Corruption("journal: " + file + ": meta '" + std::string(key) + "' is '" +
                            shown + "', not a number" +
                            (ec == std::errc::result_out_of_range ? " of 64 bits" : "") +
                            ": the file is damaged");
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

}  // namespace

Status Journal::Impl::OpenFile(bool& corrupt) {
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
Status Journal::Impl::FinishUnidentified() {
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
Status Journal::Impl::RewriteIdentity() {
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

// Runs inside the schema-creating transaction (MigrateSchema).
Status Journal::Impl::WriteIdentity() {
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

Status Journal::Impl::LoadIdentity() {
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
  // A damaged number makes the journal corrupt (moved aside by Open), never
  // an exception nor another number. The epoch is read first, the other
  // numbers once the identity is known to be ours (another store's journal
  // is refused untouched, whatever else is in it).
  auto meta_uint = [&](const char* key, uint64_t& out) -> Status {
    auto it = meta.find(key);
    if (it == meta.end()) return {};  // last_seq, last_cum: only once pruning ran
    auto v = internal::ParseMetaUint(path.string(), key, it->second);
    if (!v.ok()) return v.status();
    out = *v;
    return {};
  };
  if (Status st = meta_uint("epoch", epoch); !st.ok()) return st;
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
  uint64_t meta_last_seq = 0, meta_last_cum = 0;
  for (auto [key, out] : {std::pair<const char*, uint64_t*>{"watermark", &persisted_watermark},
                          {"last_seq", &meta_last_seq},
                          {"last_cum", &meta_last_cum}}) {
    if (Status st = meta_uint(key, *out); !st.ok()) return st;
  }
  auto last = wdb.QueryInt("SELECT coalesce(max(seq), 0) FROM events");
  if (!last.ok()) return last.status();
  auto first = wdb.QueryInt("SELECT coalesce(min(seq), 0) FROM events");
  if (!first.ok()) return first.status();
  auto cum = wdb.QueryInt("SELECT coalesce((SELECT cum_bytes FROM events ORDER BY seq DESC LIMIT 1), 0)");
  if (!cum.ok()) return cum.status();
  // The highest seq ever handed out is kept in meta too, so that pruning
  // every event cannot make a seq be reused.
  uint64_t last_seq = static_cast<uint64_t>(*last);
  last_seq = std::max<uint64_t>(last_seq, meta_last_seq);
  next_seq = last_seq + 1;
  last_cum = std::max<uint64_t>(static_cast<uint64_t>(*cum), meta_last_cum);
  if (persisted_watermark > last_seq) persisted_watermark = last_seq;
  acked = persisted_watermark;
  a_first = static_cast<uint64_t>(*first);
  a_last = last_seq;
  return {};
}

Status Journal::Impl::Prepare() {
  struct {
    sql::Stmt* stmt;
    const char* sql;
  } stmts[] = {
      {&ins_event,
       "INSERT INTO events(seq, event_id, recorded_at, cum_bytes, count_delta, body) "
       "VALUES(?, ?, ?, ?, ?, ?) ON CONFLICT(event_id) DO NOTHING"},
      {&find_event, "SELECT seq, body FROM events WHERE event_id = ?"},
      {&put_device,
       "INSERT INTO devices(device_id, status) VALUES(?, ?) ON CONFLICT(device_id) DO UPDATE "
       "SET status = excluded.status"},
      {&get_stock,
       "SELECT on_hand, base_qty, as_of_seq, hq_version, oversold, updated_seq, low_stock, "
       "tracked FROM stock WHERE sku = ?"},
      {&put_stock,
       "INSERT INTO stock(sku, on_hand, base_qty, as_of_seq, hq_version, oversold, updated_seq, "
       "low_stock, tracked) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(sku) DO UPDATE SET "
       "on_hand = excluded.on_hand, base_qty = excluded.base_qty, "
       "as_of_seq = excluded.as_of_seq, hq_version = excluded.hq_version, "
       "oversold = excluded.oversold, updated_seq = excluded.updated_seq, "
       "low_stock = excluded.low_stock, tracked = excluded.tracked"},
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
      {&find_alert,
       "SELECT kind, sku, cleared_seq, acked_seq, acked_by, acked_at, ack_note FROM alerts "
       "WHERE seq = ?"},
      {&ack_alert,
       "UPDATE alerts SET acked_seq = ?, acked_by = ?, acked_at = ?, ack_note = ? WHERE seq = ?"},
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

Result<std::unique_ptr<Journal>> Journal::Open(const JournalOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->opt = options;
  impl->thresholds = internal::AlertThresholds::From(impl->opt);
  if (impl->opt.reader_connections < 1) impl->opt.reader_connections = 1;
  if (impl->opt.max_group_events < 1) impl->opt.max_group_events = 1;
  if (impl->opt.test_hooks.checkpoint_pages > 0) {
    impl->ck_pages = impl->opt.test_hooks.checkpoint_pages;
  }
  if (impl->opt.test_hooks.force_checkpoint_pages > 0) {
    impl->ck_force_pages = impl->opt.test_hooks.force_checkpoint_pages;
  }
  impl->writer_ck_due = impl->ck_force_pages;
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
  if (Status p = impl->PreparePerishables(); !p.ok()) return p;
  if (Status p = impl->SeedSensors(impl->Now()); !p.ok()) return p;
  {
    // What is due first (after a restart: possibly already).
    auto due = impl->NextDue();
    if (!due.ok()) return due.status();
    impl->timer_due = *due;
  }

  sqlite3_wal_hook(impl->wdb.get(), &Impl::WalHook, impl.get());
  impl->Publish(true, true);
  Impl* raw = impl.get();
  impl->writer = std::thread([raw] { raw->WriterLoop(); });
  impl->checkpointer = std::thread([raw] { raw->CheckpointLoop(); });
  impl->ic_thread = std::thread([raw] { raw->IntegrityLoop(); });
  if (impl->opt.timer_thread) impl->timer = std::thread([raw] { raw->TimerLoop(); });
  return std::unique_ptr<Journal>(new Journal(std::move(impl)));
}

}  // namespace storegw::storage
