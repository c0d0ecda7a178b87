// The HTTPS transport: libcurl (7.88, OpenSSL) multi interface.
//
// One "connection" of the engine is one HttpsTransport: a curl multi handle
// with kParallel easy handles, driven by one worker thread.
//   * Connect() sends a HEAD to uplink.url on the engine thread and waits
//     (bounded by connect_timeout, abandoned on Stop) for any HTTP answer:
//     TCP, proxy tunnel and TLS (peer and host name verified) are then
//     known to work, and the connection sits in the multi handle's cache
//     for the first POST. Failures come back in words: "TLS handshake with
//     127.0.0.1:8443 failed: certificate verify failed: unable to get local
//     issuer certificate".
//   * SendBatch() queues the POST and wakes the worker (curl_multi_wakeup);
//     the worker deflates the body (uplink.compression), starts the
//     request on a free easy handle and reports the outcome through the
//     listener. The engine keeps at most max_pending_sends() requests
//     outstanding, so a free handle always exists.
//   * Connections are HTTP/1.1 keep-alive, reused from the multi handle's
//     cache. kParallel is 1: one request at a time, so batches reach HQ
//     strictly in seq order, as over MQTT; a 2xx means "HQ stored this
//     batch"; HQ dedupes on the Idempotency-Key / (gateway_id, epoch, seq).
//   * Every curl_easy_setopt / curl_multi_setopt is checked: an option
//     libcurl refuses fails Connect() (or the request) with a message naming
//     it ("https: cannot set CURLOPT_SSLCERT: ..."), and Uplink::Create
//     tries them once (CheckHttpsOptions) so such a configuration fails at
//     start-up.
//   * 2xx: delivered. 408, 429, 5xx, 1xx/3xx and transport errors: failed
//     (Retry-After passed on); other 4xx: refused for good (the engine
//     stops, see SendFailure::permanent).
//   * Close() stops and joins the worker before it returns, so no callback
//     reaches the engine after it; in-flight requests are abandoned (the
//     engine resends from the watermark).
//   * Secrets (uplink.password, proxy credentials) are given to curl only
//     and scrubbed from every message.
#include "https_transport.h"

#include <curl/curl.h>
#include <openssl/x509.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "columnar.h"
#include "compress.h"
#include "net_probe.h"
#include "storegw/sync/uplink.h"
#include "storegw/v1/storegw.pb.h"

namespace storegw::sync {
namespace {

using SteadyClock = std::chrono::steady_clock;

// Requests in flight, and so keep-alive connections per gateway (the
// multi handle's connection limits). One: batches reach HQ in seq order,
// as over MQTT (parallel POSTs on several connections could overtake each
// other); 175k events/s on loopback this way. More would need HQ to
// reorder.
constexpr size_t kParallel = 1;
// Bytes of HQ's answer body kept for an error message.
constexpr size_t kKeepBody = 512;

// "https: cannot set CURLOPT_SSLCERT: <what libcurl says>".
Status OptionError(const std::string& option, const char* why) {
  return Status::FailedPrecondition("https: cannot set " + option + ": " + why);
}

std::string EasyOptionName(CURLoption opt) {
  const curl_easyoption* o = curl_easy_option_by_id(opt);
  if (o && o->name) return std::string("CURLOPT_") + o->name;
  return "libcurl option " + std::to_string(static_cast<int>(opt));
}

// curl_easy_setopt, its refusal as a Status naming the option.
template <typename T>
Status SetOpt(CURL* e, CURLoption opt, T value) {
  const CURLcode rc = curl_easy_setopt(e, opt, value);
  if (rc == CURLE_OK) return {};
  return OptionError(EasyOptionName(opt), curl_easy_strerror(rc));
}

template <typename T>
Status SetMultiOpt(CURLM* m, CURLMoption opt, const char* name, T value) {
  const CURLMcode rc = curl_multi_setopt(m, opt, value);
  if (rc == CURLM_OK) return {};
  return OptionError(name, curl_multi_strerror(rc));
}

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct UrlFree {
  void operator()(CURLU* u) const { curl_url_cleanup(u); }
};

std::string Part(CURLU* u, CURLUPart part, unsigned flags = 0) {
  char* out = nullptr;
  if (curl_url_get(u, part, &out, flags) != CURLUE_OK || !out) return {};
  std::string s = out;
  curl_free(out);
  return s;
}

// Replaces every occurrence of each non-empty secret by "***".
std::string Scrub(std::string s, const std::vector<std::string>& secrets) {
  for (const auto& secret : secrets) {
    if (secret.empty()) continue;
    for (size_t at = s.find(secret); at != std::string::npos; at = s.find(secret, at + 3)) {
      s.replace(at, secret.size(), "***");
    }
  }
  return s;
}

std::string HttpReason(long code) {
  switch (code) {
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 413:
      return "Payload Too Large";
    case 415:
      return "Unsupported Media Type";
    case 422:
      return "Unprocessable Content";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "";
  }
}

// One request slot: an easy handle and what its current request owns.
struct Slot {
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  bool busy = false;
  uint64_t id = 0;
  Transport::BatchRange range;
  size_t payload_bytes = 0;
  std::string body;      // what is POSTed (lives until the request ends)
  std::string response;  // first kKeepBody bytes of HQ's answer
  std::string retry_after;
  char errbuf[CURL_ERROR_SIZE] = {};

