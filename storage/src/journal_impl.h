// Journal::Impl, private to storage/: the state of one open journal and the
// jobs that share it, each defined in its own file:
//
//   journal.cc       the Journal object: Close and Stats (journal_open.cc starts the threads)
//   journal_open.cc  Open: lock, header and integrity checks, move-aside,
//                    migrations, identity
//   writer.cc        the writer thread: queue, group commit, rollback,
//                    publishing the counters Stats() reads
//   apply.cc         what each request does inside the writer's transaction
//                    (events, stock rows, alerts, prices)
//   snapshot.cc      HQ stock snapshots, applied in chunks
//   retention.cc     pruning delivered events, folding them into the base
//   readers.cc       the reader pool and the read queries
//   background.cc    the checkpointer and the background integrity check
//   ledger_rules.h   the ledger and alert rules, as plain functions
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
#pragma once

#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "internal.h"
#include "ledger_rules.h"
#include "sqlite_util.h"
#include "storegw/storage/journal.h"

namespace storegw::storage {

namespace internal {

// Events pruned per retention transaction.
inline constexpr int kPruneBatch = 1000;
// WAL size (pages) at which the checkpointer starts a passive checkpoint,
// and the size at which it insists (RESTART) so the WAL cannot grow forever
// under constant load.
inline constexpr int kCheckpointPages = 1000;
inline constexpr int kForceCheckpointPages = 16384;

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

// One call waiting for the writer.
struct Request {
  enum class Kind {
    kAppend,
    kSnapshot,
    kPrice,
    kPrune,
    kDevices,
    kAck,
    kTimers,
    kRules
  } kind = Kind::kAppend;
  const std::vector<std::pair<std::string, std::string>>* devices = nullptr;  // kDevices
  std::vector<v1::Event>* events = nullptr;
  SnapshotRun* run = nullptr;  // kSnapshot: lines [begin, end) of run->snap
  int begin = 0, end = 0;
  const v1::PriceUpdate* price = nullptr;
  Status status;
  std::vector<AppendResult> results;
  SnapshotResult snap;
  PriceResult price_result;
  uint64_t ack_seq = 0;  // kAck: the alert; by, note in ack_by, ack_note
  std::string ack_by, ack_note;
  AckResult ack;
  const v1::StoreRules* rules = nullptr;  // kRules
  RulesResult rules_result;
  TimerResult timers;                     // kTimers
  uint64_t pruned = 0;
  std::promise<void> done;
};

// The writer's statements of the perishables and cold-chain rules
// (perishables.cc).
struct PerishStmts {
  sql::Stmt ins_batch, open_batches, put_batch_remaining, close_batch, due_batches,
      set_batch_alert, escalate_batches, set_batch_escalated, next_pending, next_unescalated,
      get_hold, put_hold, del_hold, get_limits, put_limits, del_limits, get_sensor, put_sensor,
      all_sensors, seed_sensor, set_alert_detail, clear_alert_seq, pending_prices,
      superseded_price, set_in_force, next_price, prune_batches;
};

// A read-only connection with its statements, owned by one thread at a time.
struct Reader {
  sql::Db db;
  sql::Stmt stock, prefix, range, alerts, alert_counts, skus, price_at, price_next, devices;
};

}  // namespace internal

struct Journal::Impl {
  using Request = internal::Request;
  using Reader = internal::Reader;
  using SnapshotRun = internal::SnapshotRun;
  using StockState = internal::StockState;

  ~Impl() {
    if (lock_fd >= 0) ::close(lock_fd);  // releases the writer lock
  }

  JournalOptions opt;
  internal::AlertThresholds thresholds;  // points into opt
  std::filesystem::path path;
  int lock_fd = -1;  // <data_dir>/journal.lock, flock'ed for our lifetime
  OpenReport report;
  uint64_t epoch = 0;
  std::string store_id, gateway_id;

  // ---- writer-thread state (and Open/Close, before/after the thread runs)
  sql::Db wdb;
  sql::Stmt put_device;
  sql::Stmt find_alert, ack_alert;
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
  std::once_flag close_once;   // Journal::Close runs Shutdown once
  std::thread writer;

  // ---- checkpointer
  std::mutex ck_mu;
  std::condition_variable ck_cv;
  bool ck_stop = false;  // guarded by ck_mu
  std::atomic<int> wal_pages{0};
  std::atomic<int64_t> a_page_size{4096};  // PRAGMA page_size, refreshed by UsedBytes()
  // WAL sizes (pages) at which the checkpointer starts and insists
  // (internal::kCheckpointPages and kForceCheckpointPages unless a test
  // lowers them).
  int ck_pages = internal::kCheckpointPages;
  int ck_force_pages = internal::kForceCheckpointPages;
  // True while the checkpointer has its connection and its last checkpoint
  // did not fail. While false the writer checkpoints itself (WalHook).
  std::atomic<bool> ck_healthy{false};
  // Writer thread only: the WAL size at which the writer's own checkpoint
  // runs next (while the checkpointer is not healthy).
  int writer_ck_due = internal::kForceCheckpointPages;
  // What Stats() reports of the checkpointer's failures.
  std::mutex ck_err_mu;
  std::string ck_error;  // guarded by ck_err_mu; empty while it works
  int64_t ck_error_at = 0;  // guarded by ck_err_mu
  std::atomic<uint64_t> ck_failures{0};
  std::thread checkpointer;

