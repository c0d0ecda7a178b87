// Helpers for the device API tests: a gateway in the test process (a real
// Journal in a temporary directory and a DeviceApi on 127.0.0.1:0), JSON
// bodies, and checks that the journal did not change.
#pragma once

#include <doctest/doctest.h>
#include <httplib.h>
#include <stdlib.h>

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/files.h"
#include "storegw/devices/device_api.h"
#include "storegw/storage/journal.h"

namespace storegw::devices::testing {

namespace fs = std::filesystem;

// TempDir: tests/common/files.h.
using test::TempDir;

inline void WriteFile(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << text;
  REQUIRE_MESSAGE(out.good(), "cannot write " << p.string());
}

inline storage::JournalOptions TestJournalOptions(const fs::path& dir) {
  storage::JournalOptions o;
  o.data_dir = dir / "data";
  o.store_id = "store-0042";
  o.gateway_id = "gw-test";
  o.maintenance_interval = std::chrono::hours(1);
  o.reader_connections = 2;
  // These tests count what devices journal; a cycle count that differs
  // from on_hand would add a COUNT_MISMATCH alert event of the gateway's
  // (covered by the storage tests).
  o.count_mismatch_threshold = -1;
  return o;
}

// A journal and a device API on a free loopback port, stopped (API first)
// when the object dies, also when a check failed.
class TestGateway {
 public:
  explicit TestGateway(ApiOptions api = {},
                       std::function<void(storage::JournalOptions&)> tweak = {},
                       ExtraHandler extra = {}) {
    storage::JournalOptions jo = TestJournalOptions(dir_.path());
    if (tweak) tweak(jo);
    data_dir_ = jo.data_dir;
    auto j = storage::Journal::Open(jo);
    REQUIRE_MESSAGE(j.ok(), "Journal::Open: " << j.status().ToString());
    journal_ = std::move(j).value();
    if (api.listen == ApiOptions{}.listen) api.listen = "127.0.0.1:0";
    auto a = DeviceApi::Start(api, *journal_, std::move(extra));
    REQUIRE_MESSAGE(a.ok(), "DeviceApi::Start: " << a.status().ToString());
    api_ = std::move(a).value();
  }
  ~TestGateway() {
    if (api_) api_->Stop();
    api_.reset();
    journal_.reset();
  }

  storage::Journal& journal() { return *journal_; }
  DeviceApi& api() { return *api_; }
  uint16_t port() const { return api_->port(); }
  const fs::path& data_dir() const { return data_dir_; }
  const fs::path& dir() const { return dir_.path(); }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port()); }

  std::unique_ptr<httplib::Client> Client() const {
    auto c = std::make_unique<httplib::Client>("127.0.0.1", port());
    c->set_keep_alive(true);
    c->set_tcp_nodelay(true);  // else Nagle + delayed ACK add 40 ms per request
    c->set_connection_timeout(5, 0);
    c->set_read_timeout(30, 0);
    c->set_write_timeout(30, 0);
    return c;
  }

  // Stops the API now (the journal stays open for checks).
  void StopApi() { api_->Stop(); }

 private:
  TempDir dir_;
  fs::path data_dir_;
  std::unique_ptr<storage::Journal> journal_;
  std::unique_ptr<DeviceApi> api_;
};

// What a refused request must leave untouched.
struct JournalState {
  uint64_t last_seq = 0;
  std::string stock;  // every stock row, serialised
  bool operator==(const JournalState&) const = default;
};

inline JournalState StateOf(storage::Journal& j) {
  JournalState s;
  s.last_seq = j.Stats().last_seq;
  auto rows = j.StockByPrefix("", 1000000);
  REQUIRE_MESSAGE(rows.ok(), rows.status().ToString());
  for (const auto& r : *rows) {
    s.stock += r.sku + "=" + std::to_string(r.on_hand) + "/" + std::to_string(r.base_qty) + "/" +
               std::to_string(r.as_of_seq) + ";";
  }
  return s;
}

// A sale line as JSON.
inline std::string LineJson(const std::string& sku, const std::string& qty,
                            const std::string& currency = "EUR") {
  return R"({"sku":")" + sku + R"(","qty":)" + qty + R"(,"unit_price":199,"currency":")" +
         currency + R"("})";
}

inline std::string SaleJson(const std::string& id, const std::string& device = "till-01",
                            const std::string& lines = LineJson("SKU-000001", "1")) {
  return R"({"event_id":")" + id + R"(","device_id":")" + device +
         R"(","occurred_at":1700000000000000,"sale":{"basket_id":"b-)" + id +
         R"(","tender":"card","lines":[)" + lines + "]}}";
}

