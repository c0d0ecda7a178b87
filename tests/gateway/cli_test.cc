// Black-box tests of the storegw command line (no daemon): version, usage
// errors, `config check`, and the offline journal tools on a missing journal.
// Keys renamed or removed by a release: the real table through the binary,
// test-only entries through `config check`'s own function
// (CheckConfigCommand, what the binary runs) in this process.
#include <doctest/doctest.h>

#include <cstdio>
#include <string>

#include "storegw/cli/cli.h"
#include "storegw/config/config.h"
#include "test_util.h"

using namespace storegw::test;

namespace {

std::string Packaged() {
  return std::string(STOREGW_TEST_SOURCE_DIR) + "/../packaging/storegw.toml";
}

}  // namespace

TEST_CASE("gateway cli: version prints the project version") {
  RunResult r = Run(StoregwArgs({"version"}));
  CHECK(r.exit.ok());
  CHECK(r.out == std::string("storegw ") + STOREGW_PROJECT_VERSION + "\n");
  r = Run(StoregwArgs({"--version"}));
  CHECK(r.exit.ok());
  CHECK(r.out.find(std::string("storegw ") + STOREGW_PROJECT_VERSION) != std::string::npos);
}

TEST_CASE("gateway cli: unknown subcommands and flags are usage errors (exit 2)") {
  const std::vector<std::vector<std::string>> bad = {
      {},
      {"frobnicate"},
      {"run", "--bogus"},
      {"run", "extra-arg"},
      {"journal"},
      {"journal", "rewrite"},
      {"journal", "export", "--data-dir"},
      {"config"},
      {"config", "check"},  // --config is required
      {"simulate", "--lanes", "0"},
      {"simulate", "--duration", "5"},  // a duration needs a unit
      {"simulate", "--rate", "fast"},
      {"version", "--verbose"},
  };
  for (const auto& args : bad) {
    std::string joined;
    for (const auto& a : args) joined += a + " ";
    INFO("storegw " << joined);
    RunResult r = Run(StoregwArgs(args));
    CHECK(r.exit.exited);
    CHECK(r.exit.code == 2);
    CHECK(!r.err.empty());
  }
  // An unknown command is named, and the commands there are follow.
  RunResult unknown = Run(StoregwArgs({"frobnicate"}));
  CHECK(unknown.exit.code == 2);
  CHECK(unknown.out.empty());
  CHECK_MESSAGE(unknown.err.rfind("storegw: unknown command 'frobnicate'\n", 0) == 0, unknown.err);
  for (const char* sub : {"run", "config", "journal", "simulate", "status", "alerts", "devices",
                          "stock", "version"}) {
    CHECK_MESSAGE(unknown.err.find(std::string("\n  ") + sub + " ") != std::string::npos, sub);
  }
  CHECK(unknown.err.find("A subcommand is required") == std::string::npos);
  RunResult nested = Run(StoregwArgs({"journal", "rewrite"}));
  CHECK(nested.exit.code == 2);
  CHECK_MESSAGE(nested.err.rfind("storegw journal: unknown command 'rewrite'\n", 0) == 0,
                nested.err);
  CHECK(nested.err.find("\n  verify ") != std::string::npos);
  CHECK(nested.err.find("\n  export ") != std::string::npos);
  // A misplaced argument of a command that takes none is CLI11's to say.
  RunResult extra = Run(StoregwArgs({"run", "extra-arg"}));
  CHECK(extra.err.find("unknown command") == std::string::npos);

  RunResult help = Run(StoregwArgs({"--help"}));
  CHECK(help.exit.ok());
  for (const char* sub : {"run", "config", "journal", "simulate", "version"}) {
    CHECK_MESSAGE(help.out.find(sub) != std::string::npos, sub);
  }
}

