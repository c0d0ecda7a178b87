// Helpers for the HTTPS uplink tests and benchmark:
//   * HqServer: a deduping head office on a loopback HTTPS port (cpp-httplib
//     SSLServer; Debian builds it with CPPHTTPLIB_OPENSSL_SUPPORT and zlib,
//     so a Content-Encoding: deflate body arrives inflated). It checks every
//     POST (content type, Idempotency-Key against the body's epoch and seq
//     range, contiguous batch), stores each event by seq once, applies the
//     contiguous prefix in seq order, and can inject 503s with Retry-After,
//     stalls and permanent refusals through a hook.
//   * ConnectProxy: a tiny HTTP CONNECT proxy (thread per tunnel) that
//     records each CONNECT target, the Proxy-Authorization it got, and the
//     local ports of its upstream sockets (so a test can prove that HQ's
//     requests came through it).
// Both listen on 127.0.0.1 port 0 and stop (threads joined, sockets
// closed) in their destructors.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>

#include "storegw/storage/journal.h"
#include "storegw/v1/storegw.pb.h"

namespace storegw::https_test {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// ------------------------------------------------------------ HQ

class HqServer {
 public:
  struct Options {
    std::string cert_file, key_file;
    std::string client_ca_file;  // non-empty: client certificates required
    std::string path = "/v1/batches";
    std::string store_id = "store-0001";
    std::string gateway_id = "gw-01";
    int threads = 16;
  };

  // What to do with one POST (n counts POSTs from 1).
  struct Action {
    int status = 200;
    std::chrono::milliseconds delay{0};  // before answering (a stall)
    bool store = true;                   // store the batch (before answering)
    std::string retry_after;             // header value, "" for none
    std::string body;
  };
  using Hook = std::function<Action(uint64_t n, const v1::EventBatch& batch)>;

