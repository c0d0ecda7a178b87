// Internal: the pieces of the HTTPS transport that unit tests check on
// their own (URL and proxy validation, the Idempotency-Key, how an HTTP
// answer is classified, Retry-After, the libcurl options check). The
// transport itself is MakeHttpsTransport in storegw/sync/transport.h.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "storegw/status.h"
#include "storegw/sync/transport.h"

namespace storegw::sync {

// An https:// URL taken apart. http:// is refused (batches are sales data
// and the link crosses the internet); so are credentials in the URL (they
// would end up in logs: use uplink.username / uplink.password).
struct HttpsUrl {
  std::string url;   // as configured
  std::string host;  // without brackets
  uint16_t port = 443;
  std::string host_port() const;  // "127.0.0.1:8443", "[::1]:443"
};
Result<HttpsUrl> ParseHttpsUrl(const std::string& url);

// A proxy URL checked (scheme http, https, socks4, socks4a, socks5,
// socks5h; a host), and its form without credentials for messages:
// "http://USER:PASS@proxy:3128" -> "http://proxy:3128".
Result<std::string> RedactedProxy(const std::string& proxy);

// "{gateway_id}-{epoch}-{first_seq}-{last_seq}", numbers in decimal.
std::string IdempotencyKey(const std::string& gateway_id, uint64_t epoch, uint64_t first_seq,
                           uint64_t last_seq);

// Retry-After: delta-seconds ("120") or an HTTP-date; nullopt when absent
// or unparsable. A date in the past is 0.
std::optional<std::chrono::milliseconds> ParseRetryAfter(std::string_view value,
                                                         std::chrono::system_clock::time_point now);

// What an HTTP answer to a batch POST means for the engine.
enum class HttpVerdict {
  kDelivered,  // 2xx: HQ has the batch
  kRetry,      // 408, 429, 5xx (and 1xx/3xx, which HQ should not send): back off, resend
  kRefused,    // any other 4xx: resending cannot help; the engine stops
};
HttpVerdict ClassifyHttpStatus(long code);

// Sets every libcurl option a connection of MakeHttpsTransport(options)
// would set, on a scratch handle, without connecting: the first option
// libcurl refuses is a kFailedPrecondition naming it ("https: cannot set
// CURLOPT_PASSWORD: A libcurl function was given a bad argument"), never
// its value. Uplink::Create calls it so that such a configuration fails at
// start-up.
Status CheckHttpsOptions(const UplinkOptions& options);

// Printable excerpt of an answer body for an error message: at most
// `max` characters, control characters and non-ASCII as '?', "" if empty.
std::string BodyExcerpt(std::string_view body, size_t max = 200);

}  // namespace storegw::sync
