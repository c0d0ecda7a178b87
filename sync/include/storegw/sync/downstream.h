// What head office sends down (docs/design.md, "HQ snapshots", "Prices" and
// "Downstream application"): HQ stock snapshots, price updates and store
// rules (hold times of perishable skus, cold-chain sensor limits), decoded,
// checked and applied through the journal's writer, so each applied change
// is journaled, survives restarts, and goes upstream like any other event
// (HQ sees what the store applied).
//
// Every message ends in exactly one outcome, counted and (when refused)
// logged with its reason:
//   applied    a snapshot rebased its skus / a price update was recorded /
//              store rules were journaled (a store_rules event) and are
//              in effect
//   stale      a snapshot older than the skus' current base (as_of_seq
//              below it, or equal with a lower hq_version): ignored, not
//              an error
//   duplicate  a price update already recorded (HQ resent it)
//   refused    by reason: "undecodable" (not a protobuf message of the
//              topic's type), "invalid_<field>" (e.g. invalid_sku,
//              invalid_qty, invalid_lines, invalid_currency,
//              invalid_price, invalid_effective_from; rules:
//              invalid_hold_times, invalid_hold_s, invalid_sensor_id,
//              invalid_location, invalid_metric, invalid_max_value,
//              invalid_grace_s, invalid_silent_after_s), "other_store",
//              "other_epoch", "rejected" (a snapshot the journal rejected
//              otherwise, e.g. as_of_seq beyond the journal), "overflow"
//              (the queue was over its byte cap), "journal_error" (the
//              journal failed, e.g. full disk, after the retries, or on
//              the attempt under way when the retries were given up),
//              "shutting_down" (after Stop())
// A snapshot for another store or epoch is handed to the journal anyway,
// which journals a SNAPSHOT_REJECTED alert (upstream, on /v1/status). A
// price update or store rules for another store are refused before the
// journal (nothing journaled).
//
// Threads: Handle() is synchronous (tests and the fuzz target call it
// directly). Submit() is what the MQTT receive thread calls: it applies the
// message before it returns, so the broker gets the PUBACK only once the
// change is durable (Paho C 1.3 sends it after the message callback
// returns; see sync/README.md); its stop token (the uplink's, requested
// when the uplink stops) ends the retries early. Enqueue() only queues,
// for a worker that Start() runs; Stop() applies what is still queued,
// then joins. Handle, Submit and the worker are serialized (one message at
// a time, in the order they come). counters() from any thread. The
// Journal must outlive the Downstream.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <stop_token>
#include <string>
#include <string_view>

#include "storegw/status.h"
#include "storegw/sync/transport.h"

namespace storegw::storage {
class Journal;
}

namespace storegw::sync {

// "stock" / "prices" / "rules" (metric labels, logs).
std::string_view DownstreamKindName(DownstreamKind kind);

struct DownstreamOptions {
  // Bytes of payloads waiting in the queue, at most; a message beyond it is
  // refused ("overflow") rather than letting a flood exhaust memory. A
  // 50,000-line snapshot is about 1.2 MB.
  size_t max_queued_bytes = 256u << 20;
  // A journal failure that may pass (full journal or disk, I/O error) is
  // retried this many times, with a delay doubling from retry_initial and
  // at most max_retry_time in all: Submit() blocks the MQTT receive thread
  // meanwhile, so this stays well under the keep-alive (30 s).
  int journal_retries = 5;
  std::chrono::milliseconds retry_initial{500};
  std::chrono::milliseconds max_retry_time{8000};
};

struct DownstreamCounters {
  uint64_t snapshots_applied = 0;  // messages
  uint64_t snapshots_stale = 0;    // every line older than its sku's base
  uint64_t snapshot_lines_applied = 0;
  uint64_t snapshot_lines_stale = 0;
  uint64_t prices_applied = 0;
  uint64_t prices_duplicate = 0;
  uint64_t rules_applied = 0;               // StoreRules messages journaled
  std::map<std::string, uint64_t> refused;  // by reason (see above)
  uint64_t queued = 0;                      // messages waiting now
  uint64_t queued_bytes = 0;
  // Time the last snapshot took to apply (all chunks), and the longest.
  std::chrono::microseconds last_snapshot_apply{0};
  std::chrono::microseconds max_snapshot_apply{0};

  uint64_t accepted() const {
    return snapshots_applied + snapshots_stale + prices_applied + prices_duplicate + rules_applied;
  }
  uint64_t refused_total() const {
    uint64_t n = 0;
    for (const auto& [reason, c] : refused) n += c;
    return n;
  }
};

class Downstream {
 public:
  // `journal` must outlive this object. Starts no thread.
  explicit Downstream(storage::Journal* journal, DownstreamOptions options = {});
  ~Downstream();  // Stop()
  Downstream(const Downstream&) = delete;
  Downstream& operator=(const Downstream&) = delete;

  // Decodes, checks and applies one message now. Never throws. ok: applied,
  // stale or duplicate. kInvalidArgument: refused (the message says why,
  // field() names the offending field or "payload"); kFailedPrecondition:
  // refused for another store/epoch or rejected by the journal; other
  // codes: the journal failed (not retried here).
  Status Handle(DownstreamKind kind, std::string_view payload);

  // Handle() plus the bounded retries of a journal failure that may pass;
  // returns when the message is durably applied or refused. For the MQTT
  // receive thread (Uplink::SetDownstreamSink: pass the sink's stop token).
  // Once `stop` is requested no further retry is made: the attempt under
  // way (or the next, when it comes during a wait) is the last, and a
  // failure is refused as "journal_error". After Stop(): refused.
  Status Submit(DownstreamKind kind, std::string_view payload, std::stop_token stop = {});

  // Queues one message for the worker; returns at once. Refuses (counted,
  // logged) beyond max_queued_bytes or after Stop().
  void Enqueue(DownstreamKind kind, std::string payload);

  Status Start();  // kFailedPrecondition if already started
  // Applies what is queued, then joins the worker. Idempotent.
  void Stop();

  DownstreamCounters counters() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace storegw::sync
