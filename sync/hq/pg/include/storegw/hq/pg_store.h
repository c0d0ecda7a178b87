// PgStore: storegw-hq's EventStore on PostgreSQL 15 (libpq). The schema,
// the apply rules and the SQL an operator uses are in docs/hq-schema.md.
//
// Open() connects, creates and migrates the schema itself (numbered
// migrations, one transaction each, serialised between replicas by an
// advisory lock) and refuses a database whose schema is newer than it
// knows. ApplyBatches stores many batches of many gateways in one
// transaction; replicas may apply the same gateway at the same time (every
// (store, gateway) and (store, gateway, epoch) is locked for the
// transaction, always in the same order). A gateway is (store_id,
// gateway_id): two stores' "gw-01" are two gateways. An epoch belongs to
// one of them: batches of an epoch that is already another store's
// gateway's journal (a journal copied between stores) are refused
// (kConflict).
//
// RecordStatus keeps the last status per (store, gateway); a status naming
// an epoch the gateway has left (superseded: a late last will of a
// replaced journal) is ignored. A status naming an epoch HQ has not seen
// makes it the gateway's current one, as a batch would.
//
// One PgStore is one connection: calls are serialised by a mutex (it may be
// shared between threads); for parallel applies open several PgStores.
// After the server went away the call that found out fails; the next call
// connects again. No message of a PgStore ever holds the password.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "storegw/hq/store.h"
#include "storegw/status.h"

namespace storegw::hq {

struct PgStoreOptions {
  // How ApplyBatches writes event rows: COPY (binary) or multi-row prepared
  // INSERTs. COPY is the default and the faster (hq_store_bench measures
  // both); kInsert exists for that comparison.
  enum class RowWriter { kCopy, kInsert };
  RowWriter row_writer = RowWriter::kCopy;
  // Attempts of one ApplyBatches / RecordStatus transaction when PostgreSQL
  // aborts it with a deadlock or serialization failure (SQLSTATE 40P01,
  // 40001); other errors are not retried.
  int max_attempts = 4;
};

class PgStore final : public EventStore {
 public:
  // The newest schema version this build knows (schema_migrations).
  static int SchemaVersion();

  // `conninfo`: a libpq connection string ("host=... dbname=...") or URI
  // ("postgresql://user@host:5432/db"). Errors name host, port, database
  // and user, never the password. Calls v1::WarmUpProtobuf(): open the
  // stores before starting the threads that use them.
  static Result<std::unique_ptr<PgStore>> Open(const std::string& conninfo,
                                               PgStoreOptions options = {});
  ~PgStore() override;

  Status ApplyBatches(std::span<const IncomingBatch> batches,
                      std::vector<BatchOutcome>* outcomes) override;
  Status RecordStatus(const v1::GatewayStatus& status, int64_t received_at_us) override;
  Status AppliedSeq(const std::string& store_id, const std::string& gateway_id, uint64_t epoch,
                    uint64_t* seq) override;
  Status Fleet(std::vector<FleetRow>* rows) override;

  // "host 127.0.0.1 port 5432 database storegw user storegw": for logs.
  std::string Describe() const;

  struct Impl;

 private:
  explicit PgStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace storegw::hq
