#include "storegw/http/listen.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <charconv>

namespace storegw::http {
namespace {

Status Bad(std::string_view listen, std::string_view why) {
  return Status::InvalidArgument("listen", "listen address \"" + std::string(listen) + "\" " +
                                               std::string(why) +
                                               " (expected HOST:PORT, e.g. 127.0.0.1:8080 or "
                                               "[::1]:8080)");
}

bool HostNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-';
}

}  // namespace

std::string ListenAddress::ToString() const {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

bool IsLoopbackHost(std::string_view host) {
  if (host == "localhost") return true;
  const std::string h(host);
  in_addr v4{};
  if (inet_pton(AF_INET, h.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (inet_pton(AF_INET6, h.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
    if (IN6_IS_ADDR_V4MAPPED(&v6)) return v6.s6_addr[12] == 127;
  }
  return false;
}

Result<ListenAddress> ParseListenAddress(std::string_view listen) {
  ListenAddress out;
  std::string_view port_text;
  if (!listen.empty() && listen.front() == '[') {
    const size_t close = listen.find(']');
    if (close == std::string_view::npos) return Bad(listen, "has no closing ']'");
    out.host = std::string(listen.substr(1, close - 1));
    if (close + 1 >= listen.size() || listen[close + 1] != ':') {
      return Bad(listen, "has no :PORT after the bracketed address");
    }
    port_text = listen.substr(close + 2);
    in6_addr v6{};
    if (inet_pton(AF_INET6, out.host.c_str(), &v6) != 1) {
      return Bad(listen, "has no valid IPv6 address inside [ ]");
    }
  } else {
    const size_t colon = listen.rfind(':');
    if (colon == std::string_view::npos) return Bad(listen, "has no port");
    out.host = std::string(listen.substr(0, colon));
    port_text = listen.substr(colon + 1);
    if (out.host.find(':') != std::string::npos) {
      return Bad(listen, "looks like an IPv6 address without brackets");
    }
    if (!std::all_of(out.host.begin(), out.host.end(), HostNameChar)) {
      return Bad(listen, "has a host that is not an address or a host name");
    }
  }
  if (out.host.empty()) return Bad(listen, "has no host");
  if (port_text.empty()) return Bad(listen, "has no port");
  unsigned port = 0;
  auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || ptr != port_text.data() + port_text.size() || port > 65535) {
    return Bad(listen, "has a port that is not a number 0..65535");
  }
  out.port = static_cast<uint16_t>(port);
  out.loopback = IsLoopbackHost(out.host);
  return out;
}

}  // namespace storegw::http