  explicit HqServer(Options o) : o_(std::move(o)) {
    svr_ = o_.client_ca_file.empty()
               ? std::make_unique<httplib::SSLServer>(o_.cert_file.c_str(), o_.key_file.c_str())
               : std::make_unique<httplib::SSLServer>(o_.cert_file.c_str(), o_.key_file.c_str(),
                                                      o_.client_ca_file.c_str());
    if (!svr_->is_valid()) throw std::runtime_error("HQ: bad server certificate or key");
    const int threads = o_.threads;
    svr_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
    // Without it the answer's header and body writes meet Nagle and the
    // client's delayed ACK: 40 ms per request.
    svr_->set_tcp_nodelay(true);
    svr_->set_keep_alive_max_count(1000000);
    svr_->set_keep_alive_timeout(30);
    svr_->set_read_timeout(30, 0);
    svr_->set_payload_max_length(64u << 20);
    svr_->Post(o_.path,
               [this](const httplib::Request& req, httplib::Response& res) { OnPost(req, res); });
    // Anything else (the transport's HEAD probe): 204.
    svr_->set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (req.method == "POST" && req.path == o_.path)
        return httplib::Server::HandlerResponse::Unhandled;
      ++other_requests_;
      {
        std::lock_guard lk(mu_);
        for (auto& gap : retry_gaps_) {
          if (gap.second == Clock::time_point{}) gap.second = Clock::now();
        }
      }
      res.status = 204;
      return httplib::Server::HandlerResponse::Handled;
    });
    port_ = svr_->bind_to_any_port("127.0.0.1");
    if (port_ <= 0) throw std::runtime_error("HQ: cannot bind 127.0.0.1:0");
    thread_ = std::thread([this] { svr_->listen_after_bind(); });
    const auto deadline = Clock::now() + 10s;
    while (!svr_->is_running() && Clock::now() < deadline) std::this_thread::sleep_for(5ms);
  }
  ~HqServer() {
    svr_->stop();
    if (thread_.joinable()) thread_.join();
  }
  HqServer(const HqServer&) = delete;
  HqServer& operator=(const HqServer&) = delete;

  uint16_t port() const { return static_cast<uint16_t>(port_); }
  std::string url(uint16_t port = 0) const {
    return "https://127.0.0.1:" + std::to_string(port ? port : port_) + o_.path;
  }
  void set_hook(Hook h) {
    std::lock_guard lk(mu_);
    hook_ = std::move(h);
  }

  // ---- what HQ saw
  uint64_t posts() const { return posts_.load(); }
  uint64_t other_requests() const { return other_requests_.load(); }
  uint64_t applied() const {
    std::lock_guard lk(mu_);
    return applied_;
  }
  uint64_t duplicates() const {
    std::lock_guard lk(mu_);
    return duplicates_;
  }
  std::vector<std::string> errors() const {
    std::lock_guard lk(mu_);
    return errors_;
  }
  // POSTs whose Idempotency-Key matched the body (all of them, or a bug).
  uint64_t keys_ok() const { return keys_ok_.load(); }
  uint64_t deflated() const { return deflated_.load(); }
  std::map<int, uint64_t> answers() const {
    std::lock_guard lk(mu_);
    return answers_;
  }
  // Distinct client connections (remote address:port) that sent a POST.
  std::set<int> remote_ports() const {
    std::lock_guard lk(mu_);
    return remote_ports_;
  }
  // POSTs per Idempotency-Key.
  std::map<std::string, int> keys() const {
    std::lock_guard lk(mu_);
    return keys_;
  }
  // When each answer with a Retry-After was given, and when the next
  // connection's HEAD probe arrived after it (pairs; the second is empty
  // until it came).
  std::vector<std::pair<Clock::time_point, Clock::time_point>> retry_gaps() const {
    std::lock_guard lk(mu_);
    return retry_gaps_;
  }
  uint64_t payload_bytes() const { return payload_bytes_.load(); }

  // Every seq 1..last_seq of the journal applied exactly once, in order,
  // carrying the journal's event: "" or what is wrong.
  std::string Verify(storage::Journal& j) const {
    std::lock_guard lk(mu_);
    if (!errors_.empty()) return "HQ error: " + errors_.front();
    if (epoch_ != j.epoch()) return "wrong epoch";
    const uint64_t n = j.Stats().last_seq;
    if (applied_ != n) return "applied " + std::to_string(applied_) + " of " + std::to_string(n);
    for (uint64_t seq = 1; seq <= n;) {
      auto r = j.ReadEvents(seq, 5000, 64u << 20);
      if (!r.ok() || r->empty()) return "journal read failed at " + std::to_string(seq);
      for (const auto& je : *r) {
        if (je.seq() != seq) return "journal gap at " + std::to_string(seq);
        if (applied_ids_[seq - 1] != je.event().event_id()) {
          return "seq " + std::to_string(seq) + " carries " + applied_ids_[seq - 1] +
                 ", the journal has " + je.event().event_id();
        }
        ++seq;
      }
    }
    return "";
  }

 private:
  static std::string Header(const httplib::Request& req, const char* name) {
    return req.has_header(name) ? req.get_header_value(name) : std::string();
  }

  void OnPost(const httplib::Request& req, httplib::Response& res) {
    const uint64_t n = ++posts_;
    v1::EventBatch b;
    Hook hook;
    {
      std::lock_guard lk(mu_);
      hook = hook_;
      remote_ports_.insert(req.remote_port);
      if (Header(req, "Content-Type") != "application/x-protobuf") {
        errors_.push_back("POST " + std::to_string(n) + ": Content-Type " +
                          Header(req, "Content-Type"));
      }
      if (!b.ParseFromString(req.body)) {
        errors_.push_back("POST " + std::to_string(n) + ": body is not an EventBatch");
        res.status = 400;
        return;
      }
      payload_bytes_ += req.body.size();
      if (Header(req, "Content-Encoding") == "deflate") ++deflated_;
      const std::string key = Header(req, "Idempotency-Key");
      const std::string want = b.gateway_id() + "-" + std::to_string(b.epoch()) + "-" +
                               std::to_string(b.first_seq()) + "-" + std::to_string(b.last_seq());
      ++keys_[key];
      if (key == want) {
        ++keys_ok_;
      } else {
        errors_.push_back("POST " + std::to_string(n) + ": Idempotency-Key '" + key +
                          "', body says '" + want + "'");
      }
      if (b.store_id() != o_.store_id || b.gateway_id() != o_.gateway_id) {
        errors_.push_back("batch for " + b.store_id() + "/" + b.gateway_id());
      }
      if (b.events_size() == 0 || b.events(0).seq() != b.first_seq() ||
          b.events(b.events_size() - 1).seq() != b.last_seq() ||
          b.last_seq() - b.first_seq() + 1 != static_cast<uint64_t>(b.events_size())) {
        errors_.push_back("batch " + std::to_string(b.first_seq()) + ".." +
                          std::to_string(b.last_seq()) + " is not one contiguous range");
      }
    }
    Action a = hook ? hook(n, b) : Action{};
    if (a.delay.count() > 0) std::this_thread::sleep_for(a.delay);
    std::lock_guard lk(mu_);
    if (a.store) Store(b);
    ++answers_[a.status];
    res.status = a.status;
    if (!a.retry_after.empty()) {
      res.set_header("Retry-After", a.retry_after);
      retry_gaps_.push_back({Clock::now(), Clock::time_point{}});
    }
    res.set_content(a.body.empty() ? (a.status / 100 == 2 ? "stored" : "not stored") : a.body,
                    "text/plain");
  }

  // Stores each event once (dedupe on gateway, epoch, seq) and applies the
  // contiguous prefix in seq order. Caller holds mu_.
  void Store(const v1::EventBatch& b) {
    if (epoch_ == 0) epoch_ = b.epoch();
    if (b.epoch() != epoch_) {
      errors_.push_back("a second epoch");
      return;
    }
    for (const auto& je : b.events()) {
      if (je.seq() <= applied_) {
        ++duplicates_;
        if (applied_ids_[je.seq() - 1] != je.event().event_id()) {
          errors_.push_back("seq " + std::to_string(je.seq()) + " came back with another event");
        }
        continue;
      }
      auto [it, fresh] = stored_.emplace(je.seq(), je.event().event_id());
      if (!fresh) {
        ++duplicates_;
        if (it->second != je.event().event_id()) {
          errors_.push_back("seq " + std::to_string(je.seq()) + " came back with another event");
        }
      }
    }
    for (auto it = stored_.find(applied_ + 1); it != stored_.end() && it->first == applied_ + 1;
         it = stored_.erase(it)) {
      applied_ids_.push_back(it->second);
      ++applied_;
    }
  }

  Options o_;
  std::unique_ptr<httplib::SSLServer> svr_;
  int port_ = 0;
  std::thread thread_;
  std::atomic<uint64_t> posts_{0}, other_requests_{0}, keys_ok_{0}, deflated_{0}, payload_bytes_{0};
  mutable std::mutex mu_;  // guards everything below
  Hook hook_;
  uint64_t epoch_ = 0;
  uint64_t applied_ = 0;
  uint64_t duplicates_ = 0;
  std::vector<std::string> applied_ids_;    // index seq-1
  std::map<uint64_t, std::string> stored_;  // beyond applied_, waiting for the gap
  std::vector<std::string> errors_;
  std::map<int, uint64_t> answers_;
  std::set<int> remote_ports_;
  std::map<std::string, int> keys_;
  std::vector<std::pair<Clock::time_point, Clock::time_point>> retry_gaps_;
};

