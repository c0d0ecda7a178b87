// The HTTP/1.1 serving layer under the device API and the status listener:
// cpp-httplib's server with storegw's start-up, limits and shutdown rules,
// written once.
//
// What it adds to httplib:
//   * binding that says why it failed (the OS's reason: address in use, not
//     an address of this machine), and refuses to share a port (SO_REUSEADDR
//     only; httplib's default SO_REUSEPORT would let a second process bind
//     the same port silently and take half the requests);
//   * a listen backlog that survives many clients reconnecting at once;
//   * Start() returns only once the accept loop runs, so Stop() right after
//     Start() cannot leave a thread listening forever;
//   * Stop() is idempotent and thread-safe, and returns when every handler
//     has returned;
//   * answers counted by HTTP status code (for /metrics).
//
// Routes and the pre-routing, error and exception handlers are registered on
// raw() (an httplib::Server) before Start(); the post-routing handler is the
// layer's own (counting, Connection: close). Only .cc files that register
// routes include <httplib.h>.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "storegw/http/listen.h"
#include "storegw/status.h"

namespace httplib {
class Server;
}

namespace storegw::http {

// HTTPS instead of plain HTTP (Server::Start checks the files).
struct TlsOptions {
  // PEM: the server's certificate (chain) and its private key
  // (unencrypted). Empty cert_file: plain HTTP.
  std::string cert_file, key_file;
  // PEM CA certificate(s): non-empty requires every client to present a
  // certificate signed by one of them (mutual TLS).
  std::string client_ca_file;
  // Names the files' config keys in errors: "https" gives
  // "https.cert_file /etc/hq/server.pem: ...".
  std::string key_prefix = "tls";
};

struct ServerOptions {
  // Names the server in errors: "device API", "status.listen".
  std::string name = "HTTP server";
  // TLS 1.2 or later with these files when tls.cert_file is set.
  TlsOptions tls;
  // Worker threads; each open keep-alive connection holds one.
  int threads = 4;
  // An idle keep-alive connection is closed after this many seconds; also
  // bounds how long Stop() waits for idle connections.
  int keep_alive_timeout_s = 2;
  // Requests one connection may carry (httplib's default is 5).
  int keep_alive_max_count = 100000;
  // Headers/body not received, or a response not written, within this.
  int io_timeout_s = 5;
  // Bodies above this are answered 413.
  size_t max_body_bytes = 64 * 1024;
  // Pending connections the kernel queues before accept().
  int listen_backlog = 256;
  bool tcp_nodelay = true;
  // Polled after each answer: once it returns true, answers carry
  // "Connection: close" so that keep-alive clients let go during a
  // shutdown. Optional; must be thread-safe and quick.
  std::function<bool()> closing;
};

class Server {
 public:
  explicit Server(ServerOptions options);
  ~Server();  // Stop()
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Register routes and handlers here, before Start().
  httplib::Server& raw();

  // Binds `addr` (port 0: a free port) and starts serving on a thread of
  // its own. kUnavailable naming the address and the OS's reason when the
  // bind fails; kInvalidArgument naming the file and OpenSSL's reason when
  // a TLS file cannot be used. Call once.
  Status Start(const ListenAddress& addr);
  uint16_t port() const { return port_; }

  // Stops accepting, lets running handlers finish, joins. Idempotent.
  void Stop();

  // Every answer so far by HTTP status code, ascending; codes never answered
  // are left out.
  std::vector<std::pair<int, uint64_t>> ResponsesByCode() const;

 private:
  struct State;
  std::unique_ptr<State> s_;
  uint16_t port_ = 0;
};

}  // namespace storegw::http