  void ResetRequest() {
    if (headers) curl_slist_free_all(headers);
    headers = nullptr;
    busy = false;
    body.clear();
    body.shrink_to_fit();
    response.clear();
    retry_after.clear();
    errbuf[0] = '\0';
  }
};

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  auto* slot = static_cast<Slot*>(user);
  const size_t len = size * n;
  if (slot->response.size() < kKeepBody) {
    slot->response.append(data, std::min(len, kKeepBody - slot->response.size()));
  }
  return len;
}

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* slot = static_cast<Slot*>(user);
  const size_t len = size * n;
  std::string_view line(data, len);
  constexpr std::string_view kName = "retry-after:";
  if (line.size() > kName.size()) {
    bool match = true;
    for (size_t i = 0; i < kName.size(); ++i) {
      if (std::tolower(static_cast<unsigned char>(line[i])) != kName[i]) {
        match = false;
        break;
      }
    }
    if (match) {
      std::string_view v = line.substr(kName.size());
      while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
      while (!v.empty() && (v.back() == '\r' || v.back() == '\n' || v.back() == ' ')) {
        v.remove_suffix(1);
      }
      slot->retry_after = std::string(v);
    }
  }
  // A new status line (e.g. after a proxy's "200 Connection established")
  // starts a new answer.
  if (line.substr(0, 5) == "HTTP/") slot->retry_after.clear();
  return len;
}

class HttpsTransport final : public Transport {
 public:
  HttpsTransport(const UplinkOptions& o, const TransportIdentity& id, HttpsUrl url,
                 std::string proxy_shown)
      : opt_(o), id_(id), url_(std::move(url)), proxy_shown_(std::move(proxy_shown)) {
    codec_ = ParseCompression(o.compression).value_or(Compression::kNone);
    level_ = DefaultLevel(codec_, o.compression_level);
    columnar_ = o.batch_encoding == "columnar";
    secrets_ = {o.password};
    if (!o.proxy.empty()) {
      // Proxy credentials: both the raw and the percent-decoded password.
      std::unique_ptr<CURLU, UrlFree> u(curl_url());
      if (curl_url_set(u.get(), CURLUPART_URL, o.proxy.c_str(), 0) == CURLUE_OK) {
        secrets_.push_back(Part(u.get(), CURLUPART_PASSWORD));
        secrets_.push_back(Part(u.get(), CURLUPART_PASSWORD, CURLU_URLDECODE));
      }
    }
  }

  ~HttpsTransport() override { Close(std::nullopt); }