// ------------------------------------------------------------ CONNECT proxy

class ConnectProxy {
 public:
  ConnectProxy() {
    lfd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (bind(lfd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(lfd_, 16) != 0 ||
        getsockname(lfd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      close(lfd_);
      throw std::runtime_error("proxy: cannot listen on 127.0.0.1:0");
    }
    port_ = ntohs(a.sin_port);
    accept_ = std::thread([this] { AcceptLoop(); });
  }
  ~ConnectProxy() {
    stop_ = true;
    shutdown(lfd_, SHUT_RDWR);
    accept_.join();
    std::vector<std::thread> tunnels;
    {
      std::lock_guard lk(mu_);
      tunnels.swap(tunnels_);
    }
    for (auto& t : tunnels) t.join();
    close(lfd_);
  }
  ConnectProxy(const ConnectProxy&) = delete;
  ConnectProxy& operator=(const ConnectProxy&) = delete;

  uint16_t port() const { return port_; }
  std::vector<std::string> targets() const {
    std::lock_guard lk(mu_);
    return targets_;
  }
  std::vector<std::string> proxy_auth() const {
    std::lock_guard lk(mu_);
    return auth_;
  }
  std::set<int> upstream_ports() const {
    std::lock_guard lk(mu_);
    return upstream_ports_;
  }

 private:
  void AcceptLoop() {
    while (!stop_) {
      pollfd p{lfd_, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      int c = accept4(lfd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      std::lock_guard lk(mu_);
      tunnels_.emplace_back([this, c] { Tunnel(c); });
    }
  }

  void Tunnel(int c) {
    // Read the CONNECT request head.
    std::string head;
    char buf[16384];
    while (head.find("\r\n\r\n") == std::string::npos && head.size() < 8192 && !stop_) {
      pollfd p{c, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      ssize_t n = read(c, buf, sizeof buf);
      if (n <= 0) {
        close(c);
        return;
      }
      head.append(buf, static_cast<size_t>(n));
    }
    const auto eol = head.find("\r\n");
    const std::string line = head.substr(0, eol);
    std::string target, auth;
    if (line.rfind("CONNECT ", 0) == 0) target = line.substr(8, line.find(' ', 8) - 8);
    const std::string auth_name = "\r\nProxy-Authorization: ";
    if (auto at = head.find(auth_name); at != std::string::npos) {
      auth = head.substr(at + auth_name.size(),
                         head.find("\r\n", at + auth_name.size()) - at - auth_name.size());
    }
    int u = -1;
    const auto colon = target.rfind(':');
    if (colon != std::string::npos && target.substr(0, colon) == "127.0.0.1") {
      u = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      a.sin_port = htons(static_cast<uint16_t>(std::stoi(target.substr(colon + 1))));
      if (connect(u, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        close(u);
        u = -1;
      }
    }
    {
      std::lock_guard lk(mu_);
      targets_.push_back(target);
      auth_.push_back(auth);
      if (u >= 0) {
        sockaddr_in l{};
        socklen_t len = sizeof l;
        getsockname(u, reinterpret_cast<sockaddr*>(&l), &len);
        upstream_ports_.insert(ntohs(l.sin_port));
      }
    }
    const std::string answer = u >= 0 ? "HTTP/1.1 200 Connection established\r\n\r\n"
                                      : "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n";
    (void)!send(c, answer.data(), answer.size(), MSG_NOSIGNAL);
    if (u < 0) {
      close(c);
      return;
    }
    // Bytes after the head (none for a well-behaved client) go upstream.
    if (const size_t rest = head.find("\r\n\r\n") + 4; rest < head.size()) {
      (void)!send(u, head.data() + rest, head.size() - rest, MSG_NOSIGNAL);
    }
    pollfd fds[2] = {{c, POLLIN, 0}, {u, POLLIN, 0}};
    bool open = true;
    while (open && !stop_) {
      if (poll(fds, 2, 100) <= 0) continue;
      for (int i = 0; i < 2 && open; ++i) {
        if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        ssize_t n = read(fds[i].fd, buf, sizeof buf);
        if (n <= 0) {
          open = false;
          break;
        }
        const int to = fds[1 - i].fd;
        for (ssize_t off = 0; off < n;) {
          ssize_t w = send(to, buf + off, static_cast<size_t>(n - off), MSG_NOSIGNAL);
          if (w <= 0) {
            open = false;
            break;
          }
          off += w;
        }
      }
    }
    close(c);
    close(u);
  }

  int lfd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread accept_;
  mutable std::mutex mu_;  // guards the members below
  std::vector<std::thread> tunnels_;
  std::vector<std::string> targets_, auth_;
  std::set<int> upstream_ports_;
};

}  // namespace storegw::https_test
