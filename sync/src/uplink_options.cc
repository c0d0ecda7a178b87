// Validation of UplinkOptions: see uplink_options.h.
#include "uplink_options.h"

#include <string>

#include "compress.h"
#include "storegw/storage/journal.h"

namespace storegw::sync {
namespace {

// One MQTT topic level: non-empty, without '/', '+', '#' or NUL.
bool ValidTopicLevel(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (c == '/' || c == '+' || c == '#' || c == '\0') return false;
  }
  return true;
}

}  // namespace

Status ValidateUplinkOptions(UplinkOptions& o, storage::Journal* journal) {
  if (!journal) return Status::InvalidArgument("journal", "uplink needs a journal");
  if (o.store_id.empty()) o.store_id = journal->store_id();
  if (o.gateway_id.empty()) o.gateway_id = journal->gateway_id();
  if (o.store_id != journal->store_id() || o.gateway_id != journal->gateway_id()) {
    return Status::FailedPrecondition("uplink: store/gateway id " + o.store_id + "/" +
                                      o.gateway_id + " differ from the journal's " +
                                      journal->store_id() + "/" + journal->gateway_id());
  }
  if (!ValidTopicLevel(o.store_id) || !ValidTopicLevel(o.gateway_id)) {
    return Status::InvalidArgument("gateway.store_id",
                                   "store_id and gateway_id must not contain '/', '+' or '#'");
  }
  if (o.topic_prefix.empty() || o.topic_prefix.find_first_of("+#") != std::string::npos ||
      o.topic_prefix.front() == '/' || o.topic_prefix.back() == '/') {
    return Status::InvalidArgument("uplink.topic_prefix",
                                   "\"" + o.topic_prefix +
                                       "\" must be non-empty, without '+', '#' or a leading or "
                                       "trailing '/'");
  }
  if (o.ack != "broker" && o.ack != "hq") {
    return Status::InvalidArgument("uplink.ack",
                                   "must be \"broker\" or \"hq\", got \"" + o.ack + "\"");
  }
  using L = UplinkLimits;
  const auto range = [](auto lo, auto hi, auto got) {
    return "must be " + std::to_string(lo) + ".." + std::to_string(hi) + ", got " +
           std::to_string(got);
  };
  if (o.max_inflight < L::kMinInflight || o.max_inflight > L::kMaxInflight) {
    return Status::InvalidArgument("uplink.max_inflight",
                                   range(L::kMinInflight, L::kMaxInflight, o.max_inflight));
  }
  if (o.batch_events < L::kMinBatchEvents || o.batch_events > L::kMaxBatchEvents) {
    return Status::InvalidArgument("uplink.batch_events",
                                   range(L::kMinBatchEvents, L::kMaxBatchEvents, o.batch_events));
  }
  if (o.max_message_bytes < L::kMinMessageBytes || o.max_message_bytes > L::kMaxMessageBytes) {
    return Status::InvalidArgument(
        "uplink.max_message_bytes",
        range(L::kMinMessageBytes, L::kMaxMessageBytes, o.max_message_bytes));
  }
  const std::optional<Compression> codec = ParseCompression(o.compression);
  if (!codec) {
    return Status::InvalidArgument("uplink.compression",
                                   "must be \"zstd\", \"deflate\" or \"none\", got \"" +
                                       o.compression + "\"");
  }
  if (o.batch_sizing != "adaptive" && o.batch_sizing != "fixed") {
    return Status::InvalidArgument("uplink.batch_sizing",
                                   "must be \"adaptive\" or \"fixed\", not \"" + o.batch_sizing + "\"");
  }
  if (o.live_lane != "auto" && o.live_lane != "off") {
    return Status::InvalidArgument("uplink.live_lane",
                                   "must be \"auto\" or \"off\", not \"" + o.live_lane + "\"");
  }
  if (o.batch_encoding != "protobuf" && o.batch_encoding != "columnar") {
    return Status::InvalidArgument("uplink.batch_encoding",
                                   "must be \"protobuf\" or \"columnar\", got \"" +
                                       o.batch_encoding + "\"");
  }
  if (o.compression_level != 0) {
    const bool ok = *codec == Compression::kDeflate ? o.compression_level >= 1 &&
                                                          o.compression_level <= 9
                    : *codec == Compression::kZstd ? o.compression_level >= -7 &&
                                                         o.compression_level <= 19
                                                   : false;
    if (!ok) {
      return Status::InvalidArgument(
          "uplink.compression_level",
          "must be 0 (the default) or, for " + o.compression + ", " +
              (*codec == Compression::kDeflate ? std::string("1..9")
               : *codec == Compression::kZstd  ? std::string("-7..19")
                                               : std::string("nothing else (no compression)")) +
              "; got " + std::to_string(o.compression_level));
    }
  }
  if (o.backoff_initial.count() <= 0 || o.backoff_initial > o.backoff_max) {
    return Status::InvalidArgument("uplink.backoff_initial",
                                   "must be > 0 and <= uplink.backoff_max");
  }
  if (o.hq_ack_timeout.count() <= 0) {
    return Status::InvalidArgument("uplink.hq_ack_timeout", "must be > 0");
  }
  if (o.ack_timeout.count() <= 0)
    return Status::InvalidArgument("uplink.ack_timeout", "must be > 0");
  if (o.connect_timeout < std::chrono::seconds(1)) {
    return Status::InvalidArgument("uplink.connect_timeout", "must be at least 1s");
  }
  if (o.keep_alive < std::chrono::seconds(1)) {
    return Status::InvalidArgument("uplink.keep_alive", "must be at least 1s");
  }
  if (o.request_timeout < std::chrono::seconds(1)) {
    return Status::InvalidArgument("uplink.request_timeout", "must be at least 1s");
  }
  if (o.status_interval.count() <= 0) {
    return Status::InvalidArgument("uplink.status_interval", "must be > 0");
  }
  if (o.tls.cert_file.empty() != o.tls.key_file.empty()) {
    return Status::InvalidArgument(
        o.tls.cert_file.empty() ? "uplink.tls.cert_file" : "uplink.tls.key_file",
        "uplink.tls.cert_file and uplink.tls.key_file go together (mutual TLS needs both)");
  }
  if (o.session_expiry.count() < 0 || o.session_expiry > std::chrono::seconds(0xFFFFFFFEu)) {
    return Status::InvalidArgument("uplink.session_expiry",
                                   "must be between 0s and 49710d (MQTT's limit)");
  }
  if (o.client_id.empty()) o.client_id = "storegw-" + o.store_id + "-" + o.gateway_id;
  return {};
}

}  // namespace storegw::sync
