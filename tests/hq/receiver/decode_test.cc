// The receiver's decoding and checks (storegw/hq/decode.h), one case per
// refuse reason and per encoding rule, and the rate rule of its refusal log.
#include <doctest/doctest.h>

#include <string>

#include "batch_util.h"
#include "reporter.h"
#include "storegw/hq/decode.h"

#include "columnar.h"
#include "compress.h"

namespace storegw::hq {
namespace {

using hq_test::Deflated;
using hq_test::MakeBatch;

v1::EventBatch Good() { return MakeBatch("store-0001", "gw-01", 777, 11, 5); }

void CheckRefused(const Decoded& d, RefuseReason want, const std::string& detail_has) {
  REQUIRE_MESSAGE(!d.ok(), "accepted, expected " << RefuseReasonName(want));
  CHECK_MESSAGE(*d.refused == want,
                "got " << RefuseReasonName(*d.refused) << ": " << d.detail);
  CHECK_MESSAGE(d.detail.find(detail_has) != std::string::npos,
                "detail \"" << d.detail << "\" lacks \"" << detail_has << "\"");
}

TEST_CASE("decode: a plain and a deflated batch, declared or told apart by the first byte") {
  const v1::EventBatch b = Good();
  const std::string plain = b.SerializeAsString();
  const std::string z = Deflated(b);
  REQUIRE(static_cast<uint8_t>(plain[0]) == 0x0A);
  REQUIRE(static_cast<uint8_t>(z[0]) == 0x78);
  for (auto [payload, enc] : {std::pair{plain, PayloadEncoding::kIdentity},
                              std::pair{plain, PayloadEncoding::kSniff},
                              std::pair{z, PayloadEncoding::kDeflate},
                              std::pair{z, PayloadEncoding::kSniff}}) {
    Decoded d = DecodeBatch(payload, enc, BatchOrigin{"store-0001", "gw-01"});
    REQUIRE_MESSAGE(d.ok(), d.detail);
    CHECK(d.batch.wire_bytes == payload.size());
    CHECK(d.batch.batch.SerializeAsString() == plain);
  }
}

TEST_CASE("decode: a zstd batch, declared or told apart by the first byte - refused when broken") {
  const v1::EventBatch b = Good();
  const std::string plain = b.SerializeAsString();
  auto z = sync::ZstdCompress(plain, 3);
  REQUIRE(z.ok());
  REQUIRE(static_cast<uint8_t>((*z)[0]) == 0x28);
  for (auto enc : {PayloadEncoding::kZstd, PayloadEncoding::kSniff}) {
    Decoded d = DecodeBatch(*z, enc, BatchOrigin{"store-0001", "gw-01"});
    REQUIRE_MESSAGE(d.ok(), d.detail);
    CHECK(d.batch.wire_bytes == z->size());
    CHECK(d.batch.batch.SerializeAsString() == plain);
  }
  // Declared zstd but plain; cut short; a zstd bomb beyond the limit.
  CheckRefused(DecodeBatch(plain, PayloadEncoding::kZstd), RefuseReason::kUndecodable, "zstd");
  CheckRefused(DecodeBatch(z->substr(0, z->size() - 3), PayloadEncoding::kZstd),
               RefuseReason::kUndecodable, "zstd payload of");
  auto bomb = sync::ZstdCompress(std::string(2u << 20, '\0'), 19);
  REQUIRE(bomb.ok());
  CheckRefused(DecodeBatch(*bomb, PayloadEncoding::kZstd, {}, DecodeLimits{1u << 20, 1u << 20}),
               RefuseReason::kUndecodable, "exceeds");
}

TEST_CASE("decode: a columnar batch, plain or zstd, decodes to the batch - damaged ones are refused") {
  const v1::EventBatch b = Good();
  const std::string plain = b.SerializeAsString();
  auto col = sync::EncodeColumnar(b);
  REQUIRE_MESSAGE(col.ok(), col.status().ToString());
  auto z = sync::ZstdCompress(*col, 3);
  REQUIRE(z.ok());
  for (auto [payload, enc] : {std::pair{*col, PayloadEncoding::kSniff},
                              std::pair{*col, PayloadEncoding::kIdentity},
                              std::pair{*z, PayloadEncoding::kZstd},
                              std::pair{*z, PayloadEncoding::kSniff}}) {
    Decoded d = DecodeBatch(payload, enc, BatchOrigin{"store-0001", "gw-01"});
    REQUIRE_MESSAGE(d.ok(), d.detail);
    CHECK(d.batch.wire_bytes == payload.size());
    CHECK(d.batch.batch.SerializeAsString() == plain);
  }
  CheckRefused(DecodeBatch(col->substr(0, col->size() - 2), PayloadEncoding::kSniff),
               RefuseReason::kUndecodable, "columnar batch");
  // The batch checks still apply to what it decodes to.
  v1::EventBatch other = b;
  other.set_gateway_id("gw-02");
  auto col2 = sync::EncodeColumnar(other);
  REQUIRE(col2.ok());
  CheckRefused(DecodeBatch(*col2, PayloadEncoding::kSniff, BatchOrigin{"store-0001", "gw-01"}),
               RefuseReason::kTopicMismatch, "gw-02");
}

TEST_CASE("decode: content encodings") {
  CHECK(ParseContentEncoding("zstd") == PayloadEncoding::kZstd);
  CHECK(ParseContentEncoding("ZSTD") == PayloadEncoding::kZstd);
  CHECK(ParseContentEncoding("deflate") == PayloadEncoding::kDeflate);
  CHECK(ParseContentEncoding("Deflate") == PayloadEncoding::kDeflate);
  CHECK(ParseContentEncoding("") == PayloadEncoding::kIdentity);
  CHECK(ParseContentEncoding("identity") == PayloadEncoding::kIdentity);
  CHECK_FALSE(ParseContentEncoding("gzip"));
  CHECK_FALSE(ParseContentEncoding("br"));
  CHECK_FALSE(ParseContentEncoding("deflate, gzip"));
}

TEST_CASE("decode: undecodable") {
  const std::string plain = Good().SerializeAsString();
  CheckRefused(DecodeBatch("", PayloadEncoding::kSniff), RefuseReason::kUndecodable, "empty");
  CheckRefused(DecodeBatch("\xff\xff\xff\xff garbage", PayloadEncoding::kIdentity),
               RefuseReason::kUndecodable, "not a storegw.v1.EventBatch");
  // Declared deflate but plain protobuf; a truncated zlib stream.
  CheckRefused(DecodeBatch(plain, PayloadEncoding::kDeflate), RefuseReason::kUndecodable,
               "deflate payload");
  const std::string z = Deflated(Good());
  CheckRefused(DecodeBatch(z.substr(0, z.size() / 2), PayloadEncoding::kSniff),
               RefuseReason::kUndecodable, "not a complete zlib stream");
  // Limits: sent, and inflated (a small stream of a large batch).
  DecodeLimits small;
  small.max_payload_bytes = 100;
  CheckRefused(DecodeBatch(plain, PayloadEncoding::kIdentity, {}, small),
               RefuseReason::kUndecodable, "exceeds the limit of 100 bytes");
  DecodeLimits tight;
  tight.max_batch_bytes = 200;
  const std::string big = Deflated(MakeBatch("store-0001", "gw-01", 1, 1, 50));
  REQUIRE(big.size() < 2000);
  CheckRefused(DecodeBatch(big, PayloadEncoding::kDeflate, {}, tight), RefuseReason::kUndecodable,
               "exceeds 200 bytes");
  CheckRefused(DecodeBatch(MakeBatch("store-0001", "gw-01", 1, 1, 50).SerializeAsString(),
                           PayloadEncoding::kIdentity, {}, tight),
               RefuseReason::kUndecodable, "exceeds the limit of 200 bytes");
  // Identities that are not ids.
  v1::EventBatch b = Good();
  b.set_gateway_id("gw/01");
  CheckRefused(DecodeBatch(b.SerializeAsString(), PayloadEncoding::kIdentity),
               RefuseReason::kUndecodable, "gateway_id \"gw/01\" is not an id");
  b = Good();
  b.clear_store_id();
  CheckRefused(DecodeBatch(b.SerializeAsString(), PayloadEncoding::kIdentity),
               RefuseReason::kUndecodable, "store_id \"\" is not an id");
}

TEST_CASE("decode: topic_mismatch") {
  const std::string plain = Good().SerializeAsString();
  CheckRefused(DecodeBatch(plain, PayloadEncoding::kIdentity, BatchOrigin{"store-0002", "gw-01"}),
               RefuseReason::kTopicMismatch, "under the topic of store \"store-0002\"");
  CheckRefused(DecodeBatch(plain, PayloadEncoding::kIdentity, BatchOrigin{"store-0001", "gw-02"}),
               RefuseReason::kTopicMismatch, "gateway \"gw-02\"");
  CHECK(DecodeBatch(plain, PayloadEncoding::kIdentity, BatchOrigin{"", "gw-01"}).ok());
}

TEST_CASE("decode: not_contiguous") {
  v1::EventBatch b = Good();
  b.clear_events();
  CheckRefused(DecodeBatch(b.SerializeAsString(), PayloadEncoding::kIdentity),
               RefuseReason::kNotContiguous, "has no events");
  b = Good();
  b.set_last_seq(16);  // 11..16 for 5 events
  CheckRefused(DecodeBatch(b.SerializeAsString(), PayloadEncoding::kIdentity),
               RefuseReason::kNotContiguous, "batch 11..16 holds 5 events, expected 6 (one per seq)");
  b = MakeBatch("store-0001", "gw-01", 777, 0, 3);  // seqs from 0
  CheckRefused(DecodeBatch(b.SerializeAsString(), PayloadEncoding::kIdentity),
               RefuseReason::kNotContiguous, "batch 0..2: seqs start at 1");
  b = Good();
  b.set_last_seq(10);
  CheckRefused(DecodeBatch(b.SerializeAsString(), PayloadEncoding::kIdentity),
               RefuseReason::kNotContiguous, "last_seq is below first_seq");
  b = Good();
  b.mutable_events(2)->set_seq(15);  // 11 12 15 14 15
  CheckRefused(DecodeBatch(b.SerializeAsString(), PayloadEncoding::kIdentity),
               RefuseReason::kNotContiguous, "events[2] has seq 15, expected 13");
  b = Good();
  b.mutable_events(1)->Swap(b.mutable_events(2));  // 11 13 12 14 15
  CheckRefused(DecodeBatch(b.SerializeAsString(), PayloadEncoding::kIdentity),
               RefuseReason::kNotContiguous, "events[1] has seq 13, expected 12");
}

TEST_CASE("decode: invalid_event") {
  v1::EventBatch b = Good();
  b.mutable_events(3)->set_recorded_at(0);
  CheckRefused(DecodeBatch(b.SerializeAsString(), PayloadEncoding::kIdentity),
               RefuseReason::kInvalidEvent, "events[3] (seq 14): recorded_at is not set");
  b = Good();
  b.mutable_events(0)->mutable_event()->mutable_sale()->mutable_lines(0)->set_qty(0);
  CheckRefused(DecodeBatch(b.SerializeAsString(), PayloadEncoding::kIdentity),
               RefuseReason::kInvalidEvent, "event.sale.lines[0].qty: must not be 0");
  b = Good();
  b.mutable_events(1)->clear_event();
  CheckRefused(DecodeBatch(b.SerializeAsString(), PayloadEncoding::kIdentity),
               RefuseReason::kInvalidEvent, "event is missing");
  b = Good();
  b.mutable_events(1)->set_epoch(778);
  CheckRefused(DecodeBatch(b.SerializeAsString(), PayloadEncoding::kIdentity),
               RefuseReason::kInvalidEvent, "epoch 778 is not the batch's 777");
  b = Good();
  b.mutable_events(1)->set_gateway_id("gw-02");
  CheckRefused(DecodeBatch(b.SerializeAsString(), PayloadEncoding::kIdentity),
               RefuseReason::kInvalidEvent, "gateway_id \"gw-02\" is not the batch's");
  // Nested identity equal to the batch's: fine (the journal sets it).
  b = Good();
  for (auto& je : *b.mutable_events()) {
    je.set_epoch(777);
    je.set_store_id("store-0001");
    je.set_gateway_id("gw-01");
  }
  CHECK(DecodeBatch(b.SerializeAsString(), PayloadEncoding::kIdentity).ok());
  // An alert from a device id: devices may not write alerts.
  b = Good();
  b.mutable_events(4)->mutable_event()->mutable_alert()->set_sku("A");
  CheckRefused(DecodeBatch(b.SerializeAsString(), PayloadEncoding::kIdentity),
               RefuseReason::kInvalidEvent, "alert: is written only by the gateway itself");
  // Nor acknowledgements.
  b = Good();
  b.mutable_events(4)->mutable_event()->mutable_alert_ack()->set_acked_by("Ana");
  CheckRefused(DecodeBatch(b.SerializeAsString(), PayloadEncoding::kIdentity),
               RefuseReason::kInvalidEvent, "alert_ack: is written only by the gateway itself");
}

TEST_CASE("decode: events the gateway wrote itself are accepted") {
  v1::EventBatch b = Good();
  v1::Event* e = b.mutable_events(4)->mutable_event();
  e->set_event_id("gw:gw-01:15");
  e->set_device_id("gw-01");
  e->mutable_alert()->set_kind(v1::Alert::OVERSELL);
  e->mutable_alert()->set_sku("sku-1");
  e->mutable_alert()->set_on_hand(-1);
  v1::Event* p = b.mutable_events(3)->mutable_event();
  p->set_event_id("gw:gw-01:14");
  p->set_device_id("gw-01");
  p->mutable_price_update()->set_sku("sku-1");
  v1::Event* k = b.mutable_events(2)->mutable_event();
  k->set_event_id("gw:gw-01:13");
  k->set_device_id("gw-01");
  k->mutable_alert_ack()->set_alert_seq(12);
  k->mutable_alert_ack()->set_acked_by("Ana");
  Decoded d = DecodeBatch(b.SerializeAsString(), PayloadEncoding::kIdentity);
  CHECK_MESSAGE(d.ok(), d.detail);
  // The perishables, cold-chain and prices-in-force events too: each in a
  // batch of its own (a refusal here stalls the store's uplink).
  for (int kind = 0; kind < 3; ++kind) {
    CAPTURE(kind);
    b = Good();
    v1::Event* g = b.mutable_events(1)->mutable_event();
    g->set_event_id("gw:gw-01:12");
    g->set_device_id("gw-01");
    if (kind == 0) {
      g->mutable_alert_cleared()->set_alert_seq(9);
      g->mutable_alert_cleared()->set_reason("wasted");
    } else if (kind == 1) {
      g->mutable_price_in_force()->set_sku("sku-1");
      g->mutable_price_in_force()->set_update_seq(7);
    } else {
      g->mutable_store_rules()->add_hold_times()->set_sku("sku-1");
    }
    d = DecodeBatch(b.SerializeAsString(), PayloadEncoding::kIdentity);
    CHECK_MESSAGE(d.ok(), d.detail);
    // From a device id they are refused: devices may not write them.
    g->set_event_id("dev-12");
    g->set_device_id("till-1");
    d = DecodeBatch(b.SerializeAsString(), PayloadEncoding::kIdentity);
    CHECK_FALSE(d.ok());
  }
  // A sale under a gw: id is still a device event, and refused.
  b = Good();
  b.mutable_events(0)->mutable_event()->set_event_id("gw:gw-01:11");
  CheckRefused(DecodeBatch(b.SerializeAsString(), PayloadEncoding::kIdentity),
               RefuseReason::kInvalidEvent, "must not start with \"gw:\"");
}

TEST_CASE("decode: topics, ids and the Idempotency-Key") {
  auto t = ParseGatewayTopic("retail/v1/store-0001/gw-01/events", "retail/v1");
  REQUIRE(t);
  CHECK(t->store_id == "store-0001");
  CHECK(t->gateway_id == "gw-01");
  CHECK(t->leaf == "events");
  CHECK_FALSE(ParseGatewayTopic("retail/v2/store-0001/gw-01/events", "retail/v1"));
  CHECK_FALSE(ParseGatewayTopic("retail/v1/store-0001/events", "retail/v1"));
  CHECK_FALSE(ParseGatewayTopic("retail/v1/store-0001/gw-01/events/x", "retail/v1"));
  CHECK_FALSE(ParseGatewayTopic("retail/v1//gw-01/events", "retail/v1"));
  CHECK_FALSE(ParseGatewayTopic("retail/v1x/s/g/events", "retail/v1"));
  CHECK(IsGatewayId("gw-01.a_b"));
  CHECK_FALSE(IsGatewayId(""));
  CHECK_FALSE(IsGatewayId("gw 01"));
  CHECK_FALSE(IsGatewayId(std::string(65, 'a')));
  v1::EventBatch b = Good();
  b.set_epoch(12714390518233010731ull);
  CHECK(BatchIdempotencyKey(b) == "gw-01-12714390518233010731-11-15");
}

TEST_CASE("refusal log: one line per reason per period, then the count of those left out") {
  using Clock = internal::RateLimitedLog::Clock;
  internal::RateLimitedLog log(std::chrono::seconds(10));
  const Clock::time_point t0{};
  CHECK(log.Admit(0, "a1", t0 + std::chrono::seconds(100)) == "a1");
  CHECK_FALSE(log.Admit(0, "a2", t0 + std::chrono::seconds(101)));
  CHECK_FALSE(log.Admit(0, "a3", t0 + std::chrono::seconds(109)));
  CHECK(log.Admit(1, "b1", t0 + std::chrono::seconds(105)) == "b1");  // another reason
  auto next = log.Admit(0, "a4", t0 + std::chrono::seconds(110));
  REQUIRE(next);
  CHECK(*next == "a4 (2 more like it in the last 10 s not logged)");
  CHECK(log.Admit(0, "a5", t0 + std::chrono::seconds(125)) == "a5");
}

TEST_CASE("secrets are scrubbed from store errors") {
  using internal::ScrubSecrets;
  CHECK(ScrubSecrets("host=db password=s3cret user=hq") == "host=db password=*** user=hq");
  CHECK(ScrubSecrets("password = 'a b c' dbname=x") == "password = *** dbname=x");
  CHECK(ScrubSecrets("postgresql://hq:s3cret@db:5432/x") == "postgresql://hq:***@db:5432/x");
  CHECK(ScrubSecrets("connection to 10.0.0.1 refused") == "connection to 10.0.0.1 refused");
}

}  // namespace
}  // namespace storegw::hq
