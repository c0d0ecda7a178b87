// GET /v1/changes: the changes feed over real HTTP on 127.0.0.1 against a
// real DeviceApi and Journal in a temporary directory. The SSE client
// (plain socket, own HTTP/1.1 chunked and SSE parser; one poll() for many
// clients) is tests/common/sse_client.h.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/ids.h"
#include "common/sse_client.h"
#include "devices_test_util.h"

namespace storegw::devices {
namespace {

using namespace testing;
using Clock = std::chrono::steady_clock;
using test::PumpUntil;
using test::SseClient;
using test::SseEvent;

// A hang guard, not a timing threshold: only a broken feed comes near it.
constexpr auto kGuard = std::chrono::seconds(60);

std::string AuthHeader(const std::string& token) { return "Authorization: Bearer " + token; }

// A receipt with one line per sku (qty 1 each).
std::string ReceiptOf(const std::string& id, const std::vector<std::string>& skus, int qty = 1) {
  std::string lines;
  for (const std::string& s : skus) {
    if (!lines.empty()) lines += ',';
    lines += R"({"sku":")" + s + R"(","qty":)" + std::to_string(qty) + "}";
  }
  return R"({"event_id":")" + id +
         R"(","device_id":"till-01","occurred_at":1700000000000000,"receipt":{"delivery_id":"d","lines":[)" +
         lines + "]}}";
}

std::string CountOf(const std::string& id, const std::string& sku, int qty) {
  return R"({"event_id":")" + id + R"(","device_id":"till-01","occurred_at":1700000000000000,"count":{"sku":")" +
         sku + R"(","qty":)" + std::to_string(qty) + "}}";
}

uint64_t PostOk(httplib::Client& c, const std::string& body, const std::string& token = {}) {
  httplib::Headers h;
  if (!token.empty()) h.emplace("Authorization", "Bearer " + token);
  auto r = c.Post("/v1/events", h, body, "application/json");
  const v1::IngestResponse resp = ResultsOf(r);
  REQUIRE(resp.results_size() > 0);
  return resp.results(resp.results_size() - 1).seq();
}

// What a client subscribed to `skus` must get after `after`, in order:
// (id, event, sku or alert kind), computed from the journal on its own
// rules (storage::StockDeltas, not the feed's decoder).
struct Want {
  std::string id, event, what;
  bool operator==(const Want&) const = default;
};
std::ostream& operator<<(std::ostream& os, const Want& w) {
  return os << w.id << "/" << w.event << "/" << w.what;
}

std::vector<Want> Expected(storage::Journal& j, const std::set<std::string>& skus, bool stock,
                           bool alerts, bool prices, uint64_t after) {
  auto events = j.ReadEvents(after + 1, 10000000, size_t{1} << 30);
  REQUIRE(events.ok());
  std::vector<Want> out;
  for (const v1::JournaledEvent& je : *events) {
    const v1::Event& ev = je.event();
    const std::string seq = std::to_string(je.seq());
    if (ev.has_alert()) {
      if (alerts) out.push_back({seq, "alert", v1::Alert_Kind_Name(ev.alert().kind())});
      continue;
    }
    if (ev.has_alert_cleared()) {
      if (alerts) out.push_back({seq, "alert_cleared", ev.alert_cleared().sku()});
      continue;
    }
    if (ev.has_price_in_force()) {
      if (prices && (skus.empty() || skus.count(ev.price_in_force().sku()))) {
        out.push_back({seq, "price", ev.price_in_force().sku()});
      }
      continue;
    }
    std::vector<std::string> distinct;
    if (ev.has_count()) {
      distinct.push_back(ev.count().sku());
    } else {
      for (const auto& [sku, delta] : storage::StockDeltas(ev)) {
        if (std::find(distinct.begin(), distinct.end(), sku) == distinct.end()) {
          distinct.push_back(sku);
        }
      }
    }
    if (!stock) continue;
    std::vector<size_t> visible;
    for (size_t i = 0; i < distinct.size(); ++i) {
      if (skus.count(distinct[i])) visible.push_back(i);
    }
    for (size_t k = 0; k < visible.size(); ++k) {
      const std::string id =
          k + 1 == visible.size() ? seq : seq + "." + std::to_string(visible[k]);
      out.push_back({id, "stock", distinct[visible[k]]});
    }
  }
  return out;
}

// The changes a client received, in the form of Expected().
std::vector<Want> Got(const std::vector<SseEvent>& events) {
  std::vector<Want> out;
  for (const SseEvent& e : events) {
    if (e.event != "stock" && e.event != "price" && e.event != "alert" &&
        e.event != "alert_cleared") {
      continue;
    }
    // A string member by search (the data objects are flat, and parsing
    // 160,000 of them with protobuf would be most of a test's time); the
    // other tests parse them.
    const std::string key = e.event == "alert" ? "\"kind\":\"" : "\"sku\":\"";
    const size_t at = e.data.find(key);
    REQUIRE_MESSAGE(at != std::string::npos, "no " << key << " in " << e.data);
    const size_t from = at + key.size();
    out.push_back({e.id, e.event, e.data.substr(from, e.data.find('"', from) - from)});
  }
  return out;
}

