// Helpers of the status page integration tests, on top of
// tests/gateway/test_util.h: a config file, a mosquitto broker on a free
// loopback port, posting receipts in batches, reading /v1/status.
#pragma once

#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "test_util.h"

namespace storegw::test {

// A broker for the uplink: /usr/sbin/mosquitto on 127.0.0.1:PORT, killed by
// PID when this object goes (Process).
class Broker {
 public:
  explicit Broker(const std::filesystem::path& dir) : dir_(dir) {
    std::filesystem::create_directories(dir_);
    // As root mosquitto drops to its own user: let it read its directory.
    chmod(dir_.parent_path().c_str(), 0755);
    chmod(dir_.c_str(), 0755);
    for (int attempt = 0; attempt < 10; ++attempt) {
      port_ = FreePort();
      WriteFile(dir_ / "mosquitto.conf", "listener " + std::to_string(port_) +
                                             " 127.0.0.1\nallow_anonymous true\n"
                                             "persistence false\nmax_queued_messages 100000\n");
      proc_ = Process::Spawn({"/usr/sbin/mosquitto", "-c", (dir_ / "mosquitto.conf").string()},
                             dir_ / "mosquitto.out", dir_ / "mosquitto.err");
      if (WaitFor([&] { return !proc_.Running() || Accepts(); }, 10s) && proc_.Running()) return;
      proc_.KillAndReap();
    }
    throw std::runtime_error("mosquitto did not start: " + ReadFile(dir_ / "mosquitto.err"));
  }
  uint16_t port() const { return port_; }
  std::string url() const { return "tcp://127.0.0.1:" + std::to_string(port_); }
  void Kill() { proc_.KillAndReap(); }

 private:
  bool Accepts() const {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port_);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    close(fd);
    return ok;
  }
  std::filesystem::path dir_;
  uint16_t port_ = 0;
  Process proc_;
};

// Posts `n` receipts of SKU-1 (qty 1 each) in batches of `batch`, event ids
// "<prefix>-<i>". False (and `why`) on the first non-200 answer.
inline bool PostReceipts(uint16_t port, const std::string& prefix, int n, int batch,
                         std::string* why) {
  for (int i = 0; i < n; i += batch) {
    std::vector<std::string> events;
    for (int k = i; k < std::min(n, i + batch); ++k) {
      events.push_back(ReceiptJson(prefix + "-" + std::to_string(k), "till-01", "SKU-1", 1));
    }
    HttpResult r = HttpPost(port, "/v1/events", BatchJson(events));
    if (r.status != 200) {
      if (why) *why = std::to_string(r.status) + " " + r.body + r.error;
      return false;
    }
  }
  return true;
}

// A sale of `qty` of `sku`: with no stock, it raises an oversell alert.
inline std::string SaleJson(const std::string& event_id, const std::string& sku, int64_t qty) {
  return R"({"event_id":")" + event_id + R"(","device_id":"till-01","occurred_at":1700000000000000,"sale":{"lines":[{"sku":")" +
         sku + R"(","qty":)" + std::to_string(qty) + R"(,"unit_price":250,"currency":"EUR"}]}})";
}

inline std::optional<v1::GatewayStatus> GetStatus(uint16_t port, const std::string& auth = "") {
  auto cli = LoopbackClient(port, 5s);
  httplib::Headers h;
  if (!auth.empty()) h.emplace("Authorization", auth);
  auto res = cli.Get("/v1/status", h);
  if (!res || res->status != 200) return std::nullopt;
  return FromJson<v1::GatewayStatus>(res->body);
}

// ------------------------------------------------------------ perishables

inline int64_t WallNowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A tray of `qty` of `sku` put out at `location` at `occurred_at_us`: the
// hold clock starts then, so an old occurred_at makes a batch due at once.
inline std::string ProductionJson(const std::string& event_id, const std::string& sku,
                                  int64_t qty, const std::string& location,
                                  int64_t occurred_at_us) {
  return R"({"event_id":")" + event_id + R"(","device_id":"kitchen-01","occurred_at":)" +
         std::to_string(occurred_at_us) + R"(,"production":{"sku":")" + sku + R"(","qty":)" +
         std::to_string(qty) + R"(,"location":")" + location + R"("}})";
}

