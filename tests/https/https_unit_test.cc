// Unit tests of the HTTPS uplink's pieces that need no network: URL and
// proxy validation (http:// and credentials in the URL refused, proxy
// passwords never echoed), the Idempotency-Key, Retry-After parsing, how
// an HTTP status is classified; and the two engine features the HTTPS
// transport added to the seam, driven through a fake transport: a
// permanent refusal stops the uplink (no resend loop, nothing skipped,
// watermark below the refused batch, reason on the status), and a
// Retry-After hint is a floor under the back-off, capped at backoff_max.
#include <curl/curl.h>
#include <doctest/doctest.h>

#include <mutex>
#include <set>

#include "https_transport.h"
#include "storegw/storage/journal.h"
#include "storegw/sync/transport.h"
#include "storegw/sync/uplink.h"
#include "sync_test_util.h"

namespace storegw::sync {
namespace {

using namespace std::chrono_literals;
using sync_test::AppendSales;
using sync_test::TempDir;
using sync_test::WaitUntil;

TEST_CASE("https: uplink.url must be https:// without credentials") {
  auto ok = ParseHttpsUrl("https://hq.example.com/v1/batches");
  REQUIRE(ok.ok());
  CHECK(ok->host == "hq.example.com");
  CHECK(ok->port == 443);
  CHECK(ok->host_port() == "hq.example.com:443");
  auto v6 = ParseHttpsUrl("https://[::1]:8443/x");
  REQUIRE(v6.ok());
  CHECK(v6->host == "::1");
  CHECK(v6->host_port() == "[::1]:8443");

  auto plain = ParseHttpsUrl("http://hq.example.com/v1/batches");
  REQUIRE_FALSE(plain.ok());
  CHECK(plain.status().field() == "uplink.url");
  CHECK(plain.status().message().find("plain http:// is refused") != std::string::npos);

  auto mqtt = ParseHttpsUrl("tcp://127.0.0.1:1883");
  REQUIRE_FALSE(mqtt.ok());
  CHECK(mqtt.status().message().find("expected https://") != std::string::npos);

  auto creds = ParseHttpsUrl("https://user:hunter2@hq.example.com/");
  REQUIRE_FALSE(creds.ok());
  CHECK(creds.status().message().find("uplink.username") != std::string::npos);
}

TEST_CASE("https: proxy URLs are checked and shown without credentials") {
  auto p = RedactedProxy("http://alice:s3cret@proxy.example:3128");
  REQUIRE(p.ok());
  CHECK(*p == "http://proxy.example:3128");
  CHECK(RedactedProxy("socks5h://127.0.0.1:1080").ok());
  auto bad = RedactedProxy("ftp://alice:s3cret@proxy.example:21");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().field() == "uplink.proxy");
  CHECK(bad.status().message().find("s3cret") == std::string::npos);
  auto noscheme = RedactedProxy("alice:s3cret@proxy.example:3128");
  REQUIRE_FALSE(noscheme.ok());
  CHECK(noscheme.status().message().find("s3cret") == std::string::npos);