inline std::string ReceiptJson(const std::string& id, const std::string& sku, int qty,
                               const std::string& device = "till-01") {
  return R"({"event_id":")" + id + R"(","device_id":")" + device +
         R"(","occurred_at":1700000000000000,"receipt":{"delivery_id":"dn-1","lines":[{"sku":")" + sku + R"(","qty":)" +
         std::to_string(qty) + "}]}}";
}

inline std::string Batch(const std::vector<std::string>& events) {
  std::string out = R"({"events":[)";
  for (size_t i = 0; i < events.size(); ++i) out += (i ? "," : "") + events[i];
  return out + "]}";
}

struct ApiError {
  std::string code, message, field;
};

// Member `key` of a JSON object parsed into a Struct, or nullptr. Through
// reflection, not Map::find: with Debian's libprotobuf 3.21, inline Map code
// compiled into a ThreadSanitizer build crashes.
inline const google::protobuf::Value* Member(const google::protobuf::Struct& object,
                                             const std::string& key) {
  const auto* r = object.GetReflection();
  const auto* fields = object.GetDescriptor()->FindFieldByName("fields");
  for (int i = 0; i < r->FieldSize(object, fields); ++i) {
    const auto& entry = r->GetRepeatedMessage(object, fields, i);
    const auto* k = entry.GetDescriptor()->map_key();
    if (entry.GetReflection()->GetString(entry, k) == key) {
      return static_cast<const google::protobuf::Value*>(
          &entry.GetReflection()->GetMessage(entry, entry.GetDescriptor()->map_value()));
    }
  }
  return nullptr;
}

inline int MemberCount(const google::protobuf::Struct& object) {
  return object.GetReflection()->FieldSize(object,
                                           object.GetDescriptor()->FindFieldByName("fields"));
}

// The string member `key` of a JSON object; fails the test when missing.
inline std::string StringMember(const google::protobuf::Struct& object, const std::string& key) {
  const google::protobuf::Value* v = Member(object, key);
  REQUIRE_MESSAGE(v != nullptr, "no \"" << key << "\"");
  REQUIRE_MESSAGE(v->kind_case() == google::protobuf::Value::kStringValue,
                  "\"" << key << "\" is not a string");
  return v->string_value();
}

inline google::protobuf::Struct ParseObject(const std::string& json) {
  google::protobuf::Struct s;
  auto st = google::protobuf::util::JsonStringToMessage(json, &s);
  REQUIRE_MESSAGE(st.ok(), "not a JSON object: " << json);
  return s;
}

inline ApiError ErrorOf(const httplib::Result& r) {
  REQUIRE(r);
  const google::protobuf::Struct s = ParseObject(r->body);
  const google::protobuf::Value* e = Member(s, "error");
  REQUIRE_MESSAGE(e != nullptr, "no \"error\" in " << r->body);
  REQUIRE_MESSAGE(e->kind_case() == google::protobuf::Value::kStructValue, r->body);
  const auto& obj = e->struct_value();
  REQUIRE_MESSAGE(MemberCount(obj) == 3,
                  "error has other members than code, message, field: " << r->body);
  return {StringMember(obj, "code"), StringMember(obj, "message"), StringMember(obj, "field")};
}

inline v1::IngestResponse ResultsOf(const httplib::Result& r) {
  REQUIRE(r);
  REQUIRE_MESSAGE(r->status == 200, r->status << " " << r->body);
  v1::IngestResponse resp;
  auto st = google::protobuf::util::JsonStringToMessage(r->body, &resp);
  REQUIRE_MESSAGE(st.ok(), "200 body is not an IngestResponse: " << r->body);
  return resp;
}

// event_id -> seqs of every journaled device event (alerts and other
// gateway-written events are left out), read with storage::ExportJournal.
inline std::map<std::string, std::vector<uint64_t>> JournaledDeviceEvents(
    const fs::path& data_dir, uint64_t* total = nullptr) {
  std::map<std::string, std::vector<uint64_t>> out;
  uint64_t n = 0;
  Status st = storage::ExportJournal(data_dir, [&](const v1::JournaledEvent& je) {
    ++n;
    const auto body = je.event().body_case();
    if (body == v1::Event::kAlert || body == v1::Event::kStockSnapshot ||
        body == v1::Event::kPriceUpdate) {
      return Status::Ok();
    }
    out[je.event().event_id()].push_back(je.seq());
    return Status::Ok();
  });
  REQUIRE_MESSAGE(st.ok(), "ExportJournal: " << st.ToString());
  if (total) *total = n;
  return out;
}

}  // namespace storegw::devices::testing
