// Helpers of the status page integration tests, on top of
// tests/gateway/test_util.h: a config file, a mosquitto broker on a free
// loopback port, posting receipts in batches, reading /v1/status.
#pragma once

#include <sys/stat.h>

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

}  // namespace storegw::test