  Status Connect(TransportListener* listener, const ConnectRequest& req) override {
    listener_ = listener;
    multi_ = curl_multi_init();
    if (!multi_) return Status::Unavailable("libcurl: cannot create a multi handle");
    if (Status s = SetMultiOpt(multi_, CURLMOPT_MAX_HOST_CONNECTIONS,
                               "CURLMOPT_MAX_HOST_CONNECTIONS", static_cast<long>(kParallel));
        !s.ok()) {
      return s;
    }
    if (Status s = SetMultiOpt(multi_, CURLMOPT_MAXCONNECTS, "CURLMOPT_MAXCONNECTS",
                               static_cast<long>(kParallel));
        !s.ok()) {
      return s;
    }
    for (size_t i = 0; i < kParallel; ++i) {
      auto slot = std::make_unique<Slot>();
      slot->easy = curl_easy_init();
      if (!slot->easy) return Status::Unavailable("libcurl: cannot create an easy handle");
      // Owned by slots_ before Configure, so Close() frees it either way.
      slots_.push_back(std::move(slot));
      if (Status s = Configure(*slots_.back()); !s.ok()) return s;
    }

    // The probe: HEAD to the URL. Any HTTP answer proves TCP, proxy and TLS.
    Slot& probe = *slots_.front();
    if (Status s = SetProbe(probe, true); !s.ok()) return s;
    probe.busy = true;
    if (const CURLMcode mrc = curl_multi_add_handle(multi_, probe.easy); mrc != CURLM_OK) {
      probe.busy = false;
      return Status::Unavailable(std::string("libcurl refused the HEAD request: ") +
                                 curl_multi_strerror(mrc));
    }
    const auto deadline = SteadyClock::now() + opt_.connect_timeout + std::chrono::seconds(2);
    CURLcode rc = CURLE_OK;
    bool done = false;
    while (!done) {
      if (req.cancel && req.cancel->load()) {
        curl_multi_remove_handle(multi_, probe.easy);
        probe.ResetRequest();
        return Status::Unavailable("uplink stopping");
      }
      if (SteadyClock::now() >= deadline) {
        curl_multi_remove_handle(multi_, probe.easy);
        probe.ResetRequest();
        return Status::Unavailable("connecting to " + Where() + " timed out after " +
                                   std::to_string(opt_.connect_timeout.count()) +
                                   " ms (TCP, proxy, TLS handshake or HQ's answer)");
      }
      int running = 0;
      curl_multi_perform(multi_, &running);
      int left = 0;
      while (CURLMsg* m = curl_multi_info_read(multi_, &left)) {
        if (m->msg == CURLMSG_DONE && m->easy_handle == probe.easy) {
          rc = m->data.result;
          done = true;
        }
      }
      if (!done) curl_multi_poll(multi_, nullptr, 0, 50, nullptr);
    }
    curl_multi_remove_handle(multi_, probe.easy);
    long code = 0;
    curl_easy_getinfo(probe.easy, CURLINFO_RESPONSE_CODE, &code);
    Status result;
    if (rc != CURLE_OK) {
      result = CurlError(probe, rc, "connecting to");
      // The connection broke without a TLS verdict curl could name (a
      // server that wants a client certificate closes it after the
      // handshake): ask OpenSSL directly, when the path is direct.
      if (result.message().find("TLS handshake") == std::string::npos &&
          (rc == CURLE_RECV_ERROR || rc == CURLE_SEND_ERROR || rc == CURLE_GOT_NOTHING ||
           rc == CURLE_SSL_CONNECT_ERROR) &&
          Direct()) {
        const std::string tls = TlsProbe(url_.host, url_.port, opt_.tls, std::chrono::seconds(2));
        if (!tls.empty()) {
          result = Status::Unavailable("TLS handshake with " + Where() + " failed: " + tls);
        }
      }
    } else {
      spdlog::debug("uplink: HEAD {} answered {}", url_.url, code);
    }
    probe.ResetRequest();
    if (!result.ok()) return result;
    if (Status s = SetProbe(probe, false); !s.ok()) return s;
    worker_ = std::thread([this] { Work(); });
    return {};
  }

  Status Send(uint64_t id, std::string payload) override {
    v1::EventBatch b;
    if (!b.ParseFromString(payload)) {
      return Status::InvalidArgument("payload", "not an EventBatch");
    }
    return SendBatch(id, std::move(payload), {b.first_seq(), b.last_seq()});
  }

