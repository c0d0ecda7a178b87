// The seam between the HQ receiver (storegw-hq: MQTT and HTTPS ingress,
// fleet view) and its system of record. The receiver decodes and checks
// what gateways send (receiver.h) and hands whole, well-formed batches to
// an EventStore; the store makes them durable exactly once and says, per
// (store, gateway, epoch), how far the contiguous applied prefix reaches
// after the commit. The PostgreSQL implementation is pg_store.h; nothing
// above this header knows about SQL.
//
// A gateway is (store_id, gateway_id): a gateway id is only unique within
// its store (every store's gateway is "gw-01" by default), so two stores'
// gw-01 are two gateways, each with its own epochs, prefixes and status.
//
// Rules every implementation keeps (they are what makes several replicas
// on one broker safe: any replica may get any batch, in any order):
//  * an event is stored at most once per (gateway_id, epoch, seq), however
//    often and from however many connections its batch arrives;
//  * a batch past a gap is stored, not dropped; the prefix advances over it
//    as soon as the gap fills (from any connection);
//  * ApplyBatches returns only after the transaction holding the batches
//    has committed; the applied prefixes it returns are committed ones.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "storegw/status.h"
#include "storegw/v1/storegw.pb.h"

namespace storegw::hq {

// Why a batch was refused (never stored, never acked). The names are the
// `reason` label of storegw_hq_batches_refused_total and the log.
enum class RefuseReason {
  kUndecodable,      // payload is not a (compressed) EventBatch
  kNotContiguous,    // events' seqs are not first_seq..last_seq, one each
  kInvalidEvent,     // an event fails ValidateDeviceEvent, or its seq/recorded_at is unset
  kTopicMismatch,    // topic's store/gateway differ from the batch's
  kSupersededEpoch,  // the gateway has moved on to a newer epoch
  kConflict,         // a seq already stored holds a different event
};
// "undecodable", "not_contiguous", "invalid_event", "topic_mismatch",
// "superseded_epoch", "conflict". Inline here so that every library of
// storegw-hq (store, receiver, fleet) shares the one definition.
inline const char* RefuseReasonName(RefuseReason r) {
  switch (r) {
    case RefuseReason::kUndecodable:
      return "undecodable";
    case RefuseReason::kNotContiguous:
      return "not_contiguous";
    case RefuseReason::kInvalidEvent:
      return "invalid_event";
    case RefuseReason::kTopicMismatch:
      return "topic_mismatch";
    case RefuseReason::kSupersededEpoch:
      return "superseded_epoch";
    case RefuseReason::kConflict:
      return "conflict";
  }
  return "unknown";
}

// One decoded, checked batch on its way to the store.
struct IncomingBatch {
  v1::EventBatch batch;
  uint64_t wire_bytes = 0;  // payload size as received (compressed)
};

// The outcome of one batch of an ApplyBatches call.
struct BatchOutcome {
  // Set when the store refused the batch (kSupersededEpoch, kConflict);
  // nothing of it was stored.
  std::optional<RefuseReason> refused;
  std::string refuse_detail;  // for the log: what exactly was wrong
  uint64_t events_stored = 0;     // newly stored by this call
  uint64_t events_duplicate = 0;  // already stored before
  // The contiguous applied prefix of (store_id, gateway_id, epoch) after
  // the commit:
  // every seq in 1..applied_seq is stored. What HqAck names.
  uint64_t applied_seq = 0;
};

// A gateway as the fleet view shows it (one row per (store, gateway); the
// current epoch only).
struct FleetRow {
  std::string store_id;
  std::string gateway_id;
  uint64_t epoch = 0;
  uint32_t epochs_seen = 0;        // > 1: the journal was replaced at least once
  uint64_t applied_seq = 0;        // HQ's contiguous prefix of `epoch`
  uint64_t pending_events = 0;     // stored past a gap, not yet contiguous
  int64_t last_batch_at_us = 0;    // HQ clock, 0 = never
  // From the gateway's last GatewayStatus (empty: none received yet).
  std::optional<v1::GatewayStatus> status;
  int64_t status_received_at_us = 0;  // HQ clock
  int64_t online_since_us = 0;        // when `online` last changed (HQ clock)
};

class EventStore {
 public:
  virtual ~EventStore() = default;
  // Stores `batches` (of any gateways, in any order) in one transaction.
  // outcomes[i] belongs to batches[i]. Not ok: nothing was committed (the
  // caller retries or gives up; it acks nothing).
  virtual Status ApplyBatches(std::span<const IncomingBatch> batches,
                              std::vector<BatchOutcome>* outcomes) = 0;
  // Records a gateway's retained status (last one wins per (store_id,
  // gateway_id) of the status).
  virtual Status RecordStatus(const v1::GatewayStatus& status, int64_t received_at_us) = 0;
  // The contiguous applied prefix of (store_id, gateway_id, epoch); 0 when
  // unknown.
  virtual Status AppliedSeq(const std::string& store_id, const std::string& gateway_id,
                            uint64_t epoch, uint64_t* seq) = 0;
  // The current epoch of each gateway of a store with its applied prefix
  // (for `publish stock`: as_of_seq).
  virtual Status Fleet(std::vector<FleetRow>* rows) = 0;
};

}  // namespace storegw::hq