TEST_CASE("gateway cli: config check accepts a good file and prints the effective config") {
  RunResult r = Run(StoregwArgs({"config", "check", "--config", Packaged()}));
  CHECK_MESSAGE(r.exit.ok(), r.err);
  // stdout is TOML that parses back to the defaults.
  auto printed = storegw::gateway::ParseConfig(r.out, "stdout");
  REQUIRE_MESSAGE(printed.ok(), printed.status().message());
  CHECK(storegw::gateway::ConfigToToml(*printed) ==
        storegw::gateway::ConfigToToml(storegw::gateway::Config{}));
  CHECK(r.err.find("is valid") != std::string::npos);

  TempDir dir;
  WriteFile(dir / "tokens", "# devices\ntill-01 tok-aaaaaaaaaaaaaaaaaaaaaaaa\n");
  WriteFile(dir / "gw.toml",
            "[gateway]\nstore_id = \"store-7\"\n[http]\nlisten = \"0.0.0.0:8080\"\n"
            "device_tokens_file = \"" +
                (dir / "tokens").string() +
                "\"\n[uplink]\nusername = \"store7\"\npassword = \"hunter2-secret\"\n"
                "[journal]\nretention = \"48h\"\n");
  r = Run(StoregwArgs({"config", "check", "--config", (dir / "gw.toml").string()}));
  CHECK_MESSAGE(r.exit.ok(), r.err);
  CHECK(r.out.find("store_id = \"store-7\"") != std::string::npos);
  CHECK(r.out.find("retention = \"2d\"") != std::string::npos);
  CHECK(r.out.find("password = \"***\"") != std::string::npos);
  CHECK(r.out.find("username = \"store7\"") != std::string::npos);
  CHECK(r.out.find("hunter2-secret") == std::string::npos);
  CHECK(r.err.find("hunter2-secret") == std::string::npos);
  CHECK(r.out.find("tok-aaaa") == std::string::npos);
  CHECK(r.err.find("tok-aaaa") == std::string::npos);
}

TEST_CASE("gateway cli: config check rejects bad files naming key and file (exit 1)") {
  TempDir dir;
  struct Case {
    std::string toml;
    std::vector<std::string> says;
  };
  const std::string file = (dir / "storegw.toml").string();
  const Case cases[] = {
      {"[uplink]\nbatchevents = 5\n", {file + ":2: unknown key 'uplink.batchevents'"}},
      {"[http]\nlisten = \"8080\"\n", {file + ":2: http.listen: listen address \"8080\" has no port (expected HOST:PORT"}},
      {"[journal]\nretention = \"7 days\"\n", {file + ":2: journal.retention: "}},
      {"[http]\nthreads = 0\n[log]\nlevel = \"loud\"\n",
       {file + ":2: http.threads: ", file + ":4: log.level: "}},
      {"[gateway\n", {file + ":1:", "not valid TOML"}},
      {"[http]\nlisten = \"0.0.0.0:9000\"\n",
       {file + ": http.listen: ", "http.device_tokens_file must be set"}},
      {"[http]\ndevice_tokens_file = \"" + (dir / "absent").string() + "\"\n",
       {"http.device_tokens_file: " + (dir / "absent").string() + ": no such file"}},
      {"[uplink]\npassword = 31337\n", {"uplink.password: expected a string, got an integer"}},
  };
  for (const Case& c : cases) {
    INFO("config:\n" << c.toml);
    WriteFile(file, c.toml);
    RunResult r = Run(StoregwArgs({"config", "check", "--config", file}));
    CHECK(r.exit.exited);
    CHECK(r.exit.code == 1);
    CHECK(r.out.empty());
    for (const auto& s : c.says) CHECK_MESSAGE(r.err.find(s) != std::string::npos, r.err);
    CHECK(r.err.find("31337") == std::string::npos);
  }
  // A malformed tokens file is checked the way the daemon reads it, and the
  // token never shows.
  WriteFile(dir / "tokens", "till-01\n");
  WriteFile(file, "[http]\ndevice_tokens_file = \"" + (dir / "tokens").string() + "\"\n");
  RunResult r = Run(StoregwArgs({"config", "check", "--config", file}));
  CHECK(r.exit.code == 1);
  CHECK(r.err.find("http.device_tokens_file") != std::string::npos);

  r = Run(StoregwArgs({"config", "check", "--config", (dir / "nope.toml").string()}));
  CHECK(r.exit.code == 1);
  CHECK(r.err.find((dir / "nope.toml").string() + ": no such config file") != std::string::npos);
}

