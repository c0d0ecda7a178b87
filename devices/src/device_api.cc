// DeviceApi over cpp-httplib 0.11.4 (Debian's compiled build).
//
// Request flow of POST /v1/events, in this order (the first failure answers):
//   Content-Encoding (none, identity, gzip, deflate, br)                   415
//   body read (<= max_body_bytes, also for chunked and compressed bodies) 413
//   shutting down                                                          503
//   device token (when a tokens file is configured)                        401
//   Content-Type                                                           415
//   decode (strict RFC 8259 JSON, then proto3 JSON; or protobuf)           400
//   ValidateDeviceEvent on each event (incl. gateway-only bodies)          400
//   occurred_at within 2000-01-01 .. a day ahead of the gateway's clock    400
//   each event's device_id is the token's device                           403
//   Journal::Append (atomic, durable before it returns)      400 / 503 / 500
//   an event_id journaled with another body (nothing appended)            409
// Nothing before Append writes anything, and Append is all-or-nothing, so a
// refused request changes nothing. Refusals are logged (device, reason,
// field) at most once per device every kRejectLogInterval, with the number
// left out since.
#include <httplib.h>

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>
#include <unordered_map>

#include <spdlog/spdlog.h>

#include "auth.h"
#include "changes_feed.h"
#include "ingest_body.h"
#include "storegw/devices/json_out.h"
#include "storegw/devices/device_api.h"
#include "storegw/http/auth.h"
#include "storegw/http/server.h"
#include "storegw/v1/warmup.h"

