// The serving layer over cpp-httplib 0.11.4 (Debian's compiled build).
#include "storegw/http/server.h"

#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <thread>

#include <httplib.h>

namespace storegw::http {

// Why a TLS context could not be set up: the option ("https.key_file")
// and what is wrong ("/etc/hq/key.pem: cannot open: ...").
struct TlsSetupError {
  std::string field, message;
};

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

// OpenSSL's reason for the last failure, "" when it gave none.
std::string OpenSslReason() {
  const unsigned long e = ERR_peek_last_error();
  ERR_clear_error();
  if (e == 0) return "";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

// Never prompt on a terminal for a key's passphrase.
int NoPassphrase(char*, int, int, void*) { return -1; }

// The server's TLS context from `t`: TLS 1.2 or later, the certificate
// chain and key, and with client_ca_file a required client certificate.
// False with `err` naming the key, the file and the reason.
bool SetUpTls(SSL_CTX& ctx, const TlsOptions& t, TlsSetupError* err) {
  const auto fail = [&](const char* key, const std::string& path, const std::string& why) {
    *err = {t.key_prefix + "." + key, path + ": " + why};
    return false;
  };
  const auto readable = [&](const char* key, const std::string& path) {
    errno = 0;
    if (std::FILE* f = std::fopen(path.c_str(), "rb")) {
      std::fclose(f);
      return true;
    }
    return fail(key, path, std::string("cannot open: ") + std::strerror(errno));
  };
  if (t.key_file.empty()) {
    *err = {t.key_prefix + ".key_file", "is required with " + t.key_prefix + ".cert_file"};
    return false;
  }
  SSL_CTX_set_min_proto_version(&ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(&ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_SESSION_RESUMPTION_ON_RENEGOTIATION);
  SSL_CTX_set_default_passwd_cb(&ctx, NoPassphrase);
  if (!readable("cert_file", t.cert_file)) return false;
  if (SSL_CTX_use_certificate_chain_file(&ctx, t.cert_file.c_str()) != 1) {
    return fail("cert_file", t.cert_file, "not a PEM certificate: " + OpenSslReason());
  }
  if (!readable("key_file", t.key_file)) return false;
  if (SSL_CTX_use_PrivateKey_file(&ctx, t.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
      OpenSslReason();
      return fail("key_file", t.key_file, "does not match the certificate in " + t.cert_file);
    }
    return fail("key_file", t.key_file,
                "not an unencrypted PEM private key: " + OpenSslReason());
  }
  if (SSL_CTX_check_private_key(&ctx) != 1) {
    OpenSslReason();
    return fail("key_file", t.key_file, "does not match the certificate in " + t.cert_file);
  }
  if (!t.client_ca_file.empty()) {
    if (!readable("client_ca_file", t.client_ca_file)) return false;
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(t.client_ca_file.c_str());
    if (names == nullptr ||
        SSL_CTX_load_verify_locations(&ctx, t.client_ca_file.c_str(), nullptr) != 1) {
      if (names) sk_X509_NAME_pop_free(names, X509_NAME_free);
      return fail("client_ca_file", t.client_ca_file,
                  "no PEM CA certificate: " + OpenSslReason());
    }
    SSL_CTX_set_client_CA_list(&ctx, names);  // takes ownership
    SSL_CTX_set_verify(&ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  }
  return true;
}

std::unique_ptr<httplib::Server> MakeServer(const ServerOptions& o, TlsSetupError* tls_error) {
  if (o.tls.cert_file.empty()) return std::make_unique<httplib::Server>();
  return std::make_unique<httplib::SSLServer>(
      [&o, tls_error](SSL_CTX& ctx) { return SetUpTls(ctx, o.tls, tls_error); });
}

}  // namespace

struct Server::State {
  explicit State(ServerOptions o)
      : options(std::move(o)), svr_ptr(MakeServer(options, &tls_error)), svr(*svr_ptr) {}

  const ServerOptions options;
  TlsSetupError tls_error;  // why the TLS context could not be set up
  const std::unique_ptr<httplib::Server> svr_ptr;  // an SSLServer with options.tls
  httplib::Server& svr;
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
  if (!s.svr.is_valid()) {
    if (s.tls_error.field.empty()) {
      return Status::InvalidArgument(o.tls.key_prefix, o.name + ": TLS set-up failed");
    }
    return Status::InvalidArgument(s.tls_error.field, s.tls_error.message);
  }
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