  Status SendBatch(uint64_t id, std::string payload, const BatchRange& range) override {
    if (!multi_ || !worker_.joinable()) return Status::Unavailable("not connected");
    {
      std::lock_guard lk(mu_);
      if (queue_.size() + busy_ >= kParallel) {
        return Status::ResourceExhausted("more than " + std::to_string(kParallel) +
                                         " requests outstanding");
      }
      queue_.push_back({id, range, std::move(payload)});
    }
    curl_multi_wakeup(multi_);
    return {};
  }

  // HTTPS has no status channel: the status stays on the local status page
  // and /v1/status.
  Status PublishStatus(std::string) override { return {}; }

  void Close(const std::optional<std::string>&) override {
    if (worker_.joinable()) {
      {
        std::lock_guard lk(mu_);
        closing_ = true;
      }
      curl_multi_wakeup(multi_);
      worker_.join();
    }
    for (auto& s : slots_) {
      if (s->busy && multi_) curl_multi_remove_handle(multi_, s->easy);
      s->ResetRequest();
      curl_easy_cleanup(s->easy);
    }
    slots_.clear();
    if (multi_) curl_multi_cleanup(multi_);
    multi_ = nullptr;
    listener_ = nullptr;
  }

  size_t max_pending_sends() const override { return kParallel; }

  // Configures a scratch handle the way Connect() does, without sending
  // anything: the first option libcurl refuses is the error.
  Status CheckOptions() {
    Slot scratch;
    scratch.easy = curl_easy_init();
    if (!scratch.easy) return Status::Unavailable("libcurl: cannot create an easy handle");
    Status s = Configure(scratch);
    if (s.ok()) s = SetProbe(scratch, true);
    if (s.ok()) s = SetProbe(scratch, false);
    curl_easy_cleanup(scratch.easy);
    return s;
  }

  std::string protocol() const override {
    std::string p = "HTTP/1.1 over TLS, " + std::to_string(kParallel) + " parallel requests";
    if (!proxy_shown_.empty()) p += ", via proxy " + proxy_shown_;
    return p;
  }
  int protocol_version() const override { return 0; }

 private:
  struct Queued {
    uint64_t id;
    BatchRange range;
    std::string payload;
  };

  // No proxy between us and HQ (neither configured nor in the environment).
  bool Direct() const {
    if (!proxy_shown_.empty()) return false;
    for (const char* v : {"https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"}) {
      const char* e = std::getenv(v);
      if (e && *e) return false;
    }
    return true;
  }

  std::string Where() const {
    return url_.host_port() + (proxy_shown_.empty() ? "" : " via proxy " + proxy_shown_);
  }