ApiOptions FeedOptions() {
  ApiOptions o;
  o.threads = 8;
  o.changes.max_clients = 16;
  return o;
}

// ---------------------------------------------------------------------------

TEST_CASE("changes feed: hello, then live stock and alert changes with on_hand") {
  TestGateway gw(FeedOptions());
  auto http = gw.Client();
  const uint64_t before = PostOk(*http, ReceiptOf("r0", {"SKU-A"}, 5));

  SseClient c(gw.port(), "/v1/changes?skus=SKU-A,SKU-B");
  c.ReadUntil([&] { return !c.events.empty(); }, "hello");
  CHECK(c.status == 200);
  CHECK(c.headers["content-type"] == "text/event-stream");
  CHECK(c.headers.count("content-encoding") == 0);
  CHECK(c.retry == "2000");
  REQUIRE(c.events[0].event == "hello");
  CHECK(c.events[0].id == std::to_string(before));

  // A receipt of A (+3), a sale of B that oversells (alert), a count of A,
  // a receipt of a sku nobody asked for; each read before the next is
  // posted, so that on_hand is exactly the one after it.
  const auto post_and_read = [&](const std::string& body) {
    const uint64_t seq = PostOk(*http, body);
    const uint64_t want = Expected(gw.journal(), {"SKU-A", "SKU-B"}, true, true, true, before).size();
    c.ReadUntil([&] { return Got(c.events).size() >= want; }, "the change");
    return seq;
  };
  const uint64_t s1 = post_and_read(ReceiptOf("r1", {"SKU-A"}, 3));
  post_and_read(ReceiptOf("r-b", {"SKU-B"}, 1));
  const uint64_t s2 = post_and_read(SaleJson("s1", "till-01", LineJson("SKU-B", "4")));
  const uint64_t s3 = post_and_read(CountOf("c1", "SKU-A", 2));
  post_and_read(ReceiptOf("r2", {"SKU-Z"}, 1));
  const auto want = Expected(gw.journal(), {"SKU-A", "SKU-B"}, true, true, true, before);
  CHECK(Got(c.events) == want);

  // The data objects.
  const auto find = [&](const std::string& id, const std::string& event) {
    for (const SseEvent& e : c.events) {
      if (e.id == id && e.event == event) return ParseObject(e.data);
    }
    FAIL("no " << event << " with id " << id);
    return google::protobuf::Struct();
  };
  {
    const auto o = find(std::to_string(s1), "stock");
    CHECK(StringMember(o, "sku") == "SKU-A");
    CHECK(StringMember(o, "delta") == "3");
    CHECK(StringMember(o, "on_hand") == "8");
    CHECK(StringMember(o, "source") == "receipt");
    CHECK(StringMember(o, "seq") == std::to_string(s1));
    CHECK(!StringMember(o, "recorded_at").empty());
  }
  {
    const auto o = find(std::to_string(s2), "stock");
    CHECK(StringMember(o, "delta") == "-4");
    CHECK(StringMember(o, "on_hand") == "-3");
    CHECK(StringMember(o, "source") == "sale");
  }
  bool alert = false;
  for (const SseEvent& e : c.events) {
    if (e.event != "alert") continue;
    const auto o = ParseObject(e.data);
    CHECK(StringMember(o, "kind") == "OVERSELL");
    CHECK(StringMember(o, "sku") == "SKU-B");
    CHECK(StringMember(o, "cause_seq") == std::to_string(s2));
    CHECK(!StringMember(o, "message").empty());
    alert = true;
  }
  CHECK(alert);
  {
    const auto o = find(std::to_string(s3), "stock");
    CHECK(StringMember(o, "count") == "2");
    CHECK(StringMember(o, "on_hand") == "2");
    CHECK(Member(o, "delta") == nullptr);
  }
  CHECK(gw.api().feed_stats().changes_sent == want.size());
  CHECK(gw.api().feed_stats().clients == 1);

  // kinds=alert alone: no stock, even for subscribed skus.
  SseClient a(gw.port(), "/v1/changes?kinds=alert&skus=SKU-A");
  a.ReadUntil([&] { return !a.events.empty(); }, "hello");
  PostOk(*http, ReceiptOf("r3", {"SKU-A"}, 1));
  PostOk(*http, ReceiptOf("r4", {"SKU-C"}, 1));
  PostOk(*http, SaleJson("s3", "till-01", LineJson("SKU-C", "5")));
  a.ReadUntil([&] { return a.Count("alert") == 1; }, "the alert");
  CHECK(a.Count("stock") == 0);
  CHECK(StringMember(ParseObject(a.events.back().data), "sku") == "SKU-C");
}

