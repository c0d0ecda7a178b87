// ValidateDeviceEvent and StockDeltas: what a device may submit (the required
// fields each body's proto message documents), and what each body does to
// stock (sale and pickup -qty; return, receipt +qty; adjustment its signed
// qty; transfer -qty OUT, +qty IN; reservation and sensor nothing).
#include <doctest/doctest.h>

#include <map>
#include <string>

#include "test_util.h"

namespace storegw::storage {
namespace {

using namespace testing;  // NOLINT

void ExpectInvalid(const v1::Event& e, const std::string& field) {
  Status s = ValidateDeviceEvent(e);
  CHECK_MESSAGE(s.code() == StatusCode::kInvalidArgument,
                "expected invalid " << field << ", got " << s.ToString());
  CHECK(s.field() == field);
  CHECK_FALSE(s.message().empty());
  // The operator-facing text names the field.
  CHECK(s.ToString().find(field) != std::string::npos);
}

TEST_CASE("validate: every well-formed device body is accepted") {
  const v1::Event events[] = {
      Sale("e1", {{"sku-1", 2}, {"sku-2", 1}}),
      Return("e2", {{"sku-1", 1}}),
      Receipt("e3", {{"sku-1", 10}}),
      Adjust("e4", {{"sku-1", -3}, {"sku-2", 4}}),
      Count("e5", "sku-1", 0),  // a count of zero is a real count
      Count("e6", "sku-1", 17),
      Transfer("e7", v1::Transfer::OUT, {{"sku-1", 1}}),
      Transfer("e8", v1::Transfer::IN, {{"sku-1", 1}}),
      Reservation("e9", {{"sku-1", 1}}),
      Pickup("e10", {{"sku-1", 1}}),
      Sensor("e11"),
  };
  for (const auto& e : events) {
    Status s = ValidateDeviceEvent(e);
    CHECK_MESSAGE(s.ok(), e.ShortDebugString() << " -> " << s.ToString());
  }
  // Limits from the proto: event_id up to 128, sku up to 64 printable chars.
  CHECK(ValidateDeviceEvent(Sale(std::string(128, 'x'), {{std::string(64, 's'), 1}})).ok());
}

TEST_CASE("validate: missing event_id") {
  ExpectInvalid(Sale("", {{"sku-1", 1}}), "event_id");
  ExpectInvalid(Sale(std::string(129, 'x'), {{"sku-1", 1}}), "event_id");
  ExpectInvalid(Sale("has space", {{"sku-1", 1}}), "event_id");
}

TEST_CASE("validate: no body") {
  v1::Event e = Base("e1");
  ExpectInvalid(e, "body");
}

TEST_CASE("validate: empty or malformed sku, in every body that has one") {
  ExpectInvalid(Sale("e", {{"ok", 1}, {"", 1}}), "sale.lines[1].sku");
  ExpectInvalid(Return("e", {{"", 1}}), "sale_return.lines[0].sku");
  ExpectInvalid(Receipt("e", {{"", 1}}), "receipt.lines[0].sku");
  ExpectInvalid(Adjust("e", {{"", 1}}), "adjustment.lines[0].sku");
  ExpectInvalid(Count("e", "", 1), "count.sku");
  ExpectInvalid(Transfer("e", v1::Transfer::IN, {{"", 1}}), "transfer.lines[0].sku");
  ExpectInvalid(Reservation("e", {{"", 1}}), "reservation.lines[0].sku");
  ExpectInvalid(Pickup("e", {{"", 1}}), "pickup.lines[0].sku");
  ExpectInvalid(Sale("e", {{std::string(65, 's'), 1}}), "sale.lines[0].sku");
}

TEST_CASE("validate: quantity zero where it must be positive") {
  ExpectInvalid(Sale("e", {{"a", 1}, {"b", 0}}), "sale.lines[1].qty");
  ExpectInvalid(Sale("e", {{"a", -2}}), "sale.lines[0].qty");
  ExpectInvalid(Return("e", {{"a", 0}}), "sale_return.lines[0].qty");
  ExpectInvalid(Receipt("e", {{"a", 0}}), "receipt.lines[0].qty");
  ExpectInvalid(Receipt("e", {{"a", -1}}), "receipt.lines[0].qty");
  ExpectInvalid(Adjust("e", {{"a", 0}}), "adjustment.lines[0].qty");  // signed, but != 0
  ExpectInvalid(Transfer("e", v1::Transfer::OUT, {{"a", 0}}), "transfer.lines[0].qty");
  ExpectInvalid(Reservation("e", {{"a", 0}}), "reservation.lines[0].qty");
  ExpectInvalid(Pickup("e", {{"a", 0}}), "pickup.lines[0].qty");
  ExpectInvalid(Count("e", "a", -1), "count.qty");  // absolute: >= 0
}

TEST_CASE("validate: currency must be three capital letters") {
  for (const char* bad : {"", "eur", "EU", "EURO", "E1R", "Eur", "€€€"}) {
    CAPTURE(bad);
    v1::Event e = Sale("e", {{"a", 1}});
    e.mutable_sale()->mutable_lines(0)->set_currency(bad);
    ExpectInvalid(e, "sale.lines[0].currency");
    v1::Event r = Return("e", {{"a", 1}, {"b", 1}});
    r.mutable_sale_return()->mutable_lines(1)->set_currency(bad);
    ExpectInvalid(r, "sale_return.lines[1].currency");
  }
}

TEST_CASE("validate: bodies only the gateway writes are refused from a device") {
  v1::Event a = Base("e");
  a.mutable_alert()->set_kind(v1::Alert::OVERSELL);
  a.mutable_alert()->set_sku("a");
  ExpectInvalid(a, "alert");

  v1::Event s = Base("e");
  s.mutable_stock_snapshot()->set_as_of_seq(1);
  ExpectInvalid(s, "stock_snapshot");

  v1::Event p = Base("e");
  p.mutable_price_update()->set_sku("a");
  p.mutable_price_update()->set_price(100);
  p.mutable_price_update()->set_currency("EUR");
  ExpectInvalid(p, "price_update");
}

TEST_CASE("validate: the other required fields the proto documents") {
  ExpectInvalid(Sale("e", {}), "sale.lines");
  ExpectInvalid(Receipt("e", {}), "receipt.lines");
  v1::Event price = Sale("e", {{"a", 1}});
  price.mutable_sale()->mutable_lines(0)->set_unit_price(-1);
  ExpectInvalid(price, "sale.lines[0].unit_price");
  v1::Event reason = Adjust("e", {{"a", 1}});
  reason.mutable_adjustment()->mutable_lines(0)->clear_reason();
  ExpectInvalid(reason, "adjustment.lines[0].reason");
  v1::Event dir = Transfer("e", v1::Transfer::DIRECTION_UNSPECIFIED, {{"a", 1}});
  ExpectInvalid(dir, "transfer.direction");
  v1::Event other = Transfer("e", v1::Transfer::IN, {{"a", 1}});
  other.mutable_transfer()->clear_other_store_id();
  ExpectInvalid(other, "transfer.other_store_id");
  v1::Event order = Pickup("e", {{"a", 1}});
  order.mutable_pickup()->clear_order_id();
  ExpectInvalid(order, "pickup.order_id");
  v1::Event sensor = Sensor("e");
  sensor.mutable_sensor()->clear_metric();
  ExpectInvalid(sensor, "sensor.metric");
}

std::map<std::string, int64_t> Net(const v1::Event& e) {
  std::map<std::string, int64_t> m;
  for (const auto& [sku, d] : StockDeltas(e)) m[sku] += d;
  return m;
}

TEST_CASE("StockDeltas: sign and size of each body's delta") {
  using M = std::map<std::string, int64_t>;
  CHECK(Net(Sale("e", {{"a", 3}, {"b", 1}})) == M{{"a", -3}, {"b", -1}});
  CHECK(Net(Return("e", {{"a", 2}})) == M{{"a", 2}});
  CHECK(Net(Receipt("e", {{"a", 12}})) == M{{"a", 12}});
  CHECK(Net(Adjust("e", {{"a", -4}, {"b", 5}})) == M{{"a", -4}, {"b", 5}});
  CHECK(Net(Transfer("e", v1::Transfer::OUT, {{"a", 6}})) == M{{"a", -6}});
  CHECK(Net(Transfer("e", v1::Transfer::IN, {{"a", 6}})) == M{{"a", 6}});
  CHECK(Net(Pickup("e", {{"a", 2}})) == M{{"a", -2}});
  // Reservation and sensor readings move no stock; counts are absolute and
  // left to the ledger.
  for (const auto& kv : Net(Reservation("e", {{"a", 2}}))) CHECK_MESSAGE(kv.second == 0, kv.first);
  CHECK(StockDeltas(Sensor("e")).empty());
  CHECK(StockDeltas(Count("e", "a", 5)).empty());
  // In line order, a sku may repeat.
  auto v = StockDeltas(Sale("e", {{"a", 1}, {"b", 2}, {"a", 3}}));
  REQUIRE(v.size() == 3);
  CHECK(v[0] == std::pair<std::string, int64_t>("a", -1));
  CHECK(v[1] == std::pair<std::string, int64_t>("b", -2));
  CHECK(v[2] == std::pair<std::string, int64_t>("a", -3));
}

}  // namespace
}  // namespace storegw::storage
