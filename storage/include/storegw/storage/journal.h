// The durable event journal and the stock ledger of one store gateway.
//
// One SQLite file (`<data_dir>/journal.db`) in WAL mode with
// synchronous=FULL holds every event the gateway ever acknowledged (until
// retention prunes delivered ones), the stock ledger, the ack watermark and
// the journal's identity (epoch, store and gateway ids).
//
// Threads: Journal is thread-safe. All writes go through one writer thread
// that owns the write connection and does group commit: it takes every
// pending request, applies them in one transaction, commits once (fsync of
// the WAL), then answers each caller. Append() returns only after that
// commit is durable. Reads (OnHand, ReadEvents, Stats) use a pool of
// read-only connections and never wait for the writer.
//
// Failure: every call returns a Status/Result. Invalid input changes
// nothing. A full journal (max_bytes) or a full disk answers
// kResourceExhausted and changes nothing; undelivered events are never
// dropped to make room.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "storegw/status.h"
#include "storegw/v1/storegw.pb.h"

namespace storegw::storage {

namespace v1 = ::storegw::v1;

// What Open() does with a journal file that fails its integrity check.
enum class OnCorrupt {
  // Move journal.db (and -wal, -shm) aside as journal.db.corrupt-<UTC time>,
  // then create a fresh journal with a new epoch. The store keeps selling;
  // the moved file is kept for recovery. Reported through
  // Journal::open_report().
  kMoveAsideAndCreate,
  // Move the file aside and fail with kCorruption.
  kMoveAsideAndFail,
};

struct JournalOptions {
  // Directory of journal.db; created (0700) when missing.
  std::filesystem::path data_dir = "./storegw-data";
  // Identity written into a new journal. Opening an existing journal with a
  // different store_id or gateway_id fails (kFailedPrecondition): a journal
  // never changes identity.
  std::string store_id = "store-0001";
  std::string gateway_id = "gw-01";
  // Cap of the database (pages in use). At or over it, Append() answers
  // kResourceExhausted. Default 1 GiB.
  uint64_t max_bytes = 1ull << 30;
  // Delivered events older than this (by recorded_at) are pruned.
  std::chrono::seconds retention = std::chrono::hours(24 * 7);
  // How often the writer prunes and checkpoints when idle.
  std::chrono::milliseconds maintenance_interval{1000};
  // Upper bound of events written in one group commit.
  size_t max_group_events = 20000;
  OnCorrupt on_corrupt = OnCorrupt::kMoveAsideAndCreate;
  // Number of read-only connections in the reader pool.
  int reader_connections = 4;
  // Clock for recorded_at (microseconds since the Unix epoch). Tests replace
  // it; default is the system clock.
  std::function<int64_t()> now_us;
  // Cycle count alert: |counted qty - on_hand before the count| > threshold
  // raises COUNT_MISMATCH (journaled, upstream, on /v1/status). < 0: off.
  int64_t count_mismatch_threshold = 0;
  // Low-stock alert (optional): raised once when on_hand falls below the
  // sku's threshold (per-sku map first, else default), cleared when back at
  // or above it. default < 0 and no map entry: off for that sku.
  int64_t low_stock_default = -1;
  std::map<std::string, int64_t> low_stock_thresholds;
  // Lines of a StockSnapshot applied per writer transaction (a 50,000-sku
  // snapshot must not stall ingest > 100 ms at a time). 0 means 1.
  size_t snapshot_chunk_lines = 2000;