TEST_CASE("changes feed: a future-dated price is pushed when it comes into force") {
  std::atomic<int64_t> now{int64_t{1800000000} * 1000000};
  TestGateway gw(FeedOptions(), [&](storage::JournalOptions& o) {
    o.now_us = [&now] { return now.load(); };
    o.timer_thread = false;
  });
  auto http = gw.Client();
  SseClient c(gw.port(), "/v1/changes?kinds=price,stock&skus=SKU-P,SKU-A");
  c.ReadUntil([&] { return !c.events.empty(); }, "hello");

  // In force at once.
  v1::PriceUpdate now_price;
  now_price.set_store_id("store-0042");
  now_price.set_sku("SKU-P");
  now_price.set_price(250);
  now_price.set_currency("EUR");
  now_price.set_effective_from(now.load() - 1000000);
  auto applied = gw.journal().ApplyPriceUpdate(now_price);
  REQUIRE(applied.ok());
  REQUIRE(gw.journal().RunTimers().ok());
  c.ReadUntil([&] { return c.Count("price") == 1; }, "the price in force now");

  // An hour ahead: nothing until the clock gets there.
  v1::PriceUpdate later = now_price;
  later.set_price(199);
  later.set_effective_from(now.load() + int64_t{3600} * 1000000);
  auto scheduled = gw.journal().ApplyPriceUpdate(later);
  REQUIRE(scheduled.ok());
  REQUIRE(gw.journal().RunTimers().ok());
  // A change after it arrives; the price cannot be behind it (seq order).
  const uint64_t sentinel = PostOk(*http, ReceiptOf("r1", {"SKU-A"}));
  c.ReadUntil([&] { return c.Count("stock") == 1; }, "the sentinel");
  CHECK(c.Count("price") == 1);
  CHECK(c.events.back().id == std::to_string(sentinel));

  now.fetch_add(int64_t{3601} * 1000000);
  auto t = gw.journal().RunTimers();
  REQUIRE(t.ok());
  CHECK(t->prices == 1);
  c.ReadUntil([&] { return c.Count("price") == 2; }, "the scheduled price");
  const auto o = ParseObject(c.events.back().data);
  CHECK(c.events.back().event == "price");
  CHECK(StringMember(o, "sku") == "SKU-P");
  CHECK(StringMember(o, "price") == "199");
  CHECK(StringMember(o, "currency") == "EUR");
  CHECK(StringMember(o, "effective_from") == std::to_string(later.effective_from()));
  CHECK(StringMember(o, "update_seq") == std::to_string(scheduled->seq));
  CHECK(Got(c.events) == Expected(gw.journal(), {"SKU-P", "SKU-A"}, true, false, true,
                                  std::stoull(c.events[0].id)));
}

TEST_CASE("changes feed: reconnecting with Last-Event-ID gets every change once, in order") {
  TestGateway gw(FeedOptions());
  const std::set<std::string> skus = {"SKU-A", "SKU-B"};
  const std::string target = "/v1/changes?kinds=stock&skus=SKU-A,SKU-B";
  auto c = std::make_unique<SseClient>(gw.port(), target);
  c->ReadUntil([&] { return !c->events.empty(); }, "hello");
  const uint64_t start = std::stoull(c->events[0].id);

  // The producer: receipts of A, X, B in one event (ids "S.0" and "S"),
  // single receipts and counts, while the client disconnects and resumes.
  constexpr int kBatches = 60;
  std::atomic<bool> producing{true};
  std::thread producer([&] {
    auto http = gw.Client();
    for (int b = 0; b < kBatches; ++b) {
      std::vector<std::string> events;
      for (int k = 0; k < 5; ++k) {
        const std::string id = test::Id("p", b * 10 + k);
        if (k == 0) events.push_back(ReceiptOf(id, {"SKU-A", "SKU-X", "SKU-B"}));
        if (k == 1) events.push_back(ReceiptOf(id, {"SKU-B"}));
        if (k == 2) events.push_back(ReceiptOf(id, {"SKU-X"}));
        if (k == 3) events.push_back(CountOf(id, "SKU-A", b));
        if (k == 4) events.push_back(ReceiptOf(id, {"SKU-B", "SKU-A"}, 2));
      }
      PostOk(*http, Batch(events));
    }
    producing = false;
  });

  std::vector<SseEvent> kept;  // what "the application" processed, across connections
  std::mt19937 rng(17);
  int reconnects = 0, partial_resumes = 0;
  while (producing.load() || reconnects < 6) {
    // Read a little, then lose the connection after some event.
    const size_t base = c->events.size();
    c->ReadUntil([&] { return c->events.size() >= base + 5 || !producing.load(); },
                 "some changes");
    std::vector<SseEvent> got(c->events.begin(), c->events.end());
    got.erase(std::remove_if(got.begin(), got.end(),
                             [](const SseEvent& e) { return e.event != "stock"; }),
              got.end());
    // Keep a prefix: the changes after it were "lost" with the connection.
    size_t cut = got.empty() ? 0 : rng() % (got.size() + 1);
    if (reconnects % 2 == 1) {  // resume from a "S.N" id when there is one
      for (size_t i = 0; i < got.size(); ++i) {
        if (got[i].id.find('.') != std::string::npos) {
          cut = i + 1;
          break;
        }
      }
    }
    kept.insert(kept.end(), got.begin(), got.begin() + static_cast<long>(cut));
    const std::string resume = kept.empty() ? std::to_string(start) : kept.back().id;
    if (resume.find('.') != std::string::npos) ++partial_resumes;
    c->Close();
    c = std::make_unique<SseClient>(gw.port(), target,
                                    std::vector<std::string>{"Last-Event-ID: " + resume});
    c->ReadHeaders();
    REQUIRE(c->status == 200);
    ++reconnects;
  }
  producer.join();
  const auto want = Expected(gw.journal(), skus, true, false, false, start);
  c->ReadUntil(
      [&] { return kept.size() + Got(c->events).size() >= want.size(); }, "the rest");
  for (const SseEvent& e : c->events) {
    if (e.event == "stock") kept.push_back(e);
  }
  CHECK(c->Count("hello") == 0);  // a resume has no hello
  CHECK(c->Count("reset") == 0);
  CHECK(partial_resumes > 0);
  MESSAGE(reconnects << " reconnects, " << partial_resumes << " from a SEQ.N id, "
                     << want.size() << " changes");
  const auto got = Got(kept);
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    REQUIRE_MESSAGE(got[i] == want[i], "change " << i << ": got " << got[i] << ", want " << want[i]);
  }
}