inline std::string ReadingJson(const std::string& event_id, const std::string& sensor,
                               int64_t milli_celsius) {
  return R"({"event_id":")" + event_id + R"(","device_id":")" + sensor +
         R"(","occurred_at":)" + std::to_string(WallNowUs()) + R"(,"sensor":{"sensor_id":")" +
         sensor + R"(","metric":"temp_mc","value":)" + std::to_string(milli_celsius) + "}}";
}

// An sku a device may send (printable ASCII, no spaces) that is also
// markup: the page must show it as text.
inline const std::string kScriptSku = "<script>alert(1)</script>";
inline const std::string kImgLocation = "<img src=x onerror=alert(2)> oven";

// A daemon (uplink off, 4 h hold, excursions at once) with what a kitchen
// screen is for, in real time:
//   SKU-ROLL  x12 at "hot counter 1": due 40 min ago, escalated (30 min)
//   SKU-PIE   x4  at "deli": due 5 min ago
//   kScriptSku x3 at kImgLocation: due in 10 min
//   SKU-SOUP  x2  at "hot counter 1": due in 4 h
//   fridge-2 ("Dairy fridge 2", 0..5 °C) reads 9.5 °C: an excursion
//   freezer-1 ("freezer 1", silent after 1 s) reads -18 °C, then nothing
// Returns once /v1/status shows the four alerts (or nullopt and `why`).
inline std::optional<Daemon> StartPerishablesDaemon(const std::filesystem::path& dir,
                                                    const std::string& name, std::string* why) {
  std::filesystem::create_directories(dir);
  WriteFile(dir / "sensors.txt",
            "# SENSOR_ID MIN MAX [options] LOCATION\n"
            "fridge-2 0 5000 Dairy fridge 2\n"
            "freezer-1 -25000 -15000 silent_after=1s freezer 1\n");
  WriteFile(dir / "storegw.toml",
            "[gateway]\nstore_id = \"store-0042\"\ngateway_id = \"gw-01\"\n"
            "[uplink]\ntransport = \"none\"\n"
            "[perishables]\ndefault_hold = \"4h\"\nescalate_after = \"30m\"\n"
            "[cold_chain]\ngrace = \"0s\"\nsensors_file = \"" +
                (dir / "sensors.txt").string() + "\"\n");
  auto d = StartDaemon(dir / "data", dir / "logs", name, why, 0,
                       {"--config", (dir / "storegw.toml").string()});
  if (!d) return std::nullopt;
  const int64_t now = WallNowUs();
  constexpr int64_t kMinUs = 60'000'000;
  const int64_t hold = 240 * kMinUs;
  // One request per device (a batch holds one device's events).
  for (const std::string& body :
       {BatchJson({ProductionJson("p-roll", "SKU-ROLL", 12, "hot counter 1",
                                  now - hold - 40 * kMinUs),
                   ProductionJson("p-pie", "SKU-PIE", 4, "deli", now - hold - 5 * kMinUs),
                   ProductionJson("p-script", kScriptSku, 3, kImgLocation,
                                  now - hold + 10 * kMinUs),
                   ProductionJson("p-soup", "SKU-SOUP", 2, "hot counter 1", now)}),
        ReadingJson("t-fridge", "fridge-2", 9500), ReadingJson("t-freezer", "freezer-1", -18000)}) {
    HttpResult r = HttpPost(d->port, "/v1/events", body);
    if (r.status != 200) {
      if (why) *why = "posting the scene: " + std::to_string(r.status) + " " + r.body + r.error;
      return std::nullopt;
    }
  }
  std::optional<v1::GatewayStatus> last;
  const bool ready = WaitFor(
      [&] {
        last = GetStatus(d->port);
        if (!last) return false;
        int remove = 0, escalated = 0, excursion = 0, silent = 0;
        for (const auto& a : last->alerts()) {
          remove += a.kind() == v1::Alert::REMOVE_FROM_SHELF;
          escalated += a.kind() == v1::Alert::REMOVE_FROM_SHELF && a.escalated();
          excursion += a.kind() == v1::Alert::TEMPERATURE_EXCURSION;
          silent += a.kind() == v1::Alert::SENSOR_SILENT;
        }
        return remove == 2 && escalated == 1 && excursion == 1 && silent == 1;
      },
      20s, 100ms);
  if (!ready) {
    if (why) *why = "the scene's alerts did not all appear: " +
                    (last ? last->DebugString() : std::string("no status"));
    return std::nullopt;
  }
  return d;
}

}  // namespace storegw::test