namespace storegw::devices {
namespace {

constexpr const char* kJson = "application/json";
constexpr size_t kDefaultStockLimit = 100;
constexpr size_t kMaxStockLimit = 10000;
constexpr auto kRejectLogInterval = std::chrono::seconds(10);
constexpr size_t kRejectLogDevices = 4096;  // devices remembered; then the map starts over

// The Content-Encodings httplib decodes (Debian builds it with zlib and
// brotli); anything else would reach the decoder still encoded.
bool KnownContentEncoding(std::string_view v) {
  std::string e;
  for (char c : v) {
    if (c != ' ' && c != '\t') e += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return e.empty() || e == "identity" || e == "gzip" || e == "x-gzip" || e == "deflate" ||
         e == "br";
}


std::string CodeForHttpStatus(int status) {
  switch (status) {
    case 400:
      return "invalid_argument";
    case 401:
      return "unauthenticated";
    case 403:
      return "permission_denied";
    case 404:
      return "not_found";
    case 405:
      return "method_not_allowed";
    case 413:
      return "payload_too_large";
    case 415:
      return "unsupported_media_type";
    case 503:
      return "unavailable";
    default:
      return status >= 500 ? "internal" : "http_" + std::to_string(status);
  }
}

// The reason a refused POST /v1/events is counted under (the reasons of
// storegw_events_rejected_total).
std::string RejectReason(int status) {
  switch (status) {
    case 400:
      return "invalid";
    case 401:
    case 403:
      return "auth";
    case 409:
      return "conflict";
    case 413:
      return "too_large";
    case 415:
      return "media_type";
    case 503:
      return "unavailable";
    default:
      return status >= 500 ? "internal" : "http_" + std::to_string(status);
  }
}

// Messages for the answers httplib gives on its own.
std::string HttpStatusMessage(int status) {
  switch (status) {
    case 400:
      return "bad request: the HTTP request could not be parsed";
    case 404:
      return "no such endpoint";
    case 413:
      return "request body is larger than the limit (http.max_body_bytes)";
    case 414:
      return "request URI is too long";
    case 415:
      return "unsupported Content-Encoding";
    case 416:
      return "bad Range header";
    default:
      return "HTTP " + std::to_string(status);
  }
}

// "must not be 0" about "events[1].sale.lines[0].qty" reads as one sentence:
// "events[1].sale.lines[0].qty must not be 0".
std::string FieldMessage(const std::string& field, const std::string& message) {
  if (field.empty() || message.rfind(field, 0) == 0) return message;
  return field + " " + message;
}

http::ServerOptions ServerOptionsFor(const ApiOptions& o, const std::atomic<bool>& closing) {
  http::ServerOptions so;
  so.name = "device API";
  // Every changes feed client holds a thread for as long as it is
  // connected: they get threads of their own, so that POST /v1/events
  // never waits behind them.
  so.threads = o.threads + std::max(0, o.changes.max_clients);
  so.keep_alive_timeout_s = o.keep_alive_timeout_s;
  so.keep_alive_max_count = 100000;  // tills keep their connection
  so.io_timeout_s = o.io_timeout_s;
  so.max_body_bytes = o.max_body_bytes;
  so.closing = [&closing] { return closing.load(); };
  return so;
}

class DeviceApiImpl final : public DeviceApi {
 public:
  DeviceApiImpl(const ApiOptions& options, storage::Journal& journal, ExtraHandler extra,
                std::optional<TokenTable> tokens)
      : options_(options),
        journal_(journal),
        extra_(std::move(extra)),
        tokens_(std::move(tokens)),
        registry_(options.devices),
        feed_(journal, options.changes, options.retry_after_s, options.io_timeout_s),
        server_(ServerOptionsFor(options, shutting_down_)) {}

  ~DeviceApiImpl() override { Stop(); }

  Status Listen(const ListenAddress& addr);

  uint16_t port() const override { return server_.port(); }
  void BeginShutdown() override { shutting_down_.store(true); }
  void Stop() override;
  void SetReady(bool ready) override { ready_.store(ready); }
  ApiCounters counters() const override;
  v1::DeviceList Devices() const override { return registry_.List(); }
  FeedStats feed_stats() const override { return feed_.Stats(); }

 private:
  // What PostEvents learnt of a request, for the device registry.
  struct PostOutcome {
    std::optional<std::string> device;
    uint64_t accepted = 0, duplicate = 0, conflicts = 0;
  };
  void SaveDevices();  // registry -> journal; logs a failure once until it works again
  void SaverLoop();
  enum class BodyRead { kOk, kTooLarge, kTooLargeDrained, kFailed };

  void Routes();
  void PostEvents(const httplib::Request& req, httplib::Response& res,
                  const httplib::ContentReader& reader);
  // PostEvents without the refusal log and the device accounting; fills
  // *out as it learns who sent the request (the token's device, else the
  // device_id of the first event) and what became of its events.
  void PostEventsOf(const httplib::Request& req, httplib::Response& res,
                    const httplib::ContentReader& reader, PostOutcome* out);
  void GetStockSku(const httplib::Request& req, httplib::Response& res);
  void GetStockList(const httplib::Request& req, httplib::Response& res);
  void GetPrice(const httplib::Request& req, httplib::Response& res);
  void GetChanges(const httplib::Request& req, httplib::Response& res);
  void Readyz(httplib::Response& res);
  void Other(const httplib::Request& req, httplib::Response& res, std::string body);
  void OtherWithBody(const httplib::Request& req, httplib::Response& res,
                     const httplib::ContentReader& reader);

  BodyRead ReadBody(const httplib::Request& req, httplib::Response& res,
                    const httplib::ContentReader& reader, std::string* body);
  // False (and a 413/415/400 answer written) when the body could not be read.
  bool ReadBodyOrAnswer(const httplib::Request& req, httplib::Response& res,
                        const httplib::ContentReader& reader, std::string* body);
  // With a tokens file: the device of the request's bearer token, or a 401
  // answer and false. Without one: true and `device` left empty.
  // GET /v1/stock/{sku} and /v1/prices/{sku}: the device token, then the
  // sku of the path; false (and a 401/400 answer written) when either fails.
  bool AuthenticatedSku(const httplib::Request& req, httplib::Response& res, std::string* sku);
  bool Authenticate(const httplib::Request& req, httplib::Response& res,
                    std::optional<std::string>* device);

  void Error(httplib::Response& res, int http, std::string_view code, const std::string& message,
             const std::string& field = {});
  // Logs a refused request (warning): who, the answer, the field and the
  // message; at most one line per device every kRejectLogInterval.
  void LogReject(const httplib::Request& req, const std::optional<std::string>& device,
                 const httplib::Response& res);
  void ErrorFromStatus(httplib::Response& res, const Status& s, bool single);
  void Unavailable(httplib::Response& res, std::string_view code, const std::string& message);

  const ApiOptions options_;
  storage::Journal& journal_;
  const ExtraHandler extra_;
  const std::optional<TokenTable> tokens_;  // nullopt: no device auth (loopback only)
  DeviceRegistry registry_;
  std::mutex saver_mu_;
  std::condition_variable saver_cv_;
  bool saver_stop_ = false;
  bool save_failing_ = false;  // saver thread only
  std::thread saver_;

  std::atomic<bool> shutting_down_{false};
  feed::ChangesFeed feed_;  // before server_: handlers use it until server_ stops
  http::Server server_;  // after shutting_down_: its options read it
  httplib::Server& svr_ = server_.raw();
  std::atomic<bool> ready_{false};

  struct Counters {
    std::atomic<uint64_t> requests{0}, events_accepted{0}, events_duplicate{0}, rejected_invalid{0},
        rejected_auth{0}, rejected_too_large{0}, rejected_media_type{0}, rejected_unavailable{0},
        errors_internal{0}, rejected_conflict{0}, events_conflict{0};
  } c_;

  // Rate limit of the refusal log lines, per device (or client address).
  struct RejectLogState {
    std::chrono::steady_clock::time_point last{};
    uint64_t suppressed = 0;
  };
  std::mutex reject_log_mu_;
  std::unordered_map<std::string, RejectLogState> reject_log_;
};

Status DeviceApiImpl::Listen(const ListenAddress& addr) {
  if (Status s = registry_.Load(journal_); !s.ok()) {
    spdlog::warn("device API: could not read the devices of the previous run ({}); counting "
                 "from zero",
                 s.message());
  }
  Routes();
  feed_.Start();
  if (Status s = server_.Start(addr); !s.ok()) return s;
  saver_ = std::thread([this] { SaverLoop(); });
  return {};
}

void DeviceApiImpl::SaveDevices() {
  Status s = registry_.Save(journal_);
  if (!s.ok() && !save_failing_) {
    spdlog::warn("device API: could not save the device table in the journal: {}", s.message());
  } else if (s.ok() && save_failing_) {
    spdlog::info("device API: the device table is saved again");
  }
  save_failing_ = !s.ok();
}

void DeviceApiImpl::SaverLoop() {
  std::unique_lock lk(saver_mu_);
  while (!saver_stop_) {
    saver_cv_.wait_for(lk, options_.devices_save_interval, [this] { return saver_stop_; });
    lk.unlock();
    SaveDevices();
    lk.lock();
  }
}

void DeviceApiImpl::Stop() {
  // Answers carry "Connection: close" from now on (ServerOptions::closing),
  // and Server::Stop() returns when every handler has returned: handlers
  // inside Journal::Append finish (the journal commits them) and answer
  // first. Idle keep-alive connections end after keep_alive_timeout_s.
  shutting_down_.store(true);
  ready_.store(false);
  // Changes feed streams never end on their own: end them first (each
  // finishes its chunked answer and closes), then the server can stop.
  feed_.Stop();
  server_.Stop();
  {
    std::lock_guard lk(saver_mu_);
    saver_stop_ = true;
  }
  saver_cv_.notify_all();
  if (saver_.joinable()) saver_.join();  // its last pass saves what the handlers recorded
}

ApiCounters DeviceApiImpl::counters() const {
  ApiCounters out;
  out.requests = c_.requests.load();
  out.events_accepted = c_.events_accepted.load();
  out.events_duplicate = c_.events_duplicate.load();
  out.rejected_invalid = c_.rejected_invalid.load();
  out.rejected_auth = c_.rejected_auth.load();
  out.rejected_too_large = c_.rejected_too_large.load();
  out.rejected_media_type = c_.rejected_media_type.load();
  out.rejected_unavailable = c_.rejected_unavailable.load();
  out.errors_internal = c_.errors_internal.load();
  out.rejected_conflict = c_.rejected_conflict.load();
  out.events_conflict = c_.events_conflict.load();
  out.responses_by_code = server_.ResponsesByCode();
  return out;
}

void DeviceApiImpl::Routes() {
  using httplib::Request;
  using httplib::Response;
  using HandlerResponse = httplib::Server::HandlerResponse;

  svr_.set_pre_routing_handler([this](const Request&, Response&) {
    c_.requests.fetch_add(1, std::memory_order_relaxed);
    return HandlerResponse::Unhandled;
  });
  // Called by httplib for every answer >= 400, also for ours: only fill in a
  // JSON error where httplib answered on its own (bad request line, 413 on a
  // Content-Length over the limit, unsupported Content-Encoding, ...).
  svr_.set_error_handler(httplib::Server::HandlerWithResponse([](const Request&, Response& res) {
    if (!res.body.empty()) return HandlerResponse::Unhandled;
    res.set_content(ErrorJson(CodeForHttpStatus(res.status), HttpStatusMessage(res.status), ""),
                    kJson);
    return HandlerResponse::Handled;
  }));
  svr_.set_exception_handler([this](const Request&, Response& res, std::exception_ptr ep) {
    std::string what = "unknown exception";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    c_.errors_internal.fetch_add(1, std::memory_order_relaxed);
    res.headers.clear();
    Error(res, 500, "internal", "internal error: " + what);
  });

  svr_.Post("/v1/events",
            [this](const Request& req, Response& res, const httplib::ContentReader& reader) {
              PostEvents(req, res, reader);
            });
  svr_.Get(R"(/v1/stock/(.+))",
           [this](const Request& req, Response& res) { GetStockSku(req, res); });
  svr_.Get("/v1/stock", [this](const Request& req, Response& res) { GetStockList(req, res); });
  svr_.Get(R"(/v1/prices/(.+))", [this](const Request& req, Response& res) { GetPrice(req, res); });
  svr_.Get("/v1/changes", [this](const Request& req, Response& res) { GetChanges(req, res); });
  svr_.Get("/healthz",
           [](const Request&, Response& res) { res.set_content("{\"status\":\"ok\"}", kJson); });
  svr_.Get("/readyz", [this](const Request&, Response& res) { Readyz(res); });

  // Everything else goes to the gateway's ExtraHandler (status page,
  // /v1/status, /metrics), bodies read under the same size limit.
  svr_.Get(".*", [this](const Request& req, Response& res) { Other(req, res, {}); });
  svr_.Options(".*", [this](const Request& req, Response& res) { Other(req, res, {}); });
  const auto with_body = [this](const Request& req, Response& res,
                                const httplib::ContentReader& reader) {
    OtherWithBody(req, res, reader);
  };
  svr_.Post(".*", with_body);
  svr_.Put(".*", with_body);
  svr_.Patch(".*", with_body);
  svr_.Delete(".*", with_body);
}

DeviceApiImpl::BodyRead DeviceApiImpl::ReadBody(const httplib::Request& req, httplib::Response& res,
                                                const httplib::ContentReader& reader,
                                                std::string* body) {
  bool over = false;
  size_t drained = 0;
  const size_t max = options_.max_body_bytes;
  if (req.has_header("Content-Length")) {
    const std::string len = req.get_header_value("Content-Length");
    size_t n = 0;
    auto [p, ec] = std::from_chars(len.data(), len.data() + len.size(), n);
    if (ec == std::errc() && n <= max) body->reserve(n);
  }
  // The receiver sees the body after chunked decoding and decompression, so
  // the limit holds for those too (httplib itself only checks
  // Content-Length). Past the limit we keep reading and discard, up to a
  // cap, so the client can read our 413 instead of a connection reset (a
  // socket closed with unread input answers with RST).
  const size_t drain_cap = std::max<size_t>(4 * max, 16u << 20);
  const bool ok = reader([&](const char* data, size_t n) {
    if (over) {
      drained += n;
      return drained <= drain_cap;
    }
    if (body->size() + n > max) {
      over = true;
      drained = body->size() + n;
      body->clear();
      body->shrink_to_fit();
      return drained <= drain_cap;
    }
    body->append(data, n);
    return true;
  });
  if (over || res.status == 413) return ok ? BodyRead::kTooLargeDrained : BodyRead::kTooLarge;
  if (ok) return BodyRead::kOk;
  return BodyRead::kFailed;
}

bool DeviceApiImpl::ReadBodyOrAnswer(const httplib::Request& req, httplib::Response& res,
                                     const httplib::ContentReader& reader, std::string* body) {
  if (req.is_multipart_form_data()) {
    c_.rejected_media_type.fetch_add(1, std::memory_order_relaxed);
    res.set_header("Connection", "close");  // the body was not read
    Error(res, 415, "unsupported_media_type",
          "multipart/form-data is not accepted: send application/json or "
          "application/x-protobuf");
    return false;
  }
  if (const std::string ce = req.get_header_value("Content-Encoding"); !KnownContentEncoding(ce)) {
    c_.rejected_media_type.fetch_add(1, std::memory_order_relaxed);
    res.set_header("Connection", "close");  // the body was not read
    Error(res, 415, "unsupported_media_type",
          "unsupported Content-Encoding \"" + ce.substr(0, 64) +
              "\" (use none, identity, gzip, deflate or br)");
    return false;
  }
  const int status_before = res.status;
  const BodyRead r = ReadBody(req, res, reader, body);
  switch (r) {
    case BodyRead::kOk:
      return true;
    case BodyRead::kTooLarge:
    case BodyRead::kTooLargeDrained:
      c_.rejected_too_large.fetch_add(1, std::memory_order_relaxed);
      // Unless we read the whole body, the connection cannot carry another
      // request.
      if (r != BodyRead::kTooLargeDrained) res.set_header("Connection", "close");
      Error(res, 413, "payload_too_large",
            "request body is larger than the limit of " + std::to_string(options_.max_body_bytes) +
                " bytes (http.max_body_bytes): send fewer events per request");
      return false;
    case BodyRead::kFailed:
      break;
  }
  res.set_header("Connection", "close");
  if (res.status == 415 && status_before != 415) {
    c_.rejected_media_type.fetch_add(1, std::memory_order_relaxed);
    Error(res, 415, "unsupported_media_type",
          "unsupported Content-Encoding (use none, gzip, deflate or br)");
  } else if (const std::string ce = req.get_header_value("Content-Encoding");
             !ce.empty() && ce != "identity") {
    c_.rejected_invalid.fetch_add(1, std::memory_order_relaxed);
    Error(res, 400, "invalid_argument",
          "could not decode the request body: it is not valid " + ce +
              " data (Content-Encoding: " + ce + "), or it was truncated");
  } else {
    c_.rejected_invalid.fetch_add(1, std::memory_order_relaxed);
    Error(res, 400, "invalid_argument",
          "could not read the request body (truncated, timed out or badly chunked)");
  }
  return false;
}

bool DeviceApiImpl::Authenticate(const httplib::Request& req, httplib::Response& res,
                                 std::optional<std::string>* device) {
  if (!tokens_) return true;
  const auto fail = [&](const std::string& message) {
    c_.rejected_auth.fetch_add(1, std::memory_order_relaxed);
    res.set_header("WWW-Authenticate", "Bearer realm=\"storegw\"");
    Error(res, 401, "unauthenticated", message);
    return false;
  };
  if (!req.has_header("Authorization")) {
    return fail(
        "missing \"Authorization: Bearer TOKEN\" header: this gateway requires a device "
        "token");
  }
  const std::string header = req.get_header_value("Authorization");
  auto token = http::BearerToken(header);
  if (!token) return fail("the Authorization header is not \"Bearer TOKEN\"");
  auto dev = tokens_->DeviceForToken(*token);
  if (!dev) return fail("unknown device token (not in the gateway's device tokens file)");
  *device = std::move(dev);
  return true;
}

void DeviceApiImpl::Error(httplib::Response& res, int http, std::string_view code,
                          const std::string& message, const std::string& field) {
  res.status = http;
  res.set_content(ErrorJson(code, message, field), kJson);
}

void DeviceApiImpl::Unavailable(httplib::Response& res, std::string_view code,
                                const std::string& message) {
  c_.rejected_unavailable.fetch_add(1, std::memory_order_relaxed);
  res.set_header("Retry-After", std::to_string(options_.retry_after_s));
  Error(res, 503, code, message);
}

void DeviceApiImpl::ErrorFromStatus(httplib::Response& res, const Status& s, bool single) {
  switch (s.code()) {
    case StatusCode::kInvalidArgument: {
      std::string field = s.field();
      // Append() prefixes "events[i]"; a single-event body has no such level.
      if (single && field.rfind("events[0]", 0) == 0) {
        field.erase(0, 9);
        if (!field.empty() && field.front() == '.') field.erase(0, 1);
      }
      c_.rejected_invalid.fetch_add(1, std::memory_order_relaxed);
      Error(res, 400, "invalid_argument", FieldMessage(field, s.message()), field);
      return;
    }
    case StatusCode::kResourceExhausted:
      Unavailable(res, "resource_exhausted",
                  "the journal is full (" + s.message() +
                      "): keep the events and retry after Retry-After seconds");
      return;
    case StatusCode::kUnavailable:
      Unavailable(
          res, "unavailable",
          "the journal is not available (" + s.message() + "): retry after Retry-After seconds");
      return;
    default:
      c_.errors_internal.fetch_add(1, std::memory_order_relaxed);
      Error(res, 500, StatusCodeName(s.code()),
            "the journal failed, nothing was recorded: " + s.message());
      return;
  }
}

void DeviceApiImpl::PostEvents(const httplib::Request& req, httplib::Response& res,
                               const httplib::ContentReader& reader) {
  PostOutcome out;
  PostEventsOf(req, res, reader, &out);
  if (res.status >= 400) LogReject(req, out.device, res);
  RequestOutcome o;
  o.device = out.device.value_or(std::string(DeviceRegistry::kUnknownDevice));
  o.status = res.status;
  o.accepted = out.accepted;
  o.duplicate = out.duplicate;
  o.conflicts = out.conflicts;
  if (res.status >= 400) {
    o.reason = RejectReason(res.status);
    o.error_body = res.body;
  }
  registry_.Record(o);
}

void DeviceApiImpl::LogReject(const httplib::Request& req, const std::optional<std::string>& device,
                              const httplib::Response& res) {
  const std::string who = device ? *device : "unidentified device at " + req.remote_addr;
  const auto now = std::chrono::steady_clock::now();
  uint64_t suppressed = 0;
  {
    std::lock_guard lk(reject_log_mu_);
    if (reject_log_.size() >= kRejectLogDevices && !reject_log_.count(who)) reject_log_.clear();
    RejectLogState& st = reject_log_[who];
    if (st.last != std::chrono::steady_clock::time_point{} && now - st.last < kRejectLogInterval) {
      ++st.suppressed;
      return;
    }
    suppressed = st.suppressed;
    st = RejectLogState{now, 0};
  }
  std::string answer = res.body.substr(0, 400);
  spdlog::warn("device API: refused {} {} from {}: {} {}{}", req.method, req.path, who, res.status,
               answer,
               suppressed ? fmt::format(" ({} more refusals of this device not logged in the last "
                                        "{} s)",
                                        suppressed, kRejectLogInterval.count())
                          : std::string());
}

void DeviceApiImpl::PostEventsOf(const httplib::Request& req, httplib::Response& res,
                                 const httplib::ContentReader& reader, PostOutcome* out) {
  std::string body;
  if (!ReadBodyOrAnswer(req, res, reader, &body)) return;
  if (shutting_down_.load()) {
    Unavailable(res, "unavailable",
                "the gateway is shutting down: nothing was recorded, retry after Retry-After "
                "seconds");
    return;
  }
  std::optional<std::string>& device = out->device;
  if (!Authenticate(req, res, &device)) return;

  const std::string content_type = req.get_header_value("Content-Type");
  const auto format = FormatForContentType(content_type);
  if (!format) {
    c_.rejected_media_type.fetch_add(1, std::memory_order_relaxed);
    Error(res, 415, "unsupported_media_type",
          "Content-Type must be application/json or application/x-protobuf" +
              (content_type.empty() ? std::string(" (none given)")
                                    : " (got \"" + content_type + "\")"));
    return;
  }

  auto decoded = DecodeIngestBody(*format, body);
  if (!decoded.ok()) {
    c_.rejected_invalid.fetch_add(1, std::memory_order_relaxed);
    const Status& s = decoded.status();
    Error(res, 400, "invalid_argument", s.message(), s.field());
    return;
  }
  const bool single = decoded->single;
  std::vector<v1::Event>& events = decoded->events;
  // Without device tokens, the device an event names is who sent it (for
  // the refusal log).
  if (!device && !events.empty() && !events[0].device_id().empty()) {
    device = events[0].device_id().substr(0, 128);
  }

  const int64_t now_us = registry_.options().now_us();  // the device API's one clock
  for (size_t i = 0; i < events.size(); ++i) {
    if (Status s = storage::ValidateDeviceEvent(events[i]); !s.ok()) {
      ErrorFromStatus(res, s.WithFieldPrefix(EventPath(single, i)), /*single=*/false);
      return;
    }
    if (Status s = CheckOccurredAt(events[i].occurred_at(), now_us); !s.ok()) {
      ErrorFromStatus(res, s.WithFieldPrefix(EventPath(single, i)), /*single=*/false);
      return;
    }
  }
  if (device) {
    for (size_t i = 0; i < events.size(); ++i) {
      if (events[i].device_id() != *device) {
        c_.rejected_auth.fetch_add(1, std::memory_order_relaxed);
        const std::string field = JoinPath(EventPath(single, i), "device_id");
        Error(res, 403, "permission_denied",
              field + " \"" + events[i].device_id() + "\" is not the device of this token (\"" +
                  *device + "\"): a device may only submit its own events",
              field);
        return;
      }
    }
  }

  const auto append_start = std::chrono::steady_clock::now();
  auto appended = journal_.Append(std::move(events));
  if (options_.on_append_done) {
    options_.on_append_done(std::chrono::steady_clock::now() - append_start, appended.ok());
  }
  if (!appended.ok()) {
    ErrorFromStatus(res, appended.status(), single);
    return;
  }

  // A reused event_id with another body: nothing was appended.
  std::vector<const storage::AppendResult*> conflicts;
  for (const storage::AppendResult& r : *appended) {
    if (r.conflict) conflicts.push_back(&r);
  }
  if (!conflicts.empty()) {
    c_.rejected_conflict.fetch_add(1, std::memory_order_relaxed);
    c_.events_conflict.fetch_add(conflicts.size(), std::memory_order_relaxed);
    out->conflicts = conflicts.size();
    const storage::AppendResult& first = *conflicts.front();
    const size_t index = static_cast<size_t>(&first - appended->data());
    const std::string field = JoinPath(EventPath(single, index), "event_id");
    std::string message = "event_id \"" + first.event_id + "\" ";
    message += first.seq != 0
                   ? "is already journaled as seq " + std::to_string(first.seq) +
                         " with a different body"
                   : "appears twice in this request with different bodies";
    message +=
        ": a retry must resend the same event byte for byte, a new event needs a new "
        "event_id; nothing of this request was recorded";
    if (conflicts.size() > 1) {
      message += " (" + std::to_string(conflicts.size()) + " events of the request conflict)";
    }
    res.status = 409;
    res.set_content(ConflictJson(message, field, first.event_id, first.seq), kJson);
    return;
  }

  v1::IngestResponse response;
  uint64_t fresh = 0, dup = 0;
  for (const storage::AppendResult& r : *appended) {
    v1::IngestResult* out = response.add_results();
    out->set_event_id(r.event_id);
    out->set_seq(r.seq);
    out->set_duplicate(r.duplicate);
    (r.duplicate ? dup : fresh)++;
  }
  c_.events_accepted.fetch_add(fresh, std::memory_order_relaxed);
  c_.events_duplicate.fetch_add(dup, std::memory_order_relaxed);
  out->accepted = fresh;
  out->duplicate = dup;

  google::protobuf::util::JsonPrintOptions print;
  print.always_print_primitive_fields = true;  // "duplicate":false is shown
  print.preserve_proto_field_names = true;     // event_id, not eventId
  std::string json;
  if (auto st = google::protobuf::util::MessageToJsonString(response, &json, print); !st.ok()) {
    // The events are durable; a device that gets this retries and is
    // answered duplicate=true with the same seqs.
    c_.errors_internal.fetch_add(1, std::memory_order_relaxed);
    Error(res, 500, "internal",
          "events were journaled but the answer could not be encoded: retry to get their seqs");
    return;
  }
  res.status = 200;
  res.set_content(json, kJson);
}

std::string StockJson(const storage::StockRow& r) {
  return "{\"sku\":" + JsonString(r.sku) + ",\"on_hand\":" + JsonInt64(r.on_hand) +
         ",\"base_qty\":" + JsonInt64(r.base_qty) + ",\"as_of_seq\":" + JsonUint64(r.as_of_seq) +
         ",\"hq_version\":" + JsonUint64(r.hq_version) +
         ",\"tracked\":" + (r.tracked ? "true" : "false") + "}";
}

bool DeviceApiImpl::AuthenticatedSku(const httplib::Request& req, httplib::Response& res,
                                     std::string* sku) {
  std::optional<std::string> device;
  if (!Authenticate(req, res, &device)) return false;
  *sku = req.matches[1];
  if (sku->size() > 64 || !PrintableAscii(*sku)) {
    c_.rejected_invalid.fetch_add(1, std::memory_order_relaxed);
    Error(res, 400, "invalid_argument", "sku must be 1..64 printable ASCII characters", "sku");
    return false;
  }
  return true;
}

void DeviceApiImpl::GetStockSku(const httplib::Request& req, httplib::Response& res) {
  std::string sku;
  if (!AuthenticatedSku(req, res, &sku)) return;
  auto row = journal_.Stock(sku);
  if (!row.ok()) {
    if (row.status().code() == StatusCode::kNotFound) {
      Error(res, 404, "not_found", "no stock known for sku \"" + sku + "\"", "sku");
    } else {
      ErrorFromStatus(res, row.status(), false);
    }
    return;
  }
  res.set_content(StockJson(*row), kJson);
}

// GET /v1/stock?prefix=P&limit=N&after=SKU: one page of the ledger in sku
// order; "next_after" is the cursor of the next page, absent on the last.
void DeviceApiImpl::GetStockList(const httplib::Request& req, httplib::Response& res) {
  std::optional<std::string> device;
  if (!Authenticate(req, res, &device)) return;
  const auto bad = [&](const std::string& message, const std::string& field) {
    c_.rejected_invalid.fetch_add(1, std::memory_order_relaxed);
    Error(res, 400, "invalid_argument", message, field);
  };
  for (const auto& [key, value] : req.params) {
    if (key != "prefix" && key != "limit" && key != "after") {
      bad("unknown query parameter \"" + (PrintableAscii(key) && key.size() <= 64 ? key : "?") +
              "\": /v1/stock takes prefix, limit and after",
          key.size() <= 64 && PrintableAscii(key) ? key : "");
      return;
    }
    if (req.get_param_value_count(key) > 1) {
      bad("query parameter " + key + " is given more than once", key);
      return;
    }
  }
  const std::string prefix = req.get_param_value("prefix");
  if (prefix.size() > 64 || !PrintableAscii(prefix)) {
    bad("prefix must be at most 64 printable ASCII characters", "prefix");
    return;
  }
  const std::string after = req.get_param_value("after");
  if (after.size() > 64 || !PrintableAscii(after)) {
    bad("after must be a sku (at most 64 printable ASCII characters): the next_after of the "
        "previous page",
        "after");
    return;
  }
  size_t limit = kDefaultStockLimit;
  if (req.has_param("limit")) {
    const std::string text = req.get_param_value("limit");
    size_t parsed = 0;
    auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), parsed);
    if (ec != std::errc() || p != text.data() + text.size() || parsed < 1 ||
        parsed > kMaxStockLimit) {
      bad("limit must be a number from 1 to " + std::to_string(kMaxStockLimit), "limit");
      return;
    }
    limit = parsed;
  }
  // One row more than asked says whether there is a next page.
  auto rows = journal_.StockByPrefix(prefix, limit + 1, after);
  if (!rows.ok()) {
    ErrorFromStatus(res, rows.status(), false);
    return;
  }
  const bool more = rows->size() > limit;
  if (more) rows->resize(limit);
  std::string out = "{\"stock\":[";
  for (size_t i = 0; i < rows->size(); ++i) {
    if (i) out += ',';
    out += StockJson((*rows)[i]);
  }
  out += "]";
  if (more) out += ",\"next_after\":" + JsonString(rows->back().sku);
  out += "}";
  res.set_content(out, kJson);
}

std::string PriceJson(const storage::PriceRow& r, int64_t at_us) {
  std::string out = "{\"sku\":" + JsonString(r.sku) + ",\"price\":" + JsonInt64(r.price) +
                    ",\"currency\":" + JsonString(r.currency) +
                    ",\"effective_from\":" + JsonInt64(r.effective_from) +
                    ",\"seq\":" + JsonUint64(r.seq) + ",\"at\":" + JsonInt64(at_us);
  if (r.next) {
    out += ",\"next\":{\"price\":" + JsonInt64(r.next->price()) +
           ",\"currency\":" + JsonString(r.next->currency()) +
           ",\"effective_from\":" + JsonInt64(r.next->effective_from()) + "}";
  }
  return out + "}";
}

void DeviceApiImpl::GetPrice(const httplib::Request& req, httplib::Response& res) {
  std::string sku;
  if (!AuthenticatedSku(req, res, &sku)) return;
  // The price in force now, from the journal: answered offline too, and a
  // change HQ scheduled comes into force at its time without a restart.
  const int64_t now_us = registry_.options().now_us();  // the device API's one clock
  auto row = journal_.PriceAt(sku, now_us);
  if (!row.ok()) {
    if (row.status().code() == StatusCode::kNotFound) {
      Error(res, 404, "not_found",
            "no price in force for sku \"" + sku +
                "\": head office has not sent one yet (or the first one starts later)",
            "sku");
    } else {
      ErrorFromStatus(res, row.status(), false);
    }
    return;
  }
  res.set_content(PriceJson(*row, now_us), kJson);
}

// GET /v1/changes: shutdown and token here, the rest in changes_feed.cc.
void DeviceApiImpl::GetChanges(const httplib::Request& req, httplib::Response& res) {
  if (shutting_down_.load()) {
    Unavailable(res, "unavailable",
                "the gateway is shutting down: reconnect after Retry-After seconds");
    return;
  }
  std::optional<std::string> device;
  if (!Authenticate(req, res, &device)) return;
  feed_.Serve(req, res);
  if (res.status == 400) c_.rejected_invalid.fetch_add(1, std::memory_order_relaxed);
  if (res.status == 503) c_.rejected_unavailable.fetch_add(1, std::memory_order_relaxed);
}

void DeviceApiImpl::Readyz(httplib::Response& res) {
  if (shutting_down_.load()) {
    Error(res, 503, "unavailable", "shutting down");
  } else if (!ready_.load()) {
    Error(res, 503, "unavailable", "not ready yet (starting up)");
  } else {
    res.set_content("{\"status\":\"ready\"}", kJson);
  }
}

void DeviceApiImpl::OtherWithBody(const httplib::Request& req, httplib::Response& res,
                                  const httplib::ContentReader& reader) {
  std::string body;
  if (!ReadBodyOrAnswer(req, res, reader, &body)) return;
  Other(req, res, std::move(body));
}

void DeviceApiImpl::Other(const httplib::Request& req, httplib::Response& res, std::string body) {
  if (extra_) {
    HttpRequest r;
    r.method = req.method;
    r.path = req.path;
    for (const auto& [k, v] : req.params) r.query.emplace_back(k, v);
    r.authorization = req.get_header_value("Authorization");
    r.body = std::move(body);
    if (std::optional<HttpResponse> out = extra_(r)) {
      res.status = out->status;
      for (const auto& [k, v] : out->headers) res.set_header(k, v);
      res.set_content(std::move(out->body), out->content_type);
      return;
    }
  }
  const std::string& p = req.path;
  const bool ours = p == "/v1/events" || p == "/v1/stock" || p == "/v1/changes" ||
                    p == "/healthz" || p == "/readyz" ||
                    p.rfind("/v1/stock/", 0) == 0 || p.rfind("/v1/prices/", 0) == 0;
  if (ours) {
    res.set_header("Allow", p == "/v1/events" ? "POST" : "GET, HEAD");
    Error(res, 405, "method_not_allowed", req.method + " is not allowed on " + p);
    return;
  }
  Error(res, 404, "not_found", "no such endpoint: " + req.method + " " + p);
}

}  // namespace

