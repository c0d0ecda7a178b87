#include "pg_conn.h"

#include <arpa/inet.h>

#include <cstdlib>
#include <cstring>
#include <regex>

namespace storegw::hq::pg {
namespace {

constexpr const char* kConfigField = "[hq] database";

// libpq's messages end in a newline and may span lines ("...failed:
// Connection refused\n\tIs the server running on that host..."): one line
// for the log.
std::string Trim(const std::string& in) {
  std::string s;
  bool blank = false;
  for (char c : in) {
    const bool ws = c == '\n' || c == '\t' || c == '\r' || c == ' ';
    if (ws) {
      blank = !s.empty();
      continue;
    }
    if (blank) s += ' ';
    blank = false;
    s += c;
  }
  return s;
}

// Password values as written in the raw string (keyword form, URI userinfo
// and URI query), found without libpq so that they can be scrubbed from
// libpq's message about a string it could not parse.
std::vector<std::string> RawSecrets(const std::string& s) {
  std::vector<std::string> out;
  static const std::regex kw(R"(password\s*=\s*('(?:[^'\\]|\\.)*'|[^\s&]+))", std::regex::icase);
  static const std::regex uri(R"(^[a-z]+://[^:/@?]*:([^@/?]*)@)", std::regex::icase);
  for (auto it = std::sregex_iterator(s.begin(), s.end(), kw); it != std::sregex_iterator(); ++it) {
    std::string v = (*it)[1].str();
    out.push_back(v);
    if (v.size() >= 2 && v.front() == '\'') out.push_back(v.substr(1, v.size() - 2));
  }
  std::smatch m;
  if (std::regex_search(s, m, uri) && m[1].length() > 0) out.push_back(m[1].str());
  return out;
}

// The connection's defaults (environment, then libpq's built-ins) for
// keywords the string leaves out, so the description says where libpq
// really went.
std::string Default(const char* keyword) {
  PQconninfoOption* d = PQconndefaults();
  std::string v;
  for (PQconninfoOption* o = d; o && o->keyword; ++o) {
    if (std::strcmp(o->keyword, keyword) == 0 && o->val) v = o->val;
  }
  PQconninfoFree(d);
  return v;
}

}  // namespace

std::string Target::Describe() const {
  return "host " + (host.empty() ? std::string("(unix socket)") : host) + " port " +
         (port.empty() ? std::string("5432") : port) + " database " + dbname + " user " + user;
}

std::string Scrub(std::string msg, const std::vector<std::string>& secrets) {
  for (const auto& s : secrets) {
    if (s.empty()) continue;
    for (size_t pos = msg.find(s); pos != std::string::npos; pos = msg.find(s, pos + 3)) {
      msg.replace(pos, s.size(), "***");
    }
  }
  return msg;
}

Result<Target> ParseConninfo(const std::string& conninfo) {
  Target t;
  t.secrets = RawSecrets(conninfo);
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(conninfo.c_str(), &err);
  if (!opts) {
    std::string why = err ? Trim(err) : "out of memory";
    if (err) PQfreemem(err);
    return Status::InvalidArgument(
        kConfigField, "not a valid libpq connection string or URI: " + Scrub(why, t.secrets));
  }
  for (PQconninfoOption* o = opts; o->keyword; ++o) {
    if (!o->val) continue;
    const std::string k = o->keyword, v = o->val;
    if (k == "host" || (k == "hostaddr" && t.host.empty())) t.host = v;
    if (k == "port") t.port = v;
    if (k == "dbname") t.dbname = v;
    if (k == "user") t.user = v;
    if (k == "password") t.secrets.push_back(v);
  }
  PQconninfoFree(opts);
  if (t.host.empty()) t.host = Default("host");
  if (t.port.empty()) t.port = Default("port");
  if (t.user.empty()) t.user = Default("user");
  if (t.dbname.empty()) t.dbname = Default("dbname");
  if (t.dbname.empty()) t.dbname = t.user;
  return t;
}

// ------------------------------------------------------------------ Params

Params& Params::Text(std::string v) {
  bytes_ += v.size();
  values_.push_back(std::move(v));
  null_.push_back(false);
  formats_.push_back(0);
  return *this;
}
Params& Params::Int(int64_t v) {
  return Text(std::to_string(v));
}
Params& Params::Bool(bool v) {
  return Text(v ? "t" : "f");
}
Params& Params::Binary(std::string v) {
  Text(std::move(v));
  formats_.back() = 1;
  return *this;
}
Params& Params::Null() {
  values_.emplace_back();
  null_.push_back(true);
  formats_.push_back(0);
  return *this;
}

Params::View Params::view() const {
  View v;
  v.values.reserve(values_.size());
  v.lengths.reserve(values_.size());
  for (size_t i = 0; i < values_.size(); ++i) {
    v.values.push_back(null_[i] ? nullptr : values_[i].data());
    v.lengths.push_back(static_cast<int>(values_[i].size()));
  }
  v.formats = formats_;
  return v;
}

// -------------------------------------------------------------------- Conn

Result<std::unique_ptr<Conn>> Conn::Connect(const std::string& conninfo, const Target& target) {
  // Our defaults first; whatever the string says (expanded from "dbname")
  // overrides them. TCP keepalives and a user timeout: a server that
  // vanishes from the network fails the statement under way within about
  // 30 s instead of the kernel's 15 minutes of retransmissions.
  const char* keys[] = {
      "connect_timeout",  "application_name", "keepalives_idle", "keepalives_interval",
      "keepalives_count", "tcp_user_timeout", "dbname",          nullptr};
  const char* vals[] = {"10", "storegw-hq", "10", "5", "3", "30000", conninfo.c_str(), nullptr};
  PGconn* c = PQconnectdbParams(keys, vals, /*expand_dbname=*/1);
  if (!c) {
    return Status::Unavailable("cannot connect to PostgreSQL (" + target.Describe() +
                               "): out of memory");
  }
  if (PQstatus(c) != CONNECTION_OK) {
    std::string why = Scrub(Trim(PQerrorMessage(c)), target.secrets);
    PQfinish(c);
    return Status::Unavailable("cannot connect to PostgreSQL (" + target.Describe() + "): " + why);
  }
  // Notices and warnings ("relation already exists, skipping", "there is
  // no transaction in progress" after a failed COMMIT) are not errors:
  // libpq would print them on stderr.
  PQsetNoticeProcessor(
      c, [](void*, const char*) {}, nullptr);
  std::unique_ptr<Conn> conn(new Conn(c, target));
  // Timestamps as the store writes and reads them; nothing depends on the
  // server's or the role's TimeZone.
  if (Status s = conn->Exec("SET TIME ZONE 'UTC'"); !s.ok()) return s;
  return conn;
}

Conn::~Conn() {
  PQfinish(c_);
}

bool Conn::ok() const {
  return PQstatus(c_) == CONNECTION_OK;
}

Status Conn::ConnError(std::string_view what) {
  last_sqlstate_.clear();
  std::string why = Scrub(Trim(PQerrorMessage(c_)), target_.secrets);
  return Status::Unavailable("PostgreSQL (" + target_.Describe() + "): " + std::string(what) +
                             ": " + why);
}

Status Conn::ResultError(const PGresult* r, std::string_view what) {
  if (!r) return ConnError(what);
  const char* state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  last_sqlstate_ = state ? state : "";
  const char* primary = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
  const char* detail = PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL);
  std::string msg = primary ? primary : Trim(PQresultErrorMessage(r));
  if (msg.empty()) msg = Trim(PQerrorMessage(c_));
  if (detail) msg += std::string(" (") + detail + ")";
  if (!last_sqlstate_.empty()) msg += " [SQLSTATE " + last_sqlstate_ + "]";
  msg = "PostgreSQL (" + target_.Describe() + "): " + std::string(what) + ": " +
        Scrub(msg, target_.secrets);
  const std::string cls = last_sqlstate_.substr(0, 2);
  if (!ok() || cls == "08" || cls == "40" || cls == "57") return Status::Unavailable(msg);
  if (cls == "53") return Status::ResourceExhausted(msg);
  return Status::IoError(msg);
}

