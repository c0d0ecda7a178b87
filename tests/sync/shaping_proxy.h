// A thin link in user space, for the thin-link benchmark and tests: a
// loopback TCP proxy that forwards each direction through a model of a slow
// line with a long round trip.
//
// Each direction is a bottleneck of `rate` bytes/s followed by `one_way`
// of propagation delay: a chunk read at time t leaves the bottleneck at
// max(t, when the previous chunk left) + size/rate and is written to the
// other side `one_way` after that. The bottleneck holds at most `buffer`
// bytes (a router's queue); while it is full the proxy stops reading, so
// the sender's TCP sees the line fill up as it would on a real link (flow
// control instead of loss: loss is not modelled).
//
// What it counts is TCP payload (what the application sent), per direction
// — the bytes the line carries apart from TCP/IP headers.
//
// Two threads per connection (one per direction), blocking sockets with
// poll timeouts; listens on 127.0.0.1 only; the destructor closes every
// socket and joins every thread.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace storegw::sync_test {

struct LinkShape {
  double up_rate = 125000;    // client -> upstream, bytes/s (1 Mbit/s)
  double down_rate = 125000;  // upstream -> client
  std::chrono::microseconds one_way{150000};  // 300 ms round trip
  size_t buffer = 64 * 1024;  // bytes queued at the bottleneck, at most
};

class ShapingProxy {
 public:
  ShapingProxy(uint16_t upstream_port, LinkShape shape) : upstream_(upstream_port), shape_(shape) {
    lfd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    if (bind(lfd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(lfd_, 16) != 0) {
      close(lfd_);
      throw std::runtime_error("shaping proxy: cannot listen on 127.0.0.1");
    }
    socklen_t len = sizeof a;
    getsockname(lfd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    accept_ = std::thread([this] { AcceptLoop(); });
  }

  ~ShapingProxy() {
    stop_ = true;
    shutdown(lfd_, SHUT_RDWR);
    accept_.join();
    close(lfd_);
    std::lock_guard lk(mu_);
    for (auto& c : conns_) {
      shutdown(c->client, SHUT_RDWR);
      shutdown(c->upstream, SHUT_RDWR);
    }
    for (auto& c : conns_) {
      c->up.join();
      c->down.join();
      close(c->client);
      close(c->upstream);
    }
  }

  ShapingProxy(const ShapingProxy&) = delete;
  ShapingProxy& operator=(const ShapingProxy&) = delete;

  uint16_t port() const { return port_; }
  uint64_t up_bytes() const { return up_bytes_.load(); }      // client -> upstream
  uint64_t down_bytes() const { return down_bytes_.load(); }  // upstream -> client
  // Time the up direction's bottleneck was sending (busy), in seconds.
  double up_busy_seconds() const { return static_cast<double>(up_busy_us_.load()) / 1e6; }
  uint64_t connections() const { return accepted_.load(); }

 private:
  using Clock = std::chrono::steady_clock;

  struct Conn {
    int client = -1, upstream = -1;
    std::thread up, down;
  };

  struct Chunk {
    std::string bytes;
    Clock::time_point depart;  // leaves the bottleneck
    Clock::time_point arrive;  // reaches the other side
  };

  void AcceptLoop() {
    while (!stop_) {
      int c = accept4(lfd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) {
        if (stop_) return;
        if (errno == EINTR || errno == ECONNABORTED) continue;
        return;
      }
      int u = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      a.sin_port = htons(upstream_);
      if (connect(u, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        close(u);
        close(c);
        continue;
      }
      int one = 1;
      setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      setsockopt(u, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      // Small kernel buffers, so the bottleneck's queue is the model's and
      // not the loopback socket's.
      int sz = 16 * 1024;
      setsockopt(c, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
      setsockopt(u, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
      ++accepted_;
      auto conn = std::make_unique<Conn>();
      conn->client = c;
      conn->upstream = u;
      Conn* p = conn.get();
      std::lock_guard lk(mu_);
      if (stop_) {
        close(c);
        close(u);
        return;
      }
      p->up = std::thread([this, p] { Pump(p->client, p->upstream, shape_.up_rate, up_bytes_, true); });
      p->down = std::thread(
          [this, p] { Pump(p->upstream, p->client, shape_.down_rate, down_bytes_, false); });
      conns_.push_back(std::move(conn));
    }
  }

  // One direction: from -> bottleneck (rate, buffer) -> delay -> to.
  void Pump(int from, int to, double rate, std::atomic<uint64_t>& counted, bool up) {
    std::deque<Chunk> line;
    Clock::time_point free_at = Clock::now();  // when the bottleneck is next idle
    bool eof = false;
    char buf[16384];
    while (!stop_) {
      const auto now = Clock::now();
      // Deliver what has arrived.
      while (!line.empty() && line.front().arrive <= now) {
        const std::string& b = line.front().bytes;
        size_t off = 0;
        while (off < b.size()) {
          ssize_t n = send(to, b.data() + off, b.size() - off, MSG_NOSIGNAL);
          if (n <= 0) {
            if (n < 0 && errno == EINTR) continue;
            shutdown(from, SHUT_RDWR);
            return;
          }
          off += static_cast<size_t>(n);
        }
        line.pop_front();
      }
      // Bytes still in the bottleneck (not yet departed): its queue.
      size_t queued = 0;
      for (auto it = line.rbegin(); it != line.rend() && it->depart > now; ++it) {
        queued += it->bytes.size();
      }
      if (eof && line.empty()) {
        shutdown(to, SHUT_WR);
        return;
      }
      int timeout_ms = 50;
      if (!line.empty()) {
        const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(
            line.front().arrive - now);
        timeout_ms = static_cast<int>(std::max<int64_t>(0, wait.count()));
        if (line.front().arrive > now && timeout_ms == 0) timeout_ms = 1;
      }
      if (eof) {  // nothing more to read: wait for the next delivery
        std::this_thread::sleep_for(std::chrono::milliseconds(std::max(timeout_ms, 1)));
        continue;
      }
      if (queued >= shape_.buffer) {  // the bottleneck is full: it drains by the ms
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        continue;
      }
      pollfd p{from, POLLIN, 0};
      const int r = poll(&p, 1, timeout_ms);
      if (r <= 0) continue;
      const size_t room = std::min(sizeof buf, shape_.buffer - queued);
      ssize_t n = recv(from, buf, room, 0);
      if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
        eof = true;
        continue;
      }
      if (n < 0) continue;
      const auto t = Clock::now();
      const auto start = std::max(t, free_at);
      const auto tx = std::chrono::duration_cast<Clock::duration>(
          std::chrono::duration<double>(static_cast<double>(n) / rate));
      free_at = start + tx;
      if (up) up_busy_us_ += std::chrono::duration_cast<std::chrono::microseconds>(tx).count();
      line.push_back({std::string(buf, static_cast<size_t>(n)), free_at, free_at + shape_.one_way});
      counted += static_cast<uint64_t>(n);
    }
  }

  const uint16_t upstream_;
  const LinkShape shape_;
  int lfd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> up_bytes_{0}, down_bytes_{0}, up_busy_us_{0}, accepted_{0};
  std::thread accept_;
  std::mutex mu_;
  std::vector<std::unique_ptr<Conn>> conns_;
};

}  // namespace storegw::sync_test
