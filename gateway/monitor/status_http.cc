#include "storegw/monitor/status_http.h"

#include "storegw/http/auth.h"

#include <strings.h>

#include <charconv>

#include <google/protobuf/util/json_util.h>

#include "storegw/devices/json_out.h"
#include "storegw/monitor/status_page.h"

namespace storegw::gateway {
namespace {

devices::HttpResponse JsonError(int status, std::string_view code, const std::string& message) {
  devices::HttpResponse r;
  r.status = status;
  // Our messages hold no quote or backslash (see the call sites).
  r.body = "{\"error\":{\"code\":\"" + std::string(code) + "\",\"message\":\"" + message +
           "\",\"field\":\"\"}}";
  return r;
}

devices::HttpResponse MethodNotAllowed(const std::string& method, const std::string& path) {
  devices::HttpResponse r =
      JsonError(405, "method_not_allowed", method + " is not allowed on " + path + ": use GET");
  r.headers.emplace_back("Allow", "GET, HEAD");
  return r;
}

// The answer to a request without the right token. Never says what the
// token is, nor how close the guess was.
devices::HttpResponse Unauthorized(bool page) {
  devices::HttpResponse r;
  if (page) {
    r.status = 401;
    r.content_type = "text/html; charset=utf-8";
    r.body =
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
        "<title>storegw: token needed</title></head>"
        "<body style=\"font-family:system-ui,sans-serif;max-width:40em;margin:2em auto;"
        "padding:0 1em\"><h1>Status token needed</h1><p>This gateway protects its status page "
        "with a token (<code>status.token</code> in its config). Open this page as "
        "<code>/?token=YOUR-TOKEN</code>, or send <code>Authorization: Bearer YOUR-TOKEN</code>."
        "</p></body></html>";
  } else {
    r = JsonError(401, "unauthenticated",
                  "this gateway needs its status token: send the header Authorization: Bearer "
                  "TOKEN (status.token in its config)");
  }
  r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"storegw status\"");
  r.headers.emplace_back("Cache-Control", "no-store");
  return r;
}

void NoStore(devices::HttpResponse& r) {
  r.headers.emplace_back("Cache-Control", "no-store");
}

devices::HttpResponse JsonFail(int status, std::string_view code, std::string_view message,
                               std::string_view field) {
  devices::HttpResponse r;
  r.status = status;
  r.body = devices::ErrorJson(code, message, field);
  NoStore(r);
  return r;
}

// "/v1/alerts/123/ack" -> 123; nullopt for anything else.
std::optional<uint64_t> AckPathSeq(const std::string& p) {
  constexpr std::string_view kPrefix = "/v1/alerts/", kSuffix = "/ack";
  if (p.size() <= kPrefix.size() + kSuffix.size() || p.rfind(kPrefix, 0) != 0 ||
      p.compare(p.size() - kSuffix.size(), kSuffix.size(), kSuffix) != 0) {
    return std::nullopt;
  }
  const char* b = p.data() + kPrefix.size();
  const char* e = p.data() + p.size() - kSuffix.size();
  uint64_t seq = 0;
  auto [end, ec] = std::from_chars(b, e, seq);
  if (ec != std::errc() || end != e) return std::nullopt;
  return seq;
}

}  // namespace

StatusHttp::StatusHttp(StatusReporter& reporter, storage::Journal& journal, std::string token,
                       std::function<int64_t()> now_us)
    : reporter_(reporter),
      journal_(journal),
      token_(std::move(token)),
      now_us_(now_us ? std::move(now_us) : UnixNowUs),
      start_time_us_(now_us_()) {}

void StatusHttp::SetApiCounters(std::function<devices::ApiCounters()> source) {
  std::lock_guard lock(mu_);
  api_counters_ = std::move(source);
}

void StatusHttp::SetDevices(std::function<v1::DeviceList()> source, size_t max_metric_devices) {
  std::lock_guard lock(mu_);
  devices_ = std::move(source);
  max_metric_devices_ = max_metric_devices;
}

