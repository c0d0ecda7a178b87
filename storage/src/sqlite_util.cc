#include "sqlite_util.h"

namespace storegw::storage::sql {

Status FromCode(sqlite3* db, int rc, std::string_view what) {
  std::string msg(what);
  msg += ": ";
  msg += db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  switch (rc & 0xff) {
    case SQLITE_FULL:
      return Status::ResourceExhausted(msg + " (disk full)");
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return Status::Corruption(msg);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Status::Unavailable(msg);
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
    case SQLITE_READONLY:
      return Status::IoError(msg);
    default:
      return Status::IoError(msg);
  }
}

Stmt& Stmt::operator=(Stmt&& o) noexcept {
  if (this != &o) {
    if (s_) sqlite3_finalize(s_);
    s_ = o.s_;
    o.s_ = nullptr;
  }
  return *this;
}

Stmt::~Stmt() {
  if (s_) sqlite3_finalize(s_);
}

Status Stmt::Prepare(sqlite3* db, std::string_view sql) {
  if (s_) {
    sqlite3_finalize(s_);
    s_ = nullptr;
  }
  int rc = sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()),
                              SQLITE_PREPARE_PERSISTENT, &s_, nullptr);
  if (rc != SQLITE_OK) return FromCode(db, rc, "prepare \"" + std::string(sql) + "\"");
  return {};
}

Db& Db::operator=(Db&& o) noexcept {
  if (this != &o) {
    Close();
    db_ = o.db_;
    o.db_ = nullptr;
  }
  return *this;
}

Status Db::Open(const std::string& path, int flags) {
  Close();
  int rc = sqlite3_open_v2(path.c_str(), &db_, flags | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    Status s = FromCode(db_, rc, "open " + path);
    Close();
    return s;
  }
  sqlite3_extended_result_codes(db_, 1);
  return {};
}

void Db::Close() {
  if (db_) {
    sqlite3_close_v2(db_);
    db_ = nullptr;
  }
}

Status Db::Exec(std::string_view sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db_, std::string(sql).c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string what = "exec \"" + std::string(sql.substr(0, 60)) + "\"";
    sqlite3_free(err);
    return FromCode(db_, rc, what);
  }
  return {};
}

Result<int64_t> Db::QueryInt(std::string_view sql) {
  Stmt s;
  if (Status st = s.Prepare(db_, sql); !st.ok()) return st;
  int rc = s.Step();
  if (rc == SQLITE_ROW) return s.Int(0);
  if (rc == SQLITE_DONE) return Status::NotFound("no row from \"" + std::string(sql) + "\"");
  return FromCode(db_, rc, "query \"" + std::string(sql) + "\"");
}

Result<std::string> Db::QueryText(std::string_view sql) {
  Stmt s;
  if (Status st = s.Prepare(db_, sql); !st.ok()) return st;
  int rc = s.Step();
  if (rc == SQLITE_ROW) return std::string(s.Text(0));
  if (rc == SQLITE_DONE) return Status::NotFound("no row from \"" + std::string(sql) + "\"");
  return FromCode(db_, rc, "query \"" + std::string(sql) + "\"");
}

}  // namespace storegw::storage::sql