  UplinkOptions o;
  o.transport = "https";
  o.url = "https://127.0.0.1:1/v1/batches";
  o.proxy = "gopher://alice:s3cret@proxy:70";
  auto t = MakeHttpsTransport(o, {"store-0001", "gw-01", 7});
  REQUIRE_FALSE(t.ok());
  CHECK(t.status().message().find("s3cret") == std::string::npos);
}

TEST_CASE("https: Idempotency-Key is gateway-epoch-first-last in decimal") {
  CHECK(IdempotencyKey("gw-01", 18446744073709551615ull, 1, 500) ==
        "gw-01-18446744073709551615-1-500");
  CHECK(IdempotencyKey("gw-7", 42, 1001, 1001) == "gw-7-42-1001-1001");
}

TEST_CASE("https: Retry-After as seconds or an HTTP date") {
  const auto now = std::chrono::system_clock::from_time_t(1767225600);  // 2026-01-01 00:00:00 UTC
  CHECK(ParseRetryAfter("120", now) == std::chrono::milliseconds(120000));
  CHECK(ParseRetryAfter(" 0 ", now) == std::chrono::milliseconds(0));
  CHECK(ParseRetryAfter("Thu, 01 Jan 2026 00:00:30 GMT", now) == std::chrono::milliseconds(30000));
  CHECK(ParseRetryAfter("Wed, 31 Dec 2025 23:00:00 GMT", now) == std::chrono::milliseconds(0));
  CHECK_FALSE(ParseRetryAfter("", now).has_value());
  CHECK_FALSE(ParseRetryAfter("soon", now).has_value());
  CHECK(ParseRetryAfter("99999999999999", now) >= std::chrono::milliseconds(86400000));
}

TEST_CASE("https: 2xx delivers, 408/429/5xx retry, other 4xx refuse for good") {
  for (long c : {200L, 201L, 202L, 204L}) CHECK(ClassifyHttpStatus(c) == HttpVerdict::kDelivered);
  for (long c : {408L, 429L, 500L, 502L, 503L, 504L, 301L, 100L}) {
    CHECK(ClassifyHttpStatus(c) == HttpVerdict::kRetry);
  }
  for (long c : {400L, 401L, 403L, 404L, 409L, 413L, 415L, 422L}) {
    CHECK(ClassifyHttpStatus(c) == HttpVerdict::kRefused);
  }
  CHECK(BodyExcerpt("  bad\r\n sku\x01 ") == "bad sku?");
  CHECK(BodyExcerpt(std::string(300, 'x'), 10) == "xxxxxxxxxx...");
  CHECK(BodyExcerpt("") == "");
}

TEST_CASE("https transport: an option libcurl refuses is an error naming the option") {
  // libcurl refuses strings longer than 8,000,000 bytes (CURL_MAX_INPUT_LENGTH).
  UplinkOptions o;
  o.transport = "https";
  o.url = "https://127.0.0.1:" + std::to_string(sync_test::FreePort()) + "/v1/batches";
  o.username = "store-0001";
  o.password = std::string(8'000'001, 'p');
  const std::string refused = std::string("https: cannot set CURLOPT_PASSWORD: ") +
                              curl_easy_strerror(CURLE_BAD_FUNCTION_ARGUMENT);

  // The transport: Connect() fails before any network traffic.
  auto t = MakeHttpsTransport(o, {"store-0001", "gw-01", 7});
  REQUIRE(t.ok());
  struct : TransportListener {
    void OnSendDone(uint64_t, Status) override {}
    void OnSendFailed(uint64_t, Status, SendFailure) override {}
    void OnLinkLost(Status) override {}
    void OnHqAck(uint64_t, uint64_t, const std::string&) override {}
  } listener;
  const Status s = (*t)->Connect(&listener, {});
  (*t)->Close(std::nullopt);
  REQUIRE_FALSE(s.ok());
  CHECK(s.message() == refused);

  // Start-up: the uplink is not created with options libcurl refuses.
  TempDir dir;
  auto j = storage::Journal::Open(sync_test::TestJournalOptions(dir.path()));
  REQUIRE(j.ok());
  auto up = Uplink::Create(o, j->get());
  REQUIRE_FALSE(up.ok());
  CHECK(up.status().message() == refused);
}

// ---------------------------------------------------------------- engine

// A transport whose sends complete at once with a verdict chosen per batch.
struct Script {
  std::mutex mu;
  std::function<std::optional<std::pair<Status, SendFailure>>(uint64_t first, uint64_t last)> fail;
  int connects = 0;
  std::vector<std::chrono::steady_clock::time_point> connect_times;
  std::vector<std::pair<uint64_t, uint64_t>> sends;
};

class ScriptedTransport final : public Transport {
 public:
  explicit ScriptedTransport(Script* s) : s_(s) {}
  Status Connect(TransportListener* l, const ConnectRequest&) override {
    std::lock_guard lk(s_->mu);
    ++s_->connects;
    s_->connect_times.push_back(std::chrono::steady_clock::now());
    l_ = l;
    return {};
  }
  Status Send(uint64_t, std::string) override {
    return Status::FailedPrecondition("the engine must call SendBatch");
  }
  Status SendBatch(uint64_t id, std::string, const BatchRange& r) override {
    std::optional<std::pair<Status, SendFailure>> verdict;
    {
      std::lock_guard lk(s_->mu);
      s_->sends.push_back({r.first_seq, r.last_seq});
      if (s_->fail) verdict = s_->fail(r.first_seq, r.last_seq);
    }
    if (verdict) {
      l_->OnSendFailed(id, verdict->first, verdict->second);
    } else {
      l_->OnSendDone(id, {});
    }
    return {};
  }
  Status PublishStatus(std::string) override { return {}; }
  void Close(const std::optional<std::string>&) override {}
  size_t max_pending_sends() const override { return 4; }
  std::string protocol() const override { return "scripted"; }
  int protocol_version() const override { return 0; }

