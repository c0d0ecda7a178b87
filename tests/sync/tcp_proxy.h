// A loopback TCP proxy for uplink tests and the uplink benchmark: it sits
// between the gateway and the broker, counts the bytes in each direction,
// and injects faults on command:
//   * CutAll(): close every proxied connection at once (both sides see a
//     reset/EOF: a dropped 4G link);
//   * SetStalled(true): stop moving bytes in both directions while keeping
//     the sockets open (a link that silently black-holes traffic); new
//     connections are accepted but stall too;
//   * SetRefuse(true): accept and immediately close new connections;
//   * SetRejectMqtt5(true): answer an MQTT 5 CONNECT with a 3.1.1-style
//     CONNACK "unacceptable protocol version" and close (a broker that only
//     speaks 3.1.1); other CONNECTs pass through;
//   * ArmFault(at_up_bytes, fault): cut or stall once the client->broker
//     byte count reaches a threshold, i.e. deterministically mid-transfer.
//
// One thread, poll(2), non-blocking sockets. Listens on 127.0.0.1 only; the
// destructor stops the thread and closes everything.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
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
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace storegw::sync_test {

class TcpProxy {
 public:
  enum class Fault { kCut, kStall };

  // Listens on 127.0.0.1:`listen_port` (0: any free port) and forwards to
  // 127.0.0.1:`upstream_port`.
  explicit TcpProxy(uint16_t upstream_port, uint16_t listen_port = 0) : upstream_(upstream_port) {
    lfd_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(listen_port);
    if (bind(lfd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(lfd_, 64) != 0) {
      const std::string e = std::strerror(errno);
      close(lfd_);
      throw std::runtime_error("proxy: cannot listen on 127.0.0.1:" + std::to_string(listen_port) +
                               ": " + e);
    }
    socklen_t len = sizeof a;
    getsockname(lfd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    if (pipe2(wake_, O_NONBLOCK | O_CLOEXEC) != 0) throw std::runtime_error("pipe2");
    thread_ = std::thread([this] { Loop(); });
  }

  ~TcpProxy() {
    stop_ = true;
    Wake();
    thread_.join();
    for (auto& p : pairs_) p->CloseBoth();
    close(lfd_);
    close(wake_[0]);
    close(wake_[1]);
  }

  TcpProxy(const TcpProxy&) = delete;
  TcpProxy& operator=(const TcpProxy&) = delete;

  uint16_t port() const { return port_; }
  void set_upstream(uint16_t port) { upstream_ = port; }

  void CutAll() {
    cut_req_ = true;
    Wake();
  }
  // Stalled for `duration` (0: until SetStalled(false)).
  void SetStalled(bool on, std::chrono::milliseconds duration = std::chrono::milliseconds(0)) {
    {
      std::lock_guard lk(mu_);
      stall_until_ = on && duration.count() > 0 ? std::chrono::steady_clock::now() + duration
                                                : std::chrono::steady_clock::time_point{};
    }
    stalled_ = on;
    Wake();
  }
  void SetRefuse(bool on) { refuse_ = on; }
  void SetRejectMqtt5(bool on) { reject_v5_ = on; }

  // Once up_bytes() reaches `at_up_bytes`: cut all, or stall for `stall`.
  void ArmFault(uint64_t at_up_bytes, Fault fault,
                std::chrono::milliseconds stall = std::chrono::milliseconds(0)) {
    std::lock_guard lk(mu_);
    faults_.push_back({at_up_bytes, fault, stall});
  }
  // Called on the proxy thread when an armed fault fires.
  void set_on_fault(std::function<void(Fault)> cb) {
    std::lock_guard lk(mu_);
    on_fault_ = std::move(cb);
  }

  uint64_t up_bytes() const { return up_.load(); }      // client -> upstream
  uint64_t down_bytes() const { return down_.load(); }  // upstream -> client
  uint64_t accepted() const { return accepted_.load(); }
  uint64_t cuts() const { return cuts_.load(); }
  uint64_t stalls() const { return stalls_.load(); }
  uint64_t rejected_v5() const { return rejected_v5_.load(); }
  size_t open_connections() const { return open_.load(); }

 private:
  struct Armed {
    uint64_t at;
    Fault fault;
    std::chrono::milliseconds stall;
  };

  struct Pair {
    int c = -1, u = -1;      // client, upstream
    std::string to_u, to_c;  // bytes read, not yet written
    bool inspected = false;  // CONNECT checked (reject_v5 mode)
    bool c_eof = false, u_eof = false;
    void CloseBoth() {
      if (c >= 0) close(c);
      if (u >= 0) close(u);
      c = u = -1;
    }
  };

  void Wake() {
    char b = 1;
    (void)!write(wake_[1], &b, 1);
  }

  static void Linger0(int fd) {
    linger l{1, 0};  // close with RST: a hard cut, like a dropped link
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  }

  int ConnectUpstream() {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(upstream_.load());
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      close(fd);
      return -1;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
  }

  void Accept() {
    for (;;) {
      int c = accept4(lfd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (c < 0) return;
      ++accepted_;
      if (refuse_) {
        Linger0(c);
        close(c);
        continue;
      }
      int u = ConnectUpstream();
      if (u < 0) {
        Linger0(c);
        close(c);
        continue;
      }
      int one = 1;
      setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      auto p = std::make_unique<Pair>();
      p->c = c;
      p->u = u;
      p->inspected = !reject_v5_;
      pairs_.push_back(std::move(p));
    }
  }

  // Reads what `from` has into `buf` (bounded). False on EOF/error.
  static bool ReadInto(int from, std::string& buf) {
    char tmp[65536];
    for (int i = 0; i < 4 && buf.size() < (1u << 20); ++i) {
      ssize_t n = read(from, tmp, sizeof tmp);
      if (n > 0) {
        buf.append(tmp, static_cast<size_t>(n));
        continue;
      }
      if (n == 0) return false;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
      if (errno == EINTR) continue;
      return false;
    }
    return true;
  }

  // Writes as much of `buf` as `to` takes; counts it. False on error.
  static bool Flush(int to, std::string& buf, std::atomic<uint64_t>& counter) {
    while (!buf.empty()) {
      ssize_t n = send(to, buf.data(), buf.size(), MSG_NOSIGNAL);
      if (n > 0) {
        counter += static_cast<uint64_t>(n);
        buf.erase(0, static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
      if (n < 0 && errno == EINTR) continue;
      return false;
    }
    return true;
  }

  // reject_v5 mode: look at the client's CONNECT before forwarding it.
  // Returns false when the pair must be closed (v5 refused).
  bool Inspect(Pair& p) {
    const std::string& b = p.to_u;
    if (b.empty()) return true;
    if (static_cast<unsigned char>(b[0]) != 0x10) {
      p.inspected = true;
      return true;
    }
    size_t i = 1, mult = 1;
    for (; i < b.size() && i < 5; ++i) {
      if ((static_cast<unsigned char>(b[i]) & 0x80) == 0) break;
      mult *= 128;
    }
    (void)mult;
    const size_t level_at = i + 1 + 2 + 4;  // after remaining length, name length, "MQTT"
    if (b.size() <= level_at) return true;  // need more bytes
    p.inspected = true;
    if (static_cast<unsigned char>(b[level_at]) == 5) {
      const char connack[] = {0x20, 0x02, 0x00, 0x01};
      (void)!send(p.c, connack, sizeof connack, MSG_NOSIGNAL);
      ++rejected_v5_;
      return false;
    }
    return true;
  }

  void CutAllNow() {
    for (auto& p : pairs_) {
      if (p->c >= 0) Linger0(p->c);
      if (p->u >= 0) Linger0(p->u);
      p->CloseBoth();
    }
    pairs_.clear();
    ++cuts_;
  }

  void CheckFaults() {
    std::function<void(Fault)> cb;
    std::vector<Fault> fired;
    {
      std::lock_guard lk(mu_);
      for (auto it = faults_.begin(); it != faults_.end();) {
        if (up_.load() >= it->at) {
          if (it->fault == Fault::kCut) {
            cut_req_ = true;
          } else {
            stalled_ = true;
            ++stalls_;
            stall_until_ = std::chrono::steady_clock::now() + it->stall;
          }
          fired.push_back(it->fault);
          it = faults_.erase(it);
        } else {
          ++it;
        }
      }
      cb = on_fault_;
    }
    if (cut_req_.exchange(false)) CutAllNow();
    if (cb) {
      for (Fault f : fired) cb(f);
    }
  }

  void Loop() {
    std::vector<pollfd> fds;
    while (!stop_) {
      {
        std::lock_guard lk(mu_);
        if (stalled_ && stall_until_ != std::chrono::steady_clock::time_point{} &&
            std::chrono::steady_clock::now() >= stall_until_) {
          stalled_ = false;
          stall_until_ = {};
        }
      }
      if (cut_req_.exchange(false)) CutAllNow();
      const bool stalled = stalled_.load();
      fds.clear();
      fds.push_back({wake_[0], POLLIN, 0});
      fds.push_back({lfd_, POLLIN, 0});
      // Stalled: the connections are not polled at all (poll would report
      // a peer's hang-up at once and spin), so nothing moves and nothing
      // is noticed until the stall ends.
      for (auto& p : pairs_) {
        if (stalled) break;
        short ce = 0, ue = 0;
        if (!p->c_eof && p->to_u.size() < (1u << 20)) ce |= POLLIN;
        if (!p->u_eof && p->to_c.size() < (1u << 20)) ue |= POLLIN;
        if (!p->to_c.empty()) ce |= POLLOUT;
        if (!p->to_u.empty() && p->inspected) ue |= POLLOUT;
        fds.push_back({p->c, ce, 0});
        fds.push_back({p->u, ue, 0});
      }
      open_ = pairs_.size();
      int timeout = stalled ? 20 : 200;
      if (poll(fds.data(), fds.size(), timeout) < 0 && errno != EINTR) break;
      if (fds[0].revents & POLLIN) {
        char buf[64];
        while (read(wake_[0], buf, sizeof buf) > 0) {
        }
      }
      if (fds[1].revents & POLLIN) Accept();
      if (stalled) continue;
      for (size_t i = 0; i < pairs_.size() && 2 + 2 * i + 1 < fds.size(); ++i) {
        Pair& p = *pairs_[i];
        const short cr = fds[2 + 2 * i].revents, ur = fds[2 + 2 * i + 1].revents;
        bool ok = true;
        if (cr & (POLLIN | POLLHUP | POLLERR)) {
          if (!ReadInto(p.c, p.to_u)) p.c_eof = true;
        }
        if (ur & (POLLIN | POLLHUP | POLLERR)) {
          if (!ReadInto(p.u, p.to_c)) p.u_eof = true;
        }
        if (!p.inspected && !Inspect(p)) ok = false;
        if (ok && p.inspected && !Flush(p.u, p.to_u, up_)) ok = false;
        if (ok && !Flush(p.c, p.to_c, down_)) ok = false;
        // A side that closed: pass the close on once its bytes are through.
        if ((p.c_eof && p.to_u.empty()) || (p.u_eof && p.to_c.empty())) ok = false;
        if (!ok) p.CloseBoth();
      }
      std::erase_if(pairs_, [](const std::unique_ptr<Pair>& p) { return p->c < 0; });
      CheckFaults();
    }
  }

  std::atomic<uint16_t> upstream_;
  uint16_t port_ = 0;
  int lfd_ = -1;
  int wake_[2] = {-1, -1};
  std::thread thread_;
  std::atomic<bool> stop_{false}, cut_req_{false}, stalled_{false}, refuse_{false},
      reject_v5_{false};
  std::atomic<uint64_t> up_{0}, down_{0}, accepted_{0}, cuts_{0}, stalls_{0}, rejected_v5_{0};
  std::atomic<size_t> open_{0};
  std::mutex mu_;  // guards faults_, on_fault_, stall_until_
  std::vector<Armed> faults_;
  std::function<void(Fault)> on_fault_;
  std::chrono::steady_clock::time_point stall_until_{};
  std::vector<std::unique_ptr<Pair>> pairs_;  // proxy thread only
};

}  // namespace storegw::sync_test
