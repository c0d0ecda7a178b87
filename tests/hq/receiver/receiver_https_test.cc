// The receiver's HTTPS ingress (POST /v1/batches) into a real PostgreSQL
// (PgStore): a real gateway uplink (transport = "https") drained over TLS;
// every answer code the gateway's transport tells apart; mutual TLS.
#include <doctest/doctest.h>

#include <memory>
#include <string>

#include "receiver_test_util.h"
#include "storegw/hq/pg_store.h"
#include "storegw/hq/receiver.h"
#include "storegw/storage/journal.h"
#include "storegw/sync/uplink.h"

namespace storegw::hq {
namespace {

using namespace std::chrono_literals;
using hq_test::Deflated;
using hq_test::EventsOf;
using hq_test::FreshDb;
using hq_test::GatewayHeaders;
using hq_test::HttpAnswer;
using hq_test::MakeBatch;
using hq_test::PostBatch;
using hq_test::SharedPostgres;
using sync_test::Pki;
using sync_test::TempDir;
using sync_test::WaitUntil;

constexpr auto kHttpsWait = 60s;

struct HttpsHq {
  HttpsHq(const Pki& pki, const std::string& db, bool mtls = false,
          uint64_t max_batch_bytes = uint64_t{64} << 20) {
    auto s = PgStore::Open(SharedPostgres().CreateDatabase(db));
    REQUIRE_MESSAGE(s.ok(), s.status().ToString());
    store = std::move(*s);
    ReceiverOptions o;
    port = sync_test::FreePort();
    o.https.listen = "127.0.0.1:" + std::to_string(port);
    o.https.cert_file = pki.server_crt.string();
    o.https.key_file = pki.server_key.string();
    if (mtls) o.https.client_ca_file = pki.ca_crt.string();
    o.max_batch_bytes = max_batch_bytes;
    auto r = Receiver::Create(o, store.get());
    REQUIRE_MESSAGE(r.ok(), r.status().ToString());
    receiver = std::move(*r);
    const Status st = receiver->Start();
    REQUIRE_MESSAGE(st.ok(), st.ToString());
  }
  ~HttpsHq() { receiver->Stop(); }
  uint64_t Refused(const char* reason) const {
    const auto st = receiver->Stats();
    auto it = st.refused.find(reason);
    return it == st.refused.end() ? 0 : it->second;
  }

