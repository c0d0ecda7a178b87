#include "storegw/v1/warmup.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <mutex>
#include <string>

#include "storegw/v1/storegw.pb.h"

namespace storegw::v1 {

void WarmUpProtobuf() {
  static std::once_flag once;
  std::call_once(once, [] {
    namespace pb = google::protobuf;
    // Every message type's descriptor and default instance: the file's
    // descriptor pool builds them all at once.
    (void)Event::descriptor();
    (void)pb::UnknownFieldSet::default_instance();

    // The JSON parser and printer, each with its type resolver, over a
    // message that has a field of each kind the API reads and writes.
    IngestRequest req;
    const std::string json =
        R"({"events":[{"event_id":"warm-up","device_id":"warm-up","occurred_at":"1",)"
        R"("sale":{"lines":[{"sku":"S","qty":1,"unit_price":1,"currency":"EUR"}]}}]})";
    (void)pb::util::JsonStringToMessage(json, &req);
    std::string out;
    (void)pb::util::MessageToJsonString(req, &out);
    pb::Value any;
    (void)pb::util::JsonStringToMessage(R"({"k":[1,"s",true,null]})", &any);

    // Binary round trip and reflection's view of unknown fields.
    IngestRequest copy;
    (void)copy.ParseFromString(req.SerializeAsString());
    (void)copy.GetReflection()->GetUnknownFields(copy).empty();
    GatewayStatus status;
    (void)pb::util::MessageToJsonString(status, &out);
  });
}

}  // namespace storegw::v1
