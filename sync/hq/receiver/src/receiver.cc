// Receiver::Create: the two ingress paths (mqtt_ingress, https_ingress)
// over one transaction thread (ingest) and one set of counters (reporter).
#include <spdlog/spdlog.h>

#include <chrono>
#include <memory>

#include "https_ingress.h"
#include "ingest.h"
#include "mqtt_ingress.h"
#include "reporter.h"
#include "storegw/hq/receiver.h"
#include "storegw/v1/warmup.h"

namespace storegw::hq {
namespace {

using internal::HttpsIngress;
using internal::Ingest;
using internal::MqttIngress;
using internal::Reporter;

class ReceiverImpl final : public Receiver {
 public:
  ReceiverImpl(const ReceiverOptions& o, EventStore* store)
      : ingest_(store, &reporter_, o.max_batches_per_txn,
                std::chrono::milliseconds(o.max_txn_delay_ms)) {}
  ~ReceiverImpl() override { Stop(); }

  Status Init(const ReceiverOptions& o) {
    if (!o.mqtt.url.empty()) {
      auto m = MqttIngress::Create(o.mqtt, o.max_batch_bytes, &ingest_, &reporter_);
      if (!m.ok()) return m.status();
      mqtt_ = std::move(*m);
      ingest_.SetAckSink([m = mqtt_.get()](std::vector<internal::AckTarget> acks) {
        m->QueueAcks(std::move(acks));
      });
    }
    if (!o.https.listen.empty()) {
      auto h = HttpsIngress::Create(o.https, o.max_batch_bytes, &ingest_, &reporter_);
      if (!h.ok()) return h.status();
      https_ = std::move(*h);
    }
    return {};
  }

  Status Start() override {
    if (started_) return Status::FailedPrecondition("receiver already started");
    started_ = true;
    v1::WarmUpProtobuf();
    // spdlog's registry (and default logger) is a function-local static
    // inside libspdlog.so, which is not built with TSan: build it here,
    // before any thread of ours exists, so TSan sees its construction
    // happen before every thread's first log line (the static's guard in
    // the library is invisible to it; an HTTPS worker's first warning was
    // reported as a race with the construction on the starting thread).
    spdlog::default_logger_raw();
    ingest_.Start();
    if (https_) {
      if (Status s = https_->Start(); !s.ok()) {
        Stop();
        return s;
      }
    }
    if (mqtt_) {
      if (Status s = mqtt_->Start(); !s.ok()) {
        Stop();
        return s;
      }
    }
    return {};
  }

  // The transaction thread first: it stores what is queued and hands the
  // acks over (waiting MQTT callbacks and HTTPS handlers are released at
  // once); then MQTT publishes those acks and disconnects; then the HTTPS
  // listener closes.
  void Stop() override {
    if (stopped_) return;
    stopped_ = true;
    ingest_.Stop();
    if (mqtt_) mqtt_->Stop();
    if (https_) https_->Stop();
  }

  ReceiverStats Stats() const override { return reporter_.Get(); }

 private:
  Reporter reporter_;
  Ingest ingest_;
  std::unique_ptr<MqttIngress> mqtt_;
  std::unique_ptr<HttpsIngress> https_;
  bool started_ = false;
  bool stopped_ = false;
};

}  // namespace

Result<std::unique_ptr<Receiver>> Receiver::Create(ReceiverOptions options, EventStore* store) {
  if (store == nullptr) return Status::InvalidArgument("store", "is required");
  if (options.mqtt.url.empty() && options.https.listen.empty()) {
    return Status::InvalidArgument("mqtt.url",
                                   "nothing to receive from: set mqtt.url, https.listen or both");
  }
  if (options.max_batches_per_txn < 1 || options.max_batches_per_txn > 10000) {
    return Status::InvalidArgument("max_batches_per_txn", "must be 1..10000, got " +
                                                               std::to_string(options.max_batches_per_txn));
  }
  if (options.max_txn_delay_ms > 10000) {
    return Status::InvalidArgument("max_txn_delay_ms", "must be 0..10000, got " +
                                                            std::to_string(options.max_txn_delay_ms));
  }
  if (options.max_batch_bytes < 1024 || options.max_batch_bytes > (uint64_t{1} << 30)) {
    return Status::InvalidArgument("max_batch_bytes", "must be 1024..1073741824, got " +
                                                          std::to_string(options.max_batch_bytes));
  }
  auto r = std::make_unique<ReceiverImpl>(options, store);
  if (Status s = r->Init(options); !s.ok()) return s;
  return std::unique_ptr<Receiver>(std::move(r));
}

}  // namespace storegw::hq
