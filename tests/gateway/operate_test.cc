// Black-box tests of what an operator meets around `storegw run`, through
// the real binary: [log] format = "json" (every line parsed strictly), the
// reason of a failed `journal verify` said once, /readyz and /healthz on the
// status.listen listener, a start that fails on a port in use (or a bad
// tokens file) creating nothing in the data dir, `storegw stock` against a
// daemon that is not there, and the time of the last error in /v1/status and
// `storegw status`.
#include <doctest/doctest.h>

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <sqlite3.h>

#include <algorithm>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "test_util.h"

using namespace storegw::test;
namespace v1 = storegw::v1;

namespace {

// A listening socket on 127.0.0.1, on a port the kernel picks; closed when
// the object goes, whatever the test did.
class OpsBusyPort {
 public:
  OpsBusyPort() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0) throw std::runtime_error("socket failed");
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(fd_, 1) != 0 ||
        getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      close(fd_);
      throw std::runtime_error("cannot hold a port on 127.0.0.1");
    }
    port_ = ntohs(addr.sin_port);
  }
  ~OpsBusyPort() { close(fd_); }
  OpsBusyPort(const OpsBusyPort&) = delete;
  OpsBusyPort& operator=(const OpsBusyPort&) = delete;
  uint16_t port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

std::vector<std::string> OpsLines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// The last line of `text` without its newline.
std::string OpsLastLine(std::string text) {
  while (!text.empty() && text.back() == '\n') text.pop_back();
  const size_t nl = text.rfind('\n');
  return nl == std::string::npos ? text : text.substr(nl + 1);
}

size_t OpsCount(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

std::string OpsString(const rapidjson::Value& obj, const char* key) {
  auto it = obj.FindMember(key);
  if (it == obj.MemberEnd() || !it->value.IsString()) return "<not a string>";
  return std::string(it->value.GetString(), it->value.GetStringLength());
}

void OpsSql(const std::filesystem::path& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(db_path.c_str(), &db) == SQLITE_OK);
  char* err = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  const std::string why = err ? err : "";
  sqlite3_free(err);
  sqlite3_close(db);
  REQUIRE_MESSAGE(rc == SQLITE_OK, sql << ": " << why);
}

// Stops a daemon with SIGTERM; it must exit 0.
void OpsStop(Daemon& d) {
  d.proc.Signal(SIGTERM);
  auto e = d.proc.WaitExit(30s);
  REQUIRE_MESSAGE(e, "still running 30 s after SIGTERM");
  CHECK_MESSAGE(e->ok(), Describe(*e) << "; stderr:\n" << d.proc.Stderr());
}

}  // namespace

