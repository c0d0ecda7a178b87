// AppendProtoJson prints exactly what MessageToJsonString prints (with
// preserve_proto_field_names): every event kind, random events, and the
// cases the fast path leaves to MessageToJsonString.
#include <doctest/doctest.h>
#include <google/protobuf/util/json_util.h>

#include <random>

#include "event_json.h"
#include "hq_store_test_util.h"

namespace storegw::hq::pg {
namespace {

std::string Reference(const google::protobuf::Message& m) {
  google::protobuf::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  std::string out;
  REQUIRE(google::protobuf::util::MessageToJsonString(m, &out, o).ok());
  return out;
}

std::string Fast(const google::protobuf::Message& m) {
  std::string out = "prefix:";
  REQUIRE(AppendProtoJson(m, &out));
  return out.substr(7);
}

// One event of each body kind, every field set.
std::vector<v1::Event> EveryKind() {
  std::vector<v1::Event> out;
  auto base = [](const char* id) {
    v1::Event e;
    e.set_event_id(id);
    e.set_device_id("dev-1");
    e.set_occurred_at(-1);
    return e;
  };
  out.push_back(hq_test::SaleEvent(12).event());
  {
    v1::Event e = base("ret");
    auto* r = e.mutable_sale_return();
    auto* l = r->add_lines();
    l->set_sku("S1");
    l->set_qty(9223372036854775807LL);
    l->set_unit_price(0);
    l->set_currency("GBP");
    r->set_basket_id("b\"1\\2<3>\t\n\x01\x7f");
    out.push_back(e);
  }
  {
    v1::Event e = base("rcpt");
    auto* r = e.mutable_receipt();
    r->set_delivery_id("d-1");
    for (int i = 0; i < 3; ++i) {
      auto* l = r->add_lines();
      l->set_sku(test::Id("S", i));
      l->set_qty(i + 1);
    }
    out.push_back(e);
  }
  {
    v1::Event e = base("adj");
    auto* l = e.mutable_adjustment()->add_lines();
    l->set_sku("S");
    l->set_qty(-5);
    l->set_reason("shrink");
    out.push_back(e);
  }
  {
    v1::Event e = base("cnt");
    e.mutable_count()->set_sku("S");  // qty 0: omitted
    out.push_back(e);
  }
  {
    v1::Event e = base("xfer");
    auto* t = e.mutable_transfer();
    t->set_direction(v1::Transfer::OUT);
    t->set_other_store_id("s2");
    t->add_lines()->set_sku("S");
    t->set_transfer_id("t1");
    out.push_back(e);
    t->set_direction(static_cast<v1::Transfer::Direction>(9));  // unknown value: a number
    out.push_back(e);
  }
  {
    v1::Event e = base("res");
    e.mutable_reservation()->set_order_id("o1");
    e.mutable_reservation()->add_lines()->set_qty(1);
    out.push_back(e);
    v1::Event p = base("pick");
    p.mutable_pickup()->set_order_id("o1");
    out.push_back(p);
  }
  {
    v1::Event e = base("sens");
    auto* s = e.mutable_sensor();
    s->set_sensor_id("fridge-1");
    s->set_metric("temp_mc");
    s->set_value(-18000);
    out.push_back(e);
  }
  {
    v1::Event e = base("gw:gw-1:7");
    auto* a = e.mutable_alert();
    a->set_kind(v1::Alert::OVERSELL);
    a->set_sku("S");
    a->set_on_hand(-2);
    a->set_message("on_hand of S fell to -2");
    a->set_cause_seq(18446744073709551615ULL);
    out.push_back(e);
  }
  {
    v1::Event e = base("snap");
    auto* s = e.mutable_stock_snapshot();
    s->set_store_id("s1");
    s->set_epoch(18446744073709551615ULL);
    s->set_as_of_seq(10);
    s->set_hq_version(3);
    auto* l = s->add_lines();
    l->set_sku("S");
    l->set_qty(0);
    out.push_back(e);
  }
  {
    v1::Event e = base("price");
    auto* p = e.mutable_price_update();
    p->set_store_id("s1");
    p->set_sku("S");
    p->set_price(250);
    p->set_currency("EUR");
    p->set_effective_from(1700000000000000);
    out.push_back(e);
  }
  out.emplace_back();  // empty
  {
    v1::Event e;
    e.mutable_sale();  // an empty body still prints: "sale":{}
    out.push_back(e);
  }
  return out;
}

}  // namespace

TEST_CASE("json: every event kind prints as MessageToJsonString prints it, by the fast path") {
  for (const v1::Event& e : EveryKind()) {
    INFO(e.ShortDebugString());
    std::string fast;
    CHECK(AppendProtoJsonFast(e, &fast));
    CHECK(fast == Reference(e));
  }
}

TEST_CASE("json: random events match MessageToJsonString") {
  std::mt19937_64 rng(42);
  const auto kinds = EveryKind();
  auto text = [&] {
    std::string s;
    const size_t n = rng() % 12;
    for (size_t i = 0; i < n; ++i) {
      // Mostly printable ASCII, some control characters and < > " \ DEL.
      const char pool[] = "aZ09-_ <>\"\\/\x01\x1f\x7f\t\n";
      s.push_back(rng() % 4 ? static_cast<char>(0x20 + rng() % 95)
                            : pool[rng() % (sizeof pool - 1)]);
    }
    return s;
  };
  for (int i = 0; i < 2000; ++i) {
    v1::Event e = kinds[rng() % kinds.size()];
    e.set_event_id(text());
    e.set_device_id(text());
    e.set_occurred_at(static_cast<int64_t>(rng()));
    if (e.has_sale()) {
      e.mutable_sale()->set_tender(text());
      for (auto& l : *e.mutable_sale()->mutable_lines()) {
        l.set_qty(static_cast<int64_t>(rng()) >> (rng() % 64));
        l.set_sku(text());
      }
    }
    if (e.has_alert()) e.mutable_alert()->set_message(text());
    INFO(e.ShortDebugString());
    std::string fast;
    REQUIRE(AppendProtoJsonFast(e, &fast));
    CHECK(fast == Reference(e));
  }
}

TEST_CASE("json: non-ASCII text, doubles and unknown fields go to MessageToJsonString") {
  v1::Event e = hq_test::SaleEvent(1).event();
  e.mutable_sale()->set_tender("caf\xc3\xa9 \xe2\x80\xa8 \xf0\x9f\x98\x80");
  std::string fast;
  CHECK_FALSE(AppendProtoJsonFast(e, &fast));
  CHECK(fast.empty());
  CHECK(Fast(e) == Reference(e));

  v1::GatewayStatus st;  // has doubles
  st.set_gateway_id("gw-1");
  st.set_epoch(1);
  st.set_online(true);
  st.set_ingest_rate(12.5);
  CHECK(Fast(st) == Reference(st));

  v1::Event unknown = hq_test::SaleEvent(2).event();
  unknown.GetReflection()->MutableUnknownFields(&unknown)->AddVarint(999, 1);
  CHECK(Fast(unknown) == Reference(unknown));
}

}  // namespace storegw::hq::pg