  // Perishables (`production` events): a batch is due hold time after it
  // was put out; the hold time is HQ's for the sku (StoreRules), else
  // hold_times[sku] (local config), else default_hold. A batch still out
  // escalate_after past its due time escalates.
  std::chrono::seconds default_hold = std::chrono::hours(4);
  std::map<std::string, std::chrono::seconds> hold_times;
  std::chrono::seconds escalate_after = std::chrono::minutes(30);
  // Cold chain: local limits per sensor_id (HQ's, when it sent some, win).
  // A reading of `metric` outside [min_value, max_value] for longer than
  // grace raises TEMPERATURE_EXCURSION; back inside for clear_after clears
  // it. A watched sensor (one with limits, or one that sent the metric)
  // silent for silent_after raises SENSOR_SILENT. A sensor's grace /
  // silent_after when set, else the defaults below.
  struct SensorLimits {
    std::string location;
    std::string metric = "temp_mc";
    int64_t min_value = 0;
    int64_t max_value = 0;
    std::optional<std::chrono::seconds> grace;
    std::optional<std::chrono::seconds> silent_after;
  };
  std::map<std::string, SensorLimits> sensor_limits;
  std::string cold_chain_metric = "temp_mc";
  std::chrono::seconds cold_chain_grace = std::chrono::minutes(10);
  std::chrono::seconds cold_chain_clear_after = std::chrono::minutes(5);
  std::chrono::seconds silent_after = std::chrono::minutes(15);
  // The time rules (batches due, excursions past their grace, silent
  // sensors, prices coming into force) run on a thread of the journal, at
  // each due time and at least every second. Tests that drive an injected
  // clock turn it off and call Journal::RunTimers() themselves.
  bool timer_thread = true;

