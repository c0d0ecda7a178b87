// GET /v1/changes: the in-store changes feed (devices/API.md, "GET
// /v1/changes"). Internal to storegw_devices.
//
// One hub thread follows the journal (Journal::WaitForSeqAbove, then
// ReadEvents), decodes every event once into a ChangeEntry (a price, the
// stock lines, an alert or an alert cleared) and keeps the recent entries
// in a ring bounded by entries (max_lag + 1) and bytes. Each client runs on
// its server worker thread: it serves from the ring, or reads the journal
// itself while it is behind the ring (a resume from an old Last-Event-ID),
// renders the changes its filter wants and writes them. The hub marks a
// client that falls more than max_lag entries behind the newest; the
// client's thread then sends `event: drop` and ends the stream.
//
// Event ids are journal seqs. When one journal event gives a client
// several changes (a basket of several subscribed skus), every change but
// the last carries "SEQ.N" (N: its index in the event), the last one "SEQ":
// a resume from any id then neither skips nor repeats part of an event.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "storegw/devices/device_api.h"
#include "storegw/status.h"
#include "storegw/storage/journal.h"

namespace httplib {
struct Request;
struct Response;
class DataSink;
}  // namespace httplib

namespace storegw::devices::feed {

enum class ChangeKind : uint8_t { kPrice, kStock, kAlert, kAlertCleared };

// The SSE event name of a kind: "price", "stock", "alert", "alert_cleared".
std::string_view KindName(ChangeKind k);

// One sku's change in a stock entry.
struct StockItem {
  std::string sku;
  enum class Type : uint8_t { kDelta, kCount, kSnapshot } type = Type::kDelta;
  int64_t value = 0;  // the delta, the counted qty, the snapshot line's qty
  std::optional<int64_t> on_hand;  // filled by the hub for subscribed skus
};

// What one journal event changed, decoded once.
struct ChangeEntry {
  uint64_t seq = 0;
  int64_t recorded_at = 0;
  ChangeKind kind = ChangeKind::kPrice;
  std::string sku;      // price: its sku (the skus= filter)
  std::string members;  // price and alert kinds: the data object's members
                        // after "seq" and "recorded_at", with a leading ','
  std::string source;   // stock: the event's body ("sale", "count", ...)
  std::vector<StockItem> stock;
  size_t bytes = 0;     // memory estimate for the ring bound

  size_t changes() const { return kind == ChangeKind::kStock ? stock.size() : 1; }
};
using EntryPtr = std::shared_ptr<const ChangeEntry>;

// The entry of a journaled event, nullopt when it changes nothing the feed
// reports (a sensor reading, a reservation, an ack, ...).
std::optional<ChangeEntry> DecodeChange(const v1::JournaledEvent& je);

// Where a client is: every change of seqs <= done_seq was sent, and of seq
// done_seq + 1 the changes with index <= partial (-1: none).
struct Position {
  uint64_t done_seq = 0;
  int64_t partial = -1;
};
// "SEQ" or "SEQ.N" (as sent in `id:`); nullopt when it is neither.
std::optional<Position> ParsePosition(std::string_view text);

// What a client asked for (query parameters).
struct Filter {
  bool price = true, stock = true, alert = true;
  bool has_skus = false;
  std::unordered_set<std::string> skus;

  bool Wants(const ChangeEntry& e) const;
  bool WantsStockSku(const std::string& sku) const { return has_skus && skus.count(sku) != 0; }
};

enum DropReason : int { kNoDrop = 0, kSlowClient = 1, kWriteTimeout = 2 };

// A registered client, as the hub sees it.
struct ClientSlot {
  explicit ClientSlot(Filter f) : filter(std::move(f)) {}
  const Filter filter;
  std::atomic<uint64_t> pos_seq{0};  // every change <= this is written
  std::atomic<bool> live{false};     // has caught up with the hub once
  std::atomic<int> drop{kNoDrop};    // a DropReason: the hub marked it

