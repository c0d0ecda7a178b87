// A thin layer over libpq for PgStore: one connection, prepared statements,
// pipelines (many statements, one round trip), binary COPY, SQLSTATE-aware
// errors, and connection strings described without their password.
//
// Why libpq and not a C++ wrapper: libpq is packaged in Debian and Fedora
// alike with a stable C API, and it has what the store's speed rests on
// (COPY and pipeline mode); libpqxx's versions (and APIs) differ between
// the two distributions.
#pragma once

#include <libpq-fe.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "storegw/status.h"

namespace storegw::hq::pg {

struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using ResultPtr = std::unique_ptr<PGresult, ResultDeleter>;

// Where a connection string points. `password` is kept only to scrub it
// from messages; Describe() never shows it.
struct Target {
  std::string host, port, dbname, user;
  std::vector<std::string> secrets;  // password values to scrub
  // "host 127.0.0.1 port 5432 database storegw user storegw"
  std::string Describe() const;
};

// Parses a libpq connection string or URI. The error (invalid_argument,
// field "[hq] database") never holds the password, even when libpq's own
// message quotes the string.
Result<Target> ParseConninfo(const std::string& conninfo);

// `msg` with every occurrence of each secret replaced by "***".
std::string Scrub(std::string msg, const std::vector<std::string>& secrets);

// Statement parameters: text (format 0) or binary (format 1) values, or
// NULL. Values are owned; pointers are taken when the statement is sent.
class Params {
 public:
  Params& Text(std::string v);
  Params& Int(int64_t v);  // as text
  Params& Bool(bool v);    // as text
  Params& Binary(std::string v);
  Params& Null();
  int size() const { return static_cast<int>(values_.size()); }
  size_t bytes() const { return bytes_; }

  // Arrays for PQsendQueryPrepared, valid until the next change.
  struct View {
    std::vector<const char*> values;
    std::vector<int> lengths, formats;
  };
  View view() const;

 private:
  std::vector<std::string> values_;
  std::vector<bool> null_;
  std::vector<int> formats_;
  size_t bytes_ = 0;
};

// One statement of a pipeline: a prepared statement's name and parameters.
struct Call {
  const char* statement;
  Params params;
};

class Conn {
 public:
  // Connects (blocking). Errors name the target, never the password.
  static Result<std::unique_ptr<Conn>> Connect(const std::string& conninfo, const Target& target);
  ~Conn();
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  // False once libpq has seen the connection break: throw it away.
  bool ok() const;
  // SQLSTATE of the last failed statement ("" if none or not from the server).
  const std::string& last_sqlstate() const { return last_sqlstate_; }

  // A statement without parameters (simple query protocol; may hold several
  // statements): for constant SQL only (migrations, BEGIN, COMMIT).
  Status Exec(const char* sql);
  // Like Exec, returning the (last) result's rows.
  Result<ResultPtr> Query(const char* sql);
  Status Prepare(const char* name, const char* sql);
  Result<ResultPtr> ExecPrepared(const char* name, const Params& params);

  // Sends every call in pipeline mode, then one sync, and collects one
  // result per call. The first failure makes the rest of the pipeline
  // aborted; the status then describes that failure (which call, SQLSTATE
  // in last_sqlstate()).
  Status Pipeline(const std::vector<Call>& calls, std::vector<ResultPtr>* results);

  // COPY ... FROM STDIN with `data` (already in the COPY format `sql` names).
  Status CopyIn(const char* sql, std::string_view data);

 private:
  Conn(PGconn* c, Target target) : c_(c), target_(std::move(target)) {}
  Status ResultError(const PGresult* r, std::string_view what);
  Status ConnError(std::string_view what);

  PGconn* c_;
  Target target_;
  std::string last_sqlstate_;
};

// Reads column `col` of row `row` as an integer (0 when NULL).
int64_t GetInt(const PGresult* r, int row, int col);
bool IsNull(const PGresult* r, int row, int col);
std::string_view GetText(const PGresult* r, int row, int col);

// Binary wire formats (COPY BINARY and binary parameters), big-endian.
void PutInt16(std::string* out, int16_t v);
void PutInt32(std::string* out, int32_t v);
void PutInt64(std::string* out, int64_t v);
// timestamptz: microseconds since 2000-01-01 UTC.
int64_t UnixMicrosToPg(int64_t unix_us);

}  // namespace storegw::hq::pg