  // Fault injection and small limits, for tests only: production leaves
  // every field at its default.
  struct TestHooks {
    // Asked before each attempt of the checkpointer to open its connection;
    // true makes that attempt fail.
    std::function<bool()> fail_checkpointer_open;
    // Given the result code of each checkpoint the checkpointer runs; what
    // it returns is taken as the result (to inject a failure).
    std::function<int(int rc)> checkpoint_result;
    // WAL sizes (pages) at which the checkpointer starts checkpointing and
    // at which it insists; 0: the defaults (1000 and 16384).
    int checkpoint_pages = 0;
    int force_checkpoint_pages = 0;
  };
  TestHooks test_hooks;
};

// Per-event answer of Append(), in request order.
//
// A retry must be the same event: an event whose event_id is journaled with
// the same body (byte for byte, as serialized) is a duplicate; one whose
// event_id is journaled with a different body, or appears twice in the
// request with different bodies, is a conflict. When any event of a request
// conflicts, nothing of the request is journaled: each conflicting event
// has conflict = true and the seq its event_id already has (0 when the
// other body is in the same request), every other result seq 0.
struct AppendResult {
  std::string event_id;
  uint64_t seq = 0;
  bool duplicate = false;  // event_id was journaled before; nothing changed
  bool conflict = false;   // event_id is journaled with a different body
};

// Outcome of ApplySnapshot().
struct SnapshotResult {
  enum class Outcome { kApplied, kStale, kRejected };
  Outcome outcome = Outcome::kApplied;
  uint64_t seq = 0;          // seq of the journaled snapshot (or alert) event
  size_t skus_applied = 0;   // lines rebased
  size_t skus_stale = 0;     // lines older than the sku's current base
  std::string reason;        // for kStale / kRejected
  size_t chunks = 0;         // stock_snapshot events journaled (one per chunk)
  uint64_t first_seq = 0;    // seq of the first chunk's event
  // Per chunk: from its submission to the writer to its durable commit.
  std::vector<int64_t> chunk_micros;
};

// Outcome of ApplyPriceUpdate().
struct PriceResult {
  uint64_t seq = 0;        // seq of the journaled price_update event
  bool duplicate = false;  // an identical update was recorded before
};

// The price of a sku in force at some time (see Journal::PriceAt).
struct PriceRow {
  std::string sku;
  int64_t price = 0;
  std::string currency;
  int64_t effective_from = 0;
  uint64_t seq = 0;                     // seq of its price_update event
  std::optional<v1::PriceUpdate> next;  // next scheduled change, if any
};

struct StockRow {
  std::string sku;
  int64_t on_hand = 0;
  int64_t base_qty = 0;      // from the newest snapshot (or fold at pruning)
  uint64_t as_of_seq = 0;    // base_qty is correct as of this seq
  uint64_t hq_version = 0;
  // false until the sku has a baseline (a snapshot line, a count or a
  // receipt); an untracked sku raises no stock alert.
  bool tracked = true;
};

// What Journal::RunTimers() did.
struct TimerResult {
  uint64_t raised = 0;       // alerts raised (due batches, escalations,
                             // excursions past their grace, silent sensors)
  uint64_t cleared = 0;      // excursions back in limits long enough
  uint64_t prices = 0;       // price_in_force events journaled
  int64_t next_due_us = 0;   // the next time something is due, 0: nothing
};

// Outcome of ApplyStoreRules().
struct RulesResult {
  uint64_t seq = 0;          // the journaled store_rules event
  size_t hold_times = 0;
  size_t sensor_limits = 0;
};

// Open perishable batches and watched sensors (status page, CLI, metrics).
struct PerishablesView {
  uint64_t batches_open = 0;
  uint64_t batches_overdue = 0;  // due, still out
  std::vector<v1::PerishableBatch> due_next;  // by due time, at most `next`
  std::vector<v1::SensorState> sensors;       // by sensor_id
};

// The open alerts by kind (true counts) and the ledger's skus.
struct AlertSummary {
  std::vector<v1::AlertCount> counts;  // one per kind, in kind order
  uint64_t open_total = 0;
  uint64_t skus_total = 0;
  uint64_t skus_untracked = 0;
};

// Outcome of AcknowledgeAlert().
struct AckResult {
  v1::StatusAlert alert;     // the alert with its acknowledgement
  bool already = false;      // it was acknowledged before; nothing changed
};

struct JournalStats {
  uint64_t epoch = 0;
  uint64_t first_seq = 0;        // oldest retained seq (0 if empty)
  uint64_t last_seq = 0;         // newest seq (0 if empty)
  uint64_t watermark = 0;        // every seq <= watermark is delivered
  uint64_t backlog_events = 0;   // last_seq - watermark
  uint64_t backlog_bytes = 0;    // stored bytes of undelivered events
  int64_t oldest_undelivered_recorded_at = 0;  // us, 0 when no backlog
  uint64_t journal_bytes = 0;    // pages in use * page size
  uint64_t max_bytes = 0;
  bool full = false;             // Append() is refusing
  uint64_t events_appended = 0;  // since open, not counting duplicates
  uint64_t duplicates = 0;       // since open
  uint64_t conflicts = 0;        // since open: events refused as event_id conflicts
  uint64_t commits = 0;          // group commits since open
  // The full quick_check of the events table runs in the background after
  // Open (open time must not grow with the journal). Until it finishes
  // integrity_checked is false; a failure is in integrity_error, and the
  // next Open checks the whole file before use (and moves it aside).
  bool integrity_checked = false;
  std::string integrity_error;
  // The checkpointer copies the WAL into the main file on its own thread
  // (SQLite's auto-checkpoint is off). checkpoint_error is empty while it
  // works, else why its last attempt failed (it cannot open its connection,
  // or a checkpoint failed); it clears at the next attempt that works.
  // checkpoint_failures counts failed attempts since Open (an unopenable
  // connection is retried every second, each a failure).
  // checkpoint_error_at_us: when the last failure happened (the journal's
  // clock, us since the Unix epoch; 0: none since Open). While the
  // checkpointer fails, the writer checkpoints itself once the WAL holds
  // 16384 pages, so the WAL stays bounded.
  std::string checkpoint_error;
  uint64_t checkpoint_failures = 0;
  int64_t checkpoint_error_at_us = 0;
  // WAL pages not yet copied into the main file (after the last commit or
  // checkpoint), and their size on disk (frames of page_size + 24 bytes).
  uint64_t wal_pages = 0;
  uint64_t wal_bytes = 0;
};

// What Open() found and did, for the log and the status page.
struct OpenReport {
  bool created = false;            // a new journal (new epoch) was created
  int migrated_from = 0;           // schema version before migration (0: none)
  std::string corrupt_moved_to;    // non-empty: a corrupt file was moved here
  std::string corrupt_reason;
};

class Journal {
 public:
  // Opens (or creates) <data_dir>/journal.db: checks the header, runs a
  // quick integrity check of the small tables (the events table is checked
  // in the background, see JournalStats::integrity_checked; the whole file
  // when a previous background check failed), migrates the schema, starts
  // the writer thread. Takes <data_dir>/journal.lock: one writer at a time.
  // Errors: kFailedPrecondition for a journal of a newer schema version or
  // another store/gateway (the file is left untouched), kCorruption (see
  // OnCorrupt), kIoError.
  static Result<std::unique_ptr<Journal>> Open(const JournalOptions& options);