  // Sets every per-connection option of a request slot; the first option
  // libcurl refuses is the error (its value is not in the message).
  Status Configure(Slot& s) {
    CURL* e = s.easy;
    // TLS: peer and host name verified against ca_file or the system
    // store. Proxy: the configured one, else libcurl reads
    // https_proxy/no_proxy.
    const Status results[] = {
        SetOpt(e, CURLOPT_PRIVATE, &s),
        SetOpt(e, CURLOPT_URL, url_.url.c_str()),
        SetOpt(e, CURLOPT_NOSIGNAL, 1L),  // threads: no SIGALRM for DNS timeouts
        SetOpt(e, CURLOPT_PROTOCOLS_STR, "https"),
        SetOpt(e, CURLOPT_REDIR_PROTOCOLS_STR, "https"),
        SetOpt(e, CURLOPT_FOLLOWLOCATION, 0L),  // a POST is not replayed elsewhere
        SetOpt(e, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1)),
        SetOpt(e, CURLOPT_TCP_KEEPALIVE, 1L),
        SetOpt(e, CURLOPT_TCP_NODELAY, 1L),
        SetOpt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(opt_.connect_timeout.count())),
        SetOpt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(opt_.request_timeout.count())),
        SetOpt(e, CURLOPT_SSL_VERIFYPEER, 1L),
        SetOpt(e, CURLOPT_SSL_VERIFYHOST, 2L),
        SetOpt(e, CURLOPT_SSLVERSION, static_cast<long>(CURL_SSLVERSION_TLSv1_2)),
        opt_.tls.ca_file.empty() ? Status() : SetOpt(e, CURLOPT_CAINFO, opt_.tls.ca_file.c_str()),
        opt_.tls.cert_file.empty() ? Status()
                                   : SetOpt(e, CURLOPT_SSLCERT, opt_.tls.cert_file.c_str()),
        opt_.tls.cert_file.empty() ? Status() : SetOpt(e, CURLOPT_SSLCERTTYPE, "PEM"),
        opt_.tls.cert_file.empty() ? Status()
                                   : SetOpt(e, CURLOPT_SSLKEY, opt_.tls.key_file.c_str()),
        opt_.tls.cert_file.empty() ? Status() : SetOpt(e, CURLOPT_SSLKEYTYPE, "PEM"),
        opt_.proxy.empty() ? Status() : SetOpt(e, CURLOPT_PROXY, opt_.proxy.c_str()),
        opt_.username.empty() ? Status()
                              : SetOpt(e, CURLOPT_HTTPAUTH, static_cast<long>(CURLAUTH_BASIC)),
        opt_.username.empty() ? Status() : SetOpt(e, CURLOPT_USERNAME, opt_.username.c_str()),
        opt_.username.empty() ? Status() : SetOpt(e, CURLOPT_PASSWORD, opt_.password.c_str()),
        SetOpt(e, CURLOPT_USERAGENT, "storegw-uplink"),
        SetOpt(e, CURLOPT_WRITEFUNCTION, OnBody),
        SetOpt(e, CURLOPT_WRITEDATA, &s),
        SetOpt(e, CURLOPT_HEADERFUNCTION, OnHeader),
        SetOpt(e, CURLOPT_HEADERDATA, &s),
        SetOpt(e, CURLOPT_ERRORBUFFER, s.errbuf),
    };
    for (const Status& r : results) {
      if (!r.ok()) return r;
    }
    return {};
  }

  // The HEAD probe's options (probe) or back to a POST's (after it).
  Status SetProbe(Slot& s, bool probe) {
    if (Status r = SetOpt(s.easy, CURLOPT_NOBODY, probe ? 1L : 0L); !r.ok()) return r;
    return SetOpt(s.easy, CURLOPT_TIMEOUT_MS,
                  static_cast<long>(probe ? opt_.connect_timeout.count() + 1000
                                          : opt_.request_timeout.count()));
  }

  // Starts one queued POST on a free slot (worker thread).
  Status Start(Queued q) {
    Slot* slot = nullptr;
    for (auto& s : slots_) {
      if (!s->busy) {
        slot = s.get();
        break;
      }
    }
    if (!slot) return Status::Unavailable("no free request slot");
    slot->ResetRequest();
    slot->id = q.id;
    slot->range = q.range;
    slot->payload_bytes = q.payload.size();
    curl_slist* h = nullptr;
    h = curl_slist_append(h, "Content-Type: application/x-protobuf");
    h = curl_slist_append(
        h, ("Idempotency-Key: " +
            IdempotencyKey(id_.gateway_id, id_.epoch, q.range.first_seq, q.range.last_seq))
               .c_str());
    if (columnar_) q.payload = WireBatch(std::move(q.payload), true);
    if (codec_ != Compression::kNone) {
      auto z = Compress(codec_, q.payload, level_);
      if (!z.ok()) {
        curl_slist_free_all(h);
        return z.status();
      }
      slot->body = std::move(*z);
      h = curl_slist_append(
          h, ("Content-Encoding: " + std::string(CompressionName(codec_))).c_str());
    } else {
      slot->body = std::move(q.payload);
    }
    h = curl_slist_append(h, "Expect:");  // no 100-continue round trip
    slot->headers = h;
    Status set = SetOpt(slot->easy, CURLOPT_HTTPHEADER, h);
    if (set.ok()) set = SetOpt(slot->easy, CURLOPT_POSTFIELDS, slot->body.data());
    if (set.ok()) {
      set = SetOpt(slot->easy, CURLOPT_POSTFIELDSIZE_LARGE,
                   static_cast<curl_off_t>(slot->body.size()));
    }
    if (!set.ok()) {
      slot->ResetRequest();
      return set;
    }
    slot->busy = true;
    if (const CURLMcode mrc = curl_multi_add_handle(multi_, slot->easy); mrc != CURLM_OK) {
      slot->ResetRequest();
      return Status::Unavailable(std::string("libcurl refused the request: ") +
                                 curl_multi_strerror(mrc));
    }
    return {};
  }

  // The worker: starts queued requests, drives the transfers, reports.
  void Work() {
    for (;;) {
      std::deque<Queued> starting;
      {
        std::lock_guard lk(mu_);
        if (closing_) return;
        starting.swap(queue_);
      }
      for (auto& q : starting) {
        const uint64_t id = q.id;
        if (Status s = Start(std::move(q)); !s.ok()) {
          listener_->OnSendDone(id, std::move(s));
        } else {
          std::lock_guard lk(mu_);
          ++busy_;
        }
      }
      int running = 0;
      curl_multi_perform(multi_, &running);
      int left = 0;
      while (CURLMsg* m = curl_multi_info_read(multi_, &left)) {
        if (m->msg != CURLMSG_DONE) continue;
        Slot* slot = nullptr;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, reinterpret_cast<char**>(&slot));
        const CURLcode rc = m->data.result;
        curl_multi_remove_handle(multi_, m->easy_handle);
        if (!slot) continue;
        {
          // Before the callback: the engine may send the next batch at once.
          std::lock_guard lk(mu_);
          --busy_;
        }
        Finish(*slot, rc);
        slot->ResetRequest();
      }
      curl_multi_poll(multi_, nullptr, 0, 1000, nullptr);
    }
  }

  // Reports one finished POST to the engine (worker thread).
  void Finish(Slot& s, CURLcode rc) {
    if (rc != CURLE_OK) {
      listener_->OnSendFailed(s.id, CurlError(s, rc, "POST to"), {});
      return;
    }
    long code = 0;
    curl_easy_getinfo(s.easy, CURLINFO_RESPONSE_CODE, &code);
    const HttpVerdict v = ClassifyHttpStatus(code);
    if (v == HttpVerdict::kDelivered) {
      listener_->OnSendDone(s.id, {});
      return;
    }
    SendFailure how;
    how.permanent = v == HttpVerdict::kRefused;
    std::string what = "HQ at " + url_.host_port() +
                       (how.permanent ? " refused it: " : " answered ") + std::to_string(code);
    if (const std::string r = HttpReason(code); !r.empty()) what += " " + r;
    if (const std::string b = BodyExcerpt(s.response); !b.empty()) what += ": " + b;
    if (!how.permanent) {
      if (auto ra = ParseRetryAfter(s.retry_after, std::chrono::system_clock::now())) {
        how.retry_after = *ra;
        what += " (Retry-After: " + BodyExcerpt(s.retry_after, 40) + ")";
      }
    }
    listener_->OnSendFailed(s.id,
                            Status(v == HttpVerdict::kRefused ? StatusCode::kFailedPrecondition
                                                              : StatusCode::kUnavailable,
                                   Scrub(what, secrets_)),
                            how);
  }

  // A libcurl failure in words an operator can act on.
  Status CurlError(Slot& s, CURLcode rc, const char* doing) {
    std::string detail = s.errbuf[0] ? s.errbuf : curl_easy_strerror(rc);
    const std::string where = Where();
    std::string msg;
    switch (rc) {
      case CURLE_COULDNT_CONNECT: {
        long os_errno = 0;
        curl_easy_getinfo(s.easy, CURLINFO_OS_ERRNO, &os_errno);
        if (os_errno != 0) detail = std::strerror(static_cast<int>(os_errno));
        msg = "could not connect to " + where + ": " + detail;
        break;
      }
      case CURLE_COULDNT_RESOLVE_HOST:
        msg = "cannot resolve " + url_.host + ": " + detail;
        break;
      case CURLE_COULDNT_RESOLVE_PROXY:
        msg = "cannot resolve the proxy " + proxy_shown_ + ": " + detail;
        break;
      case CURLE_PEER_FAILED_VERIFICATION: {
        long verify = 0;
        curl_easy_getinfo(s.easy, CURLINFO_SSL_VERIFYRESULT, &verify);
        if (verify != 0) {
          detail =
              std::string("certificate verify failed: ") + X509_verify_cert_error_string(verify);
        } else if (detail.find("certificate") == std::string::npos) {
          detail = "certificate verify failed: " + detail;
        }
        msg = "TLS handshake with " + where + " failed: " + detail;
        break;
      }
      case CURLE_SSL_CONNECT_ERROR:
      case CURLE_SSL_CERTPROBLEM:
      case CURLE_SSL_CIPHER:
      case CURLE_SSL_CACERT_BADFILE:
      case CURLE_SSL_ISSUER_ERROR:
        msg = "TLS handshake with " + where + " failed: " + detail;
        break;
      case CURLE_OPERATION_TIMEDOUT:
        msg = std::string(doing) + " " + where + " timed out: " + detail;
        break;
      case CURLE_SEND_ERROR:
      case CURLE_RECV_ERROR:
        // A TLS 1.3 server refuses a client certificate (or its absence)
        // after the handshake: the alert arrives on the first read.
        if (detail.find(" alert ") != std::string::npos) {
          msg = "TLS handshake with " + where + " failed: " + detail;
        } else {
          msg = "connection to " + where + " lost: " + detail;
        }
        break;
      case CURLE_GOT_NOTHING:
      case CURLE_PARTIAL_FILE:
        msg = "connection to " + where + " lost: " + detail;
        break;
      default:
        msg = std::string(doing) + " " + where + " failed: " + detail + " (curl " +
              std::to_string(static_cast<int>(rc)) + ")";
    }
    return Status::Unavailable(Scrub(msg, secrets_));
  }

  const UplinkOptions opt_;
  const TransportIdentity id_;
  const HttpsUrl url_;
  const std::string proxy_shown_;  // without credentials; "" when none configured
  std::vector<std::string> secrets_;
  Compression codec_ = Compression::kDeflate;
  int level_ = 1;
  bool columnar_ = false;

  TransportListener* listener_ = nullptr;  // set in Connect, used by the worker
  CURLM* multi_ = nullptr;
  std::vector<std::unique_ptr<Slot>> slots_;  // worker thread once it runs
  std::thread worker_;

  std::mutex mu_;  // guards queue_, busy_, closing_
  std::deque<Queued> queue_;
  size_t busy_ = 0;
  bool closing_ = false;
};

}  // namespace

