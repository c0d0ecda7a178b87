// DeviceRegistry with an injected clock: counting per device, the silent
// rule with opening hours, the bound on tracked devices, worst-first order,
// and saving to / loading from a real journal (a restart keeps the table).
// Then the same through the device API over real HTTP.
#include <doctest/doctest.h>

#include "devices_test_util.h"
#include "storegw/devices/device_api.h"
#include "storegw/devices/device_registry.h"

namespace storegw::devices {
namespace {

using namespace testing;

constexpr int64_t kMin = 60'000'000;  // one minute in microseconds

struct FakeClock {
  int64_t now = 1'795'790'000'000'000;
  int minute_of_day = 12 * 60;
};

DeviceRegistryOptions RegistryOptions(FakeClock& clock) {
  DeviceRegistryOptions o;
  o.silent_after = std::chrono::minutes(10);
  o.now_us = [&clock] { return clock.now; };
  o.local_minute = [&clock](int64_t) { return clock.minute_of_day; };
  return o;
}

RequestOutcome Ok(const std::string& device, uint64_t accepted, uint64_t dup = 0) {
  RequestOutcome o;
  o.device = device;
  o.accepted = accepted;
  o.duplicate = dup;
  return o;
}

RequestOutcome Refused(const std::string& device, int status, const std::string& reason) {
  RequestOutcome o;
  o.device = device;
  o.status = status;
  o.reason = reason;
  o.error_body = R"({"error":{"code":"x","message":"m","field":""}})";
  return o;
}

const v1::DeviceStatus* Find(const v1::DeviceList& l, const std::string& id) {
  for (const auto& d : l.devices()) {
    if (d.device_id() == id) return &d;
  }
  return nullptr;
}

TEST_CASE("device registry: counts per device, refusals by reason, last error with its time") {
  FakeClock clock;
  DeviceRegistry reg(RegistryOptions(clock));
  reg.Record(Ok("till-01", 20, 1));
  clock.now += kMin;
  reg.Record(Refused("till-01", 409, "conflict"));
  reg.Record(Refused("till-01", 400, "invalid"));
  reg.Record(Refused("till-01", 400, "invalid"));
  reg.Record(Ok("till-02", 5));
  const v1::DeviceList l = reg.List();
  REQUIRE(l.devices_size() == 2);
  const v1::DeviceStatus* t1 = Find(l, "till-01");
  REQUIRE(t1 != nullptr);
  CHECK(t1->requests() == 4);
  CHECK(t1->events_accepted() == 20);
  CHECK(t1->events_duplicate() == 1);
  CHECK(t1->first_seen_at() == clock.now - kMin);
  CHECK(t1->last_accepted_at() == clock.now - kMin);
  CHECK(t1->last_seen_at() == clock.now);
  CHECK(t1->last_error_at() == clock.now);
  CHECK(t1->last_error().find("\"error\"") != std::string::npos);
  REQUIRE(t1->rejected_size() == 2);
  CHECK(t1->rejected(0).reason() == "conflict");
  CHECK(t1->rejected(0).count() == 1);
  CHECK(t1->rejected(1).reason() == "invalid");
  CHECK(t1->rejected(1).count() == 2);
  // Worst first: the one with refusals.
  CHECK(l.devices(0).device_id() == "till-01");
}

TEST_CASE("device registry: silent after silent_after, only while the store is open") {
  FakeClock clock;
  auto o = RegistryOptions(clock);
  auto hours = ParseOpeningHours("07:00-22:00");
  REQUIRE(hours.ok());
  o.opening_hours = *hours;
  DeviceRegistry reg(o);
  reg.Record(Ok("till-01", 1));
  reg.Record(Ok("till-02", 1));
  clock.now += 9 * kMin;
  reg.Record(Ok("till-02", 1));
  CHECK(reg.List().silent() == 0);

  clock.now += 2 * kMin;  // till-01 quiet for 11 min, till-02 for 2
  v1::DeviceList l = reg.List();
  CHECK(l.silent() == 1);
  CHECK(l.devices(0).device_id() == "till-01");  // silent ones first
  CHECK(l.devices(0).silent());
  CHECK_FALSE(Find(l, "till-02")->silent());
  CHECK(l.silent_after_s() == 600);
  CHECK(l.opening_hours() == "07:00-22:00");

  clock.minute_of_day = 23 * 60;  // closed: quiet tills are expected
  CHECK(reg.List().silent() == 0);
  clock.minute_of_day = 6 * 60 + 59;
  CHECK(reg.List().silent() == 0);
  clock.minute_of_day = 7 * 60;
  CHECK(reg.List().silent() == 1);
}

TEST_CASE("opening hours: parsed strictly, across midnight too") {
  auto day = ParseOpeningHours("07:00-22:00");
  REQUIRE(day.ok());
  CHECK(day->IsOpen(7 * 60));
  CHECK_FALSE(day->IsOpen(22 * 60));
  CHECK_FALSE(day->IsOpen(3 * 60));
  auto night = ParseOpeningHours("22:00-06:00");
  REQUIRE(night.ok());
  CHECK(night->IsOpen(23 * 60));
  CHECK(night->IsOpen(5 * 60 + 59));
  CHECK_FALSE(night->IsOpen(12 * 60));
  CHECK(ParseOpeningHours("")->always);
  for (const char* bad : {"7-22", "07:00", "07:00-25:00", "07:60-22:00", "07:00-07:00", "ab:cd-ef:gh"}) {
    CAPTURE(bad);
    auto h = ParseOpeningHours(bad);
    REQUIRE_FALSE(h.ok());
    CHECK(h.status().message().find(std::string("\"") + bad + "\"") != std::string::npos);
  }
}

TEST_CASE("device registry: at most max_devices by name, the rest under (other)") {
  FakeClock clock;
  auto o = RegistryOptions(clock);
  o.max_devices = 3;
  DeviceRegistry reg(o);
  for (int i = 0; i < 10; ++i) reg.Record(Ok("hh-" + std::to_string(i), 1));
  const v1::DeviceList l = reg.List();
  CHECK(l.devices_size() == 4);  // 3 by name + (other)
  const v1::DeviceStatus* other = Find(l, std::string(DeviceRegistry::kOtherDevices));
  REQUIRE(other != nullptr);
  CHECK(other->requests() == 7);
  CHECK(other->events_accepted() == 7);
  CHECK_FALSE(other->silent());
}

TEST_CASE("device registry: saved in the journal, a new registry loads it") {
  TempDir dir;
  FakeClock clock;
  {
    auto j = storage::Journal::Open(TestJournalOptions(dir.path()));
    REQUIRE(j.ok());
    DeviceRegistry reg(RegistryOptions(clock));
    reg.Record(Ok("till-01", 7));
    reg.Record(Refused("till-02", 400, "invalid"));
    REQUIRE(reg.Save(**j).ok());
    reg.Record(Ok("till-01", 3));  // saved by the second Save only
    REQUIRE(reg.Save(**j).ok());
    (*j)->Close();
  }
  auto j = storage::Journal::Open(TestJournalOptions(dir.path()));
  REQUIRE(j.ok());
  DeviceRegistry again(RegistryOptions(clock));
  REQUIRE(again.Load(**j).ok());
  const v1::DeviceList l = again.List();
  REQUIRE(l.devices_size() == 2);
  CHECK(Find(l, "till-01")->events_accepted() == 10);
  CHECK(Find(l, "till-01")->requests() == 2);
  CHECK(Find(l, "till-02")->rejected(0).reason() == "invalid");
  // Nothing of it is a journaled event.
  CHECK((*j)->Stats().last_seq == 0);
}

TEST_CASE("device API: every POST is counted for its device, and the table survives a restart") {
  TempDir dir;
  const auto jopt = TestJournalOptions(dir.path());
  {
    auto j = storage::Journal::Open(jopt);
    REQUIRE(j.ok());
    ApiOptions o;
    o.listen = "127.0.0.1:0";
    auto api = DeviceApi::Start(o, **j);
    REQUIRE(api.ok());
    httplib::Client c("127.0.0.1", (*api)->port());
    REQUIRE(c.Post("/v1/events", SaleJson("s1", "till-07"), "application/json")->status == 200);
    REQUIRE(c.Post("/v1/events", SaleJson("s1", "till-07"), "application/json")->status == 200);
    REQUIRE(c.Post("/v1/events", SaleJson("s2", "till-07", LineJson("S", "0")),
                   "application/json")->status == 400);
    REQUIRE(c.Post("/v1/events", "{", "application/json")->status == 400);  // no device named
    const v1::DeviceList l = (*api)->Devices();
    const v1::DeviceStatus* t = Find(l, "till-07");
    REQUIRE(t != nullptr);
    CHECK(t->requests() == 3);
    CHECK(t->events_accepted() == 1);
    CHECK(t->events_duplicate() == 1);
    REQUIRE(t->rejected_size() == 1);
    CHECK(t->rejected(0).reason() == "invalid");
    CHECK(t->last_error().find("qty") != std::string::npos);
    const v1::DeviceStatus* unknown = Find(l, "");
    REQUIRE(unknown != nullptr);
    CHECK(unknown->requests() == 1);
    (*api)->Stop();  // saves the table
    (*j)->Close();
  }
  auto j = storage::Journal::Open(jopt);
  REQUIRE(j.ok());
  ApiOptions o;
  o.listen = "127.0.0.1:0";
  auto api = DeviceApi::Start(o, **j);
  REQUIRE(api.ok());
  const v1::DeviceList after = (*api)->Devices();
  const v1::DeviceStatus* t = Find(after, "till-07");
  REQUIRE(t != nullptr);
  CHECK(t->requests() == 3);
  CHECK(t->events_accepted() == 1);
}

}  // namespace
}  // namespace storegw::devices
