// The device API over real HTTP: a DeviceApi on 127.0.0.1:0 in this process
// with a real Journal in a temporary directory, driven by httplib::Client.
// Every refused request is checked to have left the journal unchanged.
#include <doctest/doctest.h>

#include <atomic>
#include <set>
#include <thread>

#include "devices_test_util.h"
#include "storegw/devices/device_api.h"

namespace storegw::devices {
namespace {

using namespace testing;

constexpr const char* kJson = "application/json";

httplib::Headers Bearer(const std::string& token) {
  return {{"Authorization", "Bearer " + token}};
}

std::string Field(const std::string& json, const std::string& key) {
  return StringMember(ParseObject(json), key);
}

// The rows of a GET /v1/stock answer.
std::vector<google::protobuf::Struct> StockRows(const std::string& json) {
  const google::protobuf::Struct object = ParseObject(json);
  const google::protobuf::Value* stock = Member(object, "stock");
  REQUIRE_MESSAGE(stock != nullptr, json);
  std::vector<google::protobuf::Struct> rows;
  for (const auto& v : stock->list_value().values()) rows.push_back(v.struct_value());
  return rows;
}

TEST_CASE("POST one JSON event: 200 with its seq, and the stock follows") {
  std::atomic<int> appends_ok{0}, appends_failed{0};
  std::atomic<int64_t> last_elapsed_ns{-1};
  ApiOptions o;
  o.on_append_done = [&](std::chrono::nanoseconds elapsed, bool ok) {
    last_elapsed_ns = elapsed.count();
    ++(ok ? appends_ok : appends_failed);
  };
  TestGateway gw(o);
  auto c = gw.Client();
  const auto before = std::chrono::steady_clock::now();
  auto r = c->Post("/v1/events", ReceiptJson("r1", "SKU-000001", 10), kJson);
  const auto request_ns = (std::chrono::steady_clock::now() - before).count();
  // The observer saw the durable commit's time: more than nothing (an fsync
  // happened), and inside the request that carried it.
  CHECK(last_elapsed_ns.load() > 0);
  CHECK(last_elapsed_ns.load() <= request_ns);
  REQUIRE(r);
  CHECK(r->status == 200);
  // 64-bit integers are JSON strings (proto3 JSON mapping); duplicate is
  // always present.
  CHECK(r->body == R"({"results":[{"event_id":"r1","seq":"1","duplicate":false}]})");
  CHECK(r->get_header_value("Content-Type") == "application/json");

  auto s = c->Post("/v1/events", SaleJson("s1", "till-01", LineJson("SKU-000001", "3")), kJson);
  auto res = ResultsOf(s);
  REQUIRE(res.results_size() == 1);
  CHECK(res.results(0).seq() == 2);

  auto stock = c->Get("/v1/stock/SKU-000001");
  REQUIRE(stock);
  CHECK(stock->status == 200);
  CHECK(Field(stock->body, "sku") == "SKU-000001");
  CHECK(Field(stock->body, "on_hand") == "7");
  CHECK(gw.journal().Stats().last_seq == 2);
  const ApiCounters counters = gw.api().counters();
  CHECK(counters.events_accepted == 2);
  CHECK(appends_ok.load() == 2);
  CHECK(appends_failed.load() == 0);
  // Two POSTs and one GET answered 200, nothing else answered.
  CHECK(counters.responses_by_code == std::vector<std::pair<int, uint64_t>>{{200, 3}});
}

TEST_CASE("POST a JSON batch: results in request order, duplicates flagged") {
  TestGateway gw;
  auto c = gw.Client();
  auto first = ResultsOf(c->Post(
      "/v1/events",
      Batch({ReceiptJson("a", "SKU-000001", 5), SaleJson("b"),
             R"({"event_id":"c","device_id":"till-01","occurred_at":1700000000000000,"count":{"sku":"SKU-000002","qty":4}})"}),
      kJson));
  REQUIRE(first.results_size() == 3);
  CHECK(first.results(0).event_id() == "a");
  CHECK(first.results(1).event_id() == "b");
  CHECK(first.results(2).event_id() == "c");
  CHECK(first.results(0).seq() == 1);
  CHECK(first.results(1).seq() == 2);
  CHECK(first.results(2).seq() == 3);

  auto second = ResultsOf(c->Post("/v1/events", Batch({SaleJson("d"), SaleJson("b")}), kJson));
  REQUIRE(second.results_size() == 2);
  CHECK(second.results(0).event_id() == "d");
  CHECK(second.results(0).seq() == 4);
  CHECK_FALSE(second.results(0).duplicate());
  CHECK(second.results(1).event_id() == "b");
  CHECK(second.results(1).seq() == 2);
  CHECK(second.results(1).duplicate());
  CHECK(gw.api().counters().events_duplicate == 1);
}

TEST_CASE("POST a protobuf IngestRequest") {
  TestGateway gw;
  auto c = gw.Client();
  v1::IngestRequest req;
  for (const char* id : {"p1", "p2"}) {
    v1::Event* e = req.add_events();
    e->set_event_id(id);
    e->set_device_id("scale-02");
    e->set_occurred_at(1700000000000000);
    v1::StockLine* l = e->mutable_receipt()->add_lines();
    l->set_sku("SKU-000009");
    l->set_qty(250);
  }
  auto res = ResultsOf(c->Post("/v1/events", req.SerializeAsString(), "application/x-protobuf"));
  REQUIRE(res.results_size() == 2);
  CHECK(res.results(0).event_id() == "p1");
  CHECK(res.results(1).seq() == 2);
  auto row = gw.journal().Stock("SKU-000009");
  REQUIRE(row.ok());
  CHECK(row->on_hand == 500);
}

TEST_CASE("a retry returns the original seq with duplicate true and changes nothing") {
  TestGateway gw;
  auto c = gw.Client();
  const std::string body = SaleJson("till-01-000001", "till-01", LineJson("SKU-000001", "2"));
  auto first = ResultsOf(c->Post("/v1/events", body, kJson));
  REQUIRE(first.results_size() == 1);
  CHECK_FALSE(first.results(0).duplicate());
  const JournalState before = StateOf(gw.journal());

  for (int i = 0; i < 3; ++i) {
    auto again = c->Post("/v1/events", body, kJson);
    REQUIRE(again);
    CHECK(again->status == 200);
    CHECK(again->body ==
          R"({"results":[{"event_id":"till-01-000001","seq":"1","duplicate":true}]})");
  }
  // The same event inside a batch, next to a new one.
  auto mixed = ResultsOf(c->Post("/v1/events", Batch({body, SaleJson("n2")}), kJson));
  CHECK(mixed.results(0).duplicate());
  CHECK(mixed.results(0).seq() == 1);
  CHECK(mixed.results(1).seq() == before.last_seq + 1);  // (seq 2 may be an oversell alert)
  CHECK(StateOf(gw.journal()).last_seq == before.last_seq + 1);
}

struct BadCase {
  const char* name;
  std::string body;
  std::string field;
  std::string content_type = kJson;
};

TEST_CASE("400 names the offending field, and the journal is unchanged") {
  TestGateway gw;
  auto c = gw.Client();
  // Some stock to watch.
  ResultsOf(c->Post("/v1/events", ReceiptJson("seed", "SKU-000001", 50), kJson));
  const JournalState before = StateOf(gw.journal());
  const std::string ok = SaleJson("ok-1");  // valid; must not land either

  const std::vector<BadCase> cases = {
      {"missing event_id (single)", R"({"device_id":"till-01","count":{"sku":"S","qty":1}})",
       "event_id"},
      {"missing event_id (batch)",
       Batch({ok, R"({"device_id":"till-01","count":{"sku":"S","qty":1}})"}), "events[1].event_id"},
      {"no body (single)", R"({"event_id":"x","device_id":"till-01"})", "body"},
      {"no body (batch)", Batch({ok, R"({"event_id":"x","device_id":"till-01"})"}),
       "events[1].body"},
      {"empty sku", Batch({ok, SaleJson("x", "till-01", LineJson("", "1"))}),
       "events[1].sale.lines[0].sku"},
      {"qty 0 (batch)", Batch({ok, SaleJson("x", "till-01", LineJson("SKU-000001", "0"))}),
       "events[1].sale.lines[0].qty"},
      {"qty 0 (single)", SaleJson("x", "till-01", LineJson("SKU-000001", "0")),
       "sale.lines[0].qty"},
      {"bad currency",
       Batch(
           {ok, SaleJson("x", "till-01",
                         LineJson("SKU-000001", "1") + "," + LineJson("SKU-000002", "1", "eur"))}),
       "events[1].sale.lines[1].currency"},
      {"unknown JSON field",
       Batch({ok, SaleJson("x", "till-01", R"({"sku":"S","qty":1,"colour":"red"})")}),
       "events[1].sale.lines[0].colour"},
      {"unknown JSON field (single, top level)", R"({"event_id":"x","tip":1})", "tip"},
      {"malformed JSON", R"({"events":[{"event_id":"x",)", ""},
      {"wrong JSON type (qty)", Batch({ok, SaleJson("x", "till-01", LineJson("S", "\"abc\""))}),
       "events[1].sale.lines[0].qty"},
      {"wrong JSON type (event_id)", R"({"event_id":5,"device_id":"till-01"})", "event_id"},
      {"wrong JSON type (lines)",
       R"({"event_id":"x","device_id":"till-01","sale":{"lines":"many"}})", "sale.lines"},
      {"empty request body", "", ""},
      {"batch without events", R"({"events":[]})", "events"},
      {"two bodies", R"({"event_id":"x","device_id":"d","sale":{},"count":{}})", "count"},
      {"negative count", R"({"event_id":"x","device_id":"till-01","count":{"sku":"S","qty":-1}})",
       "count.qty"},
      {"reserved event_id", SaleJson("gw:1"), "event_id"},
      {"alert from a device",
       Batch({R"({"event_id":"x","device_id":"till-01","alert":{"kind":"OVERSELL","sku":"S"}})"}),
       "events[0].alert"},
      {"stock_snapshot from a device",
       R"({"event_id":"x","device_id":"till-01","stock_snapshot":{"as_of_seq":1}})",
       "stock_snapshot"},
      {"not protobuf", "\xff\xff\xff\xff", "", "application/x-protobuf"},
  };
  for (const BadCase& bc : cases) {
    CAPTURE(bc.name);
    auto r = c->Post("/v1/events", bc.body, bc.content_type.c_str());
    REQUIRE(r);
    CHECK(r->status == 400);
    const ApiError e = ErrorOf(r);
    CHECK(e.code == "invalid_argument");
    CHECK(e.field == bc.field);
    CHECK_FALSE(e.message.empty());
    if (!bc.field.empty()) CHECK(e.message.find(bc.field) != std::string::npos);
    CHECK(StateOf(gw.journal()) == before);
  }
  CHECK(gw.api().counters().rejected_invalid == cases.size());
}

struct TokenGateway {
  TempDir tokens_dir;
  std::unique_ptr<TestGateway> gw;
  TokenGateway() {
    const auto file = tokens_dir.path() / "device-tokens";
    WriteFile(file,
              "# store 42\n"
              "till-01  tok-one-7f3a9c2e\n"
              "till-02  tok-two-0b1d4e6f\n");
    ApiOptions o;
    o.device_tokens_file = file;
    gw = std::make_unique<TestGateway>(o);
  }
};

TEST_CASE("401 without or with a bad token, 403 for another device's events") {
  TokenGateway t;
  TestGateway& gw = *t.gw;
  auto c = gw.Client();
  ResultsOf(c->Post("/v1/events", Bearer("tok-one-7f3a9c2e"), ReceiptJson("seed", "SKU-000001", 5),
                    kJson));
  const JournalState before = StateOf(gw.journal());

  SUBCASE("no token") {
    auto r = c->Post("/v1/events", SaleJson("x"), kJson);
    REQUIRE(r);
    CHECK(r->status == 401);
    CHECK(ErrorOf(r).code == "unauthenticated");
    CHECK(r->get_header_value("WWW-Authenticate").find("Bearer") == 0);
  }
  SUBCASE("unknown token") {
    auto r = c->Post("/v1/events", Bearer("tok-one-7f3a9c2f"), SaleJson("x"), kJson);
    REQUIRE(r);
    CHECK(r->status == 401);
    const ApiError e = ErrorOf(r);
    CHECK(e.code == "unauthenticated");
    CHECK(r->body.find("tok-one") == std::string::npos);  // never echo tokens
  }
  SUBCASE("not a bearer token") {
    auto r = c->Post("/v1/events", httplib::Headers{{"Authorization", "Basic dGlsbDp4"}},
                     SaleJson("x"), kJson);
    REQUIRE(r);
    CHECK(r->status == 401);
  }
  SUBCASE("another device's event in a batch") {
    auto r = c->Post("/v1/events", Bearer("tok-one-7f3a9c2e"),
                     Batch({SaleJson("x1", "till-01"), SaleJson("x2", "till-02")}), kJson);
    REQUIRE(r);
    CHECK(r->status == 403);
    const ApiError e = ErrorOf(r);
    CHECK(e.code == "permission_denied");
    CHECK(e.field == "events[1].device_id");
  }
  SUBCASE("another device's single event") {
    auto r = c->Post("/v1/events", Bearer("tok-two-0b1d4e6f"), SaleJson("x1", "till-01"), kJson);
    REQUIRE(r);
    CHECK(r->status == 403);
    CHECK(ErrorOf(r).field == "device_id");
  }
  SUBCASE("stock reads need a token too; health checks do not") {
    auto no = c->Get("/v1/stock/SKU-000001");
    REQUIRE(no);
    CHECK(no->status == 401);
    auto yes = c->Get("/v1/stock/SKU-000001", Bearer("tok-two-0b1d4e6f"));
    REQUIRE(yes);
    CHECK(yes->status == 200);
    auto health = c->Get("/healthz");
    REQUIRE(health);
    CHECK(health->status == 200);
  }
  CHECK(StateOf(gw.journal()) == before);

  // The right token for its own device's events works.
  auto own =
      ResultsOf(c->Post("/v1/events", Bearer("tok-two-0b1d4e6f"), SaleJson("y", "till-02"), kJson));
  CHECK(own.results(0).seq() == before.last_seq + 1);
}

TEST_CASE("413 over max_body_bytes, with Content-Length or chunked") {
  ApiOptions o;
  o.max_body_bytes = 4096;
  TestGateway gw(o);
  auto c = gw.Client();
  ResultsOf(c->Post("/v1/events", ReceiptJson("seed", "SKU-000001", 5), kJson));
  const JournalState before = StateOf(gw.journal());

  std::vector<std::string> events;
  for (int i = 0; i < 40; ++i) events.push_back(SaleJson("big-" + std::to_string(i)));
  const std::string big = Batch(events);
  REQUIRE(big.size() > 4096);

  auto r = c->Post("/v1/events", big, kJson);
  REQUIRE(r);
  CHECK(r->status == 413);
  CHECK(ErrorOf(r).code == "payload_too_large");
  CHECK(StateOf(gw.journal()) == before);

  // Chunked: no Content-Length for httplib to check; we count the bytes.
  auto chunked = c->Post(
      "/v1/events",
      [&](size_t offset, httplib::DataSink& sink) {
        if (offset < big.size()) {
          const size_t n = std::min<size_t>(1000, big.size() - offset);
          sink.write(big.data() + offset, n);
        } else {
          sink.done();
        }
        return true;
      },
      kJson);
  REQUIRE(chunked);
  CHECK(chunked->status == 413);
  CHECK(ErrorOf(chunked).code == "payload_too_large");
  CHECK(StateOf(gw.journal()) == before);
  CHECK(gw.api().counters().rejected_too_large == 2);

  // A body under the limit still works afterwards.
  ResultsOf(c->Post("/v1/events", SaleJson("small"), kJson));
}

TEST_CASE("gzip bodies are accepted, and the limit holds for the decompressed size") {
  ApiOptions o;
  o.max_body_bytes = 4096;
  TestGateway gw(o);
  auto c = gw.Client();
  c->set_compress(true);  // Content-Encoding: gzip
  auto small = ResultsOf(c->Post("/v1/events", Batch({SaleJson("z1"), SaleJson("z2")}), kJson));
  CHECK(small.results_size() == 2);
  const JournalState before = StateOf(gw.journal());

  // ~8 KB of JSON that gzips far below the 4 KB limit.
  std::vector<std::string> events;
  for (int i = 0; i < 40; ++i) events.push_back(SaleJson("bomb-" + std::to_string(i)));
  auto r = c->Post("/v1/events", Batch(events), kJson);
  REQUIRE(r);
  CHECK(r->status == 413);
  CHECK(StateOf(gw.journal()) == before);
}

TEST_CASE("415 for other content types") {
  TestGateway gw;
  auto c = gw.Client();
  ResultsOf(c->Post("/v1/events", ReceiptJson("seed", "SKU-000001", 5), kJson));
  const JournalState before = StateOf(gw.journal());
  for (const char* ct : {"text/plain", "application/x-www-form-urlencoded", "application/xml",
                         "application/json; charset=iso-8859-1"}) {
    CAPTURE(ct);
    auto r = c->Post("/v1/events", SaleJson("x"), ct);
    REQUIRE(r);
    CHECK(r->status == 415);
    CHECK(ErrorOf(r).code == "unsupported_media_type");
    CHECK(StateOf(gw.journal()) == before);
  }
  CHECK(gw.api().counters().rejected_media_type == 4);
}

TEST_CASE("503 with Retry-After after BeginShutdown, and readyz follows readiness") {
  ApiOptions o;
  o.retry_after_s = 7;
  TestGateway gw(o);
  auto c = gw.Client();
  auto ready = c->Get("/readyz");
  REQUIRE(ready);
  CHECK(ready->status == 503);  // not SetReady yet
  gw.api().SetReady(true);
  ready = c->Get("/readyz");
  REQUIRE(ready);
  CHECK(ready->status == 200);

  ResultsOf(c->Post("/v1/events", ReceiptJson("seed", "SKU-000001", 5), kJson));
  const JournalState before = StateOf(gw.journal());

  gw.api().BeginShutdown();
  auto r = c->Post("/v1/events", SaleJson("late"), kJson);
  REQUIRE(r);
  CHECK(r->status == 503);
  CHECK(r->get_header_value("Retry-After") == "7");
  CHECK(r->get_header_value("Connection") == "close");  // keep-alive ends while stopping
  CHECK(ErrorOf(r).code == "unavailable");
  CHECK(StateOf(gw.journal()) == before);

  ready = c->Get("/readyz");
  REQUIRE(ready);
  CHECK(ready->status == 503);
  auto health = c->Get("/healthz");
  REQUIRE(health);
  CHECK(health->status == 200);
  CHECK(gw.api().counters().rejected_unavailable == 1);
}

TEST_CASE("503 with Retry-After when the journal is full") {
  std::atomic<int> appends_failed{0};
  ApiOptions o;
  o.on_append_done = [&](std::chrono::nanoseconds, bool ok) {
    if (!ok) ++appends_failed;
  };
  TestGateway gw(o, [](storage::JournalOptions& jo) { jo.max_bytes = 1; });
  auto c = gw.Client();
  const JournalState before = StateOf(gw.journal());
  auto r = c->Post("/v1/events", Batch({ReceiptJson("a", "SKU-000001", 5), SaleJson("b")}), kJson);
  REQUIRE(r);
  CHECK(r->status == 503);
  CHECK(r->get_header_value("Retry-After") == "5");
  CHECK(ErrorOf(r).code == "resource_exhausted");
  CHECK(StateOf(gw.journal()) == before);
  CHECK(gw.journal().Stats().last_seq == 0);
  CHECK(appends_failed.load() == 1);
  CHECK(gw.api().counters().responses_by_code == std::vector<std::pair<int, uint64_t>>{{503, 1}});
}

TEST_CASE("GET stock by sku and by prefix, and no prices yet") {
  TestGateway gw;
  auto c = gw.Client();
  ResultsOf(c->Post("/v1/events",
                    Batch({ReceiptJson("r1", "SKU-000001", 10), ReceiptJson("r2", "SKU-000002", 5),
                           ReceiptJson("r3", "OTHER-1", 3),
                           SaleJson("s1", "till-01", LineJson("SKU-000001", "4"))}),
                    kJson));
  auto one = c->Get("/v1/stock/SKU-000001");
  REQUIRE(one);
  CHECK(one->status == 200);
  CHECK(Field(one->body, "on_hand") == "6");

  auto missing = c->Get("/v1/stock/SKU-999999");
  REQUIRE(missing);
  CHECK(missing->status == 404);
  CHECK(ErrorOf(missing).code == "not_found");
  CHECK(ErrorOf(missing).field == "sku");

  auto list = c->Get("/v1/stock?prefix=SKU-");
  REQUIRE(list);
  CHECK(list->status == 200);
  const auto rows = StockRows(list->body);
  REQUIRE(rows.size() == 2);
  CHECK(StringMember(rows[0], "sku") == "SKU-000001");
  CHECK(StringMember(rows[1], "on_hand") == "5");

  auto limited = c->Get("/v1/stock?prefix=SKU-&limit=1");
  REQUIRE(limited);
  CHECK(StockRows(limited->body).size() == 1);

  auto all = c->Get("/v1/stock");
  REQUIRE(all);
  CHECK(StockRows(all->body).size() == 3);

  for (const char* bad : {"/v1/stock?limit=0", "/v1/stock?limit=abc", "/v1/stock?limit=99999999"}) {
    CAPTURE(bad);
    auto r = c->Get(bad);
    REQUIRE(r);
    CHECK(r->status == 400);
    CHECK(ErrorOf(r).field == "limit");
  }

  auto price = c->Get("/v1/prices/SKU-000001");
  REQUIRE(price);
  CHECK(price->status == 404);
  CHECK(ErrorOf(price).code == "not_found");
  CHECK(ErrorOf(price).field == "sku");
  CHECK(ErrorOf(price).message.find("no price in force for sku \"SKU-000001\"") !=
        std::string::npos);
}

TEST_CASE("GET /v1/prices/{sku}: the price in force now, and the next scheduled change") {
  TestGateway gw;
  auto c = gw.Client();
  const int64_t now = std::chrono::duration_cast<std::chrono::microseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  auto apply = [&](const std::string& sku, int64_t price, int64_t from) {
    v1::PriceUpdate p;
    p.set_store_id(gw.journal().store_id());
    p.set_sku(sku);
    p.set_price(price);
    p.set_currency("EUR");
    p.set_effective_from(from);
    auto r = gw.journal().ApplyPriceUpdate(p);
    REQUIRE_MESSAGE(r.ok(), r.status().ToString());
  };
  apply("SKU-000001", 300, now - 7'200'000'000);  // two hours ago
  apply("SKU-000001", 249, now - 60'000'000);     // a minute ago: in force
  apply("SKU-000001", 199, now + 3'600'000'000);  // in an hour
  apply("SKU-000002", 99, now + 3'600'000'000);   // only a future price

  auto r = c->Get("/v1/prices/SKU-000001");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->get_header_value("Content-Type") == "application/json");
  const auto body = ParseObject(r->body);
  CHECK(StringMember(body, "sku") == "SKU-000001");
  CHECK(StringMember(body, "price") == "249");
  CHECK(StringMember(body, "currency") == "EUR");
  CHECK(StringMember(body, "effective_from") == std::to_string(now - 60'000'000));
  CHECK(std::stoll(StringMember(body, "at")) >= now);
  const google::protobuf::Value* next = Member(body, "next");
  REQUIRE_MESSAGE(next != nullptr, r->body);
  CHECK(StringMember(next->struct_value(), "price") == "199");
  CHECK(StringMember(next->struct_value(), "effective_from") ==
        std::to_string(now + 3'600'000'000));

  // Nothing in force yet: 404, saying so.
  auto future_only = c->Get("/v1/prices/SKU-000002");
  REQUIRE(future_only);
  CHECK(future_only->status == 404);
  CHECK(ErrorOf(future_only).field == "sku");

  auto bad = c->Get("/v1/prices/" + std::string(65, 'X'));
  REQUIRE(bad);
  CHECK(bad->status == 400);
  CHECK(ErrorOf(bad).field == "sku");
}

TEST_CASE("other routes go to the ExtraHandler, the rest is 404 or 405 JSON") {
  std::atomic<int> calls{0};
  ExtraHandler extra = [&](const HttpRequest& req) -> std::optional<HttpResponse> {
    ++calls;
    if (req.method == "GET" && req.path == "/v1/status") {
      return HttpResponse{200, "application/json", R"({"store_id":"store-0042"})", {}};
    }
    if (req.method == "POST" && req.path == "/echo") {
      std::string q;
      for (const auto& [k, v] : req.query) q += k + "=" + v + ";";
      return HttpResponse{
          201, "text/plain", req.body + "|" + q + "|" + req.authorization, {{"X-Test", "yes"}}};
    }
    return std::nullopt;
  };
  TestGateway gw({}, {}, extra);
  auto c = gw.Client();
  auto status = c->Get("/v1/status");
  REQUIRE(status);
  CHECK(status->status == 200);
  CHECK(status->body == R"({"store_id":"store-0042"})");

  auto echo = c->Post("/echo?a=b%20c", Bearer("t"), "hello", "text/plain");
  REQUIRE(echo);
  CHECK(echo->status == 201);
  CHECK(echo->body == "hello|a=b c;|Bearer t");
  CHECK(echo->get_header_value("X-Test") == "yes");

  auto none = c->Get("/nothing/here");
  REQUIRE(none);
  CHECK(none->status == 404);
  CHECK(ErrorOf(none).code == "not_found");

  auto wrong_method = c->Get("/v1/events");
  REQUIRE(wrong_method);
  CHECK(wrong_method->status == 405);
  CHECK(wrong_method->get_header_value("Allow") == "POST");
  auto del = c->Delete("/v1/stock/SKU-1");
  REQUIRE(del);
  CHECK(del->status == 405);
  CHECK(calls.load() == 5);
}

TEST_CASE("Start refuses what it cannot serve safely, with reasons") {
  TempDir dir;
  auto jo = TestJournalOptions(dir.path());
  auto j = storage::Journal::Open(jo);
  REQUIRE(j.ok());
  storage::Journal& journal = **j;

  SUBCASE("non-loopback without tokens") {
    ApiOptions o;
    o.listen = "0.0.0.0:0";
    auto api = DeviceApi::Start(o, journal);
    REQUIRE_FALSE(api.ok());
    CHECK(api.status().message().find("0.0.0.0:0") != std::string::npos);
    CHECK(api.status().message().find("no device tokens file") != std::string::npos);
  }
  SUBCASE("malformed tokens file: line number, never the token") {
    const auto file = dir.path() / "tokens";
    WriteFile(file, "till-01 good-token-1\ntill-02 sekrit-token-2 trailing\n");
    ApiOptions o;
    o.listen = "127.0.0.1:0";
    o.device_tokens_file = file;
    auto api = DeviceApi::Start(o, journal);
    REQUIRE_FALSE(api.ok());
    const std::string m = api.status().message();
    CHECK(m.find(file.string()) != std::string::npos);
    CHECK(m.find("line 2") != std::string::npos);
    CHECK(m.find("sekrit") == std::string::npos);
    CHECK(m.find("good-token") == std::string::npos);
  }
  SUBCASE("missing tokens file") {
    ApiOptions o;
    o.listen = "127.0.0.1:0";
    o.device_tokens_file = dir.path() / "absent";
    auto api = DeviceApi::Start(o, journal);
    REQUIRE_FALSE(api.ok());
    CHECK(api.status().message().find("absent") != std::string::npos);
  }
  SUBCASE("address in use") {
    ApiOptions o;
    o.listen = "127.0.0.1:0";
    auto first = DeviceApi::Start(o, journal);
    REQUIRE(first.ok());
    o.listen = "127.0.0.1:" + std::to_string((*first)->port());
    auto second = DeviceApi::Start(o, journal);
    REQUIRE_FALSE(second.ok());
    CHECK(second.status().message().find("cannot listen on " + o.listen) != std::string::npos);
    CHECK(second.status().message().find("in use") != std::string::npos);
    (*first)->Stop();
  }
  SUBCASE("bad listen address") {
    ApiOptions o;
    o.listen = "127.0.0.1";
    auto api = DeviceApi::Start(o, journal);
    REQUIRE_FALSE(api.ok());
    CHECK(api.status().message().find("no port") != std::string::npos);
  }
  SUBCASE("IPv6 loopback") {
    ApiOptions o;
    o.listen = "[::1]:0";
    auto api = DeviceApi::Start(o, journal);
    REQUIRE_MESSAGE(api.ok(), api.status().ToString());
    httplib::Client c("::1", (*api)->port());
    auto r = c.Get("/healthz");
    REQUIRE(r);
    CHECK(r->status == 200);
    (*api)->Stop();
  }
}

TEST_CASE("Stop under load: every 200 is journaled with its seq, every 503 left nothing") {
  TestGateway gw;
  std::atomic<bool> quit{false};
  std::atomic<int> accepted_total{0};
  struct Seen {
    std::vector<std::pair<std::string, uint64_t>> accepted;
    std::vector<std::string> refused;
  };
  std::vector<Seen> seen(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      auto c = gw.Client();
      for (int i = 0; !quit.load(); ++i) {
        const std::string id = "load-" + std::to_string(t) + "-" + std::to_string(i);
        auto r = c->Post("/v1/events", ReceiptJson(id, "SKU-00000" + std::to_string(t), 1), kJson);
        if (!r) {
          if (quit.load()) break;
          continue;  // the server closed the connection at Stop(): no answer, no claim
        }
        if (r->status == 200) {
          v1::IngestResponse resp;
          if (google::protobuf::util::JsonStringToMessage(r->body, &resp).ok() &&
              resp.results_size() == 1) {
            seen[static_cast<size_t>(t)].accepted.emplace_back(id, resp.results(0).seq());
            ++accepted_total;
          }
        } else if (r->status == 503) {
          seen[static_cast<size_t>(t)].refused.push_back(id);
        }
      }
    });
  }
  while (accepted_total.load() < 100) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  gw.api().BeginShutdown();
  gw.StopApi();
  quit.store(true);
  for (auto& th : threads) th.join();

  const auto journaled = JournaledDeviceEvents(gw.data_dir());
  size_t accepted = 0;
  for (const Seen& s : seen) {
    for (const auto& kv : s.accepted) {
      const auto& id = kv.first;
      const auto& seq = kv.second;
      ++accepted;
      CAPTURE(id);
      REQUIRE(journaled.count(id) == 1);
      CHECK(journaled.at(id) == std::vector<uint64_t>{seq});
    }
    for (const auto& id : s.refused) {
      CAPTURE(id);
      CHECK(journaled.count(id) == 0);
    }
  }
  CHECK(accepted >= 100);
  CHECK(journaled.size() >= accepted);
}

}  // namespace
}  // namespace storegw::devices
