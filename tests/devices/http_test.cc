// The shared HTTP layer (devices/http): listen addresses, bearer tokens and
// the constant-time compare, and the server's start-up and shutdown rules,
// on real sockets on 127.0.0.1.
#include <doctest/doctest.h>
#include <httplib.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include <optional>
#include <string>
#include <string_view>

#include "storegw/http/auth.h"
#include "storegw/http/listen.h"
#include "storegw/http/server.h"

namespace storegw::http {
namespace {

TEST_CASE("http: constant-time compare") {
  CHECK(ConstantTimeEquals("abc", "abc"));
  CHECK_FALSE(ConstantTimeEquals("abd", "abc"));
  CHECK_FALSE(ConstantTimeEquals("ab", "abc"));
  CHECK_FALSE(ConstantTimeEquals("abcd", "abc"));
  CHECK_FALSE(ConstantTimeEquals("abcabc", "abc"));  // a repeated prefix is not a match
  CHECK_FALSE(ConstantTimeEquals("", "abc"));
  CHECK_FALSE(ConstantTimeEquals("abc", ""));
  CHECK(ConstantTimeEquals("", ""));
}

TEST_CASE("http: bearer tokens") {
  CHECK(BearerToken("Bearer abc") == std::optional<std::string_view>("abc"));
  CHECK(BearerToken("bearer   abc  ") == std::optional<std::string_view>("abc"));
  CHECK(BearerToken("BEARER xyz\r\n") == std::optional<std::string_view>("xyz"));
  CHECK_FALSE(BearerToken("Basic abc"));
  CHECK_FALSE(BearerToken("Bearer"));
  CHECK_FALSE(BearerToken("Bearer "));
  CHECK_FALSE(BearerToken("Bearerabc"));
  CHECK_FALSE(BearerToken(""));
}

TEST_CASE("http: listen addresses") {
  auto v4 = ParseListenAddress("127.0.0.1:8080");
  REQUIRE(v4.ok());
  CHECK(v4->host == "127.0.0.1");
  CHECK(v4->port == 8080);
  CHECK(v4->loopback);
  CHECK(v4->ToString() == "127.0.0.1:8080");
  auto v6 = ParseListenAddress("[::1]:0");
  REQUIRE(v6.ok());
  CHECK(v6->host == "::1");
  CHECK(v6->port == 0);
  CHECK(v6->loopback);
  CHECK(v6->ToString() == "[::1]:0");
  CHECK(ParseListenAddress("localhost:1")->loopback);
  CHECK(ParseListenAddress("127.3.2.1:1")->loopback);
  CHECK(ParseListenAddress("127.0.0.1:65535").ok());
  CHECK_FALSE(ParseListenAddress("0.0.0.0:8080")->loopback);
  CHECK_FALSE(ParseListenAddress("[::]:8080")->loopback);
  CHECK_FALSE(ParseListenAddress("192.168.1.10:8080")->loopback);
  for (const char* bad : {"8080", ":8080", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1",
                          "127.0.0.1:123456", "127.0.0.1:http", "::1:8080", "[::1]8080", "[zz]:80",
                          "[::1", "[]:80", "a b:80", "host/x:80"}) {
    auto r = ParseListenAddress(bad);
    CHECK_MESSAGE(!r.ok(), bad);
    if (!r.ok()) {
      CHECK(r.status().message().find(bad) != std::string::npos);
      CHECK(r.status().message().find("expected HOST:PORT") != std::string::npos);
    }
  }
  CHECK_FALSE(ParseListenAddress("").ok());
}

TEST_CASE("http: loopback hosts") {
  for (const char* h : {"127.0.0.1", "127.1.2.3", "::1", "localhost", "::ffff:127.0.0.1"}) {
    CHECK_MESSAGE(IsLoopbackHost(h), h);
  }
  for (const char* h : {"0.0.0.0", "10.0.0.1", "::", "192.0.2.1", "example.com", "128.0.0.1",
                        "localhost.example.com", "fe80::1"}) {
    CHECK_MESSAGE(!IsLoopbackHost(h), h);
  }
}

ListenAddress AnyPort() { return *ParseListenAddress("127.0.0.1:0"); }

TEST_CASE("http: a server serves, counts answers by code, and stops (twice is fine)") {
  Server server(ServerOptions{.name = "test server", .threads = 2});
  server.raw().Get("/ok", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("fine", "text/plain");
  });
  REQUIRE(server.Start(AnyPort()).ok());
  REQUIRE(server.port() != 0);
  httplib::Client client("127.0.0.1", server.port());
  auto ok = client.Get("/ok");
  REQUIRE(ok);
  CHECK(ok->status == 200);
  CHECK(ok->body == "fine");
  auto missing = client.Get("/missing");
  REQUIRE(missing);
  CHECK(missing->status == 404);
  const auto codes = server.ResponsesByCode();
  REQUIRE(codes.size() == 2);
  CHECK(codes[0] == std::pair<int, uint64_t>{200, 1});
  CHECK(codes[1] == std::pair<int, uint64_t>{404, 1});
  server.Stop();
  server.Stop();
  CHECK_FALSE(httplib::Client("127.0.0.1", server.port()).Get("/ok"));
}

TEST_CASE("http: closing makes answers end their keep-alive connection") {
  std::atomic<bool> closing{false};
  ServerOptions o;
  o.closing = [&closing] { return closing.load(); };
  Server server(std::move(o));
  server.raw().Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("x", "text/plain");
  });
  REQUIRE(server.Start(AnyPort()).ok());
  httplib::Client client("127.0.0.1", server.port());
  client.set_keep_alive(true);
  auto before = client.Get("/");
  REQUIRE(before);
  CHECK(before->get_header_value("Connection") != "close");
  closing = true;
  auto after = client.Get("/");
  REQUIRE(after);
  CHECK(after->get_header_value("Connection") == "close");
}

TEST_CASE("http: a port in use is refused with the server's name, the address and the reason") {
  Server first(ServerOptions{.name = "first"});
  REQUIRE(first.Start(AnyPort()).ok());
  Server second(ServerOptions{.name = "second server"});
  ListenAddress taken = AnyPort();
  taken.port = first.port();
  Status s = second.Start(taken);
  REQUIRE_FALSE(s.ok());
  CHECK(s.code() == StatusCode::kUnavailable);
  CHECK(s.message().find("second server: cannot listen on 127.0.0.1:" +
                         std::to_string(first.port())) == 0);
  CHECK(s.message().find("in use") != std::string::npos);
}

}  // namespace
}  // namespace storegw::http