void StatusHttp::SetUplinkStatus(std::function<sync::UplinkStatus()> source) {
  std::lock_guard lock(mu_);
  uplink_status_ = std::move(source);
}

void StatusHttp::SetDownstreamCounters(std::function<sync::DownstreamCounters()> source) {
  std::lock_guard lock(mu_);
  downstream_counters_ = std::move(source);
}

void StatusHttp::SetFeedStats(std::function<devices::FeedStats()> source) {
  std::lock_guard lock(mu_);
  feed_stats_ = std::move(source);
}

void StatusHttp::SetExtraResponseCounts(
    std::function<std::vector<std::pair<int, uint64_t>>()> source) {
  std::lock_guard lock(mu_);
  extra_responses_ = std::move(source);
}

void StatusHttp::Sample() {
  history_.Sample(journal_.Stats(), now_us_() / 1000, std::chrono::steady_clock::now());
}

MetricsInput StatusHttp::CollectMetrics() {
  std::function<devices::ApiCounters()> api;
  std::function<sync::UplinkStatus()> uplink;
  std::function<std::vector<std::pair<int, uint64_t>>()> extra;
  std::function<sync::DownstreamCounters()> downstream;
  std::function<v1::DeviceList()> devices;
  std::function<devices::FeedStats()> feed;
  {
    std::lock_guard lock(mu_);
    devices = devices_;
    api = api_counters_;
    uplink = uplink_status_;
    downstream = downstream_counters_;
    extra = extra_responses_;
    feed = feed_stats_;
  }
  MetricsInput in;
  in.journal = journal_.Stats();
  in.status = reporter_.Build();
  if (api) {
    in.api = api();
    in.http_responses = in.api->responses_by_code;
  }
  if (uplink) in.uplink = uplink();
  if (downstream) in.downstream = downstream();
  if (feed) in.feed = feed();
  if (devices) {
    in.devices = devices();
    std::lock_guard lock(mu_);
    in.max_metric_devices = max_metric_devices_;
  }
  if (extra) {
    for (const auto& p : extra()) in.http_responses.push_back(p);
  }
  in.commit_latency = commit_latency_.Take();
  in.start_time_us = start_time_us_;
  return in;
}

bool StatusHttp::Authorized(const devices::HttpRequest& req, bool allow_query_token) const {
  if (token_.empty()) return true;
  if (!req.authorization.empty()) {
    return http::ConstantTimeEquals(http::BearerToken(req.authorization).value_or(""), token_);
  }
  if (allow_query_token) {
    for (const auto& [k, v] : req.query) {
      if (k == "token") return http::ConstantTimeEquals(v, token_);
    }
  }
  return false;
}

// POST /v1/alerts/{seq}/ack {"by": "...", "note": "..."}: journals the
// acknowledgement (an alert_ack event) and answers the alert with it.
devices::HttpResponse StatusHttp::Acknowledge(const devices::HttpRequest& req, uint64_t seq) {
  if (Status s = devices::CheckStrictJson(req.body); !s.ok()) {
    return JsonFail(400, "invalid_argument", "body: " + s.message(), "");
  }
  v1::AckRequest ack;
  google::protobuf::util::JsonParseOptions parse;
  parse.ignore_unknown_fields = false;
  if (auto st = google::protobuf::util::JsonStringToMessage(req.body, &ack, parse); !st.ok()) {
    return JsonFail(400, "invalid_argument",
                    "body: " + std::string(st.message()) + " (expected {\"by\": NAME, \"note\": TEXT})",
                    "");
  }
  auto r = journal_.AcknowledgeAlert(seq, ack.by(), ack.note());
  if (!r.ok()) {
    const Status& s = r.status();
    switch (s.code()) {
      case StatusCode::kInvalidArgument:
        return JsonFail(400, "invalid_argument", s.message(), s.field());
      case StatusCode::kNotFound:
        return JsonFail(404, "not_found", s.message(), "seq");
      case StatusCode::kFailedPrecondition:
        return JsonFail(409, "alert_cleared", s.message(), "seq");
      case StatusCode::kUnavailable:
        return JsonFail(503, "unavailable", s.message(), "");
      default:
        return JsonFail(500, "internal", "acknowledging the alert failed: " + s.message(), "");
    }
  }
  google::protobuf::util::JsonPrintOptions print;
  print.always_print_primitive_fields = true;
  print.preserve_proto_field_names = true;
  std::string alert;
  if (!google::protobuf::util::MessageToJsonString(r->alert, &alert, print).ok()) {
    return JsonFail(500, "internal", "the alert could not be encoded", "");
  }
  devices::HttpResponse out;
  NoStore(out);
  out.body = "{\"alert\":" + alert +
             ",\"already_acknowledged\":" + (r->already ? "true" : "false") + "}";
  return out;
}

