// A private PostgreSQL 15 server for the tests (Debian's postgresql-15):
// a cluster in a temp dir (a copy of one initdb made once, see Template()),
// `postgres` started as a child of the test on a free
// loopback port (listen_addresses = 127.0.0.1, its unix socket in the temp
// dir), a database `storegw`, and a password (SCRAM) on TCP, so that the
// conninfo() the code under test gets carries one, as in production.
//
// PostgreSQL refuses to run as root. When the test runs as root (CI), initdb,
// postgres and pg_ctl run as the system user `storegw-pgtest` that
// packaging/install-deps.sh creates (setpriv, which execs in place: the
// server's PID is the child's PID, and --pdeathsig kills it with the test),
// and the temp dir is handed to that user. The server is always stopped in
// the destructor (pg_ctl stop -m immediate, then SIGKILL by PID if needed),
// also when a check failed.
//
// fsync stays on unless PostgresOptions::fsync says otherwise (benchmarks
// only): the restart tests (Stop(immediate), Start()) rely on it.
#pragma once

#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/files.h"
#include "common/net.h"
#include "common/process.h"

namespace storegw::test {

struct PostgresOptions {
  bool fsync = true;       // false: benchmarks only (a crash may corrupt the cluster)
  std::string extra_conf;  // more postgresql.conf lines
};

class Postgres {
 public:
  static constexpr const char* kBinDir = "/usr/lib/postgresql/15/bin";
  static constexpr const char* kUnprivilegedUser = "storegw-pgtest";
  static constexpr const char* kUser = "storegw";      // the cluster's superuser
  static constexpr const char* kDatabase = "storegw";  // created at start

  // Copies the template cluster, starts it, sets a fresh password and
  // creates the database `storegw`. Throws (with the server's log) when any
  // step fails.
  explicit Postgres(PostgresOptions options = {})
      : options_(std::move(options)), tmp_({}, "storegw-pg") {
    namespace fs = std::filesystem;
    if (geteuid() == 0) {
      const passwd* pw = getpwnam(kUnprivilegedUser);
      if (!pw) {
        throw std::runtime_error(std::string("running as root, PostgreSQL needs the user ") +
                                 kUnprivilegedUser + ": run packaging/install-deps.sh as root");
      }
      run_as_ = {"/usr/bin/setpriv",
                 "--reuid=" + std::to_string(pw->pw_uid),
                 "--regid=" + std::to_string(pw->pw_gid),
                 "--init-groups",
                 "--pdeathsig",
                 "SIGKILL",
                 "--"};
      uid_ = pw->pw_uid;
      gid_ = pw->pw_gid;
    }
    root_ = tmp_.path() / "pg";
    fs::create_directory(root_);
    fs::create_directory(root_ / "sock");
    Own(root_);
    Own(root_ / "sock");
    password_ = RandomPassword();
    const std::filesystem::path tmpl = Template();
    auto copy = Run(Cmd({"/bin/cp", "-a", tmpl.string(), (root_ / "data").string()}),
                    std::chrono::seconds(120));
    if (!copy.exit.ok()) {
      throw std::runtime_error("copying " + tmpl.string() + " failed: " + copy.err);
    }
    std::string conf = "listen_addresses = '127.0.0.1'\n";
    conf += "unix_socket_directories = '" + (root_ / "sock").string() + "'\n";
    conf += options_.fsync ? "fsync = on\n" : "fsync = off\n";
    conf += "max_connections = 50\nshared_buffers = 128MB\nmax_wal_size = 1GB\n";
    conf += options_.extra_conf + "\n";
    {
      std::string existing = ReadFile(root_ / "data" / "postgresql.conf");
      WriteFile(root_ / "data" / "postgresql.conf", existing + "\n# storegw tests\n" + conf);
      Own(root_ / "data" / "postgresql.conf");
      chmod((root_ / "data" / "postgresql.conf").c_str(), 0600);
    }
    // A free port; another process may take it first: then try another.
    for (int attempt = 0;; ++attempt) {
      port_ = FreePort();
      if (StartServer()) break;
      if (attempt == 4) throw std::runtime_error("postgres did not start: " + Log());
    }
    // This server's own password (not the template's), and the database.
    Psql({"ALTER ROLE " + std::string(kUser) + " PASSWORD '" + password_ + "'",
          "CREATE DATABASE " + std::string(kDatabase)},
         "postgres");
  }