TEST_CASE("changes feed: 200 SSE clients while a producer ingests at full rate") {
  constexpr int kClients = 200;
  ApiOptions o;
  o.threads = 4;
  o.changes.max_clients = kClients;
  TestGateway gw(o);
  {
    auto http = gw.Client();
    PostOk(*http, ReceiptOf("stock-up", {"SKU-A", "SKU-B"}, 10));
  }
  std::vector<std::unique_ptr<SseClient>> clients;
  std::vector<SseClient*> ptrs;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(std::make_unique<SseClient>(gw.port(), "/v1/changes?skus=SKU-A,SKU-B"));
    ptrs.push_back(clients.back().get());
  }
  PumpUntil(ptrs, [&] {
    return std::all_of(ptrs.begin(), ptrs.end(), [](SseClient* c) { return !c->events.empty(); });
  }, "every hello");
  for (SseClient* c : ptrs) REQUIRE(c->status == 200);
  CHECK(gw.api().feed_stats().clients == kClients);

  // The producer posts as fast as the gateway answers, over 2 connections;
  // one sale in ten oversells (alerts).
  constexpr int kBatches = 40;
  std::atomic<int> posted{0};
  std::vector<std::thread> producers;
  for (int t = 0; t < 2; ++t) {
    producers.emplace_back([&, t] {
      auto http = gw.Client();
      for (int b = 0; b < kBatches; ++b) {
        std::vector<std::string> events;
        for (int k = 0; k < 10; ++k) {
          const std::string id = test::Id(t ? "q" : "p", b * 10 + k);
          if (k == 9) {
            events.push_back(SaleJson(id, "till-01", LineJson(b % 2 ? "SKU-A" : "SKU-B", "50")));
          } else if (k % 3 == 0) {
            events.push_back(ReceiptOf(id, {"SKU-A", "SKU-Y", "SKU-B"}, 3));
          } else if (k % 3 == 1) {
            events.push_back(SaleJson(id, "till-01", LineJson("SKU-A", "1")));
          } else {
            events.push_back(ReceiptOf(id, {"SKU-Y"}));
          }
        }
        PostOk(*http, Batch(events));
        posted.fetch_add(10);
      }
    });
  }
  // Read while they post (the clients must keep up with the live stream).
  std::atomic<bool> done_posting{false};
  std::thread joiner([&] {
    for (auto& t : producers) t.join();
    done_posting = true;
  });
  PumpUntil(ptrs, [&] { return done_posting.load(); }, "the producers");
  joiner.join();
  const auto want = Expected(gw.journal(), {"SKU-A", "SKU-B"}, true, true, true,
                             std::stoull(clients[0]->events[0].id));
  PumpUntil(ptrs, [&] {
    return std::all_of(ptrs.begin(), ptrs.end(), [&](SseClient* c) {
      return !c->events.empty() && c->events.back().id == want.back().id &&
             c->events.back().event != "hello";
    });
  }, "every change at every client");
  size_t alerts = 0;
  for (const Want& w : want) alerts += w.event == "alert";
  CHECK(alerts > 0);
  for (int i = 0; i < kClients; ++i) {
    const auto got = Got(clients[static_cast<size_t>(i)]->events);
    REQUIRE_MESSAGE(got == want, "client " << i << " got " << got.size() << " changes of "
                                           << want.size());
  }
  const FeedStats st = gw.api().feed_stats();
  CHECK(st.changes_sent == want.size() * kClients);
  for (const auto& drop : st.drops_by_reason) CHECK_MESSAGE(drop.second == 0, drop.first);
  MESSAGE(posted.load() << " events posted, " << want.size() << " changes to each of " << kClients
                        << " clients");
}

