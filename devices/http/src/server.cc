// The serving layer over cpp-httplib 0.11.4 (Debian's compiled build).
#include "storegw/http/server.h"

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <thread>

#include <httplib.h>

namespace storegw::http {
namespace {

// httplib does not say why a bind failed: try the same bind ourselves to get
// the OS's reason (address in use, not an address of this machine, ...).
std::string BindFailureReason(const ListenAddress& a) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* res = nullptr;
  const std::string port = std::to_string(a.port);
  if (int rc = getaddrinfo(a.host.c_str(), port.c_str(), &hints, &res); rc != 0) {
    return std::string("cannot resolve host: ") + gai_strerror(rc);
  }
  std::string reason = "bind failed";
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    const int fd = ::socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0) {
      reason = std::strerror(errno);
      continue;
    }
    int yes = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
      reason = std::strerror(errno);
    } else if (::listen(fd, 1) != 0) {
      reason = std::strerror(errno);
    }
    ::close(fd);
  }
  freeaddrinfo(res);
  return reason;
}

}  // namespace

struct Server::State {
  explicit State(ServerOptions o) : options(std::move(o)) {}

  const ServerOptions options;
  httplib::Server svr;
  std::thread thread;
  std::atomic<int> listen_fd{-1};
  std::atomic<bool> exited{false};  // set by the serving thread when it ends
  std::mutex stop_mu;
  bool stopped = false;  // guarded by stop_mu
  std::array<std::atomic<uint64_t>, 600> by_code{};  // answers by status (100..599)
};

Server::Server(ServerOptions options) : s_(std::make_unique<State>(std::move(options))) {}

Server::~Server() { Stop(); }

httplib::Server& Server::raw() { return s_->svr; }

Status Server::Start(const ListenAddress& addr) {
  State& s = *s_;
  const ServerOptions& o = s.options;
  s.svr.new_task_queue = [n = o.threads] { return new httplib::ThreadPool(static_cast<size_t>(n)); };
  // SO_REUSEADDR only: httplib's default also sets SO_REUSEPORT, which lets a
  // second process bind the same port silently and steal half the requests.
  s.svr.set_socket_options([&s](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    s.listen_fd.store(sock);
  });
  s.svr.set_keep_alive_timeout(o.keep_alive_timeout_s);
  s.svr.set_keep_alive_max_count(static_cast<size_t>(o.keep_alive_max_count));
  s.svr.set_read_timeout(o.io_timeout_s, 0);
  s.svr.set_write_timeout(o.io_timeout_s, 0);
  s.svr.set_tcp_nodelay(o.tcp_nodelay);
  s.svr.set_payload_max_length(o.max_body_bytes);
  s.svr.set_post_routing_handler([&s](const httplib::Request&, httplib::Response& res) {
    if (res.status >= 100 && res.status < 600) {
      s.by_code[static_cast<size_t>(res.status)].fetch_add(1, std::memory_order_relaxed);
    }
    // Once closing, end keep-alive connections after this answer so that
    // Stop() does not wait for busy clients.
    if (s.options.closing && s.options.closing()) res.set_header("Connection", "close");
  });

  int port = -1;
  if (addr.port == 0) {
    port = s.svr.bind_to_any_port(addr.host);
  } else if (s.svr.bind_to_port(addr.host, addr.port)) {
    port = addr.port;
  }
  if (port <= 0) {
    return Status::Unavailable(o.name + ": cannot listen on " + addr.ToString() + ": " +
                               BindFailureReason(addr) +
                               " (is another storegw or service using it?)");
  }
  port_ = static_cast<uint16_t>(port);
  // httplib listens with a backlog of 5: many clients reconnecting at once
  // would see their SYNs dropped for a second. Listening again on the bound
  // socket only raises the backlog.
  if (int fd = s.listen_fd.load(); fd >= 0) ::listen(fd, o.listen_backlog);

  s.thread = std::thread([&s] {
    s.svr.listen_after_bind();
    s.exited.store(true);
  });
  // stop() is a no-op until the accept loop runs: wait for it (the thread
  // gets there at once, or returns at once on failure), so that a Stop()
  // right after Start() cannot leave the thread listening forever.
  while (!s.svr.is_running()) {
    if (s.exited.load()) {
      s.thread.join();
      return Status::Unavailable(o.name + ": the HTTP server on " + addr.ToString() +
                                 " did not start");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return Status::Ok();
}

void Server::Stop() {
  State& s = *s_;
  std::lock_guard lock(s.stop_mu);
  if (s.stopped) return;
  // stop() closes the listening socket; listen_after_bind() then shuts the
  // thread pool down, which waits for every queued and running connection,
  // so every handler has returned when the join does.
  s.svr.stop();
  if (s.thread.joinable()) s.thread.join();
  s.stopped = true;
}

std::vector<std::pair<int, uint64_t>> Server::ResponsesByCode() const {
  std::vector<std::pair<int, uint64_t>> out;
  for (size_t code = 100; code < s_->by_code.size(); ++code) {
    if (uint64_t n = s_->by_code[code].load()) out.emplace_back(static_cast<int>(code), n);
  }
  return out;
}

}  // namespace storegw::http
