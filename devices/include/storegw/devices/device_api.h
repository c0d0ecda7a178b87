// The in-store device API: POST /v1/events, GET /v1/stock...,
// GET /v1/changes, /healthz, /readyz, served over HTTP/1.1 on the
// configured listen address.
//
// Threads: Start() spawns the server's own threads; every public method may
// be called from any thread. Handlers call into storage::Journal, which is
// thread-safe and answers only after the commit is durable. The Journal must
// outlive the DeviceApi (Stop() or the destructor returns only when no
// handler uses it any more).
//
// The HTTP contract (status codes, bodies, field paths, auth) is described in
// devices/API.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "storegw/devices/device_registry.h"
#include "storegw/http/listen.h"
#include "storegw/status.h"
#include "storegw/storage/journal.h"

namespace storegw::devices {

// The limits of ApiOptions, checked by DeviceApi::Start() and by the
// gateway's config loader (http.* keys) from these same constants.
struct ApiLimits {
  static constexpr int kMinThreads = 1;
  static constexpr int kMaxThreads = 1024;
  static constexpr size_t kMinBodyBytes = 1024;
  static constexpr size_t kMaxBodyBytes = size_t{1} << 30;
  static constexpr int kMinSeconds = 1;  // retry_after_s, keep_alive_timeout_s, io_timeout_s
  static constexpr int kMaxSeconds = 3600;
};

// GET /v1/changes, the changes feed (devices/API.md, "GET /v1/changes").
struct ChangesFeedOptions {
  // Feed clients at once (SSE streams and long polls together); one more is
  // answered 503 + Retry-After. Each holds a server thread for as long as it
  // is connected: Start() adds max_clients to `threads`, so that feed
  // clients never take the threads of POST /v1/events. 0: the feed is off
  // (every request 503).
  int max_clients = 64;
  // A client more than this many changes (journal events that carry a
  // change) behind the newest is dropped (`event: drop`, reason
  // slow_client). The ring of recent changes holds max_lag + 1 of them.
  size_t max_lag = 10000;
  // A `: keep-alive` comment after this long without anything sent.
  std::chrono::milliseconds keep_alive{15000};
  // The `retry:` sent first (how long an EventSource waits to reconnect).
  std::chrono::milliseconds retry{2000};
  // Memory bound of the ring of recent changes (older changes are read
  // from the journal by the clients that still need them).
  size_t ring_max_bytes = size_t{64} << 20;
};

// The limits of ChangesFeedOptions, checked by DeviceApi::Start().
struct ChangesFeedLimits {
  static constexpr int kMaxClients = 4096;
  static constexpr size_t kMinLag = 1;
  static constexpr size_t kMaxLag = 1000000;
  static constexpr std::chrono::milliseconds kMinKeepAlive{100};
  static constexpr std::chrono::milliseconds kMaxKeepAlive{3600 * 1000};
  static constexpr std::chrono::milliseconds kMaxRetry{3600 * 1000};
  static constexpr size_t kMinRingBytes = size_t{1} << 20;
  static constexpr size_t kMaxRingBytes = size_t{1} << 30;
};

// Figures of the changes feed (for /metrics).
struct FeedStats {
  uint64_t clients = 0;        // connected now (streams and long polls)
  uint64_t clients_total = 0;  // accepted since start
  uint64_t rejected_busy = 0;  // 503: max_clients were connected
  uint64_t long_polls = 0;     // long-poll answers since start
  uint64_t changes_sent = 0;   // change events written (SSE) or answered (long poll)
  uint64_t resets = 0;         // `reset` events: a resume from a pruned id
  // Clients dropped, by reason, every reason listed (0 included):
  // "slow_client" (more than max_lag behind), "write_timeout" (a write
  // blocked longer than io_timeout_s).
  std::vector<std::pair<std::string, uint64_t>> drops_by_reason;
  // The ring of recent changes.
  uint64_t ring_entries = 0;
  uint64_t ring_bytes = 0;
  uint64_t head_seq = 0;  // the newest seq the feed has read
};

struct ApiOptions {
  // "HOST:PORT"; IPv6 as "[::1]:8080". Port 0 picks a free port (tests).
  std::string listen = "127.0.0.1:8080";
  // One "DEVICE_ID TOKEN" pair a line, '#' comments. Empty: no auth, and
  // only loopback listen addresses are accepted by Start().
  std::filesystem::path device_tokens_file;
  // Bodies above this answer 413 and change nothing.
  size_t max_body_bytes = 4u << 20;
  // Worker threads (each keep-alive connection holds one while open).
  int threads = 32;
  // Seconds a client should wait after a 503 (journal full, stopping).
  int retry_after_s = 5;
  // An idle keep-alive connection is closed after this many seconds. Short on
  // purpose: an idle connection holds a worker thread, and Stop() waits for
  // idle connections to time out (so this bounds how long Stop() takes).
  int keep_alive_timeout_s = 2;
  // A request whose headers or body do not arrive within this many seconds
  // (or whose response cannot be written) is dropped.
  int io_timeout_s = 5;
  // Optional, for metrics: called after every Journal::Append of a
  // POST /v1/events with how long it took (handed to the journal until the
  // commit was durable, or failed) and whether it succeeded. Runs on the
  // request's worker thread: must be quick and thread-safe.
  std::function<void(std::chrono::nanoseconds elapsed, bool ok)> on_append_done;
  // Per-device accounting (device_registry.h): silent_after, opening hours,
  // how many devices are tracked by name. Saved in the journal every
  // devices_save_interval and on Stop().
  DeviceRegistryOptions devices;
  std::chrono::milliseconds devices_save_interval{5000};
  // GET /v1/changes.
  ChangesFeedOptions changes;
};

// Listen addresses are parsed by the shared HTTP layer (storegw/http/listen.h).
using http::ListenAddress;
using http::ParseListenAddress;

// Reads and checks a device tokens file the way Start() does (for
// `storegw config check`). Returns the number of devices it names. Errors
// name the file and line, never a token.
Result<size_t> CheckDeviceTokensFile(const std::filesystem::path& file);

// A request/response pair for routes the gateway adds (status page,
// /v1/status, /metrics): keeps httplib out of every header.
struct HttpRequest {
  std::string method;
  std::string path;
  std::vector<std::pair<std::string, std::string>> query;  // decoded
  std::string authorization;                               // header value
  std::string body;
};
struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};
// Called for any request the device API does not own; nullopt -> 404.
using ExtraHandler = std::function<std::optional<HttpResponse>(const HttpRequest&)>;