 private:
  Script* s_;
  TransportListener* l_ = nullptr;
};

UplinkOptions EngineOptions() {
  UplinkOptions o;
  o.batch_events = 10;
  o.max_inflight = 4;
  o.backoff_initial = 10ms;
  o.backoff_max = 200ms;
  return o;
}

TEST_CASE("https engine: a permanent refusal stops the uplink, skips nothing, resends nothing") {
  TempDir dir;
  auto j = storage::Journal::Open(sync_test::TestJournalOptions(dir.path()));
  REQUIRE(j.ok());
  REQUIRE(AppendSales(**j, 1, 100, 100) == "");
  const uint64_t last = (*j)->Stats().last_seq;
  REQUIRE(last >= 100);
  Script script;
  script.fail = [](uint64_t first,
                   uint64_t last_seq) -> std::optional<std::pair<Status, SendFailure>> {
    if (first <= 21 && 21 <= last_seq) {
      SendFailure how;
      how.permanent = true;
      return std::make_pair(
          Status::FailedPrecondition("HQ at hq:443 refused it: 400 Bad Request: unknown sku"), how);
    }
    return std::nullopt;
  };
  auto up = Uplink::CreateWithTransport(EngineOptions(), j->get(), [&]() {
    return Result<std::unique_ptr<Transport>>(std::make_unique<ScriptedTransport>(&script));
  });
  REQUIRE(up.ok());
  REQUIRE((*up)->Start().ok());
  REQUIRE(WaitUntil([&] { return (*up)->status().halted; }, 10s));
  // Longer than several back-offs (backoff_max 200ms): nothing more happens.
  std::this_thread::sleep_for(600ms);
  const UplinkStatus st = (*up)->status();
  CHECK(st.link == "down");
  CHECK(st.watermark == 20);
  CHECK((*j)->Stats().watermark == 20);
  CHECK(st.last_error.find("uplink stopped") != std::string::npos);
  CHECK(st.last_error.find("seq 21..30") != std::string::npos);
  CHECK(st.last_error.find("400 Bad Request: unknown sku") != std::string::npos);
  CHECK(st.last_error.find("restarted") != std::string::npos);
  v1::GatewayStatus gs;
  (*up)->FillStatus(&gs);
  CHECK(gs.link() == "down");
  CHECK(gs.last_error() == st.last_error);
  {
    std::lock_guard lk(script.mu);
    CHECK(script.connects == 1);
    int refused_sends = 0;
    for (const auto& [first, l] : script.sends) {
      if (first == 21) ++refused_sends;
      CHECK(first <= 51);  // the window (4 batches) beyond it, never more
    }
    CHECK(refused_sends == 1);
  }
  (*up)->Stop();
  // A new uplink (a restart) on the same journal resumes at seq 21.
  script.fail = nullptr;
  script.sends.clear();
  auto again = Uplink::CreateWithTransport(EngineOptions(), j->get(), [&]() {
    return Result<std::unique_ptr<Transport>>(std::make_unique<ScriptedTransport>(&script));
  });
  REQUIRE(again.ok());
  REQUIRE((*again)->Start().ok());
  REQUIRE(WaitUntil([&] { return (*j)->Stats().watermark == last; }, 10s));
  {
    std::lock_guard lk(script.mu);
    REQUIRE_FALSE(script.sends.empty());
    CHECK(script.sends.front().first == 21);
  }
  CHECK_FALSE((*again)->status().halted);
}

TEST_CASE("https engine: Retry-After is a floor under the back-off, capped at backoff_max") {
  TempDir dir;
  auto j = storage::Journal::Open(sync_test::TestJournalOptions(dir.path()));
  REQUIRE(j.ok());
  REQUIRE(AppendSales(**j, 1, 30, 30) == "");
  const uint64_t last = (*j)->Stats().last_seq;

  SUBCASE("honoured when below backoff_max") {
    Script script;
    int failures = 0;
    script.fail = [&](uint64_t, uint64_t) -> std::optional<std::pair<Status, SendFailure>> {
      if (failures++ > 0) return std::nullopt;
      SendFailure how;
      how.retry_after = 700ms;
      return std::make_pair(Status::Unavailable("HQ answered 503 Service Unavailable"), how);
    };
    UplinkOptions o = EngineOptions();
    o.backoff_max = 5s;
    auto up = Uplink::CreateWithTransport(o, j->get(), [&]() {
      return Result<std::unique_ptr<Transport>>(std::make_unique<ScriptedTransport>(&script));
    });
    REQUIRE(up.ok());
    REQUIRE((*up)->Start().ok());
    REQUIRE(WaitUntil([&] { return (*j)->Stats().watermark == last; }, 10s));
    std::lock_guard lk(script.mu);
    REQUIRE(script.connect_times.size() == 2);
    // The back-off alone would be 10..20 ms.
    CHECK(script.connect_times[1] - script.connect_times[0] >= 700ms);
    CHECK((*up)->status().last_error.find("503") != std::string::npos);
  }
  SUBCASE("capped at backoff_max") {
    Script script;
    int failures = 0;
    script.fail = [&](uint64_t, uint64_t) -> std::optional<std::pair<Status, SendFailure>> {
      if (failures++ > 0) return std::nullopt;
      SendFailure how;
      how.retry_after = std::chrono::hours(1);
      return std::make_pair(Status::Unavailable("HQ answered 429 Too Many Requests"), how);
    };
    auto up = Uplink::CreateWithTransport(EngineOptions(), j->get(), [&]() {
      return Result<std::unique_ptr<Transport>>(std::make_unique<ScriptedTransport>(&script));
    });
    REQUIRE(up.ok());
    REQUIRE((*up)->Start().ok());
    // Not an hour: backoff_max is 200 ms.
    REQUIRE(WaitUntil([&] { return (*j)->Stats().watermark == last; }, 20s));
    std::lock_guard lk(script.mu);
    CHECK(script.connect_times.size() == 2);
  }
}

TEST_CASE("https engine: options are checked") {
  TempDir dir;
  auto j = storage::Journal::Open(sync_test::TestJournalOptions(dir.path()));
  REQUIRE(j.ok());
  UplinkOptions o;
  o.transport = "https";
  o.url = "http://127.0.0.1:1/v1/batches";
  auto plain = Uplink::Create(o, j->get());
  REQUIRE_FALSE(plain.ok());
  CHECK(plain.status().field() == "uplink.url");
  o.url = "https://127.0.0.1:1/v1/batches";
  o.request_timeout = 0ms;
  auto t0 = Uplink::Create(o, j->get());
  REQUIRE_FALSE(t0.ok());
  CHECK(t0.status().field() == "uplink.request_timeout");
  o.request_timeout = 5s;
  CHECK(Uplink::Create(o, j->get()).ok());
  o.transport = "carrier-pigeon";
  auto other = Uplink::Create(o, j->get());
  REQUIRE_FALSE(other.ok());
  CHECK(other.status().field() == "uplink.transport");
}

}  // namespace
}  // namespace storegw::sync