  // Stops the writer after committing what is pending. Idempotent.
  ~Journal();
  void Close();

  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // Journals `events` atomically: all of them or none. Validates each
  // (ValidateDeviceEvent); the first invalid event fails the whole call with
  // kInvalidArgument whose field is prefixed "events[i]." Events whose
  // event_id is already journaled (or repeated earlier in the same call) are
  // answered with their original seq and duplicate=true and change nothing.
  // Returns after the commit is durable. kResourceExhausted when the journal
  // is full or the disk is; kUnavailable after Close().
  Result<std::vector<AppendResult>> Append(std::vector<v1::Event> events);

  // Applies an HQ stock snapshot through the writer and journals it as a
  // `stock_snapshot` event. Each line rebases its sku: base_qty becomes the
  // line's qty as of the snapshot's as_of_seq, and on_hand that qty plus the
  // sku's deltas journaled after as_of_seq. A snapshot for another epoch or
  // store, or with as_of_seq beyond last_seq, is rejected and an alert
  // (SNAPSHOT_REJECTED) is journaled. Lines older than a sku's current base
  // (smaller as_of_seq, or the same with a smaller hq_version) are ignored
  // (stale).
  // kInvalidArgument (nothing journaled) when ValidateSnapshot fails.
  // The lines are applied in chunks of options.snapshot_chunk_lines, one
  // writer transaction each (device appends interleave between chunks);
  // every chunk is journaled as its own `stock_snapshot` event with the
  // same store/epoch/as_of_seq/hq_version and that chunk's lines, so a
  // crash between chunks leaves each sku either rebased or not. Returns
  // after every chunk is committed; the counts cover all chunks and `seq`
  // is the seq of the last chunk's event. An error part-way (kUnavailable
  // at Close, an I/O error) leaves the chunks committed so far applied,
  // each sku correct on its own; applying the snapshot again is safe.
  // The deltas after as_of_seq are summed once on a reader connection, and
  // each chunk's transaction adds only the events that arrived since.
  Result<SnapshotResult> ApplySnapshot(const v1::StockSnapshot& snapshot);

  // Journals `update` as a `price_update` gateway event and records it,
  // through the writer. kInvalidArgument (ValidatePriceUpdate, or a
  // store_id other than the journal's: field "store_id") changes nothing.
  // An identical update (same sku, effective_from, price, currency) already
  // recorded answers duplicate=true with its original seq; nothing new is
  // journaled.
  Result<PriceResult> ApplyPriceUpdate(const v1::PriceUpdate& update);

  // The price in force at `at_us` (us since the Unix epoch): the update with
  // the greatest effective_from <= at_us (ties: the one journaled last).
  // kNotFound if none is in force yet. `next` is the next scheduled change
  // after at_us, if any. Reader pool.
  Result<PriceRow> PriceAt(const std::string& sku, int64_t at_us);

  // Per-device records of the device API (an opaque blob per device_id,
  // devices::DeviceApi's serialized DeviceStatus): SaveDevices upserts them
  // through the writer, in the next group commit (nothing is journaled as an
  // event: they are bookkeeping, not store history); LoadDevices reads them
  // all (reader pool). A device_id is 0..128 bytes.
  Status SaveDevices(const std::vector<std::pair<std::string, std::string>>& records);
  Result<std::vector<std::pair<std::string, std::string>>> LoadDevices();

  // Marks every seq <= `seq` delivered. Never moves the watermark back and
  // never past last_seq. Cheap: folded into the next commit; persisted within
  // maintenance_interval. Losing the newest update in a crash only causes a
  // resend.
  Status Ack(uint64_t seq);

  // Runs one retention pass now (tests; the writer also does it on its own).
  // Returns the number of events pruned.
  Result<uint64_t> PruneNow();