TEST_CASE("changes feed: device tokens as for POST /v1/events") {
  TempDir tmp;
  const fs::path tokens = tmp.path() / "tokens";
  WriteFile(tokens, "till-01 s3cret-till-token-01\n");
  ApiOptions o = FeedOptions();
  o.device_tokens_file = tokens;
  TestGateway gw(o);
  auto http = gw.Client();

  auto r = http->Get("/v1/changes");
  REQUIRE(r);
  CHECK(r->status == 401);
  CHECK(r->get_header_value("WWW-Authenticate").find("Bearer") == 0);
  ApiError e = ErrorOf(r);
  CHECK(e.code == "unauthenticated");
  CHECK(e.field == "");

  r = http->Get("/v1/changes?format=json&wait=0", {{"Authorization", "Bearer s3cret-till-token-02"}});
  REQUIRE(r);
  CHECK(r->status == 401);
  e = ErrorOf(r);
  CHECK(e.code == "unauthenticated");
  CHECK(r->body.find("s3cret") == std::string::npos);
  CHECK(gw.api().feed_stats().clients_total == 0);

  SseClient c(gw.port(), "/v1/changes", {AuthHeader("s3cret-till-token-01")});
  c.ReadUntil([&] { return !c.events.empty(); }, "hello");
  CHECK(c.status == 200);
  CHECK(c.events[0].event == "hello");
  r = http->Get("/v1/changes?format=json&wait=0", {{"Authorization", "Bearer s3cret-till-token-01"}});
  REQUIRE(r);
  CHECK(r->status == 200);
}

TEST_CASE("changes feed: 503 past max_clients, a slot frees when a client leaves") {
  ApiOptions o = FeedOptions();
  o.changes.max_clients = 2;
  o.changes.keep_alive = std::chrono::milliseconds(100);  // notices a closed client soon
  o.retry_after_s = 7;
  TestGateway gw(o);
  auto c1 = std::make_unique<SseClient>(gw.port(), "/v1/changes");
  SseClient c2(gw.port(), "/v1/changes");
  c1->ReadUntil([&] { return !c1->events.empty(); }, "hello 1");
  c2.ReadUntil([&] { return !c2.events.empty(); }, "hello 2");

  SseClient c3(gw.port(), "/v1/changes");
  c3.ReadToEnd();
  CHECK(c3.status == 503);
  CHECK(c3.headers["retry-after"] == "7");
  CHECK(c3.body.find("\"unavailable\"") != std::string::npos);
  CHECK(c3.body.find("too many changes feed clients") != std::string::npos);
  auto http = gw.Client();
  auto r = http->Get("/v1/changes?format=json&wait=0");  // a long poll counts too
  REQUIRE(r);
  CHECK(r->status == 503);
  CHECK(ErrorOf(r).code == "unavailable");
  CHECK(gw.api().feed_stats().rejected_busy == 2);
  // POST /v1/events is not affected.
  PostOk(*http, ReceiptOf("r1", {"SKU-A"}));

  c1->Close();
  const auto deadline = Clock::now() + kGuard;
  for (;;) {
    REQUIRE_MESSAGE(Clock::now() < deadline, "the closed client's slot never freed");
    SseClient c4(gw.port(), "/v1/changes");
    c4.ReadHeaders();
    if (c4.status == 200) break;
    CHECK(c4.status == 503);
    c2.ReadSome(50);
  }
}