TEST_CASE("gateway cli: journal tools on a directory without a journal fail with the reason") {
  TempDir dir;
  RunResult r = Run(StoregwArgs({"journal", "export", "--data-dir", dir.path().string()}));
  CHECK(r.exit.code == 1);
  CHECK(r.err.find("no journal at " + (dir / "journal.db").string()) != std::string::npos);
  r = Run(StoregwArgs({"journal", "verify", "--data-dir", dir.path().string()}));
  CHECK(r.exit.code == 1);
  CHECK(r.err.find("journal verify: FAILED") != std::string::npos);
  // A file that is not a journal.
  WriteFile(dir / "journal.db", std::string(8192, 'x'));
  r = Run(StoregwArgs({"journal", "verify", "--data-dir", dir.path().string()}));
  CHECK(r.exit.code == 1);
  CHECK(r.err.find("journal verify: FAILED") != std::string::npos);
  r = Run(StoregwArgs({"journal", "export", "--data-dir", dir.path().string()}));
  CHECK(r.exit.code == 1);
  // The offline tools never move or change the file.
  CHECK(ReadFile(dir / "journal.db") == std::string(8192, 'x'));
}

// ------------------------------------------------------------ retired keys

namespace {

// What CheckConfigCommand wrote and returned.
struct CheckRun {
  int code = -1;
  std::string out, err;
};

std::string CliReadAll(std::FILE* f) {
  std::string text;
  std::rewind(f);
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
  std::fclose(f);
  return text;
}

CheckRun CliCheck(const std::string& path, bool strict,
                  const std::vector<storegw::gateway::RetiredKey>* retired) {
  std::FILE* out = std::tmpfile();
  std::FILE* err = std::tmpfile();
  REQUIRE(out);
  REQUIRE(err);
  CheckRun r;
  r.code = storegw::gateway::CheckConfigCommand(path, strict, {.retired = retired}, out, err);
  r.out = CliReadAll(out);
  r.err = CliReadAll(err);
  return r;
}

// Test-only entries (none of these keys was ever a real storegw key).
const std::vector<storegw::gateway::RetiredKey>& CliTestRetired() {
  static const std::vector<storegw::gateway::RetiredKey> keys = {
      {.key = "uplink.batch_size", .since = "9.1.0", .renamed_to = "uplink.batch_events"},
      {.key = "uplink.keepalive", .since = "9.1.0", .advice = "the keep-alive is fixed at 30 s"},
      {.key = "uplink.insecure",
       .since = "9.3.0",
       .advice = "trust a private CA with uplink.tls.ca_file",
       .refuse = true},
  };
  return keys;
}

}  // namespace

TEST_CASE("gateway cli: config check names a typo with a suggestion, --strict passes a clean file, and reports any key of the retired-keys table") {
  // Each entry of this release's table through the binary: never accepted
  // silently. (The table is empty while no key was renamed or removed; the
  // mechanism is tested below with test-only entries.)
  TempDir dir;
  const std::string file = (dir / "old.toml").string();
  for (const auto& r : storegw::gateway::RetiredConfigKeys()) {
    INFO("retired key " << r.key);
    const std::string section = r.key.substr(0, r.key.rfind('.'));
    WriteFile(file, "[" + section + "]\n" + r.key.substr(r.key.rfind('.') + 1) + " = 1\n");
    RunResult c = Run(StoregwArgs({"config", "check", "--config", file}));
    CHECK(c.exit.exited);
    CHECK(c.err.find(file + ":2: key '" + r.key + "' was ") != std::string::npos);
    RunResult strict = Run(StoregwArgs({"config", "check", "--strict", "--config", file}));
    CHECK(strict.exit.code == 1);
  }
  // A typo is an error with a suggestion, with or without --strict; a clean
  // file passes --strict.
  WriteFile(file, "[uplink]\n\nbatch_evnts = 5\n");
  for (bool strict : {false, true}) {
    std::vector<std::string> args = {"config", "check", "--config", file};
    if (strict) args.push_back("--strict");
    RunResult c = Run(StoregwArgs(args));
    CHECK(c.exit.code == 1);
    CHECK(c.out.empty());
    CHECK(c.err == "config check: " + file + " is not valid:\n  " + file +
                       ":3: unknown key 'uplink.batch_evnts' (did you mean "
                       "'uplink.batch_events'?)\n");
  }
  RunResult clean = Run(StoregwArgs({"config", "check", "--strict", "--config", Packaged()}));
  CHECK_MESSAGE(clean.exit.ok(), clean.err);
  CHECK(clean.err == "config check: " + Packaged() + " is valid\n");
}

