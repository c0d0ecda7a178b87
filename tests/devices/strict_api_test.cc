// The device API's strictness over real HTTP (a DeviceApi on 127.0.0.1:0
// with a real Journal): a reused event_id with another body is a 409 that
// records nothing, occurred_at outside its plausible window is a 400 that
// names the unit, JSON that is not RFC 8259 is a 400 naming the byte, and
// an unknown Content-Encoding is a 415. Every refusal is checked to leave
// the journal unchanged.
#include <doctest/doctest.h>

#include <chrono>

#include "devices_test_util.h"
#include "ingest_body.h"
#include "storegw/devices/device_api.h"

namespace storegw::devices {
namespace {

using namespace testing;

constexpr const char* kJsonCt = "application/json";
constexpr int64_t kStrictDayUs = int64_t{86'400} * 1'000'000;

int64_t StrictNowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string StrictEventAt(const std::string& id, const std::string& occurred_at) {
  return R"({"event_id":")" + id + R"(","device_id":"till-01","occurred_at":)" + occurred_at +
         R"(,"count":{"sku":"SKU-000001","qty":3}})";
}

// The 409 body: the error object has code, message, field, event_id, seq.
struct Conflict {
  std::string code, message, field, event_id, seq;
};
Conflict ConflictOf(const httplib::Result& r) {
  REQUIRE(r);
  const google::protobuf::Struct s = ParseObject(r->body);
  const google::protobuf::Value* e = Member(s, "error");
  REQUIRE_MESSAGE(e != nullptr, r->body);
  const auto& o = e->struct_value();
  CHECK(MemberCount(o) == 5);
  return {StringMember(o, "code"), StringMember(o, "message"), StringMember(o, "field"),
          StringMember(o, "event_id"), StringMember(o, "seq")};
}

TEST_CASE("a reused event_id with another body: 409 event_id_conflict, nothing recorded") {
  TestGateway gw;
  auto c = gw.Client();
  const std::string one_s1 = SaleJson("a1", "till-01", LineJson("S1", "1"));
  const std::string five_s2 = SaleJson("a1", "till-01", LineJson("S2", "5"));
  auto first = ResultsOf(c->Post("/v1/events", one_s1, kJsonCt));
  REQUIRE(first.results_size() == 1);
  const uint64_t seq = first.results(0).seq();
  const JournalState before = StateOf(gw.journal());

  SUBCASE("alone") {
    auto r = c->Post("/v1/events", five_s2, kJsonCt);
    REQUIRE(r);
    CHECK(r->status == 409);
    const Conflict e = ConflictOf(r);
    CHECK(e.code == "event_id_conflict");
    CHECK(e.field == "event_id");
    CHECK(e.event_id == "a1");
    CHECK(e.seq == std::to_string(seq));
    CHECK(e.message.find("seq " + std::to_string(seq)) != std::string::npos);
    CHECK(e.message.find("a1") != std::string::npos);
  }
  SUBCASE("in a batch after a new event: the new one is not recorded either") {
    auto r = c->Post("/v1/events", Batch({SaleJson("fresh-1"), five_s2}), kJsonCt);
    REQUIRE(r);
    CHECK(r->status == 409);
    const Conflict e = ConflictOf(r);
    CHECK(e.field == "events[1].event_id");
    CHECK(e.seq == std::to_string(seq));
  }
  SUBCASE("one body differing only in occurred_at is another event too") {
    std::string later = one_s1;
    later.replace(later.find("1700000000000000"), 16, "1700000000000001");
    auto r = c->Post("/v1/events", later, kJsonCt);
    REQUIRE(r);
    CHECK(r->status == 409);
  }
  SUBCASE("twice in one request with different bodies") {
    auto r = c->Post("/v1/events",
                     Batch({SaleJson("b7", "till-01", LineJson("S1", "1")),
                            SaleJson("b7", "till-01", LineJson("S1", "2"))}),
                     kJsonCt);
    REQUIRE(r);
    CHECK(r->status == 409);
    const Conflict e = ConflictOf(r);
    CHECK(e.field == "events[1].event_id");
    CHECK(e.event_id == "b7");
    CHECK(e.seq == "0");
    CHECK(e.message.find("twice in this request") != std::string::npos);
  }
  CHECK(StateOf(gw.journal()) == before);
  CHECK(gw.api().counters().rejected_conflict == 1);
  CHECK(gw.api().counters().events_conflict == 1);
  CHECK(gw.journal().Stats().conflicts == 1);

  // The same bytes again are still a duplicate with the original seq.
  auto again = ResultsOf(c->Post("/v1/events", one_s1, kJsonCt));
  CHECK(again.results(0).duplicate());
  CHECK(again.results(0).seq() == seq);
  // ... also as protobuf: the same event, another encoding.
  v1::IngestRequest req;
  auto decoded = DecodeIngestBody(BodyFormat::kJson, one_s1);
  REQUIRE(decoded.ok());
  *req.add_events() = decoded->events[0];
  auto pb = c->Post("/v1/events", req.SerializeAsString(), "application/x-protobuf");
  REQUIRE(pb);
  CHECK(pb->status == 200);
  CHECK(StateOf(gw.journal()) == before);
}

TEST_CASE("occurred_at outside 2000 .. now + 1 day: 400 naming the unit, nothing recorded") {
  TestGateway gw;
  auto c = gw.Client();
  const int64_t now = StrictNowUs();
  ResultsOf(c->Post("/v1/events", StrictEventAt("ok-now", std::to_string(now)), kJsonCt));
  ResultsOf(c->Post("/v1/events", StrictEventAt("ok-2000", "946684800000000"), kJsonCt));
  ResultsOf(
      c->Post("/v1/events", StrictEventAt("ok-ahead", std::to_string(now + kStrictDayUs - 60'000'000)), kJsonCt));
  const JournalState before = StateOf(gw.journal());

  struct Case {
    std::string value, expect;
  };
  const Case cases[] = {
      {std::to_string(now / 1000), "looks like milliseconds"},
      {"1795790000000", "occurred_at 1795790000000 looks like milliseconds (2026-11-27T14:33:20Z)"},
      {std::to_string(now / 1'000'000), "looks like seconds"},
      {std::to_string(now) + "000", "looks like nanoseconds"},
      {"-5", "is negative"},
      {"0", "missing or 0"},
      {"null", "missing or 0"},
      {"946684799999999", "before 2000"},
      {std::to_string(now + 2 * kStrictDayUs), "more than a day ahead of the gateway's clock"},
  };
  for (const Case& k : cases) {
    CAPTURE(k.value);
    auto r = c->Post("/v1/events", StrictEventAt("bad", k.value), kJsonCt);
    REQUIRE(r);
    CHECK(r->status == 400);
    const ApiError e = ErrorOf(r);
    CHECK(e.code == "invalid_argument");
    CHECK(e.field == "occurred_at");
    CHECK_MESSAGE(e.message.find(k.expect) != std::string::npos, e.message);
    CHECK(e.message.find("microseconds since 1970") != std::string::npos);
  }
  // Without the field at all, and in a batch (the path names the event).
  auto missing = c->Post(
      "/v1/events",
      Batch({StrictEventAt("fine", std::to_string(now)),
             R"({"event_id":"x","device_id":"till-01","count":{"sku":"S","qty":1}})"}),
      kJsonCt);
  CHECK(missing->status == 400);
  CHECK(ErrorOf(missing).field == "events[1].occurred_at");
  CHECK(StateOf(gw.journal()) == before);
}

TEST_CASE("JSON that is not RFC 8259: 400 naming the problem and its byte, nothing recorded") {
  TestGateway gw;
  auto c = gw.Client();
  const std::string good = StrictEventAt("g1", "1700000000000000");
  ResultsOf(c->Post("/v1/events", good, kJsonCt));
  const JournalState before = StateOf(gw.journal());

  struct Case {
    const char* name;
    std::string body, expect;
  };
  const Case cases[] = {
      {"single quotes", R"({'event_id':'x'})", "at byte 1: "},
      {"trailing comma in an object",
       R"({"event_id":"x","device_id":"till-01","occurred_at":1700000000000000,"count":{"sku":"S","qty":1},})",
       "trailing comma"},
      {"trailing comma in an array", R"({"events":[)" + good + ",]}", "trailing comma"},
      {"a comment", "{/* till 1 */" + good.substr(1), "at byte 1: "},
      {"a repeated key", R"({"event_id":"dk-1","event_id":"dk-2","device_id":"till-01"})",
       "key \"event_id\" appears twice"},
      {"a repeated key deeper",
       R"({"events":[{"event_id":"d","device_id":"t","count":{"sku":"S","sku":"T","qty":1}}]})",
       "key \"sku\" appears twice"},
      {"a byte order mark", "\xEF\xBB\xBF" + good, "at byte 0: the body starts with a UTF-8 byte order mark"},
      {"invalid UTF-8", R"({"event_id":"x)" "\xC3\x28" R"("})", "malformed JSON at byte"},
      {"two values", good + good, "malformed JSON at byte " + std::to_string(good.size())},
      {"a NUL byte", std::string("{\"event_id\":\"x\"}\0", 17), "malformed JSON at byte 16"},
  };
  for (const Case& k : cases) {
    CAPTURE(k.name);
    auto r = c->Post("/v1/events", k.body, kJsonCt);
    REQUIRE(r);
    CHECK(r->status == 400);
    const ApiError e = ErrorOf(r);
    CHECK(e.code == "invalid_argument");
    CHECK_MESSAGE(e.message.find(k.expect) != std::string::npos, e.message);
    CHECK(e.message.find("malformed JSON at byte ") == 0);
  }
  CHECK(StateOf(gw.journal()) == before);
}

TEST_CASE("Content-Encoding: unknown is 415, a plain body labelled gzip is a 400 that says so") {
  TestGateway gw;
  auto c = gw.Client();
  ResultsOf(c->Post("/v1/events", ReceiptJson("seed", "SKU-000001", 5), kJsonCt));
  const JournalState before = StateOf(gw.journal());
  for (const char* enc : {"zstd", "foo", "gzip, zstd", "compress"}) {
    CAPTURE(enc);
    auto r = c->Post("/v1/events", {{"Content-Encoding", enc}}, SaleJson("x"), kJsonCt);
    REQUIRE(r);
    CHECK(r->status == 415);
    const ApiError e = ErrorOf(r);
    CHECK(e.code == "unsupported_media_type");
    CHECK(e.message.find(std::string("\"") + enc + "\"") != std::string::npos);
  }
  auto plain = c->Post("/v1/events", {{"Content-Encoding", "gzip"}}, SaleJson("x"), kJsonCt);
  REQUIRE(plain);
  CHECK(plain->status == 400);
  CHECK(ErrorOf(plain).message.find("not valid gzip data") != std::string::npos);
  // identity is no encoding.
  auto identity =
      c->Post("/v1/events", {{"Content-Encoding", "identity"}}, SaleJson("id-1"), kJsonCt);
  REQUIRE(identity);
  CHECK(identity->status == 200);
  CHECK(StateOf(gw.journal()).last_seq > before.last_seq);
}

TEST_CASE("CheckOccurredAt: the window's edges and the unit hints") {
  const int64_t now = 1'795'790'000'000'000;  // 2026-11-27T14:33:20Z
  CHECK(CheckOccurredAt(946'684'800'000'000, now).ok());
  CHECK(CheckOccurredAt(now + kStrictDayUs, now).ok());
  CHECK_FALSE(CheckOccurredAt(now + kStrictDayUs + 1, now).ok());
  CHECK_FALSE(CheckOccurredAt(946'684'799'999'999, now).ok());
  const Status ms = CheckOccurredAt(1'795'790'000'000, now);
  CHECK(ms.field() == "occurred_at");
  CHECK(ms.message() ==
        "1795790000000 looks like milliseconds (2026-11-27T14:33:20Z); occurred_at is "
        "microseconds since 1970-01-01 UTC: send 1795790000000000");
  CHECK(CheckOccurredAt(1'795'790'000, now).message().find("looks like seconds") !=
        std::string::npos);
  CHECK(CheckOccurredAt(INT64_MIN, now).message().find("is negative") != std::string::npos);
  CHECK(CheckOccurredAt(INT64_MAX, now).message().find("more than a day ahead") !=
        std::string::npos);
}

}  // namespace
}  // namespace storegw::devices

namespace storegw::devices {
namespace {

std::string PagingReceiptJson(const std::string& id, const std::string& sku) {
  return R"({"event_id":")" + id +
         R"(","device_id":"till-01","occurred_at":1700000000000000,"receipt":{"lines":[{"sku":")" +
         sku + R"(","qty":2}]}})";
}

TEST_CASE("GET /v1/stock pages with after= and next_after - a bad query parameter is a 400") {
  TestGateway gw;
  auto c = gw.Client();
  for (int i = 0; i < 7; ++i) {
    const std::string sku = "PG-0" + std::to_string(i);
    REQUIRE(c->Post("/v1/events", PagingReceiptJson("pg-" + std::to_string(i), sku), kJsonCt)
                ->status == 200);
  }
  REQUIRE(c->Post("/v1/events", SaleJson("pg-sale", "till-01", LineJson("UNTRACKED-1", "1")),
                  kJsonCt)
              ->status == 200);
  std::vector<std::string> seen;
  std::string after;
  int pages = 0;
  for (; pages < 10; ++pages) {
    auto r = c->Get("/v1/stock?prefix=PG-&limit=3" + (after.empty() ? "" : "&after=" + after));
    REQUIRE(r);
    REQUIRE_MESSAGE(r->status == 200, r->body);
    const google::protobuf::Struct s = ParseObject(r->body);
    const google::protobuf::Value* rows = Member(s, "stock");
    REQUIRE(rows != nullptr);
    for (const auto& v : rows->list_value().values()) {
      seen.push_back(StringMember(v.struct_value(), "sku"));
      CHECK(Member(v.struct_value(), "tracked")->bool_value());
    }
    const google::protobuf::Value* next = Member(s, "next_after");
    if (!next) break;
    CHECK(next->string_value() == seen.back());
    after = next->string_value();
  }
  CHECK(pages == 2);  // 3 + 3 + 1
  REQUIRE(seen.size() == 7);
  for (int i = 0; i < 7; ++i) CHECK(seen[static_cast<size_t>(i)] == "PG-0" + std::to_string(i));
  // An untracked sku says so.
  auto u = c->Get("/v1/stock/UNTRACKED-1");
  REQUIRE(u);
  CHECK(u->body.find("\"tracked\":false") != std::string::npos);

  const JournalState before = StateOf(gw.journal());
  struct Bad {
    const char* query;
    const char* field;
    const char* says;
  };
  for (const Bad& b : {Bad{"?prefx=PG-", "prefx", "unknown query parameter \\\"prefx\\\""},
                       Bad{"?limit=0", "limit", "limit must be a number from 1 to 10000"},
                       Bad{"?limit=3&limit=4", "limit", "given more than once"},
                       Bad{"?after=%01", "after", "after must be a sku"}}) {
    CAPTURE(b.query);
    auto r = c->Get(std::string("/v1/stock") + b.query);
    REQUIRE(r);
    CHECK(r->status == 400);
    CHECK_MESSAGE(r->body.find(b.says) != std::string::npos, r->body);
    CHECK(r->body.find(std::string("\"field\":\"") + b.field + "\"") != std::string::npos);
  }
  CHECK(StateOf(gw.journal()) == before);
}

}  // namespace
}  // namespace storegw::devices