TEST_CASE("changes feed: a slow client is dropped with its reason and resumes") {
  ApiOptions o = FeedOptions();
  o.changes.max_lag = 2;
  o.io_timeout_s = 60;  // the write waits for the client: the lag check drops it
  TestGateway gw(o);
  auto http = gw.Client();
  // 100 skus of 64 characters (the URI stays under httplib's 8 KiB): a
  // receipt of all of them is ~20 KiB of events.
  std::vector<std::string> skus;
  std::string list;
  for (int i = 0; i < 100; ++i) {
    std::string s = test::Id("SKU-", 100000 + i);
    s.resize(64, 'x');
    skus.push_back(s);
    list += (i ? "," : "") + s;
  }
  SseClient slow(gw.port(), "/v1/changes?kinds=stock&skus=" + list, {}, 4096, 1000);
  slow.ReadUntil([&] { return !slow.events.empty(); }, "hello");
  const uint64_t start = std::stoull(slow.events[0].id);

  // It stops reading; receipts go on until the feed drops it.
  int n = 0;
  while (gw.api().feed_stats().drops_by_reason[0].second == 0) {
    REQUIRE_MESSAGE(n < 400, "the client was never dropped");
    PostOk(*http, ReceiptOf(test::Id("r", n++), skus));
  }
  // More after the drop (the resume must get them too).
  for (int k = 0; k < 3; ++k) PostOk(*http, ReceiptOf(test::Id("r", n++), skus));
  slow.ReadToEof();
  REQUIRE(!slow.events.empty());
  const SseEvent drop = slow.events.back();
  REQUIRE(drop.event == "drop");
  const auto d = ParseObject(drop.data);
  CHECK(StringMember(d, "reason") == "slow_client");
  CHECK(StringMember(d, "last_id") == drop.id);  // the id of the last change it got
  CHECK(StringMember(d, "message").find("Last-Event-ID: " + drop.id) != std::string::npos);
  CHECK(slow.chunked_end);
  const FeedStats st = gw.api().feed_stats();
  CHECK(st.drops_by_reason[0].first == "slow_client");
  CHECK(st.drops_by_reason[0].second == 1);
  CHECK(st.drops_by_reason[1].second == 0);

  SseClient again(gw.port(), "/v1/changes?kinds=stock&skus=" + list,
                  {"Last-Event-ID: " + drop.id});
  const auto want = Expected(gw.journal(), {skus.begin(), skus.end()}, true, false, false, start);
  again.ReadUntil([&] { return !again.events.empty() && again.events.back().id == want.back().id; },
                  "the rest after the drop");
  std::vector<SseEvent> all = slow.events;
  all.insert(all.end(), again.events.begin(), again.events.end());
  CHECK(Got(all) == want);
  MESSAGE("dropped after " << n - 3 << " receipts; " << want.size() << " changes in all");
}

