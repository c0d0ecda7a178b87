// Unit tests of the [status] config keys (status.listen, status.token).
#include <doctest/doctest.h>

#include <string>

#include "storegw/config/config.h"

using namespace storegw::gateway;

namespace {

std::string ErrorOf(std::string_view toml) {
  auto r = ParseConfig(toml, "storegw.toml");
  REQUIRE_MESSAGE(!r.ok(), "expected an error for:\n" << toml);
  return r.status().message();
}

}  // namespace

TEST_CASE("config [status]: defaults, values, and how they print") {
  Config defaults;
  CHECK(defaults.status.listen.empty());  // on http.listen
  CHECK(defaults.status.token.empty());   // no token

  auto r = ParseConfig("[status]\nlisten = \"[::1]:9100\"\ntoken = \"abcdefghijklmnop-0123\"\n",
                       "storegw.toml");
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  CHECK(r->status.listen == "[::1]:9100");
  CHECK(r->status.token == "abcdefghijklmnop-0123");

  std::string printed = ConfigToToml(*r);
  CHECK(printed.find("[status]\nlisten = \"[::1]:9100\"\ntoken = \"***\"\n") != std::string::npos);
  CHECK(printed.find("abcdefghijklmnop") == std::string::npos);  // the secret never prints
  CHECK(ConfigToToml(defaults).find("[status]\nlisten = \"\"\ntoken = \"\"\n") !=
        std::string::npos);

  bool listed_listen = false, listed_token = false;
  for (const auto& k : ConfigKeys()) {
    listed_listen |= k == "status.listen";
    listed_token |= k == "status.token";
  }
  CHECK(listed_listen);
  CHECK(listed_token);

  Config c;
  REQUIRE(SetConfigValue(c, "status.listen", "127.0.0.1:0", "--status-listen").ok());
  CHECK(c.status.listen == "127.0.0.1:0");
}

TEST_CASE("config [status]: bad values are named, the token never echoed") {
  CHECK(ErrorOf("[status]\nlisten = \"9100\"\n") ==
        "storegw.toml:2: status.listen: listen address \"9100\" has no port (expected "
        "HOST:PORT, e.g. 127.0.0.1:8080 or [::1]:8080)");
  CHECK(ErrorOf("[status]\nlisten = 9100\n").find("status.listen: expected a string") !=
        std::string::npos);

  std::string spaced = ErrorOf("[status]\ntoken = \"has a space\"\n");
  CHECK(spaced.find("storegw.toml:2: status.token: must be at most 256 printable ASCII") == 0);
  CHECK(spaced.find("got 11 characters") != std::string::npos);
  CHECK(spaced.find("has a space") == std::string::npos);  // never echoed
  std::string long_token = ErrorOf("[status]\ntoken = \"" + std::string(257, 'x') + "\"\n");
  CHECK(long_token.find("got 257 characters") != std::string::npos);
  CHECK(long_token.find("xxxx") == std::string::npos);
  // The masked print ("***") parses back, as for uplink.password.
  auto masked =
      ParseConfig(ConfigToToml(*ParseConfig("[status]\ntoken = \"abc-123\"\n", "a")), "b");
  REQUIRE_MESSAGE(masked.ok(), masked.status().message());
  CHECK(masked->status.token == "***");
  CHECK(ErrorOf("[status]\ntoken = 1234567890123456789\n")
            .find("status.token: expected a string, got an integer") != std::string::npos);

  CHECK(ErrorOf("[status]\nlisten = \"127.0.0.1:8080\"\n") ==
        "storegw.toml: status.listen: \"127.0.0.1:8080\" is the same port as http.listen "
        "\"127.0.0.1:8080\": leave status.listen empty to serve the status page on http.listen, "
        "or give it a port of its own");
  CHECK(ErrorOf("[status]\nlistn = \"127.0.0.1:9100\"\n").find("did you mean 'status.listen'") !=
        std::string::npos);
  // Two random ports (tests) do not collide.
  CHECK(ParseConfig("[http]\nlisten = \"127.0.0.1:0\"\n[status]\nlisten = \"127.0.0.1:0\"\n",
                    "storegw.toml")
            .ok());
}