std::optional<devices::HttpResponse> StatusHttp::Handle(const devices::HttpRequest& req) {
  const std::string& p = req.path;
  if (p.rfind("/v1/alerts/", 0) == 0) {
    const std::optional<uint64_t> seq = AckPathSeq(p);
    if (!seq) {
      return JsonFail(404, "not_found",
                      "no such endpoint: " + req.method + " " + p +
                          " (acknowledge an alert with POST /v1/alerts/{seq}/ack)",
                      "");
    }
    if (req.method != "POST") {
      devices::HttpResponse r = JsonError(405, "method_not_allowed",
                                          req.method + " is not allowed on " + p + ": use POST");
      r.headers.emplace_back("Allow", "POST");
      return r;
    }
    if (!Authorized(req, /*allow_query_token=*/false)) return Unauthorized(false);
    return Acknowledge(req, *seq);
  }
  // The page; /kitchen is the same page in its kitchen-screen view (the
  // script picks the view from the path, or from ?view=kitchen).
  const bool page = p == "/" || p == "/index.html" || p == "/kitchen";
  if (!page && p != "/v1/status" && p != "/v1/status/history" && p != "/v1/devices" &&
      p != "/metrics") {
    return std::nullopt;
  }
  if (req.method != "GET" && req.method != "HEAD") return MethodNotAllowed(req.method, p);
  if (!Authorized(req, /*allow_query_token=*/page)) return Unauthorized(page);

  devices::HttpResponse r;
  NoStore(r);
  if (page) {
    r.content_type = "text/html; charset=utf-8";
    r.body = std::string(StatusPageHtml());
    // The page is self-contained: it may only talk to this gateway.
    r.headers.emplace_back("Content-Security-Policy",
                           "default-src 'none'; script-src 'unsafe-inline'; "
                           "style-src 'unsafe-inline'; img-src data:; connect-src 'self'; "
                           "base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
    r.headers.emplace_back("X-Content-Type-Options", "nosniff");
    r.headers.emplace_back("Referrer-Policy", "no-referrer");
  } else if (p == "/v1/status") {
    r.body = reporter_.Json();
  } else if (p == "/v1/devices") {
    std::function<v1::DeviceList()> devices;
    {
      std::lock_guard lock(mu_);
      devices = devices_;
    }
    const v1::DeviceList list = devices ? devices() : v1::DeviceList();
    google::protobuf::util::JsonPrintOptions print;
    print.always_print_primitive_fields = true;
    print.preserve_proto_field_names = true;
    if (!google::protobuf::util::MessageToJsonString(list, &r.body, print).ok()) {
      return JsonError(500, "internal", "the device table could not be encoded");
    }
  } else if (p == "/v1/status/history") {
    int64_t since = 0;
    for (const auto& [k, v] : req.query) {
      if (k != "since") continue;
      auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), since);
      if (ec != std::errc() || end != v.data() + v.size() || since < 0) {
        return JsonError(400, "invalid_argument",
                         "since must be a Unix time in milliseconds (a non-negative integer)");
      }
    }
    r.body = history_.Json(since);
  } else {  // /metrics
    r.content_type = kMetricsContentType;
    r.body = RenderMetrics(CollectMetrics());
  }
  return r;
}

}  // namespace storegw::gateway
