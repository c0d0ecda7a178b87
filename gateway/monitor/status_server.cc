#include "storegw/monitor/status_server.h"

#include <atomic>

#include <httplib.h>

#include "storegw/config/config.h"
#include "storegw/http/listen.h"
#include "storegw/http/server.h"
#include "storegw/v1/warmup.h"

namespace storegw::gateway {
namespace {

http::ServerOptions StatusServerOptions() {
  http::ServerOptions o;
  o.name = "status.listen";
  o.threads = 4;  // people and a scraper, not tills
  o.keep_alive_timeout_s = 2;
  o.io_timeout_s = 5;
  o.max_body_bytes = 64 * 1024;
  return o;
}

class StatusServerImpl final : public StatusServer {
 public:
  explicit StatusServerImpl(StatusHttp& routes) : routes_(routes), server_(StatusServerOptions()) {}
  ~StatusServerImpl() override { Stop(); }

  Status Listen(const http::ListenAddress& addr);
  uint16_t port() const override { return server_.port(); }
  void SetReady(bool ready) override { ready_.store(ready); }
  void BeginShutdown() override { shutting_down_.store(true); }
  void Stop() override { server_.Stop(); }
  std::vector<std::pair<int, uint64_t>> ResponsesByCode() const override {
    return server_.ResponsesByCode();
  }

 private:
  void Serve(const httplib::Request& req, httplib::Response& res);

  void Readyz(httplib::Response& res) const;

  StatusHttp& routes_;
  http::Server server_;
  std::atomic<bool> ready_{false};
  std::atomic<bool> shutting_down_{false};
};

// As the device API answers it (devices/src/device_api.cc).
void StatusServerImpl::Readyz(httplib::Response& res) const {
  if (shutting_down_.load() || !ready_.load()) {
    res.status = 503;
    res.set_content(shutting_down_.load()
                        ? "{\"error\":{\"code\":\"unavailable\",\"message\":\"shutting "
                          "down\",\"field\":\"\"}}"
                        : "{\"error\":{\"code\":\"unavailable\",\"message\":\"not ready yet "
                          "(starting up)\",\"field\":\"\"}}",
                    "application/json");
    return;
  }
  res.set_content("{\"status\":\"ready\"}", "application/json");
}

void StatusServerImpl::Serve(const httplib::Request& req, httplib::Response& res) {
  devices::HttpRequest r;
  r.method = req.method;
  r.path = req.path;
  for (const auto& [k, v] : req.params) r.query.emplace_back(k, v);
  r.authorization = req.get_header_value("Authorization");
  r.body = req.body;  // POST /v1/alerts/{seq}/ack; at most kMaxStatusBody
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

Status StatusServerImpl::Listen(const http::ListenAddress& addr) {
  httplib::Server& svr = server_.raw();
  // The only body this listener reads is an acknowledgement.
  constexpr size_t kMaxStatusBody = 4096;
  svr.set_payload_max_length(kMaxStatusBody);
  svr.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("{\"status\":\"ok\"}", "application/json");
  });
  svr.Get("/readyz", [this](const httplib::Request&, httplib::Response& res) { Readyz(res); });
  const auto serve = [this](const httplib::Request& req, httplib::Response& res) {
    Serve(req, res);
  };
  svr.Get(".*", serve);
  svr.Post(".*", serve);
  svr.Put(".*", serve);
  svr.Delete(".*", serve);
  svr.Patch(".*", serve);
  return server_.Start(addr);
}

}  // namespace

Result<std::unique_ptr<StatusServer>> StatusServer::Start(const std::string& listen,
                                                          StatusHttp& routes) {
  auto addr = http::ParseListenAddress(listen);
  if (!addr.ok()) {
    return Status::InvalidArgument("status.listen", "status.listen: " + addr.status().message());
  }
  v1::WarmUpProtobuf();  // before the server's threads (storegw/v1/warmup.h)
  auto server = std::make_unique<StatusServerImpl>(routes);
  if (Status s = server->Listen(*addr); !s.ok()) return s;
  return std::unique_ptr<StatusServer>(std::move(server));
}

}  // namespace storegw::gateway