  // Read side (reader pool, never blocks the writer).
  Result<StockRow> Stock(const std::string& sku);  // kNotFound if never seen
  // Skus starting with `prefix` and greater than `after` ("" for the
  // first page), in sku order, at most `limit`.
  Result<std::vector<StockRow>> StockByPrefix(const std::string& prefix, size_t limit,
                                              const std::string& after = {});
  // Events with seq >= from_seq in seq order, at most max_events and about
  // max_bytes of stored event bytes (at least one event if any).
  Result<std::vector<v1::JournaledEvent>> ReadEvents(uint64_t from_seq, size_t max_events,
                                                     size_t max_bytes);
  // Open alerts, newest first: OVERSELL and LOW_STOCK until cleared, the
  // other kinds (COUNT_MISMATCH, SNAPSHOT_REJECTED) for a day after raised_at.
  Result<std::vector<v1::StatusAlert>> OpenAlerts(size_t limit);
  // The true counts behind OpenAlerts (same rule), and the tracked skus.
  Result<AlertSummary> Alerts();

  // Acknowledges alert `alert_seq` by `by` (1..64 printable characters),
  // with an optional note (at most 256 bytes): journals an alert_ack event
  // and records it on the alert. kNotFound: no such alert;
  // kFailedPrecondition: it is cleared already. Acknowledging an
  // acknowledged alert changes nothing and returns the first one (already).
  Result<AckResult> AcknowledgeAlert(uint64_t alert_seq, const std::string& by,
                                     const std::string& note);

  // Runs the time rules now, at the journal's clock, through the writer:
  // REMOVE_FROM_SHELF for batches whose due time has come (the alert's
  // `since` is the due time), escalations, TEMPERATURE_EXCURSION for
  // sensors outside their limits past the grace, clears of excursions back
  // in limits for clear_after, SENSOR_SILENT, and a price_in_force event
  // for each price update whose effective_from has come. Each due thing is
  // acted on once (the state is in the journal: a restart resumes it).
  Result<TimerResult> RunTimers();

  // Journals HQ's hold times and sensor limits (a store_rules event) and
  // records them, through the writer. kInvalidArgument (ValidateStoreRules,
  // or another store: field "store_id") changes nothing.
  Result<RulesResult> ApplyStoreRules(const v1::StoreRules& rules);

  // Open batches (the next `next` by due time) and watched sensors, as of
  // the journal's clock. Reader pool.
  Result<PerishablesView> Perishables(size_t next = 10);

  // Blocks until last_seq > `seq`, the timeout passes or the journal
  // closes; returns last_seq. Lets the uplink send live events right
  // behind the backlog without polling.
  uint64_t WaitForSeqAbove(uint64_t seq, std::chrono::milliseconds timeout);

  uint64_t epoch() const;
  const std::string& store_id() const;
  const std::string& gateway_id() const;
  const OpenReport& open_report() const;
  JournalStats Stats() const;  // cheap: from the writer's counters
  std::filesystem::path path() const;

