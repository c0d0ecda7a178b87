// Decoding of POST /v1/events bodies, the tokens file, bearer tokens and
// listen addresses: the pieces of the device API that need no socket.
#include <doctest/doctest.h>

#include <string>

#include "auth.h"
#include "devices_test_util.h"
#include "ingest_body.h"
#include "storegw/devices/json_out.h"
#include "storegw/devices/device_api.h"

namespace storegw::devices {
namespace {

using testing::Batch;
using testing::LineJson;
using testing::SaleJson;

Status DecodeError(BodyFormat f, const std::string& body) {
  auto r = DecodeIngestBody(f, body);
  REQUIRE_MESSAGE(!r.ok(), "decoded although it should not: " << body);
  CHECK(r.status().code() == StatusCode::kInvalidArgument);
  return r.status();
}

TEST_CASE("JSON: one Event is single, {\"events\":[...]} is a batch") {
  auto one = DecodeIngestBody(BodyFormat::kJson, SaleJson("e1"));
  REQUIRE(one.ok());
  CHECK(one->single);
  REQUIRE(one->events.size() == 1);
  CHECK(one->events[0].event_id() == "e1");
  CHECK(one->events[0].sale().lines(0).sku() == "SKU-000001");

  auto two = DecodeIngestBody(BodyFormat::kJson, Batch({SaleJson("a"), SaleJson("b")}));
  REQUIRE(two.ok());
  CHECK_FALSE(two->single);
  REQUIRE(two->events.size() == 2);
  CHECK(two->events[1].event_id() == "b");

  // A batch of one is still a batch (paths keep events[0]).
  auto batch_of_one = DecodeIngestBody(BodyFormat::kJson, Batch({SaleJson("a")}));
  REQUIRE(batch_of_one.ok());
  CHECK_FALSE(batch_of_one->single);

  // camelCase names and 64-bit integers as strings are proto3 JSON too.
  auto camel = DecodeIngestBody(
      BodyFormat::kJson,
      R"({"eventId":"c","deviceId":"d","occurredAt":"17","count":{"sku":"S","qty":"5"}})");
  REQUIRE(camel.ok());
  CHECK(camel->events[0].event_id() == "c");
  CHECK(camel->events[0].occurred_at() == 17);
  CHECK(camel->events[0].count().qty() == 5);
}

TEST_CASE("JSON errors name the field the client sent") {
  SUBCASE("unknown field in a batch") {
    Status s =
        DecodeError(BodyFormat::kJson,
                    Batch({SaleJson("a"),
                           SaleJson("b", "till-01",
                                    LineJson("S", "1") + R"(,{"sku":"S","qty":1,"bogus":true})")}));
    CHECK(s.field() == "events[1].sale.lines[1].bogus");
    CHECK(s.message().find("unknown field") != std::string::npos);
  }
  SUBCASE("unknown top-level field of a single event") {
    Status s = DecodeError(BodyFormat::kJson, R"({"event_id":"a","bogus":1})");
    CHECK(s.field() == "bogus");
  }
  SUBCASE("unknown top-level field next to events") {
    Status s = DecodeError(BodyFormat::kJson, R"({"events":[)" + SaleJson("a") + R"(],"x":1})");
    CHECK(s.field() == "x");
  }
  SUBCASE("wrong type, batch") {
    Status s =
        DecodeError(BodyFormat::kJson, Batch({SaleJson("a", "till-01", LineJson("S", "\"abc\""))}));
    CHECK(s.field() == "events[0].sale.lines[0].qty");
    CHECK(s.message().find("64-bit integer") != std::string::npos);
  }
  SUBCASE("wrong type, single") {
    Status s = DecodeError(BodyFormat::kJson, R"({"event_id":5})");
    CHECK(s.field() == "event_id");
    Status f = DecodeError(BodyFormat::kJson, SaleJson("a", "till-01", LineJson("S", "1.5")));
    CHECK(f.field() == "sale.lines[0].qty");
  }
  SUBCASE("two bodies") {
    Status s = DecodeError(BodyFormat::kJson, R"({"event_id":"a","sale":{},"receipt":{}})");
    CHECK(s.field() == "receipt");
  }
  SUBCASE("malformed JSON has no field") {
    Status s = DecodeError(BodyFormat::kJson, R"({"event_id":"a",)");
    CHECK(s.field().empty());
    CHECK(s.message().rfind("malformed JSON", 0) == 0);
    CHECK(s.message().find('\n') == std::string::npos);
  }
  SUBCASE("not an object") {
    Status s = DecodeError(BodyFormat::kJson, "[1,2]");
    CHECK(s.field().empty());
    CHECK(s.message().find("JSON object") != std::string::npos);
  }
  SUBCASE("empty body") {
    Status s = DecodeError(BodyFormat::kJson, "  ");
    CHECK(s.message().find("empty") != std::string::npos);
  }
  SUBCASE("batch without events") {
    CHECK(DecodeError(BodyFormat::kJson, R"({"events":[]})").field() == "events");
    CHECK(DecodeError(BodyFormat::kJson, R"({"events":null})").field() == "events");
  }
}

TEST_CASE("protobuf bodies are IngestRequests and unknown fields are refused") {
  v1::IngestRequest req;
  auto* e = req.add_events();
  e->set_event_id("p1");
  e->set_device_id("till-01");
  e->mutable_count()->set_sku("SKU-1");
  e->mutable_count()->set_qty(3);
  auto ok = DecodeIngestBody(BodyFormat::kProtobuf, req.SerializeAsString());
  REQUIRE(ok.ok());
  CHECK_FALSE(ok->single);
  REQUIRE(ok->events.size() == 1);
  CHECK(ok->events[0].count().qty() == 3);

  // Field 99 (varint 1) appended inside events[0].count.
  v1::IngestRequest with_unknown = req;
  std::string count_bytes =
      req.events(0).count().SerializeAsString() + std::string("\x98\x06\x01", 3);
  v1::StockCount c;
  REQUIRE(c.ParseFromString(count_bytes));
  *with_unknown.mutable_events(0)->mutable_count() = c;
  Status s = DecodeError(BodyFormat::kProtobuf, with_unknown.SerializeAsString());
  CHECK(s.field() == "events[0].count");
  CHECK(s.message().find("99") != std::string::npos);

  CHECK(DecodeError(BodyFormat::kProtobuf, "\xff\xff\xff").field().empty());
  CHECK(DecodeError(BodyFormat::kProtobuf, "").field() == "events");
}

TEST_CASE("Content-Type selects the format") {
  CHECK(FormatForContentType("application/json") == BodyFormat::kJson);
  CHECK(FormatForContentType("Application/JSON; charset=UTF-8") == BodyFormat::kJson);
  CHECK(FormatForContentType("application/x-protobuf") == BodyFormat::kProtobuf);
  CHECK(FormatForContentType("application/protobuf") == BodyFormat::kProtobuf);
  CHECK_FALSE(FormatForContentType("application/json; charset=latin1"));
  CHECK_FALSE(FormatForContentType("text/plain"));
  CHECK_FALSE(FormatForContentType("application/x-www-form-urlencoded"));
  CHECK_FALSE(FormatForContentType(""));
}

TEST_CASE("JSON output is escaped and valid UTF-8") {
  CHECK(JsonString("a\"b\\c\n\x01") == R"("a\"b\\c\n\u0001")");
  CHECK(JsonString("caf\xc3\xa9") == "\"caf\xc3\xa9\"");
  CHECK(JsonString("bad\xff") == R"("bad\ufffd")");
  CHECK(ErrorJson("invalid_argument", "m", "f") ==
        R"({"error":{"code":"invalid_argument","message":"m","field":"f"}})");
  CHECK(JoinPath("events[1]", "sale.qty") == "events[1].sale.qty");
  CHECK(JoinPath("", "sale") == "sale");
  CHECK(JoinPath("events", "[0]") == "events[0]");
}

TEST_CASE("tokens file: pairs, comments, and errors that name the line but not the token") {
  auto t = TokenTable::Parse("# devices of store 42\n\ntill-01 s3cret-one\n  till-02\ttok-two  \n",
                             "tokens.txt");
  REQUIRE(t.ok());
  CHECK(t->size() == 2);
  CHECK(t->DeviceForToken("s3cret-one") == std::optional<std::string>("till-01"));
  CHECK(t->DeviceForToken("tok-two") == std::optional<std::string>("till-02"));
  CHECK_FALSE(t->DeviceForToken("tok-tw"));
  CHECK_FALSE(t->DeviceForToken("tok-two2"));
  CHECK_FALSE(t->DeviceForToken(""));
  CHECK(t->device_ids() == std::vector<std::string>{"till-01", "till-02"});

  auto three = TokenTable::Parse("till-01 tok1\ntill-02 topsecret extra\n", "tokens.txt");
  REQUIRE_FALSE(three.ok());
  CHECK(three.status().message().find("tokens.txt line 2") != std::string::npos);
  CHECK(three.status().message().find("topsecret") == std::string::npos);

  auto one = TokenTable::Parse("till-01 tok1\n# c\nlonely\n", "f");
  REQUIRE_FALSE(one.ok());
  CHECK(one.status().message().find("line 3") != std::string::npos);

  auto dup_device = TokenTable::Parse("till-01 a1\ntill-01 b2\n", "f");
  REQUIRE_FALSE(dup_device.ok());
  CHECK(dup_device.status().message().find("line 2") != std::string::npos);

  auto dup_token = TokenTable::Parse("till-01 same-token\ntill-02 same-token\n", "f");
  REQUIRE_FALSE(dup_token.ok());
  CHECK(dup_token.status().message().find("same-token") == std::string::npos);

  CHECK_FALSE(TokenTable::Parse("# nothing\n\n", "f").ok());
}

TEST_CASE("token file from disk, and CheckDeviceTokensFile") {
  testing::TempDir dir;
  const auto file = dir.path() / "tokens";
  testing::WriteFile(file, "till-01 t1\ntill-02 t2\n");
  auto n = CheckDeviceTokensFile(file);
  REQUIRE(n.ok());
  CHECK(*n == 2);
  auto missing = CheckDeviceTokensFile(dir.path() / "nope");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().message().find("nope") != std::string::npos);
}

}  // namespace
}  // namespace storegw::devices
