// CheckTlsFiles: say which TLS file is wrong, by name, before connecting.
// Paho would report any of these as an anonymous failed handshake.
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <memory>
#include <sstream>

#include "storegw/sync/uplink.h"

namespace storegw::sync {
namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};

Status Bad(const char* key, const std::string& path, const std::string& why) {
  return Status::InvalidArgument(key, path + ": " + why);
}

// Reads the whole file; an error message on failure.
Result<std::string> Slurp(const char* key, const std::string& path) {
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Bad(key, path,
               std::string("cannot open: ") + (errno ? std::strerror(errno) : "unknown error"));
  }
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad()) return Bad(key, path, "cannot read");
  return buf.str();
}

std::string OpenSslError() {
  const unsigned long e = ERR_peek_last_error();
  ERR_clear_error();
  if (e == 0) return "";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

// Never prompt on a terminal for a passphrase.
int NoPassphrase(char*, int, int, void*) {
  return -1;
}

std::string AsnTime(const ASN1_TIME* t) {
  std::tm tm{};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return "?";
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

Result<std::unique_ptr<X509, X509Free>> ReadCert(const char* key, const std::string& path,
                                                 const std::string& pem, size_t* count) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  std::unique_ptr<X509, X509Free> first;
  size_t n = 0;
  for (;;) {
    X509* x = PEM_read_bio_X509(bio.get(), nullptr, NoPassphrase, nullptr);
    if (!x) break;
    if (!first) {
      first.reset(x);
    } else {
      X509_free(x);
    }
    ++n;
  }
  ERR_clear_error();
  if (!first)
    return Bad(key, path, "no PEM certificate found (expected -----BEGIN CERTIFICATE-----)");
  if (count) *count = n;
  return first;
}

Status CheckValidity(const char* key, const std::string& path, X509* cert) {
  if (X509_cmp_current_time(X509_get0_notAfter(cert)) < 0) {
    return Bad(key, path, "certificate expired on " + AsnTime(X509_get0_notAfter(cert)));
  }
  if (X509_cmp_current_time(X509_get0_notBefore(cert)) > 0) {
    return Bad(key, path,
               "certificate is not valid before " + AsnTime(X509_get0_notBefore(cert)) +
                   " (check the clock)");
  }
  return {};
}

}  // namespace

Status CheckTlsFiles(const TlsFiles& tls) {
  if (!tls.ca_file.empty()) {
    auto pem = Slurp("uplink.tls.ca_file", tls.ca_file);
    if (!pem.ok()) return pem.status();
    auto cert = ReadCert("uplink.tls.ca_file", tls.ca_file, *pem, nullptr);
    if (!cert.ok()) return cert.status();
  }
  if (tls.cert_file.empty() != tls.key_file.empty()) {
    return Status::InvalidArgument(
        tls.cert_file.empty() ? "uplink.tls.cert_file" : "uplink.tls.key_file",
        "uplink.tls.cert_file and uplink.tls.key_file go together (mutual TLS needs both)");
  }
  if (tls.cert_file.empty()) return {};

  auto cert_pem = Slurp("uplink.tls.cert_file", tls.cert_file);
  if (!cert_pem.ok()) return cert_pem.status();
  auto cert = ReadCert("uplink.tls.cert_file", tls.cert_file, *cert_pem, nullptr);
  if (!cert.ok()) return cert.status();
  if (Status s = CheckValidity("uplink.tls.cert_file", tls.cert_file, cert->get()); !s.ok()) {
    return s;
  }

  auto key_pem = Slurp("uplink.tls.key_file", tls.key_file);
  if (!key_pem.ok()) return key_pem.status();
  std::unique_ptr<BIO, BioFree> bio(
      BIO_new_mem_buf(key_pem->data(), static_cast<int>(key_pem->size())));
  std::unique_ptr<EVP_PKEY, PkeyFree> key(
      PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr));
  if (!key) {
    const std::string e = OpenSslError();
    const bool encrypted = key_pem->find("ENCRYPTED") != std::string::npos;
    return Bad("uplink.tls.key_file", tls.key_file,
               encrypted ? "the private key is passphrase-protected (not supported: store it "
                           "unencrypted with mode 0600)"
                         : "no PEM private key found" + (e.empty() ? "" : " (" + e + ")"));
  }
  if (X509_check_private_key(cert->get(), key.get()) != 1) {
    ERR_clear_error();
    return Bad("uplink.tls.key_file", tls.key_file,
               "does not match the certificate in " + tls.cert_file);
  }
  return {};
}

}  // namespace storegw::sync