 private:
  struct Impl;
  explicit Journal(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Checks one device-submitted event (no alert or gateway-only bodies).
// On failure, kInvalidArgument with the field path relative to the event,
// e.g. "event_id", "sale.lines[0].qty", "sale.lines[1].currency".
Status ValidateDeviceEvent(const v1::Event& event);

// Checks an HQ stock snapshot (no journal needed): lines non-empty, each
// sku in the device sku format and not repeated, qty >= 0. kInvalidArgument
// with a field path like "lines[3].qty".
Status ValidateSnapshot(const v1::StockSnapshot& s);

// Checks HQ's store rules: at least one hold time or sensor limit; sku
// format, hold_s 0 or 60..604800; sensor_id 1..64 printable, location at
// most 64 bytes, min_value <= max_value, grace_s and silent_after_s 0..7
// days. kInvalidArgument with a field path like "sensor_limits[2].max_value".
Status ValidateStoreRules(const v1::StoreRules& rules);

// Checks an HQ price update: sku format, price >= 0, currency of three
// upper-case letters (ISO 4217), effective_from > 0. kInvalidArgument with
// the field name.
Status ValidatePriceUpdate(const v1::PriceUpdate& p);

// Stock delta(s) of one event body, by sku, in line order; a sku may repeat.
// Counts are absolute and not included (the ledger computes their delta).
std::vector<std::pair<std::string, int64_t>> StockDeltas(const v1::Event& event);

// ------------------------------------------------------------ offline tools

struct VerifyReport {
  uint64_t events = 0;
  uint64_t first_seq = 0, last_seq = 0, watermark = 0;
  uint64_t skus = 0;
  bool full_replay = false;  // true when the journal starts at seq 1 and the
                             // whole ledger was recomputed from the events
  // The journal's identity, from its meta table.
  uint64_t epoch = 0;
  std::string store_id, gateway_id;
};

// `storegw journal verify`: integrity_check, seq density, every retained
// event decodes, ledger deltas match the events, and for each sku
// on_hand == base_qty + sum(deltas with seq > as_of_seq); when nothing was
// pruned, the ledger recomputed from all events equals the stored one.
// Opens read-only; works while a daemon writes. kCorruption with the first
// problem found.
Result<VerifyReport> VerifyJournal(const std::filesystem::path& data_dir,
                                   const std::function<void(uint64_t done, uint64_t total)>&
                                       progress = {});
// The same checks on a journal file of any name (a backup).
Result<VerifyReport> VerifyJournalFile(const std::filesystem::path& file,
                                       const std::function<void(uint64_t done, uint64_t total)>&
                                           progress = {});

struct BackupOptions {
  // Replace `output` when it exists (else BackupJournal refuses).
  bool overwrite = false;
  // Database pages copied per sqlite3_backup_step (at least 1).
  int pages_per_step = 1024;
  // Called after each step with the pages copied and the pages to copy,
  // then (verify_progress) as VerifyJournal's progress over the copy.
  std::function<void(uint64_t done, uint64_t total)> copy_progress;
  std::function<void(uint64_t done, uint64_t total)> verify_progress;
};

struct BackupReport {
  uint64_t pages = 0;  // pages copied (the size of the copy in pages)
  uint64_t bytes = 0;  // size of the copy
  uint64_t steps = 0;  // sqlite3_backup_step calls
  VerifyReport verify;  // the copy's verification (identity included)
};

// `storegw journal backup`: a consistent copy of <data_dir>/journal.db at
// `output`, safe while a daemon writes the journal.
//
// The copy is made with SQLite's online backup API, in steps of
// `pages_per_step` pages, inside one read transaction on the journal: it is
// the journal as of one commit (every event up to some seq, nothing after,
// with the ledger, watermark and identity of that moment). In WAL mode a
// reader does not block the writer: the daemon keeps journaling, and its
// WAL cannot be checkpointed past the copy's snapshot until the copy ends
// (like a long VerifyJournal or ExportJournal).
// The copy is written to a temporary file beside `output` (mode 0600),
// switched to a self-contained file (rollback journal mode, no -wal/-shm;
// storegw switches it back to WAL when it opens it as a journal), fsynced,
// checked with VerifyJournalFile, and only then renamed to `output` (and
// the directory fsynced). On any failure nothing is left at `output` and the
// temporary file is removed.
//
// Refusals, before anything is written: kNotFound for a missing data_dir or
// journal, or a missing directory of `output`; kFailedPrecondition when
// `output` exists (without overwrite; also when it appears during the
// copy), names a directory, or is the journal itself; kPermissionDenied
// when the directory of `output` is not writable. A copy that fails
// verification is kCorruption naming the journal.
Result<BackupReport> BackupJournal(const std::filesystem::path& data_dir,
                                   const std::filesystem::path& output,
                                   const BackupOptions& options = {});

// `storegw journal export`: calls `sink` with each JournaledEvent in seq
// order from a read-only snapshot of the journal; works while a daemon
// writes. Stops early with the sink's non-ok Status.
Status ExportJournal(const std::filesystem::path& data_dir,
                     const std::function<Status(const v1::JournaledEvent&)>& sink,
                     const std::function<void(uint64_t done, uint64_t total)>& progress = {});

}  // namespace storegw::storage