  ~Postgres() {
    try {
      Stop(/*immediate=*/true);
    } catch (...) {
    }
    server_.KillAndReap();
  }

  Postgres(const Postgres&) = delete;
  Postgres& operator=(const Postgres&) = delete;

  uint16_t port() const { return port_; }
  const std::string& password() const { return password_; }
  const std::filesystem::path& dir() const { return root_; }

  // libpq connection string for `dbname` over TCP, with the password.
  std::string conninfo(const std::string& dbname = kDatabase) const {
    return "host=127.0.0.1 port=" + std::to_string(port_) + " dbname=" + dbname + " user=" + kUser +
           " password=" + password_ + " connect_timeout=10";
  }

  // Creates another database (a fresh one per test case on a shared
  // server) and returns its conninfo.
  std::string CreateDatabase(const std::string& name) {
    Psql("CREATE DATABASE " + name, "postgres");
    return conninfo(name);
  }

  // Runs `sql` with psql (unaligned, tuples only, stops at the first
  // error) on the unix socket and returns its output without the final
  // newline: the tests' own view of the database, independent of the code
  // under test. Throws with psql's error when it fails.
  std::string Psql(const std::string& sql, const std::string& dbname = kDatabase) {
    return Psql(std::vector<std::string>{sql}, dbname);
  }
  // Several commands, each in a transaction of its own (psql -c ... -c ...).
  std::string Psql(const std::vector<std::string>& commands, const std::string& dbname) {
    std::vector<std::string> argv = {Bin("psql"),
                                     "-X",
                                     "-q",
                                     "-A",
                                     "-t",
                                     "-v",
                                     "ON_ERROR_STOP=1",
                                     "-h",
                                     (root_ / "sock").string(),
                                     "-p",
                                     std::to_string(port_),
                                     "-U",
                                     kUser,
                                     "-d",
                                     dbname};
    for (const auto& c : commands) {
      argv.push_back("-c");
      argv.push_back(c);
    }
    auto r = Run(argv, std::chrono::seconds(120));
    if (!r.exit.ok()) {
      throw std::runtime_error("psql failed (" + Describe(r.exit) + ") on `" + commands.front() +
                               "`: " + r.err);
    }
    std::string out = r.out;
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
  }

  // Stops the server: immediate = `pg_ctl stop -m immediate` (no shutdown
  // checkpoint; the next start recovers from the WAL, as after a crash),
  // otherwise `-m fast`. Falls back to SIGKILL by PID. Idempotent.
  void Stop(bool immediate = true) {
    if (!server_.Running()) return;
    auto r = Run(Cmd({Bin("pg_ctl"), "-D", (root_ / "data").string(), "stop", "-m",
                      immediate ? "immediate" : "fast", "-w", "-t", "60"}),
                 std::chrono::seconds(90));
    if (!server_.WaitExit(std::chrono::seconds(r.exit.ok() ? 30 : 1))) server_.KillAndReap();
  }

  // Starts the stopped server again on the same port (crash recovery runs
  // first after an immediate stop). Throws when it does not come up.
  void Start() {
    if (server_.Running()) return;
    if (!StartServer()) throw std::runtime_error("postgres did not restart: " + Log());
  }

  bool running() { return server_.Running(); }
  pid_t pid() const { return server_.pid(); }
  std::string Log() const { return ReadFile(root_ / "postgres.log"); }

 private:
  std::string Bin(const std::string& name) const { return std::string(kBinDir) + "/" + name; }

  // argv run as the unprivileged user when we are root.
  std::vector<std::string> Cmd(std::vector<std::string> argv) const {
    std::vector<std::string> out = run_as_;
    out.insert(out.end(), argv.begin(), argv.end());
    return out;
  }

  void Own(const std::filesystem::path& p) const {
    if (uid_ != static_cast<uid_t>(-1) && chown(p.c_str(), uid_, gid_) != 0) {
      throw std::runtime_error("chown " + p.string() + " failed");
    }
  }