TEST_CASE("changes feed: a client whose socket takes nothing is closed after io_timeout_s") {
  ApiOptions o = FeedOptions();
  o.io_timeout_s = 1;
  TestGateway gw(o);
  auto http = gw.Client();
  std::vector<std::string> skus;
  std::string list;
  for (int i = 0; i < 100; ++i) {
    std::string s = test::Id("SKU-", 100000 + i);
    s.resize(64, 'y');
    skus.push_back(s);
    list += (i ? "," : "") + s;
  }
  SseClient stuck(gw.port(), "/v1/changes?kinds=stock&skus=" + list, {}, 4096, 1000);
  stuck.ReadUntil([&] { return !stuck.events.empty(); }, "hello");
  const uint64_t start = std::stoull(stuck.events[0].id);
  // ~400 KiB of events: far more than the sockets hold.
  for (int n = 0; n < 20; ++n) PostOk(*http, ReceiptOf(test::Id("r", n), skus));
  const auto deadline = Clock::now() + kGuard;
  while (gw.api().feed_stats().drops_by_reason[1].second == 0) {
    REQUIRE_MESSAGE(Clock::now() < deadline, "the stuck client was never closed");
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const FeedStats st = gw.api().feed_stats();
  CHECK(st.drops_by_reason[1].first == "write_timeout");
  CHECK(st.drops_by_reason[0].second == 0);
  // What it had received is whole events only; it resumes from the last.
  const auto deadline2 = Clock::now() + kGuard;
  while (stuck.ReadSome(50)) REQUIRE(Clock::now() < deadline2);
  CHECK(!stuck.chunked_end);
  const std::string resume = stuck.last_event_id;
  SseClient again(gw.port(), "/v1/changes?kinds=stock&skus=" + list, {"Last-Event-ID: " + resume});
  const auto want = Expected(gw.journal(), {skus.begin(), skus.end()}, true, false, false, start);
  again.ReadUntil([&] { return !again.events.empty() && again.events.back().id == want.back().id; },
                  "the rest after the timeout");
  std::vector<SseEvent> all = stuck.events;
  all.insert(all.end(), again.events.begin(), again.events.end());
  CHECK(Got(all) == want);
}

TEST_CASE("changes feed: long poll") {
  TestGateway gw(FeedOptions());
  auto http = gw.Client();
  const uint64_t s1 = PostOk(*http, ReceiptOf("r1", {"SKU-A", "SKU-X", "SKU-B"}));

  // Changes after 0 exist: answered at once.
  auto r = http->Get("/v1/changes?after=0&format=json&wait=30&skus=SKU-A,SKU-B");
  REQUIRE(r);
  REQUIRE(r->status == 200);
  CHECK(r->get_header_value("Content-Type") == "application/json");
  auto doc = ParseObject(r->body);
  CHECK(StringMember(doc, "last_id") == std::to_string(s1));
  const auto* changes = Member(doc, "changes");
  REQUIRE(changes != nullptr);
  REQUIRE(changes->list_value().values_size() == 2);
  const auto& c0 = changes->list_value().values(0).struct_value();
  CHECK(StringMember(c0, "id") == std::to_string(s1) + ".0");
  CHECK(StringMember(c0, "kind") == "stock");
  CHECK(StringMember(Member(c0, "data")->struct_value(), "sku") == "SKU-A");
  const auto& c1 = changes->list_value().values(1).struct_value();
  CHECK(StringMember(c1, "id") == std::to_string(s1));
  CHECK(StringMember(Member(c1, "data")->struct_value(), "sku") == "SKU-B");

  // Nothing after s1: waits until a change comes (Accept instead of format).
  auto pending = std::async(std::launch::async, [&] {
    auto c = gw.Client();
    return c->Get("/v1/changes?after=" + std::to_string(s1) + "&wait=30&skus=SKU-A",
                  {{"Accept", "application/json"}});
  });
  const auto deadline = Clock::now() + kGuard;
  while (gw.api().feed_stats().clients == 0) {
    REQUIRE(Clock::now() < deadline);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  PostOk(*http, ReceiptOf("r2", {"SKU-X"}));  // not for it: it keeps waiting
  const uint64_t s3 = PostOk(*http, ReceiptOf("r3", {"SKU-A"}));
  auto waited = pending.get();
  REQUIRE(waited);
  REQUIRE(waited->status == 200);
  doc = ParseObject(waited->body);
  CHECK(StringMember(doc, "last_id") == std::to_string(s3));
  REQUIRE(Member(doc, "changes")->list_value().values_size() == 1);
  CHECK(StringMember(Member(doc, "changes")->list_value().values(0).struct_value(), "id") ==
        std::to_string(s3));

  // wait=0 and nothing new: an empty list at once, last_id unchanged.
  r = http->Get("/v1/changes?after=" + std::to_string(s3) + "&format=json&wait=0");
  REQUIRE(r);
  REQUIRE(r->status == 200);
  doc = ParseObject(r->body);
  CHECK(Member(doc, "changes")->list_value().values_size() == 0);
  CHECK(StringMember(doc, "last_id") == std::to_string(s3));
  // Without after: from the end.
  r = http->Get("/v1/changes?format=json&wait=0");
  REQUIRE(r);
  CHECK(StringMember(ParseObject(r->body), "last_id") == std::to_string(s3));
  CHECK(gw.api().feed_stats().long_polls == 4);
  CHECK(gw.api().feed_stats().clients == 0);
}

TEST_CASE("changes feed: bad parameters are a 400 naming the field, nothing started") {
  TestGateway gw(FeedOptions());
  auto http = gw.Client();
  std::string many;
  for (int i = 0; i < 1001; ++i) many += test::Id(i ? ",S" : "S", i);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"/v1/changes?after=abc", "after"},
      {"/v1/changes?after=-1", "after"},
      {"/v1/changes?after=12.x", "after"},
      {"/v1/changes?kinds=price,weather", "kinds"},
      {"/v1/changes?kinds=", "kinds"},
      {"/v1/changes?skus=" + many, "skus"},
      {"/v1/changes?skus=SKU-A,,SKU-B", "skus[1]"},
      {"/v1/changes?skus=SKU%20A", "skus[0]"},
      {"/v1/changes?format=xml", "format"},
      {"/v1/changes?format=json&wait=61", "wait"},
      {"/v1/changes?since=4", "since"},
      {"/v1/changes?after=1&after=2", "after"},
  };
  for (const auto& c : cases) {
    const std::string& target = c.first;
    const std::string& field = c.second;
    CAPTURE(target);
    auto r = http->Get(target);
    REQUIRE(r);
    CHECK(r->status == 400);
    const ApiError e = ErrorOf(r);
    CHECK(e.code == "invalid_argument");
    CHECK(e.field == field);
  }
  auto r = http->Get("/v1/changes?format=json", {{"Last-Event-ID", "seven"}});
  REQUIRE(r);
  CHECK(r->status == 400);
  CHECK(ErrorOf(r).field == "Last-Event-ID");
  const FeedStats st = gw.api().feed_stats();
  CHECK(st.clients_total == 0);
  CHECK(st.clients == 0);
  CHECK(gw.api().counters().rejected_invalid == cases.size() + 1);
  // Wrong method.
  auto p = http->Post("/v1/changes", "", "application/json");
  REQUIRE(p);
  CHECK(p->status == 405);
}