TEST_CASE("operate: [log] format = \"json\" writes one valid JSON object per line") {
  TempDir dir;
  // A config file whose name has a quote, a newline, a control character
  // and a byte that is not UTF-8: the daemon logs its name at start.
  const std::string name = std::string("we\"ird\n\x01\xff") + ".toml";
  const auto cfg = dir / name;
  WriteFile(cfg, "[log]\nformat = \"json\"\n[uplink]\nurl = \"tcp://127.0.0.1:" +
                     std::to_string(FreePort()) +
                     "\"\nbackoff_initial = \"100ms\"\nbackoff_max = \"1s\"\n");
  std::string why;
  auto d = StartDaemon(dir / "data", dir / "logs", "json", &why, 0, {"--config", cfg.string()});
  REQUIRE_MESSAGE(d, why);
  // A refused request: its warning quotes the error body.
  CHECK(HttpPost(d->port, "/v1/events", R"({"event_id":"x\"y","device_id":"till\n\u0001"})")
            .status == 400);
  // The uplink finds no broker: warnings with the reason.
  CHECK(WaitFor([&] { return d->proc.Stderr().find("\"level\":\"warning\"") != std::string::npos; },
                15s));
  OpsStop(*d);

  const std::string err = d->proc.Stderr();
  const std::vector<std::string> lines = OpsLines(err);
  REQUIRE(lines.size() >= 4);
  const std::regex time_re(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}([+-]\d\d:\d\d|Z))");
  const std::set<std::string> levels = {"trace", "debug",    "info",
                                        "warning", "error", "critical"};
  std::vector<std::string> messages;
  std::set<std::string> seen_levels;
  for (const std::string& line : lines) {
    INFO("line: " << line);
    rapidjson::Document doc;
    // Strict: RFC 8259 and valid UTF-8, nothing after the object.
    doc.Parse<rapidjson::kParseValidateEncodingFlag>(line.data(), line.size());
    REQUIRE_MESSAGE(!doc.HasParseError(), rapidjson::GetParseError_En(doc.GetParseError())
                                              << " at byte " << doc.GetErrorOffset());
    REQUIRE(doc.IsObject());
    // The fields of the text form, and only those.
    std::set<std::string> keys;
    for (auto it = doc.MemberBegin(); it != doc.MemberEnd(); ++it) keys.insert(it->name.GetString());
    CHECK(keys == std::set<std::string>{"time", "level", "logger", "message"});
    CHECK(std::regex_match(OpsString(doc, "time"), time_re));
    CHECK(levels.count(OpsString(doc, "level")) == 1);
    CHECK(OpsString(doc, "logger") == "storegw");
    CHECK(!OpsString(doc, "message").empty());
    seen_levels.insert(OpsString(doc, "level"));
    messages.push_back(OpsString(doc, "message"));
  }
  // The message survives: quote, newline and control character as they
  // were, the byte that is not UTF-8 as U+FFFD.
  const std::string shown =
      (dir / (std::string("we\"ird\n\x01") + "\xEF\xBF\xBD" + ".toml")).string();
  const std::string starting =
      std::string("storegw ") + STOREGW_PROJECT_VERSION + " starting (config: " + shown + ")";
  CHECK_MESSAGE(std::count(messages.begin(), messages.end(), starting) == 1, err);
  CHECK(seen_levels.count("info") == 1);
  CHECK(seen_levels.count("warning") == 1);
  bool refused = false, stopped = false;
  for (const auto& m : messages) {
    refused |= m.rfind("device API: refused POST /v1/events", 0) == 0;
    stopped |= m.rfind("stopped in ", 0) == 0;
  }
  CHECK_MESSAGE(refused, err);
  CHECK_MESSAGE(stopped, err);

  // An unknown format names the key and the values it takes.
  WriteFile(dir / "bad.toml", "[log]\nformat = \"xml\"\n");
  RunResult bad = Run(StoregwArgs({"config", "check", "--config", (dir / "bad.toml").string()}));
  CHECK(bad.exit.code == 1);
  CHECK_MESSAGE(bad.err.find((dir / "bad.toml").string() +
                             ":2: log.format: must be \"text\" or \"json\", got \"xml\"") !=
                    std::string::npos,
                bad.err);
}

TEST_CASE("operate: journal verify says the reason of a damaged journal once") {
  TempDir dir;
  const auto data = dir / "data";
  std::string why;
  auto d = StartDaemon(data, dir / "logs", "verify", &why);
  REQUIRE_MESSAGE(d, why);
  for (int i = 0; i < 3; ++i) {
    const std::string id = "rcv-" + std::to_string(i);
    REQUIRE(HttpPost(d->port, "/v1/events", ReceiptJson(id, "till-01", "SKU-V", 5)).status == 200);
  }
  OpsStop(*d);
  const std::string db = (data / "journal.db").string();
  RunResult ok = Run(StoregwArgs({"journal", "verify", "--data-dir", data.string()}));
  REQUIRE_MESSAGE(ok.exit.ok(), ok.err);

  // The ledger no longer matches the events.
  OpsSql(data / "journal.db", "UPDATE stock SET on_hand = on_hand + 1 WHERE sku = 'SKU-V'");
  RunResult r = Run(StoregwArgs({"journal", "verify", "--data-dir", data.string()}));
  CHECK(r.exit.code == 1);
  CHECK(r.out.empty());
  INFO("stderr: " << r.err);
  CHECK(r.err.rfind("journal verify: FAILED: " + db + ": ", 0) == 0);
  CHECK(OpsCount(r.err, "journal verify") == 1);
  CHECK(OpsCount(r.err, db) == 1);
  CHECK(OpsCount(r.err, "\n") == 1);

  // Not a database at all: the path once as well.
  WriteFile(data / "journal.db", std::string(8192, 'x'));
  std::filesystem::remove(data / "journal.db-wal");
  r = Run(StoregwArgs({"journal", "verify", "--data-dir", data.string()}));
  CHECK(r.exit.code == 1);
  CHECK(r.err.rfind("journal verify: FAILED: ", 0) == 0);
  CHECK(OpsCount(r.err, "journal verify") == 1);
  CHECK(OpsCount(r.err, db) == 1);

  // No journal: export and verify say it once too.
  r = Run(StoregwArgs({"journal", "export", "--data-dir", (dir / "none").string()}));
  CHECK(r.exit.code == 1);
  CHECK(r.err == "journal export: no journal at " + (dir / "none" / "journal.db").string() + "\n");
  r = Run(StoregwArgs({"journal", "verify", "--data-dir", (dir / "none").string()}));
  CHECK(r.err ==
        "journal verify: FAILED: no journal at " + (dir / "none" / "journal.db").string() + "\n");
}