TEST_CASE("gateway cli: config check with a renamed key warns, applies it, and --strict fails") {
  TempDir dir;
  const std::string file = (dir / "storegw.toml").string();
  WriteFile(file, "[uplink]\nbatch_size = 250\n");
  CheckRun r = CliCheck(file, false, &CliTestRetired());
  CHECK(r.code == 0);
  CHECK(r.out.find("batch_events = 250\n") != std::string::npos);
  CHECK(r.out.find("batch_size") == std::string::npos);
  CHECK(r.err == "config check: " + file + ": 1 warning:\n  " + file +
                     ":2: key 'uplink.batch_size' was renamed to 'uplink.batch_events' in storegw "
                     "9.1.0: write 'uplink.batch_events' instead (the value is used as "
                     "'uplink.batch_events' meanwhile)\nconfig check: " +
                     file + " is valid, with 1 warning (see above): update the file\n");

  r = CliCheck(file, true, &CliTestRetired());
  CHECK(r.code == 1);
  CHECK(r.out.empty());
  CHECK(r.err.find("key 'uplink.batch_size' was renamed to 'uplink.batch_events'") !=
        std::string::npos);
  CHECK(r.err.find("config check: " + file +
                   " is not valid with --strict: 1 warning (see above); update the file\n") !=
        std::string::npos);

  // The binary's own table does not know this test-only key: unknown.
  RunResult bin = Run(StoregwArgs({"config", "check", "--config", file}));
  CHECK(bin.exit.code == 1);
  CHECK(bin.err.find(file + ":2: unknown key 'uplink.batch_size'") != std::string::npos);
}

TEST_CASE("gateway cli: config check with old and new name both set, removed and refused keys") {
  TempDir dir;
  const std::string file = (dir / "storegw.toml").string();
  WriteFile(file, "[uplink]\nbatch_events = 100\nbatch_size = 250\n");
  CheckRun r = CliCheck(file, false, &CliTestRetired());
  CHECK(r.code == 1);
  CHECK(r.out.empty());
  CHECK(r.err == "config check: " + file + " is not valid:\n  " + file +
                     ":3: key 'uplink.batch_size' was renamed to 'uplink.batch_events' in storegw "
                     "9.1.0, and 'uplink.batch_events' is set too (line 2): delete "
                     "'uplink.batch_size'\n");

  WriteFile(file, "[uplink]\nkeepalive = \"30s\"\n");
  r = CliCheck(file, false, &CliTestRetired());
  CHECK(r.code == 0);
  CHECK(r.err.find(file + ":2: key 'uplink.keepalive' was removed in storegw 9.1.0 and has no "
                          "effect: the keep-alive is fixed at 30 s; delete it from the file\n") !=
        std::string::npos);
  CHECK(r.err.find("is valid, with 1 warning") != std::string::npos);
  CHECK(CliCheck(file, true, &CliTestRetired()).code == 1);

  // A warning and a problem in one file: both reported, exit 1.
  WriteFile(file, "[uplink]\nkeepalive = \"30s\"\ninsecure = true\n");
  r = CliCheck(file, false, &CliTestRetired());
  CHECK(r.code == 1);
  CHECK(r.out.empty());
  CHECK(r.err == "config check: " + file + ": 1 warning:\n  " + file +
                     ":2: key 'uplink.keepalive' was removed in storegw 9.1.0 and has no effect: "
                     "the keep-alive is fixed at 30 s; delete it from the file\nconfig check: " +
                     file + " is not valid:\n  " + file +
                     ":3: key 'uplink.insecure' was removed in storegw 9.3.0: trust a private CA "
                     "with uplink.tls.ca_file\n");
}