  // Guarded by the hub's mutex. A client waits for changes on its own
  // condition variable and is woken only when a new entry is for it (or at
  // a gap, or at Stop); while it sleeps, the hub moves skip_to past the
  // entries that are not, so it wakes at the right place without having
  // looked at them.
  std::condition_variable cv;
  bool waiting = false;
  bool wake = false;
  uint64_t skip_to = 0;
  uint64_t relevant_round = 0;
};

class Hub {
 public:
  Hub(storage::Journal& journal, const ChangesFeedOptions& options);
  ~Hub();  // Stop()
  Hub(const Hub&) = delete;
  Hub& operator=(const Hub&) = delete;

  void Start();
  // Wakes every waiting client (they end their streams) and joins the
  // hub thread. Idempotent.
  void Stop();
  bool stopping() const { return stopping_.load(); }

  std::shared_ptr<ClientSlot> Register(const Filter& f);
  void Unregister(const std::shared_ptr<ClientSlot>& c);

  enum class Next { kOk, kBehind, kTimeout, kStopped };
  // Entries after `after` (at most max), waiting until `deadline` when
  // there are none yet. kOk and kTimeout: *through is the seq up to which
  // `out` covers everything for this client (out may be empty: seqs
  // without a change for it). kBehind: `after` is older than the ring
  // (read the journal).
  Next Fetch(uint64_t after, size_t max, std::chrono::steady_clock::time_point deadline,
             ClientSlot* client, std::vector<EntryPtr>* out, uint64_t* through);

  struct RingView {
    uint64_t entries = 0, bytes = 0, head_seq = 0;
  };
  RingView ring() const;

  // Clients found more than max_lag behind (each counted once, when the
  // hub marks it: its thread may still be blocked in a write to it, and
  // ends the stream at its next step).
  uint64_t slow_marked() const { return slow_marked_.load(); }

 private:
  void Run();
  void FillOnHand(ChangeEntry* e);
  // Under mu_: marks the clients `e` is for (relevant_round = round).
  void MarkRelevant(const ChangeEntry& e, uint64_t round);

  storage::Journal& journal_;
  const ChangesFeedOptions options_;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> slow_marked_{0};
  std::thread thread_;
  std::mutex stop_mu_;  // Stop() once
  bool stopped_ = false;

  mutable std::mutex mu_;
  std::condition_variable hub_cv_;  // the hub's own pauses (Stop wakes it)
  std::deque<EntryPtr> ring_;  // seq ascending
  uint64_t floor_ = 0;         // the ring holds every entry of seqs (floor_, head_]
  uint64_t head_ = 0;
  uint64_t ring_bytes_ = 0;
  uint64_t round_ = 0;         // publications so far
  std::vector<std::shared_ptr<ClientSlot>> clients_;
  // Clients by the skus they list (stock and price changes of a sku), and
  // the clients that list none (every price).
  std::unordered_map<std::string, std::vector<ClientSlot*>> by_sku_;
  std::vector<ClientSlot*> no_skus_;
};

// Serves GET /v1/changes once the device API has checked shutdown and the
// token. Thread-safe.
class ChangesFeed {
 public:
  ChangesFeed(storage::Journal& journal, const ChangesFeedOptions& options, int retry_after_s,
              int io_timeout_s);
  ~ChangesFeed();

  void Start() { hub_.Start(); }
  void Stop() { hub_.Stop(); }
  void Serve(const httplib::Request& req, httplib::Response& res);
  FeedStats Stats() const;

 private:
  struct Stream;
  struct Params;
  bool ParseParams(const httplib::Request& req, httplib::Response& res, Params* p);
  void ServeLongPoll(const httplib::Request& req, httplib::Response& res, Params p);
  void ServeStream(httplib::Response& res, Params p);
  // The content provider of a stream: runs until the stream ends.
  bool RunStreamOn(Stream& s, httplib::DataSink& sink);

  storage::Journal& journal_;
  const ChangesFeedOptions options_;
  const int retry_after_s_;
  const int io_timeout_s_;
  Hub hub_;

  std::atomic<int> clients_{0};
  std::atomic<uint64_t> clients_total_{0}, rejected_busy_{0}, changes_sent_{0}, resets_{0},
      long_polls_{0}, drops_write_timeout_{0};
};

}  // namespace storegw::devices::feed
