// Diagnostics run only after a connection attempt failed, to tell an
// operator which layer is broken. Paho reports most failures as "TCP/TLS
// connect failure" (rc -1); and its TLS error_handler cannot be used with
// Paho C++ 1.2: async_client::connect() copies connect_options by value,
// the C library keeps a pointer to that copy's ssl_options as the error
// callback's context, and the copy is gone by the time a handshake fails
// (use after free, seen as a crash in the wrong-CA test).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "storegw/sync/uplink.h"

namespace storegw::sync {

// A plain TCP connect to host:port: "" when it works, else the OS's words
// ("Connection refused", "Connection timed out").
std::string TcpProbe(const std::string& host, uint16_t port, std::chrono::milliseconds timeout);

// A TLS handshake to host:port with the same trust store, client
// certificate and host name / IP check Paho uses: "" when the handshake
// (and, for TLS 1.3, the server's verdict on our certificate) succeeds,
// else what failed: "certificate verify failed: unable to get local issuer
// certificate", "certificate verify failed: IP address mismatch",
// "tlsv13 alert certificate required".
std::string TlsProbe(const std::string& host, uint16_t port, const TlsFiles& tls,
                     std::chrono::milliseconds timeout);

}  // namespace storegw::sync
