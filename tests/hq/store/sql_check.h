// The tests' own SQL on a libpq connection of their own: what the store
// wrote, read independently of PgStore (and faster than a psql per query).
#pragma once

#include <libpq-fe.h>

#include <stdexcept>
#include <string>

namespace storegw::hq_test {

class SqlCheck {
 public:
  explicit SqlCheck(const std::string& conninfo) : c_(PQconnectdb(conninfo.c_str())) {
    if (PQstatus(c_) != CONNECTION_OK) {
      std::string why = PQerrorMessage(c_);
      PQfinish(c_);
      throw std::runtime_error("SqlCheck: cannot connect: " + why);
    }
    PQsetNoticeProcessor(
        c_, [](void*, const char*) {}, nullptr);
  }
  ~SqlCheck() { PQfinish(c_); }
  SqlCheck(const SqlCheck&) = delete;
  SqlCheck& operator=(const SqlCheck&) = delete;

  // The rows of `sql` as `psql -At` prints them: columns joined by '|',
  // rows by '\n', NULL as "". Throws on an error.
  std::string operator()(const std::string& sql) {
    PGresult* r = PQexec(c_, sql.c_str());
    const auto st = PQresultStatus(r);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
      std::string why = PQresultErrorMessage(r);
      PQclear(r);
      throw std::runtime_error("SqlCheck: `" + sql + "` failed: " + why);
    }
    std::string out;
    for (int row = 0; row < PQntuples(r); ++row) {
      if (row) out += '\n';
      for (int col = 0; col < PQnfields(r); ++col) {
        if (col) out += '|';
        out += PQgetvalue(r, row, col);
      }
    }
    PQclear(r);
    return out;
  }

 private:
  PGconn* c_;
};

}  // namespace storegw::hq_test
