// storegw-hq's config (gateway/hq/config.cc): defaults, and that every
// mistake is an error naming the file, the line, the key and what is
// allowed, without ever showing a secret.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "common/files.h"
#include "storegw/hq/app/config.h"

using namespace storegw;
using namespace storegw::hq;

namespace {

// The problems of `toml` (parsed as "hq.toml"); none when it is valid.
std::vector<std::string> Problems(const std::string& toml) {
  std::vector<std::string> problems;
  auto r = ParseHqConfig(toml, "hq.toml", &problems);
  CHECK(r.ok() == problems.empty());
  return problems;
}

std::string OneProblem(const std::string& toml) {
  auto p = Problems(toml);
  REQUIRE_MESSAGE(p.size() == 1, "problems: " << p.size() << (p.empty() ? "" : ": " + p[0]));
  return p[0];
}

}  // namespace

TEST_CASE("hq config: an empty file is the documented defaults") {
  auto c = ParseHqConfig("", "hq.toml");
  REQUIRE(c.ok());
  CHECK(c->hq.database == "postgresql:///storegw");
  CHECK(c->hq.max_batches_per_txn == 64);
  CHECK(c->hq.max_txn_delay == std::chrono::milliseconds(5));
  CHECK(c->mqtt.url == "tcp://127.0.0.1:1883");
  CHECK(c->mqtt.topic_prefix == "retail/v1");
  CHECK(c->mqtt.share_group == "storegw-hq");
  CHECK(c->mqtt.client_id.empty());
  CHECK(c->mqtt.session_expiry == std::chrono::minutes(10));
  CHECK(c->http.listen == "127.0.0.1:9080");
  CHECK(c->https.listen.empty());
  CHECK(c->log.level == "info");
  CHECK(c->fleet.offline_after == std::chrono::seconds(90));
  CHECK(c->status.max_offline == std::chrono::minutes(15));
  // Every key is in the table, and the effective config prints each one.
  const std::string toml = HqConfigToToml(*c);
  for (const std::string& key : HqConfigKeys()) {
    const std::string leaf = key.substr(key.rfind('.') + 1);
    CHECK_MESSAGE(toml.find("\n" + leaf + " = ") != std::string::npos, key);
  }
  // ... and reads back as the same config.
  auto again = ParseHqConfig(toml, "again.toml");
  REQUIRE(again.ok());
  CHECK(HqConfigToToml(*again) == toml);
}

TEST_CASE("hq config: every key is read") {
  auto c = ParseHqConfig(R"(
[hq]
database = "host=db.example dbname=hq user=hq"
max_batches_per_txn = 16
max_txn_delay = "20ms"
[mqtt]
url = "ssl://broker.example:8883"
topic_prefix = "chain/v2"
share_group = ""
client_id = "hq-a"
username = "hq"
password = "pw"
session_expiry = "1h"
[mqtt.tls]
ca_file = "/etc/ca.pem"
cert_file = "/etc/hq.pem"
key_file = "/etc/hq.key"
[http]
listen = "[::1]:9090"
[https]
listen = "0.0.0.0:9443"
cert_file = "/etc/srv.pem"
key_file = "/etc/srv.key"
client_ca_file = "/etc/clients.pem"
[log]
level = "debug"
[fleet]
offline_after = "3m"
[status]
max_offline = "1h"
)",
                         "hq.toml");
  REQUIRE_MESSAGE(c.ok(), c.status().message());
  CHECK(c->hq.database == "host=db.example dbname=hq user=hq");
  CHECK(c->hq.max_batches_per_txn == 16);
  CHECK(c->hq.max_txn_delay == std::chrono::milliseconds(20));
  CHECK(c->mqtt.url == "ssl://broker.example:8883");
  CHECK(c->mqtt.topic_prefix == "chain/v2");
  CHECK(c->mqtt.share_group.empty());
  CHECK(EffectiveClientId(*c) == "hq-a");
  CHECK(c->mqtt.session_expiry == std::chrono::hours(1));
  CHECK(c->mqtt.tls.key_file == "/etc/hq.key");
  CHECK(c->http.listen == "[::1]:9090");
  CHECK(c->https.client_ca_file == "/etc/clients.pem");
  CHECK(c->log.level == "debug");
  CHECK(c->fleet.offline_after == std::chrono::minutes(3));
  CHECK(c->status.max_offline == std::chrono::hours(1));
}