struct ApiCounters {
  uint64_t requests = 0;
  uint64_t events_accepted = 0;  // newly journaled
  uint64_t events_duplicate = 0;
  uint64_t rejected_invalid = 0;  // 400
  uint64_t rejected_auth = 0;     // 401/403
  uint64_t rejected_too_large = 0;
  uint64_t rejected_media_type = 0;
  uint64_t rejected_unavailable = 0;  // 503
  uint64_t errors_internal = 0;       // 500: the journal failed (I/O error, ...)
  uint64_t rejected_conflict = 0;     // 409: a reused event_id with another body
  uint64_t events_conflict = 0;       // events of those requests that conflicted
  // Every answer (device routes, ExtraHandler routes, httplib's own errors)
  // by HTTP status code, ascending; codes never answered are left out.
  std::vector<std::pair<int, uint64_t>> responses_by_code;
};

class DeviceApi {
 public:
  // Binds and starts serving. Errors name the problem: bad listen address,
  // address in use, a non-loopback address without a tokens file, an
  // unreadable or malformed tokens file (line number; never the token).
  static Result<std::unique_ptr<DeviceApi>> Start(const ApiOptions& options,
                                                  storage::Journal& journal,
                                                  ExtraHandler extra = {});
  virtual ~DeviceApi() = default;

  virtual uint16_t port() const = 0;
  // From now on POST /v1/events answers 503 + Retry-After and /readyz 503;
  // requests already inside the journal finish normally.
  virtual void BeginShutdown() = 0;
  // Stops listening and returns when every handler has returned.
  virtual void Stop() = 0;
  virtual void SetReady(bool ready) = 0;
  virtual ApiCounters counters() const = 0;
  // Every device that sent POST /v1/events, worst first (device_registry.h).
  virtual v1::DeviceList Devices() const = 0;
  // The changes feed (GET /v1/changes): clients, drops, changes sent.
  virtual FeedStats feed_stats() const = 0;
};

}  // namespace storegw::devices
