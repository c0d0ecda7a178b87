// Listen addresses of every HTTP server storegw runs (the device API, the
// status listener): one parser, one set of rules, one wording of errors.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "storegw/status.h"

namespace storegw::http {

// A parsed listen address. `host` has no brackets ("::1").
struct ListenAddress {
  std::string host;
  uint16_t port = 0;
  bool loopback = false;  // 127.0.0.0/8, ::1, ::ffff:127.x.x.x or "localhost"

  // "127.0.0.1:8080", "[::1]:8080": how errors and logs show it.
  std::string ToString() const;
};

// "HOST:PORT" or "[IPV6]:PORT", port 0..65535 (0: any free port, for tests).
// HOST is an IPv4 address, a bracketed IPv6 address, or a host name of
// letters, digits, '.' and '-'. kInvalidArgument otherwise, with a message
// that quotes the text, says what is wrong and shows the expected form.
Result<ListenAddress> ParseListenAddress(std::string_view listen);

// 127.0.0.0/8, ::1, ::ffff:127.x.x.x and "localhost".
bool IsLoopbackHost(std::string_view host);

}  // namespace storegw::http
