#include "status_server.h"

#include <sys/socket.h>

#include <array>
#include <atomic>
#include <mutex>
#include <thread>

#include <httplib.h>

#include "config.h"

namespace storegw::gateway {
namespace {

class StatusServerImpl final : public StatusServer {
 public:
  explicit StatusServerImpl(StatusHttp& routes) : routes_(routes) {}
  ~StatusServerImpl() override { Stop(); }

  Status Listen(const HostPort& addr, const std::string& listen);
  uint16_t port() const override { return port_; }
  void Stop() override;
  std::vector<std::pair<int, uint64_t>> ResponsesByCode() const override {
    std::vector<std::pair<int, uint64_t>> out;
    for (size_t code = 100; code < by_code_.size(); ++code) {
      if (uint64_t n = by_code_[code].load()) out.emplace_back(static_cast<int>(code), n);
    }
    return out;
  }

 private:
  void Serve(const httplib::Request& req, httplib::Response& res);

  StatusHttp& routes_;
  httplib::Server svr_;
  std::thread thread_;
  uint16_t port_ = 0;
  std::atomic<bool> exited_{false};
  std::mutex stop_mu_;
  bool stopped_ = false;  // guarded by stop_mu_
  std::array<std::atomic<uint64_t>, 600> by_code_{};
};

void StatusServerImpl::Serve(const httplib::Request& req, httplib::Response& res) {
  devices::HttpRequest r;
  r.method = req.method;
  r.path = req.path;
  for (const auto& [k, v] : req.params) r.query.emplace_back(k, v);
  r.authorization = req.get_header_value("Authorization");
  if (auto out = routes_.Handle(r)) {
    res.status = out->status;
    for (const auto& [k, v] : out->headers) res.set_header(k, v);
    res.set_content(std::move(out->body), out->content_type);
    return;
  }
  res.status = 404;
  res.set_content(
      "{\"error\":{\"code\":\"not_found\",\"message\":\"no such endpoint on the "
      "status listener (the device API is on http.listen)\",\"field\":\"\"}}",
      "application/json");
}

Status StatusServerImpl::Listen(const HostPort& addr, const std::string& listen) {
  // A few threads are plenty: people and a scraper, not tills.
  svr_.new_task_queue = [] { return new httplib::ThreadPool(4); };
  svr_.set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  svr_.set_keep_alive_timeout(2);
  svr_.set_read_timeout(5, 0);
  svr_.set_write_timeout(5, 0);
  svr_.set_payload_max_length(64 * 1024);
  svr_.set_post_routing_handler([this](const httplib::Request&, httplib::Response& res) {
    if (res.status >= 100 && res.status < 600) {
      by_code_[static_cast<size_t>(res.status)].fetch_add(1, std::memory_order_relaxed);
    }
  });
  svr_.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("{\"status\":\"ok\"}", "application/json");
  });
  svr_.Get(".*", [this](const httplib::Request& req, httplib::Response& res) { Serve(req, res); });
  auto not_allowed = [this](const httplib::Request& req, httplib::Response& res) {
    Serve(req, res);
  };
  svr_.Post(".*", not_allowed);
  svr_.Put(".*", not_allowed);
  svr_.Delete(".*", not_allowed);
  svr_.Patch(".*", not_allowed);

  int port = addr.port == 0 ? svr_.bind_to_any_port(addr.host)
                            : (svr_.bind_to_port(addr.host, addr.port) ? addr.port : -1);
  if (port <= 0) {
    return Status::Unavailable("status.listen: cannot listen on " + listen +
                               ": the address is in use by another program, or is not an "
                               "address of this machine");
  }
  port_ = static_cast<uint16_t>(port);
  thread_ = std::thread([this] {
    svr_.listen_after_bind();
    exited_.store(true);
  });
  while (!svr_.is_running()) {
    if (exited_.load()) {
      thread_.join();
      return Status::Unavailable("status.listen: the HTTP server on " + listen + " did not start");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return Status::Ok();
}

void StatusServerImpl::Stop() {
  std::lock_guard lock(stop_mu_);
  if (stopped_) return;
  svr_.stop();
  if (thread_.joinable()) thread_.join();
  stopped_ = true;
}

}  // namespace

Result<std::unique_ptr<StatusServer>> StatusServer::Start(const std::string& listen,
                                                          StatusHttp& routes) {
  auto addr = ParseListen(listen);
  if (!addr.ok()) {
    return Status::InvalidArgument("status.listen", "status.listen: " + addr.status().message());
  }
  auto server = std::make_unique<StatusServerImpl>(routes);
  if (Status s = server->Listen(*addr, listen); !s.ok()) return s;
  return std::unique_ptr<StatusServer>(std::move(server));
}

}  // namespace storegw::gateway