TEST_CASE("operate: the status.listen listener answers /readyz and /healthz, without the token") {
  TempDir dir;
  const std::string token = "ops-token-0123456789abcdef";
  for (int attempt = 0;; ++attempt) {
    const uint16_t sport = FreePort();
    WriteFile(dir / "storegw.toml", "[uplink]\ntransport = \"none\"\n[status]\nlisten = \"127.0.0.1:" +
                                        std::to_string(sport) + "\"\ntoken = \"" + token + "\"\n");
    std::string why;
    auto d = StartDaemon(dir / "data", dir / "logs", "readyz-" + std::to_string(attempt), &why, 0,
                         {"--config", (dir / "storegw.toml").string()});
    if (!d && why.find("in use") != std::string::npos && attempt < 5) {
      continue;  // the free port was taken meanwhile
    }
    REQUIRE_MESSAGE(d, why);
    HttpResult ready = HttpGet(sport, "/readyz");
    CHECK(ready.status == 200);
    CHECK(ready.body == "{\"status\":\"ready\"}");
    HttpResult health = HttpGet(sport, "/healthz");
    CHECK(health.status == 200);
    CHECK(health.body == "{\"status\":\"ok\"}");
    // The same answers as the device API's listener.
    CHECK(HttpGet(d->port, "/readyz").body == ready.body);
    CHECK(HttpGet(d->port, "/healthz").body == health.body);
    // The status routes there still want the token.
    CHECK(HttpGet(sport, "/v1/status").status == 401);
    OpsStop(*d);
    CHECK(HttpGet(sport, "/readyz", 1s).status == -1);  // gone with the daemon
    break;
  }
}

TEST_CASE("operate: a start that fails on a port in use creates no journal") {
  TempDir dir;
  OpsBusyPort busy;
  const auto fails = [&](const std::vector<std::string>& args, const std::string& says) {
    RunResult r = Run(StoregwArgs(args), 20s);
    REQUIRE(!r.timed_out);
    CHECK(r.exit.code == 1);
    const std::string last = OpsLastLine(r.err);
    CHECK_MESSAGE(last.rfind("storegw: cannot start: " + says, 0) == 0, r.err);
    return r;
  };
  const std::string in_use = "cannot listen on " + busy.address() + ": Address already in use";

  // A data dir that does not exist yet: still not there.
  const auto fresh = dir / "fresh";
  RunResult r = fails({"run", "--data-dir", fresh.string(), "--listen", busy.address()},
                      "device API: " + in_use);
  CHECK_MESSAGE(!std::filesystem::exists(fresh), r.err);
  // An empty one: still empty.
  const auto empty = dir / "empty";
  std::filesystem::create_directories(empty);
  fails({"run", "--data-dir", empty.string(), "--listen", busy.address()}, "device API: " + in_use);
  CHECK(std::filesystem::is_empty(empty));

  // The status listener's port in use: the same, naming status.listen.
  WriteFile(dir / "status.toml", "[uplink]\ntransport = \"none\"\n[status]\nlisten = \"" +
                                     busy.address() + "\"\n");
  fails({"run", "--config", (dir / "status.toml").string(), "--data-dir", fresh.string(),
         "--listen", "127.0.0.1:0"},
        "status.listen: " + in_use);
  CHECK(!std::filesystem::exists(fresh));

  // A tokens file the device API cannot read: found before the journal too.
  WriteFile(dir / "tokens", "till-01\n");
  WriteFile(dir / "tokens.toml", "[uplink]\ntransport = \"none\"\n[http]\ndevice_tokens_file = \"" +
                                     (dir / "tokens").string() + "\"\n");
  fails({"run", "--config", (dir / "tokens.toml").string(), "--data-dir", fresh.string(),
         "--listen", "127.0.0.1:0"},
        "device API: ");
  CHECK(!std::filesystem::exists(fresh));

  // Once the port is free, the same command starts and creates the journal.
  std::string why;
  auto d = StartDaemon(fresh, dir / "logs", "after", &why);
  REQUIRE_MESSAGE(d, why);
  CHECK(std::filesystem::exists(fresh / "journal.db"));
  OpsStop(*d);
}