  // ---- background integrity check of the whole file, on its own
  // read-only connection. A failure is published in Stats() and leaves a
  // marker so the next Open checks (and if need be moves aside) the whole
  // file.
  std::mutex ic_mu;
  sqlite3* ic_db = nullptr;  // guarded by ic_mu; interrupted by Close
  bool ic_stop = false;      // guarded by ic_mu
  std::string ic_error;      // guarded by ic_mu
  std::atomic<bool> ic_done{false};
  std::thread ic_thread;

  // ---- readers
  std::mutex rmu;
  std::vector<std::unique_ptr<Reader>> readers;  // guarded by rmu

  // ---- published state (atomics: read by any thread)
  std::atomic<uint64_t> acked{0};  // newest Ack()
  std::atomic<uint64_t> a_first{0}, a_last{0}, a_watermark{0}, a_journal_bytes{0},
      a_backlog_bytes{0}, a_appended{0}, a_dups{0}, a_conflicts{0}, a_commits{0};
  std::atomic<int64_t> a_oldest{0};
  std::atomic<bool> a_full{false};

  // ---- perishables, cold chain, prices coming into force (perishables.cc)
  internal::PerishStmts ps;
  // The earliest time (journal clock, us) something may be due for
  // RunTimers; INT64_MAX: nothing. Lowered by the writer when it records a
  // batch, a reading or a future price; set by each timer run.
  std::atomic<int64_t> timer_due{0};
  std::mutex timer_mu;
  std::condition_variable timer_cv;
  bool timer_stop = false;  // guarded by timer_mu
  std::thread timer;

  // Signalled after each commit that added events (WaitForSeqAbove).
  std::mutex seq_mu;
  std::condition_variable seq_cv;

  int64_t Now() const { return opt.now_us ? opt.now_us() : internal::SystemNowUs(); }

  // ---- open (journal_open.cc)
  Status OpenFile(bool& corrupt);
  Status FinishUnidentified();
  Status RewriteIdentity();
  Status WriteIdentity();
  Status LoadIdentity();
  Status Prepare();
  std::filesystem::path CheckFailedMarker() const { return path.string() + ".check-failed"; }

  // ---- readers (readers.cc)
  Result<std::unique_ptr<Reader>> AcquireReader();
  void ReleaseReader(std::unique_ptr<Reader> r);

  // ---- inside the writer's transaction (apply.cc)
  Result<StockState*> Stock(const std::string& sku);
  Status FlushStock();
  Status SetMeta(std::string_view key, const std::string& value);
  Status InsertRow(const v1::Event& e, const std::string& body,
                   std::optional<int64_t> count_delta, int64_t now, uint64_t& seq, bool& inserted);
  // The seq and body of a journaled event_id; nullopt when it is not.
  Result<std::optional<std::pair<uint64_t, std::string>>> FindEvent(const std::string& event_id);
  Result<uint64_t> InsertGatewayEvent(v1::Event e, int64_t now);
  Result<uint64_t> RaiseAlert(v1::Alert::Kind kind, const std::string& sku, int64_t on_hand,
                              std::string message, uint64_t cause_seq, int64_t now);
  Status ClearAlert(v1::Alert::Kind kind, const std::string& sku, uint64_t seq);
  Status Enact(internal::AlertDecision d, const std::string& sku, StockState& st, uint64_t seq,
               int64_t now);
  Status CheckStockAlerts(const std::string& sku, StockState& st, uint64_t seq, int64_t now);
  Status DoAppend(Request& r, int64_t now);
  Status DoPrice(Request& r, int64_t now);
  Status DoDevices(Request& r);
  Status DoAck(Request& r, int64_t now);

  // ---- perishables (perishables.cc)
  Status PreparePerishables();
  Status SeedSensors(int64_t now);  // Open: rows for the configured sensors
  Result<int64_t> NextDue(std::optional<int64_t> sensors_due = std::nullopt);
  void LowerTimerDue(int64_t at);
  Status ApplyPerishables(const v1::Event& e, uint64_t seq, int64_t now);
  Status ConsumeBatches(const std::string& sku, int64_t qty, const char* reason, uint64_t seq,
                        int64_t now);
  Status ApplyReading(const v1::SensorReading& r, uint64_t seq, int64_t now);
  Result<uint64_t> RaiseDetailed(const v1::Alert& a, int64_t now);
  Status CloseAlert(uint64_t alert_seq, v1::AlertCleared c, int64_t now);
  Status PriceComesIntoForce(const v1::PriceUpdate& p, uint64_t update_seq, int64_t now);
  Status DoTimers(Request& r, int64_t now);
  Status DoRules(Request& r, int64_t now);
  void TimerLoop();

  // ---- snapshots (snapshot.cc)
  Status DoSnapshot(Request& r, int64_t now);
  Status ScanAfter(SnapshotRun& run);

  // ---- retention (retention.cc)
  Result<uint64_t> PruneBatch(int64_t now);
  Result<uint64_t> Maintain();
  Status PersistCountersInTxn();

  // ---- the writer (writer.cc)
  Status PersistWatermarkInTxn();
  void Rollback(uint64_t seq0, uint64_t cum0);
  uint64_t UsedBytes();
  void Publish(bool sizes, bool pruned = false);
  void ProcessGroup(std::vector<Request*>& group);
  void WriterLoop();
  Status Submit(Request& r);

  // ---- shutdown (journal.cc)
  void Shutdown();

  // ---- background threads (background.cc)
  static int WalHook(void* self, sqlite3* db, const char* name, int pages);
  void WriterCheckpoint(sqlite3* db, int pages);
  Status OpenCheckpointer(sql::Db& db);
  void CheckpointFailed(std::string error);
  void CheckpointWorked();
  void CheckpointLoop();
  void IntegrityLoop();
};

}  // namespace storegw::storage