std::string HttpsUrl::host_port() const {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

Result<HttpsUrl> ParseHttpsUrl(const std::string& url) {
  const auto bad = [&](const std::string& why) {
    return Status::InvalidArgument("uplink.url", "\"" + url + "\": " + why);
  };
  const auto sep = url.find("://");
  const std::string scheme = sep == std::string::npos ? "" : url.substr(0, sep);
  if (scheme == "http") {
    return bad(
        "plain http:// is refused: batches carry sales data over the internet; use https://");
  }
  if (scheme != "https") return bad("expected https://HOST[:PORT]/PATH");
  std::unique_ptr<CURLU, UrlFree> u(curl_url());
  if (!u || curl_url_set(u.get(), CURLUPART_URL, url.c_str(), 0) != CURLUE_OK) {
    return bad("not a valid URL");
  }
  if (!Part(u.get(), CURLUPART_USER).empty() || !Part(u.get(), CURLUPART_PASSWORD).empty()) {
    return bad(
        "credentials do not go in the URL (they would show in logs): use uplink.username "
        "and uplink.password");
  }
  HttpsUrl out;
  out.url = url;
  out.host = Part(u.get(), CURLUPART_HOST);
  if (out.host.size() >= 2 && out.host.front() == '[' && out.host.back() == ']') {
    out.host = out.host.substr(1, out.host.size() - 2);
  }
  if (out.host.empty()) return bad("missing host");
  const std::string port = Part(u.get(), CURLUPART_PORT, CURLU_DEFAULT_PORT);
  out.port = static_cast<uint16_t>(port.empty() ? 443 : std::stoi(port));
  return out;
}

Result<std::string> RedactedProxy(const std::string& proxy) {
  const auto bad = [&](const std::string& why) {
    // The value may hold a password: never echo it.
    return Status::InvalidArgument("uplink.proxy", why);
  };
  std::unique_ptr<CURLU, UrlFree> u(curl_url());
  if (proxy.find("://") == std::string::npos || !u ||
      curl_url_set(u.get(), CURLUPART_URL, proxy.c_str(), CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK) {
    return bad("expected a proxy URL such as http://HOST:PORT");
  }
  const std::string scheme = Part(u.get(), CURLUPART_SCHEME);
  static constexpr std::array<std::string_view, 6> kSchemes = {"http",    "https",  "socks4",
                                                               "socks4a", "socks5", "socks5h"};
  if (std::find(kSchemes.begin(), kSchemes.end(), scheme) == kSchemes.end()) {
    return bad("scheme must be http://, https://, socks4://, socks4a://, socks5:// or socks5h://");
  }
  std::string host = Part(u.get(), CURLUPART_HOST);
  if (host.empty()) return bad("missing host");
  std::string port = Part(u.get(), CURLUPART_PORT);
  return scheme + "://" + host + (port.empty() ? "" : ":" + port);
}

std::string IdempotencyKey(const std::string& gateway_id, uint64_t epoch, uint64_t first_seq,
                           uint64_t last_seq) {
  return gateway_id + "-" + std::to_string(epoch) + "-" + std::to_string(first_seq) + "-" +
         std::to_string(last_seq);
}

std::optional<std::chrono::milliseconds> ParseRetryAfter(
    std::string_view value, std::chrono::system_clock::time_point now) {
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
  if (value.empty()) return std::nullopt;
  if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    if (value.size() > 9) return std::chrono::milliseconds(std::chrono::hours(24 * 365));
    int64_t secs = 0;
    for (char c : value) secs = secs * 10 + (c - '0');
    return std::chrono::milliseconds(secs * 1000);
  }
  const std::string s(value);
  const time_t when = curl_getdate(s.c_str(), nullptr);
  if (when < 0) return std::nullopt;
  const auto delta = std::chrono::system_clock::from_time_t(when) - now;
  if (delta.count() <= 0) return std::chrono::milliseconds(0);
  return std::chrono::duration_cast<std::chrono::milliseconds>(delta);
}

HttpVerdict ClassifyHttpStatus(long code) {
  if (code >= 200 && code < 300) return HttpVerdict::kDelivered;
  if (code == 408 || code == 429) return HttpVerdict::kRetry;
  if (code >= 400 && code < 500) return HttpVerdict::kRefused;
  return HttpVerdict::kRetry;
}

std::string BodyExcerpt(std::string_view body, size_t max) {
  std::string out;
  bool space = false;
  for (char c : body) {
    if (out.size() >= max) {
      out += "...";
      break;
    }
    const auto u = static_cast<unsigned char>(c);
    if (c == '\n' || c == '\r' || c == '\t' || c == ' ') {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += (u < 0x20 || u >= 0x7f) ? '?' : c;
  }
  return out;
}

Status CheckHttpsOptions(const UplinkOptions& options) {
  GlobalInit();
  auto url = ParseHttpsUrl(options.url);
  if (!url.ok()) return url.status();
  return HttpsTransport(options, TransportIdentity{}, std::move(*url), "").CheckOptions();
}

Result<std::unique_ptr<Transport>> MakeHttpsTransport(const UplinkOptions& options,
                                                      const TransportIdentity& identity) {
  GlobalInit();
  auto url = ParseHttpsUrl(options.url);
  if (!url.ok()) return url.status();
  std::string proxy_shown;
  if (!options.proxy.empty()) {
    auto p = RedactedProxy(options.proxy);
    if (!p.ok()) return p.status();
    proxy_shown = std::move(*p);
  }
  return std::unique_ptr<Transport>(
      new HttpsTransport(options, identity, std::move(*url), std::move(proxy_shown)));
}

}  // namespace storegw::sync
