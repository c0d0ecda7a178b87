// The public Uplink (storegw/sync/uplink.h): creation and forwarding. The
// engine itself is Uplink::Impl (uplink_impl.h).
#include "storegw/sync/uplink.h"

#include <memory>
#include <utility>

#include "storegw/storage/journal.h"
#include "storegw/v1/warmup.h"
#include "transport_factory.h"
#include "uplink_impl.h"
#include "uplink_options.h"

namespace storegw::sync {

Uplink::Uplink(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Uplink::~Uplink() {
  Stop();
}

Result<std::unique_ptr<Uplink>> Uplink::Create(UplinkOptions options, storage::Journal* journal) {
  if (Status s = CheckTransportName(options); !s.ok()) return s;
  if (Status s = ValidateUplinkOptions(options, journal); !s.ok()) return s;
  auto factory = MakeTransportFactory(
      options, TransportIdentity{options.store_id, options.gateway_id, journal->epoch()});
  if (!factory.ok()) return factory.status();
  return std::unique_ptr<Uplink>(
      new Uplink(std::make_unique<Impl>(std::move(options), journal, std::move(*factory))));
}

Result<std::unique_ptr<Uplink>> Uplink::CreateWithTransport(UplinkOptions options,
                                                            storage::Journal* journal,
                                                            TransportFactory factory) {
  if (!factory) return Status::InvalidArgument("transport", "no transport factory");
  if (Status s = ValidateUplinkOptions(options, journal); !s.ok()) return s;
  return std::unique_ptr<Uplink>(
      new Uplink(std::make_unique<Impl>(std::move(options), journal, std::move(factory))));
}

void Uplink::SetStatusSource(std::function<v1::GatewayStatus()> source) {
  impl_->SetStatusSource(std::move(source));
}
void Uplink::SetDownstreamSink(DownstreamSink sink) {
  impl_->SetDownstreamSink(std::move(sink));
}
void Uplink::SetDownstreamSink(std::function<void(DownstreamKind, std::string)> sink) {
  if (!sink) {
    impl_->SetDownstreamSink(nullptr);
    return;
  }
  impl_->SetDownstreamSink(
      [sink = std::move(sink)](DownstreamKind kind, std::string payload, std::stop_token) {
        sink(kind, std::move(payload));
      });
}
Status Uplink::Start() {
  v1::WarmUpProtobuf();  // before the engine's and Paho's threads (storegw/v1/warmup.h)
  return impl_->Start();
}
void Uplink::Stop() {
  if (impl_) impl_->Stop();
}
UplinkStatus Uplink::status() const {
  return impl_->status();
}
void Uplink::FillStatus(v1::GatewayStatus* status) const {
  impl_->FillStatus(status);
}

}  // namespace storegw::sync