TEST_CASE("operate: storegw stock against a daemon that does not answer prints only the error") {
  const std::string url = "http://127.0.0.1:" + std::to_string(FreePort());
  for (const std::vector<std::string>& how :
       {std::vector<std::string>{"SKU-1", "SKU-2"}, std::vector<std::string>{"--prefix", "SKU-"}}) {
    std::vector<std::string> args = {"stock", "--url", url, "--timeout", "2s"};
    args.insert(args.end(), how.begin(), how.end());
    RunResult r = Run(StoregwArgs(args), 30s);
    INFO("stdout: " << r.out << "\nstderr: " << r.err);
    CHECK(r.exit.code == 2);
    CHECK(r.out.empty());  // no table header
    CHECK(r.err.rfind("stock: the gateway at " + url + " is not answering: ", 0) == 0);
    CHECK(OpsCount(r.err, "\n") == 1);
  }

  // --config gives the device API's address (http.listen), never the status
  // listener's, which has no /v1/stock.
  TempDir dir;
  const uint16_t api = FreePort(), status = FreePort();
  WriteFile(dir / "storegw.toml", "[http]\nlisten = \"127.0.0.1:" + std::to_string(api) +
                                      "\"\n[status]\nlisten = \"127.0.0.1:" +
                                      std::to_string(status) + "\"\n");
  RunResult r = Run(StoregwArgs({"stock", "SKU-1", "--config", (dir / "storegw.toml").string(),
                                 "--timeout", "2s"}),
                    30s);
  CHECK(r.exit.code == 2);
  CHECK_MESSAGE(r.err.find("http://127.0.0.1:" + std::to_string(api) + " is not answering") !=
                    std::string::npos,
                r.err);

  // The help names the token stock really uses, and not the status token.
  RunResult help = Run(StoregwArgs({"stock", "--help"}));
  CHECK(help.exit.ok());
  CHECK(help.out.find("STOREGW_DEVICE_TOKEN") != std::string::npos);
  CHECK(help.out.find("status.token") == std::string::npos);
  CHECK(help.out.find("STOREGW_STATUS_TOKEN") == std::string::npos);
}

TEST_CASE("operate: the last error carries its time in /v1/status and storegw status") {
  TempDir dir;
  // An MQTT uplink to a port where nothing listens: connecting fails.
  WriteFile(dir / "storegw.toml", "[uplink]\nurl = \"tcp://127.0.0.1:" +
                                      std::to_string(FreePort()) +
                                      "\"\nbackoff_initial = \"100ms\"\nbackoff_max = \"1s\"\n");
  const int64_t before_us = std::chrono::duration_cast<std::chrono::microseconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count();
  std::string why;
  auto d = StartDaemon(dir / "data", dir / "logs", "lasterror", &why, 0,
                       {"--config", (dir / "storegw.toml").string()});
  REQUIRE_MESSAGE(d, why);
  std::optional<v1::GatewayStatus> st;
  REQUIRE(WaitFor(
      [&] {
        HttpResult r = HttpGet(d->port, "/v1/status");
        st = r.status == 200 ? FromJson<v1::GatewayStatus>(r.body) : std::nullopt;
        return st && !st->last_error().empty();
      },
      15s));
  CHECK(st->last_error_at() >= before_us);
  CHECK(st->last_error_at() <= st->updated_at());
  // Printed as JSON with the field's name, as every other field.
  CHECK(HttpGet(d->port, "/v1/status").body.find("\"last_error_at\":\"") != std::string::npos);

  RunResult s = Run(StoregwArgs({"status", "--url", d->url()}), 30s);
  INFO("stdout: " << s.out);
  CHECK(s.exit.code == 1);  // the link is down
  const std::regex row(R"(\n  Last error +.+ \(at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d, [^)]+ ago\)\n)");
  CHECK(std::regex_search(s.out, row));
  OpsStop(*d);
}