TEST_CASE("hq config: unknown keys and sections name the file, the line and a near miss") {
  CHECK(OneProblem("[mqtt]\nurl = \"tcp://b:1883\"\nsharegroup = \"x\"\n") ==
        "hq.toml:3: unknown key 'mqtt.sharegroup' (did you mean 'mqtt.share_group'?)");
  // A key in the wrong section is found by its name.
  CHECK(OneProblem("[http]\noffline_after = \"2m\"\n") ==
        "hq.toml:2: unknown key 'http.offline_after' (did you mean 'fleet.offline_after'?)");
  CHECK(OneProblem("\n[flet]\noffline_after = \"2m\"\n") ==
        "hq.toml:2: unknown section 'flet' (did you mean 'fleet'?)");
  CHECK(OneProblem("nonsense_key_far_away = 1\n") ==
        "hq.toml:1: unknown key 'nonsense_key_far_away'");
  // A key of storegw's own config is not one of storegw-hq's.
  CHECK(OneProblem("[gateway]\nstore_id = \"s\"\n")
            .rfind("hq.toml:1: unknown section 'gateway'", 0) == 0);
}

TEST_CASE("hq config: bad values name the key and what is allowed") {
  CHECK(OneProblem("[fleet]\noffline_after = \"0s\"\n") ==
        "hq.toml:2: fleet.offline_after: must be between 1s and 7d, got \"0s\"");
  CHECK(OneProblem("[fleet]\noffline_after = 90\n") ==
        "hq.toml:2: fleet.offline_after: expected a duration string with a unit (e.g. \"90s\"), "
        "got the integer 90");
  CHECK(OneProblem("[status]\nmax_offline = \"soon\"\n")
            .find("status.max_offline: expected a duration with a unit") != std::string::npos);
  CHECK(OneProblem("[log]\nlevel = \"loud\"\n") ==
        "hq.toml:2: log.level: must be \"trace\", \"debug\", \"info\", \"warn\", \"error\", "
        "\"critical\" or \"off\", got \"loud\"");
  CHECK(OneProblem("[hq]\nmax_batches_per_txn = 0\n") ==
        "hq.toml:2: hq.max_batches_per_txn: must be between 1 and 10000, got 0");
  CHECK(OneProblem("[hq]\nmax_batches_per_txn = \"8\"\n") ==
        "hq.toml:2: hq.max_batches_per_txn: expected an integer, got the string \"8\"");
  CHECK(OneProblem("[http]\nlisten = \"9080\"\n")
            .find("hq.toml:2: http.listen: listen address \"9080\" has no port") == 0);
  CHECK(OneProblem("[http]\nlisten = [1, 2]\n") ==
        "hq.toml:2: http.listen: expected a string, got an array");
  CHECK(OneProblem("[mqtt]\nurl = \"http://broker:1883\"\n")
            .find("mqtt.url: expected an MQTT URL such as \"tcp://broker:1883\"") !=
        std::string::npos);
  CHECK(OneProblem("[mqtt]\ntopic_prefix = \"retail/+\"\n").find("mqtt.topic_prefix: must be") !=
        std::string::npos);
  CHECK(OneProblem("[mqtt]\nshare_group = \"a/b\"\n").find("mqtt.share_group: must be") !=
        std::string::npos);
  CHECK(OneProblem("[mqtt]\nclient_id = \"has space\"\n").find("mqtt.client_id: must be") !=
        std::string::npos);
  CHECK(OneProblem("[hq]\ndatabase = \"\"\n").find("hq.toml:2: hq.database: must not be empty") ==
        0);
  CHECK(OneProblem("[mqtt]\nsession_expiry = \"8d\"\n") ==
        "hq.toml:2: mqtt.session_expiry: must be between 0s and 7d, got \"8d\"");
}

