// The columnar batch encoding (sync/src/columnar.h): every kind of event
// comes back field for field, what it cannot carry is refused so the
// uplink sends the plain batch, and damaged input is an error, never a
// crash or a wrong batch.
#include <doctest/doctest.h>

#include <cmath>
#include <random>
#include <string>

#include "columnar.h"
#include "compress.h"
#include "storegw/v1/storegw.pb.h"

namespace storegw::sync {
namespace {

v1::SaleLine* ColLine(google::protobuf::RepeatedPtrField<v1::SaleLine>* lines,
                      const std::string& sku, int64_t qty, int64_t price) {
  auto* l = lines->Add();
  l->set_sku(sku);
  l->set_qty(qty);
  l->set_unit_price(price);
  l->set_currency("EUR");
  return l;
}

// One of each body, the id and device shapes the encoding special-cases,
// and the ones it must pass through as they are.
v1::EventBatch ColMixedBatch() {
  v1::EventBatch b;
  b.set_store_id("store-0042");
  b.set_gateway_id("gw-01");
  b.set_epoch(12714390518233010731ull);
  b.set_first_seq(1001);
  int64_t rec = 1795790000000000;
  auto add = [&](const std::string& id, const std::string& dev, int64_t occ_delta) {
    auto* je = b.add_events();
    je->set_seq(b.first_seq() + static_cast<uint64_t>(b.events_size() - 1));
    rec += 1234;
    je->set_recorded_at(rec);
    auto* e = je->mutable_event();
    e->set_event_id(id);
    e->set_device_id(dev);
    e->set_occurred_at(rec + occ_delta);
    return e;
  };
  auto* s1 = add("till-03-41", "till-03", -250000)->mutable_sale();
  ColLine(s1->mutable_lines(), "SKU-000123", 1, 249);
  ColLine(s1->mutable_lines(), "SKU-000777", 2, 1099);
  ColLine(s1->mutable_lines(), "SKU-000123", 1, 249);  // same sku, same price
  s1->set_basket_id("till-03-41");
  s1->set_tender("card");
  auto* s2 = add("till-03-42", "till-03", -1)->mutable_sale();
  ColLine(s2->mutable_lines(), "SKU-000123", 1, 199);  // the price changed
  ColLine(s2->mutable_lines(), "SKU-000777", 1, 1099);
  auto* s3 = add("till-01-7", "till-01", 5)->mutable_sale();
  ColLine(s3->mutable_lines(), "SKU-000999", 3, 0)->clear_currency();  // no price at all
  ColLine(s3->mutable_lines(), "SKU-000999", 1, 0)->clear_currency();
  add("till-03-40", "till-03", 0)->mutable_sale_return()->add_lines()->set_sku("SKU-000123");
  auto* r = add("dc-delivery-9", "handheld-2", 0)->mutable_receipt();
  for (int i = 0; i < 3; ++i) {
    auto* l = r->add_lines();
    l->set_sku("SKU-00010" + std::to_string(i));
    l->set_qty(12);
  }
  auto* c = add("handheld-2-0", "handheld-2", 0)->mutable_count();
  c->set_sku("SKU-000777");  // qty 0: an empty count message but for the sku
  auto* a = add("hh-adj-1", "handheld-2", 0)->mutable_adjustment()->add_lines();
  a->set_sku("SKU-000123");
  a->set_qty(-2);
  a->set_reason("waste");
  auto* t = add("till-03-0007", "till-03", 0)->mutable_transfer();  // leading zero: raw id
  t->set_direction(v1::Transfer::OUT);
  t->set_other_store_id("store-0043");
  t->add_lines()->set_sku("SKU-000123");
  add("res-1", "web", 0)->mutable_reservation()->add_lines()->set_sku("SKU-000555");
  add("pick-1", "web", 0)->mutable_pickup()->add_lines()->set_sku("SKU-000555");
  auto* sensor = add("fridge-3-18446744073709551615", "fridge-3", 0)->mutable_sensor();
  sensor->set_sensor_id("fridge-3");
  sensor->set_metric("temp_mc");
  sensor->set_value(-1800);
  auto* al = add("gw:gw-01:1013", "gw-01", 0)->mutable_alert();
  al->set_kind(v1::Alert::OVERSELL);
  al->set_sku("SKU-000999");
  al->set_on_hand(-4);
  al->set_message("on_hand went below zero");
  auto* p = add("gw:gw-01:1014", "gw-01", 0)->mutable_price_update();
  p->set_sku("SKU-000123");
  p->set_price(179);
  p->set_currency("EUR");
  auto* snap = add("gw:gw-01:1015", "gw-01", 0)->mutable_stock_snapshot();
  snap->set_as_of_seq(900);
  snap->add_lines()->set_sku("SKU-000123");
  snap->add_lines()->set_sku("SKU-NEW");
  auto* ack = add("gw:gw-01:1016", "gw-01", 0)->mutable_alert_ack();
  ack->set_alert_seq(1013);
  ack->set_sku("SKU-000999");
  ack->set_acked_by("Ana");
  add("", "", -5)->mutable_sale()->add_lines()->set_sku("");  // empty strings survive too
  add("till-03-9", "till-03", 0);  // counter goes back; no body
  b.set_last_seq(b.first_seq() + static_cast<uint64_t>(b.events_size()) - 1);
  return b;
}

TEST_CASE("columnar: every kind of event comes back field for field") {
  const v1::EventBatch b = ColMixedBatch();
  auto c = EncodeColumnar(b);
  REQUIRE_MESSAGE(c.ok(), c.status().ToString());
  CHECK(IsColumnar(*c));
  auto back = DecodeColumnar(*c);
  REQUIRE_MESSAGE(back.ok(), back.status().ToString());
  CHECK(back->SerializeAsString() == b.SerializeAsString());
  // WireBatch: the same, from the serialized batch; off, untouched.
  CHECK(WireBatch(b.SerializeAsString(), true) == *c);
  CHECK(WireBatch(b.SerializeAsString(), false) == b.SerializeAsString());
  // It never reads as an EventBatch.
  v1::EventBatch misread;
  CHECK_FALSE(misread.ParseFromString(*c));
}

TEST_CASE("columnar: what it cannot carry is refused, and WireBatch then sends the batch") {
  v1::EventBatch gap = ColMixedBatch();
  gap.mutable_events(3)->set_seq(5000);
  CHECK_FALSE(EncodeColumnar(gap).ok());
  CHECK(WireBatch(gap.SerializeAsString(), true) == gap.SerializeAsString());
  v1::EventBatch nested = ColMixedBatch();
  nested.mutable_events(0)->set_store_id("store-0042");
  CHECK_FALSE(EncodeColumnar(nested).ok());
  v1::EventBatch last = ColMixedBatch();
  last.set_last_seq(last.last_seq() + 1);
  CHECK_FALSE(EncodeColumnar(last).ok());
  CHECK_FALSE(EncodeColumnar(v1::EventBatch()).ok());
  CHECK(WireBatch("not a batch", true) == "not a batch");
}

TEST_CASE("columnar: damaged input is an error naming the part, never a crash") {
  const v1::EventBatch b = ColMixedBatch();
  auto c = EncodeColumnar(b);
  REQUIRE(c.ok());
  // Every truncation fails cleanly.
  for (size_t n = 0; n < c->size(); ++n) {
    auto r = DecodeColumnar(std::string_view(*c).substr(0, n));
    CHECK_FALSE(r.ok());
  }
  // Random byte flips: an error or some batch, never a crash.
  std::mt19937 rng(7);
  for (int i = 0; i < 2000; ++i) {
    std::string d = *c;
    d[std::uniform_int_distribution<size_t>(4, d.size() - 1)(rng)] ^=
        static_cast<char>(1 + std::uniform_int_distribution<int>(0, 254)(rng));
    (void)DecodeColumnar(d);
  }
  auto r = DecodeColumnar(std::string(kColumnarMagic) + "\x05store");
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message().find("columnar batch: the header") != std::string::npos);
  // More events than allowed; a decoded size over the bound.
  auto few = DecodeColumnar(*c, 3);
  REQUIRE_FALSE(few.ok());
  CHECK(few.status().message().find("events (1..3 allowed)") != std::string::npos);
  auto small = DecodeColumnar(*c, 1000, 200);
  REQUIRE_FALSE(small.ok());
  CHECK(small.status().message().find("decodes to more than 200 bytes") != std::string::npos);
}

TEST_CASE("columnar: till traffic is smaller on the wire than the plain batch, both compressed") {
  v1::EventBatch b;
  b.set_store_id("store-0042");
  b.set_gateway_id("gw-01");
  b.set_epoch(77);
  b.set_first_seq(1);
  std::mt19937 rng(3);
  uint64_t counters[8] = {};
  int64_t rec = 1795790000000000;
  for (int i = 0; i < 500; ++i) {
    const int till = std::uniform_int_distribution<int>(1, 8)(rng);
    auto* je = b.add_events();
    je->set_seq(static_cast<uint64_t>(i) + 1);
    rec += std::uniform_int_distribution<int64_t>(20000, 900000)(rng);
    je->set_recorded_at(rec);
    auto* e = je->mutable_event();
    const std::string dev = "till-0" + std::to_string(till);
    e->set_device_id(dev);
    e->set_event_id(dev + "-" + std::to_string(++counters[till - 1] + 5000));
    e->set_occurred_at(rec - std::uniform_int_distribution<int64_t>(1000, 400000)(rng));
    auto* s = e->mutable_sale();
    const int lines = std::uniform_int_distribution<int>(1, 5)(rng);
    for (int k = 0; k < lines; ++k) {
      const int sku = static_cast<int>(std::pow(std::uniform_real_distribution<double>(0, 1)(rng), 3) * 2000);
      ColLine(s->mutable_lines(), "SKU-" + std::to_string(100000 + sku), 1, 100 + sku);
    }
    s->set_tender("card");
  }
  b.set_last_seq(500);
  auto plain = ZstdCompress(b.SerializeAsString(), 3);
  auto col = ZstdCompress(*EncodeColumnar(b), 3);
  REQUIRE((plain.ok() && col.ok()));
  MESSAGE("500 sales, zstd 3: plain " << plain->size() << " B, columnar " << col->size() << " B");
  CHECK(col->size() < plain->size() * 3 / 4);
  auto back = DecodeColumnar(*ZstdDecompress(*col));
  REQUIRE(back.ok());
  CHECK(back->SerializeAsString() == b.SerializeAsString());
}

}  // namespace
}  // namespace storegw::sync