  std::unique_ptr<PgStore> store;
  std::unique_ptr<Receiver> receiver;
  uint16_t port = 0;
};

TEST_CASE("https: a real uplink (transport = https) drains its backlog over TLS, every seq once") {
  TempDir dir;
  const Pki& pki = hq_test::SharedPki();
  const std::string db = FreshDb("https_drain");
  HttpsHq hq(pki, db);
  auto j = storage::Journal::Open(sync_test::TestJournalOptions(dir / "data"));
  REQUIRE(j.ok());
  REQUIRE(sync_test::AppendSales(**j, 1, 3000) == "");
  const uint64_t last = (*j)->Stats().last_seq;

  sync::UplinkOptions o;
  o.transport = "https";
  o.url = "https://127.0.0.1:" + std::to_string(hq.port) + "/v1/batches";
  o.tls.ca_file = pki.ca_crt.string();
  o.batch_events = 100;
  o.backoff_initial = 50ms;
  o.backoff_max = 1s;
  o.connect_timeout = 5s;
  o.request_timeout = 30s;
  auto up = sync::Uplink::Create(o, j->get());
  REQUIRE_MESSAGE(up.ok(), up.status().ToString());
  REQUIRE((*up)->Start().ok());
  const bool drained = WaitUntil([&] { return (*j)->Stats().watermark == last; }, kHttpsWait);
  const sync::UplinkStatus us = (*up)->status();
  (*up)->Stop();
  INFO("uplink last_error: " << us.last_error << "; receiver: " << hq.receiver->Stats().last_error);
  REQUIRE(drained);
  CHECK_FALSE(us.halted);
  const std::string n = std::to_string(last);
  CHECK(EventsOf(SharedPostgres(), db, "gw-01") == n + " " + n + " 1 " + n);
  const ReceiverStats st = hq.receiver->Stats();
  CHECK(st.events_stored == last);
  CHECK(st.refused.empty());
  CHECK(st.batches_stored == st.batches_received);
}

TEST_CASE("https: answer codes: 200 with HqAck after the commit, 4xx for bad input, 409 from the store") {
  const Pki& pki = hq_test::SharedPki();
  const std::string db = FreshDb("https_codes");
  HttpsHq hq(pki, db, /*mtls=*/false, /*max_batch_bytes=*/1u << 20);
  const std::string ca = pki.ca_crt.string();
  const v1::EventBatch b1 = MakeBatch("s1", "gw-50", 12714390518233010731ull, 1, 5);

  // 200: the HqAck of the applied prefix; plain or deflated; a resend too.
  HttpAnswer a = PostBatch(hq.port, ca, Deflated(b1), GatewayHeaders(b1));
  REQUIRE_MESSAGE(a.status == 200, a.status << " " << a.error << a.body);
  v1::HqAck ack;
  REQUIRE(ack.ParseFromString(a.body));
  CHECK(ack.epoch() == b1.epoch());
  CHECK(ack.seq() == 5);
  CHECK(ack.gateway_id() == "gw-50");
  a = PostBatch(hq.port, ca, b1.SerializeAsString(), GatewayHeaders(b1, /*deflate=*/false));
  REQUIRE(a.status == 200);
  // zstd (Content-Encoding: zstd), a resend of the same batch: 200 again.
  {
    auto z = sync::ZstdCompress(b1.SerializeAsString(), 3);
    REQUIRE(z.ok());
    httplib::Headers zh = GatewayHeaders(b1, false);
    zh.emplace("Content-Encoding", "zstd");
    a = PostBatch(hq.port, ca, *z, zh);
    REQUIRE_MESSAGE(a.status == 200, a.status << " " << a.error << a.body);
    REQUIRE(ack.ParseFromString(a.body));
    CHECK(ack.seq() == 5);
    // A broken zstd body: 400, named.
    a = PostBatch(hq.port, ca, z->substr(0, z->size() - 4), zh);
    CHECK(a.status == 400);
    CHECK(a.body.find("zstd") != std::string::npos);
  }
  // Past a gap: stored, the ack still names the prefix.
  const v1::EventBatch b3 = MakeBatch("s1", "gw-50", b1.epoch(), 11, 5);
  a = PostBatch(hq.port, ca, Deflated(b3), GatewayHeaders(b3));
  REQUIRE(a.status == 200);
  REQUIRE(ack.ParseFromString(a.body));
  CHECK(ack.seq() == 5);
  CHECK(EventsOf(SharedPostgres(), db, "gw-50") == "10 10 1 15");

  // 415: content type, content encoding.
  a = PostBatch(hq.port, ca, Deflated(b1), GatewayHeaders(b1), "application/json");
  CHECK(a.status == 415);
  CHECK(a.body.find("Content-Type") != std::string::npos);
  httplib::Headers gz = GatewayHeaders(b1, false);
  gz.emplace("Content-Encoding", "gzip");
  a = PostBatch(hq.port, ca, Deflated(b1), gz);
  CHECK(a.status == 415);
  // 400: no Idempotency-Key; not an EventBatch; a broken deflate stream.
  a = PostBatch(hq.port, ca, Deflated(b1), {{"Content-Encoding", "deflate"}});
  CHECK(a.status == 400);
  CHECK(a.body.find("Idempotency-Key") != std::string::npos);
  a = PostBatch(hq.port, ca, "not a batch", GatewayHeaders(b1, false));
  CHECK(a.status == 400);
  CHECK(a.body.find("undecodable") == 0);
  const std::string z = Deflated(b1);
  a = PostBatch(hq.port, ca, z.substr(0, z.size() - 8) + "garbage!", GatewayHeaders(b1));
  CHECK(a.status == 400);
  // 413: a small deflate stream that inflates beyond max_batch_bytes.
  auto bomb = sync::Deflate(std::string(2u << 20, '\0'), 9);
  REQUIRE(bomb.ok());
  a = PostBatch(hq.port, ca, *bomb, GatewayHeaders(b1));
  CHECK_MESSAGE(a.status == 413, a.status << " " << a.error << a.body);
  // 422: an Idempotency-Key naming another batch; not contiguous; an
  // invalid event.
  httplib::Headers wrong = {{"Idempotency-Key", "gw-50-1-1-5"}, {"Content-Encoding", "deflate"}};
  a = PostBatch(hq.port, ca, Deflated(b1), wrong);
  CHECK(a.status == 422);
  CHECK(a.body.find("topic_mismatch") == 0);
  v1::EventBatch nc = MakeBatch("s1", "gw-51", 1, 1, 3);
  nc.set_last_seq(4);
  a = PostBatch(hq.port, ca, Deflated(nc), GatewayHeaders(nc));
  CHECK(a.status == 422);
  CHECK(a.body.find("not_contiguous") == 0);
  v1::EventBatch inv = MakeBatch("s1", "gw-51", 1, 1, 3);
  inv.mutable_events(0)->set_recorded_at(0);
  a = PostBatch(hq.port, ca, Deflated(inv), GatewayHeaders(inv));
  CHECK(a.status == 422);
  CHECK(a.body.find("invalid_event") == 0);
  // 409: seqs 1..5 again with other events (the store refuses).
  const v1::EventBatch other = MakeBatch("s1", "gw-50", b1.epoch(), 1, 5, "x-");
  a = PostBatch(hq.port, ca, Deflated(other), GatewayHeaders(other));
  CHECK(a.status == 409);
  CHECK(a.body.find("conflict") == 0);
  // HEAD (the gateway's connection probe).
  httplib::SSLClient cli("127.0.0.1", hq.port);
  cli.set_ca_cert_path(ca.c_str());
  cli.enable_server_certificate_verification(true);
  auto head = cli.Head("/v1/batches");
  REQUIRE(head);
  CHECK(head->status == 204);

  CHECK(EventsOf(SharedPostgres(), db, "gw-50") == "10 10 1 15");
  CHECK(EventsOf(SharedPostgres(), db, "gw-51") == "0 0 0 0");
  CHECK(hq.Refused("undecodable") == 6);     // 2x415, 3x400 (one zstd), 413
  CHECK(hq.Refused("topic_mismatch") == 2);  // no key (400), wrong key (422)
  CHECK(hq.Refused("not_contiguous") == 1);
  CHECK(hq.Refused("invalid_event") == 1);
  CHECK(hq.Refused("conflict") == 1);
  CHECK(hq.receiver->Stats().batches_received == 15);
}

TEST_CASE("https: mutual TLS refuses a client without a certificate") {
  const Pki& pki = hq_test::SharedPki();
  const std::string db = FreshDb("https_mtls");
  HttpsHq hq(pki, db, /*mtls=*/true);
  const std::string ca = pki.ca_crt.string();
  const v1::EventBatch b = MakeBatch("s1", "gw-60", 1, 1, 3);

  HttpAnswer a = PostBatch(hq.port, ca, Deflated(b), GatewayHeaders(b));
  CHECK_MESSAGE(a.status == -1, "answered " << a.status << " without a client certificate");
  a = PostBatch(hq.port, ca, Deflated(b), GatewayHeaders(b), "application/x-protobuf",
                pki.client_crt.string(), pki.client_key.string());
  CHECK_MESSAGE(a.status == 200, a.status << " " << a.error << a.body);
  CHECK(EventsOf(SharedPostgres(), db, "gw-60") == "3 3 1 3");
  CHECK(hq.receiver->Stats().batches_received == 1);  // the refused one never got in
}

}  // namespace
}  // namespace storegw::hq