TEST_CASE("hq config: keys that only make sense together") {
  CHECK(OneProblem("[mqtt]\nurl = \"\"\n") ==
        "hq.toml: mqtt.url and https.listen are both empty: storegw-hq would receive nothing "
        "(set mqtt.url, https.listen, or both)");
  CHECK(OneProblem("[mqtt.tls]\nca_file = \"/ca.pem\"\n")
            .find("mqtt.tls: TLS files are set but mqtt.url \"tcp://127.0.0.1:1883\" is not a "
                  "TLS URL") != std::string::npos);
  CHECK(OneProblem("[mqtt]\nurl = \"ssl://b:8883\"\n[mqtt.tls]\ncert_file = \"/c.pem\"\n") ==
        "hq.toml: mqtt.tls.key_file: must be set together with mqtt.tls.cert_file (a client "
        "certificate needs its key)");
  CHECK(OneProblem("[https]\nlisten = \"127.0.0.1:9443\"\n") ==
        "hq.toml: https.listen: \"127.0.0.1:9443\" needs https.cert_file and https.key_file (the "
        "server's certificate and key)");
  CHECK(OneProblem("[https]\ncert_file = \"/c.pem\"\n").find("https.listen is empty") !=
        std::string::npos);
  CHECK(OneProblem("[https]\nlisten = \"127.0.0.1:9080\"\ncert_file = \"/c\"\nkey_file = \"/k\"\n")
            .find("is the same port as http.listen") != std::string::npos);
}

TEST_CASE("hq config: every problem is listed, in file order") {
  std::vector<std::string> p = Problems(
      "[status]\nmax_offline = \"x\"\n[fleet]\noffline_after = \"1ms\"\n[mqtt]\nurl = 5\nbogus = "
      "1\n");
  REQUIRE(p.size() == 4);
  CHECK(p[0].rfind("hq.toml:2: status.max_offline:", 0) == 0);
  CHECK(p[1].rfind("hq.toml:4: fleet.offline_after:", 0) == 0);
  CHECK(p[2].rfind("hq.toml:6: mqtt.url: expected a string, got the integer 5", 0) == 0);
  CHECK(p[3].rfind("hq.toml:7: unknown key 'mqtt.bogus'", 0) == 0);
  auto r =
      ParseHqConfig("[status]\nmax_offline = \"x\"\n[fleet]\noffline_after = \"1ms\"\n", "hq.toml");
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message().find("(and 1 more problem)") != std::string::npos);
}

TEST_CASE("hq config: not TOML at all names the line and column") {
  const std::string p = OneProblem("[hq]\ndatabase = \"unterminated\n");
  CHECK(p.rfind("hq.toml:2:", 0) == 0);
  CHECK(p.find("not valid TOML") != std::string::npos);
}