Status Conn::Exec(const char* sql) {
  auto r = Query(sql);
  return r.ok() ? Status::Ok() : r.status();
}

Result<ResultPtr> Conn::Query(const char* sql) {
  ResultPtr r(PQexec(c_, sql));
  const auto st = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    std::string_view what(sql);
    return ResultError(r.get(), what.substr(0, std::min<size_t>(what.find_first_of("\n("), 60)));
  }
  return r;
}

Status Conn::Prepare(const char* name, const char* sql) {
  ResultPtr r(PQprepare(c_, name, sql, 0, nullptr));
  if (!r || PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
    return ResultError(r.get(), std::string("prepare ") + name);
  }
  return {};
}

Result<ResultPtr> Conn::ExecPrepared(const char* name, const Params& params) {
  auto v = params.view();
  ResultPtr r(PQexecPrepared(c_, name, params.size(), v.values.data(), v.lengths.data(),
                             v.formats.data(), 0));
  const auto st = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) return ResultError(r.get(), name);
  return r;
}

Status Conn::Pipeline(const std::vector<Call>& calls, std::vector<ResultPtr>* results) {
  results->clear();
  if (calls.empty()) return {};
  if (PQenterPipelineMode(c_) != 1) return ConnError("enter pipeline mode");
  Status first_error;
  size_t sent = 0;
  for (const Call& call : calls) {
    auto v = call.params.view();
    if (PQsendQueryPrepared(c_, call.statement, call.params.size(), v.values.data(),
                            v.lengths.data(), v.formats.data(), 0) != 1) {
      first_error = ConnError(std::string("send ") + call.statement);
      break;
    }
    ++sent;
  }
  if (first_error.ok() && PQpipelineSync(c_) != 1) first_error = ConnError("pipeline sync");
  if (!first_error.ok()) {
    // The connection is unusable mid-pipeline: the caller drops it.
    PQexitPipelineMode(c_);
    return first_error;
  }
  for (size_t i = 0; i < sent; ++i) {
    ResultPtr r(PQgetResult(c_));
    if (!r) {
      if (first_error.ok()) first_error = ConnError(std::string("result of ") + calls[i].statement);
      if (!ok()) return first_error;
      results->push_back(nullptr);
      continue;
    }
    const auto st = PQresultStatus(r.get());
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && first_error.ok() &&
        st != PGRES_PIPELINE_ABORTED) {
      first_error = ResultError(r.get(), calls[i].statement);
    }
    // Each statement's results end with a NULL.
    while (ResultPtr extra{PQgetResult(c_)}) {
      if (!ok()) break;
    }
    results->push_back(std::move(r));
    if (!ok()) return first_error.ok() ? ConnError("pipeline") : first_error;
  }
  ResultPtr sync(PQgetResult(c_));
  if (!sync || PQresultStatus(sync.get()) != PGRES_PIPELINE_SYNC) {
    if (first_error.ok()) first_error = ConnError("pipeline sync result");
    return first_error;
  }
  if (PQexitPipelineMode(c_) != 1 && first_error.ok()) {
    first_error = ConnError("exit pipeline mode");
  }
  return first_error;
}