  // The initdb'd cluster every server is copied from (initdb takes 1-3 s on
  // the CI machine, the copy a fraction of that): made once per user at
  // $TMPDIR/storegw-pgtest-template-<tag>-<uid> (owner only, as initdb
  // leaves it), in a directory of its own that is renamed into place when
  // complete, so concurrent tests never see half of one; never changed
  // afterwards. Change kTemplateTag when the initdb arguments change.
  std::filesystem::path Template() {
    namespace fs = std::filesystem;
    static constexpr const char* kTemplateTag = "15-v1";
    const char* env = std::getenv("TMPDIR");
    const fs::path base = env && *env ? env : "/tmp";
    const uid_t owner = uid_ != static_cast<uid_t>(-1) ? uid_ : geteuid();
    const fs::path tmpl = base / ("storegw-pgtest-template-" + std::string(kTemplateTag) + "-" +
                                  std::to_string(owner));
    struct stat st {};
    if (stat(tmpl.c_str(), &st) != 0) {
      const fs::path building = tmpl.string() + ".building-" + std::to_string(getpid());
      fs::create_directory(building);
      Own(building);
      WriteFile(building / "pwfile", RandomPassword() + "\n");
      Own(building / "pwfile");
      auto init = Run(Cmd({Bin("initdb"), "-D", (building / "data").string(), "-U", kUser,
                           "--pwfile=" + (building / "pwfile").string(), "--auth-local=trust",
                           "--auth-host=scram-sha-256", "-E", "UTF8", "--no-locale", "--no-sync"}),
                      std::chrono::seconds(120));
      std::error_code ec;
      if (!init.exit.ok()) {
        fs::remove_all(building, ec);
        throw std::runtime_error("initdb failed (" + Describe(init.exit) + "): " + init.out +
                                 init.err);
      }
      // Another test may have finished its template first: then ours goes.
      if (rename((building / "data").c_str(), tmpl.c_str()) != 0 && errno != EEXIST &&
          errno != ENOTEMPTY) {
        fs::remove_all(building, ec);
        throw std::runtime_error("cannot rename the template to " + tmpl.string());
      }
      fs::remove_all(building, ec);
      if (stat(tmpl.c_str(), &st) != 0) throw std::runtime_error("no template at " + tmpl.string());
    }
    if (st.st_uid != owner || (st.st_mode & 077) != 0) {
      throw std::runtime_error(tmpl.string() + " is not the tests' template (owner uid " +
                               std::to_string(st.st_uid) + ", mode " +
                               std::to_string(st.st_mode & 0777) + "): remove it");
    }
    return tmpl;
  }

  static std::string RandomPassword() {
    std::random_device rd;
    std::string s = "pw";
    const char* hex = "0123456789abcdef";
    for (int i = 0; i < 24; ++i) s += hex[rd() % 16];
    return s;
  }

  // Starts postgres on port_ and waits until it accepts connections.
  // False when it exited (e.g. the port was taken meanwhile).
  bool StartServer() {
    server_ = Process::SpawnCombined(
        Cmd({Bin("postgres"), "-D", (root_ / "data").string(), "-p", std::to_string(port_)}),
        root_ / "postgres.log");
    const std::vector<std::string> ready = {Bin("pg_isready"), "-q", "-h",
                                            "127.0.0.1",       "-p", std::to_string(port_)};
    bool up = WaitFor(
        [&] { return !server_.Running() || Run(ready, std::chrono::seconds(10)).exit.ok(); },
        std::chrono::seconds(120), std::chrono::milliseconds(50));
    if (up && server_.Running()) return true;
    server_.KillAndReap();
    return false;
  }

  PostgresOptions options_;
  TempDir tmp_;
  std::filesystem::path root_;
  std::vector<std::string> run_as_;
  uid_t uid_ = static_cast<uid_t>(-1);
  gid_t gid_ = static_cast<gid_t>(-1);
  std::string password_;
  uint16_t port_ = 0;
  Process server_;
};

}  // namespace storegw::test