Result<std::unique_ptr<DeviceApi>> DeviceApi::Start(const ApiOptions& options,
                                                    storage::Journal& journal, ExtraHandler extra) {
  v1::WarmUpProtobuf();  // before the request threads exist (storegw/v1/warmup.h)
  auto addr = ParseListenAddress(options.listen);
  if (!addr.ok()) return addr.status();
  using L = ApiLimits;
  if (options.threads < L::kMinThreads || options.threads > L::kMaxThreads) {
    return Status::InvalidArgument("threads", "device API: threads must be " +
                                                  std::to_string(L::kMinThreads) + ".." +
                                                  std::to_string(L::kMaxThreads) + ", got " +
                                                  std::to_string(options.threads));
  }
  if (options.max_body_bytes < L::kMinBodyBytes || options.max_body_bytes > L::kMaxBodyBytes) {
    return Status::InvalidArgument("max_body_bytes",
                                   "device API: max_body_bytes must be " +
                                       std::to_string(L::kMinBodyBytes) + ".." +
                                       std::to_string(L::kMaxBodyBytes) + ", got " +
                                       std::to_string(options.max_body_bytes));
  }
  for (int v : {options.retry_after_s, options.keep_alive_timeout_s, options.io_timeout_s}) {
    if (v < L::kMinSeconds || v > L::kMaxSeconds) {
      return Status::InvalidArgument("", "device API: retry_after_s, keep_alive_timeout_s and "
                                         "io_timeout_s must be " +
                                             std::to_string(L::kMinSeconds) + ".." +
                                             std::to_string(L::kMaxSeconds) + " s");
    }
  }
  {
    using F = ChangesFeedLimits;
    const ChangesFeedOptions& c = options.changes;
    if (c.max_clients < 0 || c.max_clients > F::kMaxClients) {
      return Status::InvalidArgument("changes.max_clients",
                                     "device API: changes.max_clients must be 0.." +
                                         std::to_string(F::kMaxClients) + ", got " +
                                         std::to_string(c.max_clients));
    }
    if (c.max_lag < F::kMinLag || c.max_lag > F::kMaxLag) {
      return Status::InvalidArgument("changes.max_lag", "device API: changes.max_lag must be " +
                                                            std::to_string(F::kMinLag) + ".." +
                                                            std::to_string(F::kMaxLag) + ", got " +
                                                            std::to_string(c.max_lag));
    }
    if (c.keep_alive < F::kMinKeepAlive || c.keep_alive > F::kMaxKeepAlive) {
      return Status::InvalidArgument("changes.keep_alive",
                                     "device API: changes.keep_alive must be 100 ms .. 1 h, got " +
                                         std::to_string(c.keep_alive.count()) + " ms");
    }
    if (c.retry.count() < 0 || c.retry > F::kMaxRetry) {
      return Status::InvalidArgument("changes.retry",
                                     "device API: changes.retry must be 0 .. 1 h, got " +
                                         std::to_string(c.retry.count()) + " ms");
    }
    if (c.ring_max_bytes < F::kMinRingBytes || c.ring_max_bytes > F::kMaxRingBytes) {
      return Status::InvalidArgument("changes.ring_max_bytes",
                                     "device API: changes.ring_max_bytes must be 1 MiB .. 1 GiB, "
                                     "got " +
                                         std::to_string(c.ring_max_bytes));
    }
  }
  std::optional<TokenTable> tokens;
  if (!options.device_tokens_file.empty()) {
    auto t = TokenTable::Load(options.device_tokens_file);
    if (!t.ok()) return t.status();
    tokens = std::move(t).value();
  } else if (!addr->loopback) {
    return Status::InvalidArgument(
        "device_tokens_file",
        "device API: refusing to listen on " + options.listen +
            ": it is not a loopback address and no device tokens file is configured "
            "(http.device_tokens_file), so anyone on the network could submit sales and stock "
            "changes. Configure device tokens, or listen on 127.0.0.1 / [::1]");
  }
  auto api = std::make_unique<DeviceApiImpl>(options, journal, std::move(extra), std::move(tokens));
  if (Status s = api->Listen(*addr); !s.ok()) return s;
  return std::unique_ptr<DeviceApi>(std::move(api));
}

}  // namespace storegw::devices
