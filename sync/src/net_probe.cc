#include "net_probe.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <cerrno>
#include <cstring>

namespace storegw::sync {
namespace {

// Connected socket (blocking, with send/receive timeouts) or -1 and `err`.
int Connect(const std::string& host, uint16_t port, std::chrono::milliseconds timeout,
            std::string* err) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const std::string port_s = std::to_string(port);
  if (int rc = getaddrinfo(host.c_str(), port_s.c_str(), &hints, &res); rc != 0) {
    *err = std::string("cannot resolve host: ") + gai_strerror(rc);
    return -1;
  }
  *err = "no address";
  int out = -1;
  for (addrinfo* ai = res; ai && out < 0; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      *err = std::strerror(errno);
      continue;
    }
    int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      rc = poll(&p, 1, static_cast<int>(timeout.count()));
      if (rc == 1) {
        int so = 0;
        socklen_t len = sizeof so;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &so, &len);
        errno = so;
        rc = so == 0 ? 0 : -1;
      } else {
        errno = rc == 0 ? ETIMEDOUT : errno;
        rc = -1;
      }
    }
    if (rc == 0) {
      fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
      timeval tv{static_cast<time_t>(timeout.count() / 1000),
                 static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
      out = fd;
      err->clear();
    } else {
      *err = std::strerror(errno);
      close(fd);
    }
  }
  freeaddrinfo(res);
  return out;
}

std::string SslErrors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    const char* reason = ERR_reason_error_string(e);
    if (!out.empty()) out += "; ";
    if (reason) {
      out += reason;
    } else {
      char buf[256];
      ERR_error_string_n(e, buf, sizeof buf);
      out += buf;
    }
  }
  return out;
}

bool IsIpAddress(const std::string& host) {
  in6_addr a6;
  in_addr a4;
  return inet_pton(AF_INET, host.c_str(), &a4) == 1 || inet_pton(AF_INET6, host.c_str(), &a6) == 1;
}

}  // namespace

std::string TcpProbe(const std::string& host, uint16_t port, std::chrono::milliseconds timeout) {
  std::string err;
  int fd = Connect(host, port, timeout, &err);
  if (fd >= 0) close(fd);
  return err;
}

std::string TlsProbe(const std::string& host, uint16_t port, const TlsFiles& tls,
                     std::chrono::milliseconds timeout) {
  ERR_clear_error();
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) return "cannot create a TLS context: " + SslErrors();
  std::string result;
  SSL* ssl = nullptr;
  int fd = -1;
  do {
    if (!tls.ca_file.empty()) {
      if (SSL_CTX_load_verify_locations(ctx, tls.ca_file.c_str(), nullptr) != 1) {
        result = "cannot load CA file " + tls.ca_file + ": " + SslErrors();
        break;
      }
    } else {
      SSL_CTX_set_default_verify_paths(ctx);
    }
    if (!tls.cert_file.empty()) {
      if (SSL_CTX_use_certificate_chain_file(ctx, tls.cert_file.c_str()) != 1 ||
          SSL_CTX_use_PrivateKey_file(ctx, tls.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
        result = "cannot load the client certificate or key: " + SslErrors();
        break;
      }
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    std::string err;
    fd = Connect(host, port, timeout, &err);
    if (fd < 0) {
      result = err;
      break;
    }
    ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    if (IsIpAddress(host)) {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str());
    } else {
      SSL_set1_host(ssl, host.c_str());
      SSL_set_tlsext_host_name(ssl, host.c_str());
    }
    if (SSL_connect(ssl) != 1) {
      const long vr = SSL_get_verify_result(ssl);
      const std::string errs = SslErrors();
      if (vr != X509_V_OK) {
        result = std::string("certificate verify failed: ") + X509_verify_cert_error_string(vr);
      } else {
        result = errs.empty() ? "handshake failed (connection closed)" : errs;
      }
      break;
    }
    // TLS 1.3: the server judges our certificate after the client's side of
    // the handshake is done; its verdict arrives as an alert on first read.
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(std::min<int64_t>(timeout.count(), 500))) == 1) {
      char b;
      if (SSL_read(ssl, &b, 1) <= 0) {
        const std::string errs = SslErrors();
        if (!errs.empty()) result = errs;
      }
    }
  } while (false);
  if (ssl) SSL_free(ssl);
  if (fd >= 0) close(fd);
  SSL_CTX_free(ctx);
  ERR_clear_error();
  return result;
}

}  // namespace storegw::sync