TEST_CASE("changes feed: a resume from a pruned id gets reset, then the oldest retained") {
  std::atomic<int64_t> now{int64_t{1800000000} * 1000000};
  TestGateway gw(FeedOptions(), [&](storage::JournalOptions& o) {
    o.now_us = [&now] { return now.load(); };
    o.timer_thread = false;
    o.retention = std::chrono::seconds(60);
  });
  auto http = gw.Client();
  uint64_t last = 0;
  for (int i = 0; i < 5; ++i) last = PostOk(*http, ReceiptOf(test::Id("old", i), {"SKU-A"}));
  REQUIRE(gw.journal().Ack(last).ok());
  now.fetch_add(int64_t{3600} * 1000000);
  auto pruned = gw.journal().PruneNow();
  REQUIRE(pruned.ok());
  REQUIRE(*pruned > 0);
  const uint64_t n1 = PostOk(*http, ReceiptOf("new-1", {"SKU-A"}));
  const uint64_t n2 = PostOk(*http, ReceiptOf("new-2", {"SKU-A"}));
  const uint64_t first = gw.journal().Stats().first_seq;
  REQUIRE(first > 2);

  SseClient c(gw.port(), "/v1/changes?kinds=stock&skus=SKU-A", {"Last-Event-ID: 1"});
  c.ReadUntil([&] { return c.Count("stock") >= 2 + (n1 - first); }, "the retained changes");
  REQUIRE(c.events[0].event == "reset");
  CHECK(c.events[0].id == std::to_string(first - 1));
  const auto o = ParseObject(c.events[0].data);
  CHECK(StringMember(o, "message").find("/v1/stock") != std::string::npos);
  CHECK(StringMember(o, "resume_from") == std::to_string(first - 1));
  CHECK(c.events.back().id == std::to_string(n2));
  CHECK(Got(c.events) == Expected(gw.journal(), {"SKU-A"}, true, false, false, first - 1));
  CHECK(gw.api().feed_stats().resets == 1);

  // An id this journal never had (another journal's): reset to the end.
  SseClient f(gw.port(), "/v1/changes?kinds=stock&skus=SKU-A", {"Last-Event-ID: 99999"});
  f.ReadUntil([&] { return !f.events.empty(); }, "the reset");
  CHECK(f.events[0].event == "reset");
  CHECK(f.events[0].id == std::to_string(n2));
}

TEST_CASE("changes feed: keep-alive comments move the id past changes of no interest") {
  ApiOptions o = FeedOptions();
  o.changes.keep_alive = std::chrono::milliseconds(100);
  TestGateway gw(o);
  auto http = gw.Client();
  SseClient c(gw.port(), "/v1/changes?kinds=price");
  c.ReadUntil([&] { return !c.events.empty(); }, "hello");
  const uint64_t s = PostOk(*http, ReceiptOf("r1", {"SKU-A"}));
  c.ReadUntil([&] { return c.last_event_id == std::to_string(s); }, "the id to move");
  CHECK(c.events.size() == 1);  // hello only: the id moved without an event
  CHECK(std::find(c.comments.begin(), c.comments.end(), " keep-alive") != c.comments.end());
}

TEST_CASE("changes feed: DeviceApi::Start refuses bad feed options, naming the option") {
  TempDir tmp;
  auto j = storage::Journal::Open(TestJournalOptions(tmp.path()));
  REQUIRE(j.ok());
  const std::vector<std::pair<std::function<void(ChangesFeedOptions&)>, std::string>> cases = {
      {[](ChangesFeedOptions& c) { c.max_clients = -1; }, "changes.max_clients"},
      {[](ChangesFeedOptions& c) { c.max_clients = 5000; }, "changes.max_clients"},
      {[](ChangesFeedOptions& c) { c.max_lag = 0; }, "changes.max_lag"},
      {[](ChangesFeedOptions& c) { c.keep_alive = std::chrono::milliseconds(10); },
       "changes.keep_alive"},
      {[](ChangesFeedOptions& c) { c.retry = std::chrono::milliseconds(-1); }, "changes.retry"},
      {[](ChangesFeedOptions& c) { c.ring_max_bytes = 1000; }, "changes.ring_max_bytes"},
  };
  for (const auto& [tweak, field] : cases) {
    ApiOptions o;
    o.listen = "127.0.0.1:0";
    tweak(o.changes);
    auto api = DeviceApi::Start(o, **j);
    REQUIRE(!api.ok());
    CHECK(api.status().code() == StatusCode::kInvalidArgument);
    CHECK(api.status().field() == field);
  }
  // max_clients = 0: the feed is off.
  ApiOptions o;
  o.listen = "127.0.0.1:0";
  o.changes.max_clients = 0;
  auto api = DeviceApi::Start(o, **j);
  REQUIRE(api.ok());
  httplib::Client c("127.0.0.1", (*api)->port());
  auto r = c.Get("/v1/changes?format=json&wait=0");
  REQUIRE(r);
  CHECK(r->status == 503);
  CHECK(ErrorOf(r).message.find("turned off") != std::string::npos);
  (*api)->Stop();
}

TEST_CASE("changes feed: Stop() ends every stream") {
  TestGateway gw(FeedOptions());
  SseClient a(gw.port(), "/v1/changes");
  SseClient b(gw.port(), "/v1/changes?after=0&format=sse");
  a.ReadUntil([&] { return !a.events.empty(); }, "hello");
  b.ReadHeaders();
  auto stopped = std::async(std::launch::async, [&] { gw.StopApi(); });
  // The server ends each stream with its last chunk and closes.
  a.ReadToEof();
  b.ReadToEof();
  REQUIRE_MESSAGE(stopped.wait_for(kGuard) == std::future_status::ready,
                  "DeviceApi::Stop() did not return");
  CHECK(a.chunked_end);
  CHECK(b.chunked_end);
  CHECK(gw.api().feed_stats().clients == 0);
}

}  // namespace
}  // namespace storegw::devices
