#include "https_ingress.h"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <string>

#include "storegw/hq/decode.h"

namespace storegw::hq::internal {
namespace {

// How long a handler waits for its transaction (the gateway's default
// request timeout is 30 s).
constexpr std::chrono::seconds kCommitWait{20};

std::string Header(const httplib::Request& req, const char* name) {
  return req.has_header(name) ? req.get_header_value(name) : std::string();
}

std::string Lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// "application/x-protobuf; charset=x" -> "application/x-protobuf"
std::string MediaType(const std::string& content_type) {
  std::string t = Lower(content_type.substr(0, content_type.find(';')));
  while (!t.empty() && t.back() == ' ') t.pop_back();
  return t;
}

// At most 200 printable characters of a header value, for messages.
std::string Shown(const std::string& v) {
  std::string out;
  for (size_t i = 0; i < v.size() && i < 200; ++i) {
    const auto c = static_cast<unsigned char>(v[i]);
    out += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '?';
  }
  return out;
}

void Answer(httplib::Response& res, int status, const std::string& text) {
  res.status = status;
  res.set_content(text + "\n", "text/plain");
}

int StatusFor(RefuseReason r) {
  switch (r) {
    case RefuseReason::kUndecodable:
      return 400;
    case RefuseReason::kSupersededEpoch:
    case RefuseReason::kConflict:
      return 409;
    default:
      return 422;
  }
}

}  // namespace

Result<std::unique_ptr<HttpsIngress>> HttpsIngress::Create(const HttpsIngressOptions& o,
                                                           size_t max_batch_bytes, Ingest* ingest,
                                                           Reporter* reporter) {
  auto addr = http::ParseListenAddress(o.listen);
  if (!addr.ok()) return addr.status().WithFieldPrefix("https.listen");
  if (o.cert_file.empty() || o.key_file.empty()) {
    return Status::InvalidArgument(
        o.cert_file.empty() ? "https.cert_file" : "https.key_file",
        "is required with https.listen: the batch ingress serves HTTPS only (batches are sales "
        "data crossing the internet)");
  }
  return std::unique_ptr<HttpsIngress>(
      new HttpsIngress(std::move(*addr), o, max_batch_bytes, ingest, reporter));
}

HttpsIngress::HttpsIngress(http::ListenAddress addr, const HttpsIngressOptions& o,
                           size_t max_batch_bytes, Ingest* ingest, Reporter* reporter)
    : addr_(std::move(addr)), max_bytes_(max_batch_bytes), ingest_(ingest), reporter_(reporter) {
  http::ServerOptions so;
  so.name = "https.listen";
  so.tls.cert_file = o.cert_file;
  so.tls.key_file = o.key_file;
  so.tls.client_ca_file = o.client_ca_file;
  so.tls.key_prefix = "https";
  // One worker per open keep-alive connection: each gateway keeps one.
  so.threads = 32;
  so.keep_alive_timeout_s = 10;
  so.io_timeout_s = 30;
  so.max_body_bytes = max_bytes_;
  so.closing = [this] { return closing_.load(); };
  server_ = std::make_unique<http::Server>(std::move(so));
  Routes();
}

HttpsIngress::~HttpsIngress() { Stop(); }

Status HttpsIngress::Start() {
  Status s = server_->Start(addr_);
  if (s.ok()) spdlog::info("hq: https: POST {} on {}", kBatchesPath, addr_.ToString());
  return s;
}

void HttpsIngress::Stop() {
  closing_.store(true);
  server_->Stop();
}

void HttpsIngress::Routes() {
  httplib::Server& svr = server_->raw();
  // The checks that need no body run before it is read; such an answer
  // closes the connection (the unread body would follow it).
  svr.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (req.path != kBatchesPath) return httplib::Server::HandlerResponse::Unhandled;
    if (req.method == "HEAD") {
      res.status = 204;
      return httplib::Server::HandlerResponse::Handled;
    }
    if (req.method != "POST") {
      res.set_header("Allow", "POST, HEAD");
      Answer(res, 405, "use POST " + std::string(kBatchesPath));
      return httplib::Server::HandlerResponse::Handled;
    }
    const std::string source = "https " + req.remote_addr;
    const auto refuse = [&](int status, RefuseReason r, const std::string& detail) {
      reporter_->Update([](ReceiverStats& s) { ++s.batches_received; });
      reporter_->Refused(r, source, detail);
      res.set_header("Connection", "close");
      Answer(res, status, std::string(RefuseReasonName(r)) + ": " + detail);
      return httplib::Server::HandlerResponse::Handled;
    };
    const std::string type = Header(req, "Content-Type");
    if (MediaType(type) != "application/x-protobuf") {
      return refuse(415, RefuseReason::kUndecodable,
                    "Content-Type \"" + Shown(type) + "\": expected application/x-protobuf");
    }
    const std::string encoding = Header(req, "Content-Encoding");
    if (!ParseContentEncoding(encoding)) {
      return refuse(415, RefuseReason::kUndecodable,
                    "Content-Encoding \"" + Shown(encoding) + "\": expected zstd, deflate or none");
    }
    if (req.has_header("Content-Length")) {
      const std::string len = Header(req, "Content-Length");
      errno = 0;
      char* end = nullptr;
      const unsigned long long n = std::strtoull(len.c_str(), &end, 10);
      if (errno != 0 || end == len.c_str() || n > max_bytes_) {
        return refuse(413, RefuseReason::kUndecodable,
                      "body of " + Shown(len) + " bytes exceeds the limit of " +
                          std::to_string(max_bytes_) + " bytes");
      }
    }
    if (Header(req, "Idempotency-Key").empty()) {
      return refuse(400, RefuseReason::kTopicMismatch,
                    "no Idempotency-Key header (expected {gateway_id}-{epoch}-{first_seq}-"
                    "{last_seq})");
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });

  svr.Post(kBatchesPath, [this](const httplib::Request& req, httplib::Response& res,
                                const httplib::ContentReader& reader) {
    reporter_->Update([](ReceiverStats& s) { ++s.batches_received; });
    const std::string source = "https " + req.remote_addr;
    const auto refuse = [&](int status, RefuseReason r, const std::string& detail) {
      reporter_->Refused(r, source, detail);
      Answer(res, status, std::string(RefuseReasonName(r)) + ": " + detail);
    };
    // The body, inflated by httplib when Content-Encoding says deflate (a
    // zstd body comes as it was sent: httplib does not know zstd);
    // bounded here, since httplib bounds only what is sent.
    std::string body;
    bool too_big = false;
    const bool read = reader([&](const char* data, size_t n) {
      if (body.size() + n > max_bytes_) {
        too_big = true;
        return false;
      }
      body.append(data, n);
      return true;
    });
    if (too_big || !read) {
      res.set_header("Connection", "close");
      if (too_big) {
        return refuse(413, RefuseReason::kUndecodable,
                      "inflated body exceeds the limit of " + std::to_string(max_bytes_) +
                          " bytes");
      }
      return refuse(400, RefuseReason::kUndecodable,
                    "the body could not be read or inflated (a broken deflate stream?)");
    }
    // httplib inflated a "deflate" body (the first byte tells, should a
    // spelling of the header have slipped past it); a zstd body is ours to
    // decompress.
    const auto declared = ParseContentEncoding(Header(req, "Content-Encoding"));
    const PayloadEncoding enc = declared == PayloadEncoding::kDeflate ? PayloadEncoding::kSniff
                                : declared == PayloadEncoding::kZstd  ? PayloadEncoding::kZstd
                                                                      : PayloadEncoding::kIdentity;
    Decoded d = DecodeBatch(body, enc, {}, DecodeLimits{max_bytes_, max_bytes_});
    if (!d.ok()) return refuse(StatusFor(*d.refused), *d.refused, d.detail);
    const std::string key = Header(req, "Idempotency-Key");
    const std::string want = BatchIdempotencyKey(d.batch.batch);
    if (key != want) {
      return refuse(422, RefuseReason::kTopicMismatch,
                    "Idempotency-Key \"" + Shown(key) + "\" does not name the batch in the body (" +
                        want + ")");
    }
    if (req.has_header("Content-Length")) {
      d.batch.wire_bytes = std::strtoull(Header(req, "Content-Length").c_str(), nullptr, 10);
    }
    const v1::EventBatch& b = d.batch.batch;
    const uint64_t epoch = b.epoch();
    const std::string gateway = b.gateway_id();
    StoreAnswer a = ingest_->SubmitHttps(std::move(d.batch), source + " (" + key + ")", kCommitWait);
    switch (a.kind) {
      case StoreAnswer::Kind::kStored: {
        v1::HqAck ack;
        ack.set_epoch(epoch);
        ack.set_seq(a.outcome.applied_seq);
        ack.set_gateway_id(gateway);
        res.status = 200;
        res.set_content(ack.SerializeAsString(), "application/x-protobuf");
        return;
      }
      case StoreAnswer::Kind::kRefused:
        // Counted and logged by the transaction thread.
        Answer(res, StatusFor(*a.outcome.refused),
               std::string(RefuseReasonName(*a.outcome.refused)) + ": " +
                   a.outcome.refuse_detail);
        return;
      case StoreAnswer::Kind::kUnavailable:
        res.set_header("Retry-After", std::to_string(a.retry_after.count()));
        Answer(res, 503, "HQ cannot store batches right now; nothing was stored, retry later");
        return;
    }
  });
}

}  // namespace storegw::hq::internal