TEST_CASE("hq config: secrets never appear in messages or in the effective config") {
  // The database password, in a URI, a query parameter and a keyword string.
  auto c = ParseHqConfig(
      "[hq]\ndatabase = \"postgresql://hq:S3cretPw@db.example:5432/hq?sslmode=require&password="
      "S3cretPw\"\n[mqtt]\npassword = \"MqttS3cret\"\n",
      "hq.toml");
  REQUIRE(c.ok());
  std::string toml = HqConfigToToml(*c);
  CHECK(toml.find("S3cret") == std::string::npos);
  CHECK(toml.find(
            "database = \"postgresql://hq:***@db.example:5432/hq?sslmode=require&password=***\"") !=
        std::string::npos);
  CHECK(toml.find("password = \"***\"") != std::string::npos);

  CHECK(MaskConnInfo("host=db password='it\\'s secret' user=hq") == "host=db password=*** user=hq");
  CHECK(MaskConnInfo("host=db password = S3cret dbname=x") == "host=db password = *** dbname=x");
  CHECK(MaskConnInfo("postgres://hq@db/x") == "postgres://hq@db/x");
  CHECK(MaskConnInfo("postgresql:///storegw") == "postgresql:///storegw");
  CHECK(MaskConnInfo("host=db password='unterminated S3cret") ==
        "(not shown: not a connection string)");

  // A wrong type or an unreadable string: the error does not echo the value.
  for (const std::string& bad :
       {std::string("[mqtt]\npassword = 123456\n"), std::string("[hq]\ndatabase = \"host\"\n"),
        std::string("[hq]\ndatabase = \"host=db password='S3cret\"\n")}) {
    const std::string p = OneProblem(bad);
    CHECK_MESSAGE(p.find("123456") == std::string::npos, p);
    CHECK_MESSAGE(p.find("S3cret") == std::string::npos, p);
  }
  CHECK(OneProblem("[hq]\ndatabase = \"host=db password='S3cret\"\n")
            .find("the value is not shown because it may hold a password") != std::string::npos);
  // Credentials in the MQTT URL are refused, without echoing them.
  const std::string p = OneProblem("[mqtt]\nurl = \"tcp://hq:S3cret@broker:1883\"\n");
  CHECK(p.find("S3cret") == std::string::npos);
  CHECK(p.find("use mqtt.username and mqtt.password") != std::string::npos);
}

TEST_CASE("hq config: files, and the client id from the host name") {
  storegw::test::TempDir tmp;
  auto missing = LoadHqConfigFile(tmp / "nope.toml");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().message() == (tmp / "nope.toml").string() + ": no such config file");
  storegw::test::WriteFile(tmp / "hq.toml",
                           "[mqtt]\nurl = \"ssl://b:8883\"\n[mqtt.tls]\nca_file = \"" +
                               (tmp / "ca.pem").string() + "\"\n");
  auto c = LoadHqConfigFile(tmp / "hq.toml");
  REQUIRE(c.ok());
  Status s = CheckHqConfigFiles(*c);
  CHECK(s.message() == "mqtt.tls.ca_file: " + (tmp / "ca.pem").string() + ": no such file");
  storegw::test::WriteFile(tmp / "ca.pem", "x");
  CHECK(CheckHqConfigFiles(*c).ok());

  HqConfig d;
  const std::string id = EffectiveClientId(d);
  CHECK(id.rfind("storegw-hq-", 0) == 0);
  CHECK(id.size() > std::string("storegw-hq-").size());
  CHECK(id.find(' ') == std::string::npos);
}

TEST_CASE("hq config: the packaged config documents every key at its default") {
  // packaging/hq/storegw-hq.toml: every key commented out ("#key = value")
  // at its default. Uncommented, it must parse to exactly the defaults, and
  // name every key once.
  const std::string packaged = storegw::test::ReadFile(std::string(STOREGW_TEST_SOURCE_DIR) +
                                                       "/../packaging/hq/storegw-hq.toml");
  REQUIRE_FALSE(packaged.empty());
  std::string uncommented;
  size_t keys = 0;
  size_t pos = 0;
  while (pos < packaged.size()) {
    size_t nl = packaged.find('\n', pos);
    std::string line = packaged.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    pos = nl == std::string::npos ? packaged.size() : nl + 1;
    if (line.size() > 1 && line[0] == '#' && line[1] >= 'a' && line[1] <= 'z' &&
        line.find(" = ") != std::string::npos) {
      line = line.substr(1);
      ++keys;
    }
    uncommented += line + "\n";
  }
  auto c = ParseHqConfig(uncommented, "storegw-hq.toml");
  REQUIRE_MESSAGE(c.ok(), c.status().message());
  CHECK(keys == HqConfigKeys().size());
  CHECK(HqConfigToToml(*c) == HqConfigToToml(HqConfig{}));
  // As shipped (all commented out) it is valid too.
  CHECK(ParseHqConfig(packaged, "storegw-hq.toml").ok());
}
