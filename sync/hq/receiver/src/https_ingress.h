// HTTPS ingress of the receiver: `POST /v1/batches`, what the gateway's
// `https` transport sends (sync/README.md), served by storegw_http's
// http::Server over cpp-httplib's SSLServer (TLS 1.2 or later; a client
// certificate required when client_ca_file is set).
//
// A request: headers `Content-Type: application/x-protobuf`,
// `Idempotency-Key: {gateway_id}-{epoch}-{first_seq}-{last_seq}`,
// optionally `Content-Encoding: deflate` or `zstd`; the body is one EventBatch. The
// answer, and what the gateway does with it:
//   200  stored (committed) or stored before: body HqAck{epoch, applied
//        prefix, gateway_id} (application/x-protobuf). The gateway moves
//        its watermark over the batch.
//   400  not an EventBatch, no Idempotency-Key, a body that cannot be
//        inflated or read                       } refused for good: the
//   409  the store refused it: a superseded    } gateway stops and shows
//        epoch, or a seq holding another event } the answer's text in its
//   413  larger than max_batch_bytes (64 MiB) }
//        sent or inflated                     } last_error until it is
//   415  a Content-Type other than             } restarted
//        application/x-protobuf, a
//        Content-Encoding other than deflate or zstd
//   422  well-formed but wrong: seqs not
//        contiguous, an invalid event, an
//        Idempotency-Key naming another batch
//   503  + Retry-After: the store is unavailable (or the receiver stops):
//        nothing stored; the gateway backs off and resends.
// HEAD /v1/batches answers 204 (the gateway's connection probe); other
// methods 405. Every refusal is counted and logged like an MQTT one.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "ingest.h"
#include "reporter.h"
#include "storegw/hq/receiver.h"
#include "storegw/http/server.h"

namespace storegw::hq::internal {

inline constexpr char kBatchesPath[] = "/v1/batches";

class HttpsIngress {
 public:
  // Checks `o` (kInvalidArgument naming the https.* key); the TLS files are
  // read by Start().
  static Result<std::unique_ptr<HttpsIngress>> Create(const HttpsIngressOptions& o,
                                                      size_t max_batch_bytes, Ingest* ingest,
                                                      Reporter* reporter);
  ~HttpsIngress();  // Stop()
  HttpsIngress(const HttpsIngress&) = delete;
  HttpsIngress& operator=(const HttpsIngress&) = delete;

  Status Start();  // binds the listener (port 0: any free port)
  void Stop();     // idempotent
  uint16_t port() const { return server_->port(); }

 private:
  HttpsIngress(http::ListenAddress addr, const HttpsIngressOptions& o, size_t max_batch_bytes,
               Ingest* ingest, Reporter* reporter);
  void Routes();

  const http::ListenAddress addr_;
  const size_t max_bytes_;  // sent or inflated
  Ingest* const ingest_;
  Reporter* const reporter_;
  std::atomic<bool> closing_{false};
  std::unique_ptr<http::Server> server_;  // after closing_: its options read it
};

}  // namespace storegw::hq::internal