Status Conn::CopyIn(const char* sql, std::string_view data) {
  ResultPtr r(PQexec(c_, sql));
  if (!r || PQresultStatus(r.get()) != PGRES_COPY_IN) return ResultError(r.get(), "COPY");
  r.reset();
  constexpr size_t kChunk = 1 << 20;
  for (size_t off = 0; off < data.size(); off += kChunk) {
    const size_t n = std::min(kChunk, data.size() - off);
    if (PQputCopyData(c_, data.data() + off, static_cast<int>(n)) != 1) {
      return ConnError("COPY data");
    }
  }
  if (PQputCopyEnd(c_, nullptr) != 1) return ConnError("COPY end");
  Status st;
  bool seen = false;
  while (ResultPtr res{PQgetResult(c_)}) {
    if (!seen && PQresultStatus(res.get()) != PGRES_COMMAND_OK) st = ResultError(res.get(), "COPY");
    seen = true;
    if (!ok()) break;
  }
  if (!seen && st.ok()) st = ConnError("COPY result");
  return st;
}

// ----------------------------------------------------------------- helpers

bool IsNull(const PGresult* r, int row, int col) {
  return PQgetisnull(r, row, col) != 0;
}

int64_t GetInt(const PGresult* r, int row, int col) {
  if (IsNull(r, row, col)) return 0;
  return std::strtoll(PQgetvalue(r, row, col), nullptr, 10);
}

std::string_view GetText(const PGresult* r, int row, int col) {
  return {PQgetvalue(r, row, col), static_cast<size_t>(PQgetlength(r, row, col))};
}

void PutInt16(std::string* out, int16_t v) {
  uint16_t n = htons(static_cast<uint16_t>(v));
  out->append(reinterpret_cast<const char*>(&n), 2);
}
void PutInt32(std::string* out, int32_t v) {
  uint32_t n = htonl(static_cast<uint32_t>(v));
  out->append(reinterpret_cast<const char*>(&n), 4);
}
void PutInt64(std::string* out, int64_t v) {
  uint64_t u = static_cast<uint64_t>(v);
  char b[8];
  for (int i = 7; i >= 0; --i) {
    b[i] = static_cast<char>(u & 0xff);
    u >>= 8;
  }
  out->append(b, 8);
}

int64_t UnixMicrosToPg(int64_t unix_us) {
  constexpr int64_t kPgEpochUnixUs = 946684800LL * 1000000LL;  // 2000-01-01T00:00:00Z
  return unix_us - kPgEpochUnixUs;
}

}  // namespace storegw::hq::pg
