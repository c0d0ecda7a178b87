// Payload -> checked EventBatch (decode.h). Inflating reuses the uplink's
// zlib code (sync/src/compress.h) with its size bound; the Idempotency-Key
// is the HTTPS transport's own function (sync/src/https_transport.h), so
// both ends of the wire spell it the same way.
#include "storegw/hq/decode.h"

#include <cctype>
#include <exception>
#include <string>

#include "columnar.h"
#include "compress.h"
#include "https_transport.h"
#include "storegw/storage/journal.h"

namespace storegw::hq {
namespace {

constexpr uint8_t kZlibFirstByte = 0x78;

// User data in a detail: at most 64 characters, non-printable bytes as '?'.
std::string Shown(std::string_view s) {
  std::string out = "\"";
  const size_t n = std::min<size_t>(s.size(), 64);
  for (size_t i = 0; i < n; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    out += (c >= 0x20 && c < 0x7f && c != '"') ? static_cast<char>(c) : '?';
  }
  out += s.size() > n ? "\"..." : "\"";
  return out;
}

std::string Range(uint64_t first, uint64_t last) {
  return std::to_string(first) + ".." + std::to_string(last);
}

Decoded Refuse(RefuseReason r, std::string detail) {
  Decoded d;
  d.refused = r;
  d.detail = std::move(detail);
  return d;
}

bool GatewayOnlyBody(const v1::Event& e) {
  switch (e.body_case()) {
    case v1::Event::kAlert:
    case v1::Event::kStockSnapshot:
    case v1::Event::kPriceUpdate:
    case v1::Event::kAlertAck:
    case v1::Event::kAlertCleared:
    case v1::Event::kPriceInForce:
    case v1::Event::kStoreRules:
      return true;
    default:
      return false;
  }
}

// An event the gateway journaled itself: a gateway-only body under an id
// of the gateway's reserved "gw:" space (printable, at most 128 long, as
// every event id).
bool IsGatewayEvent(const v1::Event& e) {
  const std::string& id = e.event_id();
  if (!GatewayOnlyBody(e) || id.rfind("gw:", 0) != 0 || id.size() > 128) return false;
  for (unsigned char c : id) {
    if (c < 0x21 || c > 0x7e) return false;
  }
  return !e.device_id().empty();
}

std::optional<Refusal> CheckEvents(const v1::EventBatch& b) {
  for (int i = 0; i < b.events_size(); ++i) {
    const v1::JournaledEvent& je = b.events(i);
    const std::string where = "events[" + std::to_string(i) + "] (seq " +
                              std::to_string(je.seq()) + ")";
    const auto bad = [&](const std::string& why) {
      return Refusal{RefuseReason::kInvalidEvent, where + ": " + why};
    };
    if (je.recorded_at() <= 0) return bad("recorded_at is not set");
    if (je.epoch() != 0 && je.epoch() != b.epoch()) {
      return bad("epoch " + std::to_string(je.epoch()) + " is not the batch's " +
                 std::to_string(b.epoch()));
    }
    if (!je.store_id().empty() && je.store_id() != b.store_id()) {
      return bad("store_id " + Shown(je.store_id()) + " is not the batch's");
    }
    if (!je.gateway_id().empty() && je.gateway_id() != b.gateway_id()) {
      return bad("gateway_id " + Shown(je.gateway_id()) + " is not the batch's");
    }
    if (!je.has_event()) return bad("event is missing");
    if (IsGatewayEvent(je.event())) continue;
    if (Status s = storage::ValidateDeviceEvent(je.event()); !s.ok()) {
      return bad("event." + (s.field().empty() ? std::string() : s.field() + ": ") + s.message());
    }
  }
  return std::nullopt;
}

}  // namespace

std::optional<PayloadEncoding> ParseContentEncoding(std::string_view value) {
  std::string v;
  for (char c : value) v += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (v.empty() || v == "identity") return PayloadEncoding::kIdentity;
  if (v == "deflate") return PayloadEncoding::kDeflate;
  if (v == "zstd") return PayloadEncoding::kZstd;
  return std::nullopt;
}

bool IsGatewayId(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') {
      return false;
    }
  }
  return true;
}

std::optional<GatewayTopic> ParseGatewayTopic(std::string_view topic, std::string_view prefix) {
  if (topic.size() <= prefix.size() + 1 || topic.substr(0, prefix.size()) != prefix ||
      topic[prefix.size()] != '/') {
    return std::nullopt;
  }
  std::string_view rest = topic.substr(prefix.size() + 1);
  GatewayTopic t;
  std::string* parts[] = {&t.store_id, &t.gateway_id, &t.leaf};
  for (int i = 0; i < 3; ++i) {
    const size_t slash = rest.find('/');
    if ((i < 2) == (slash == std::string_view::npos)) return std::nullopt;
    *parts[i] = std::string(rest.substr(0, slash));
    if (parts[i]->empty()) return std::nullopt;
    rest = i < 2 ? rest.substr(slash + 1) : std::string_view();
  }
  return t;
}

std::string BatchIdempotencyKey(const v1::EventBatch& b) {
  return sync::IdempotencyKey(b.gateway_id(), b.epoch(), b.first_seq(), b.last_seq());
}

std::optional<Refusal> CheckBatch(const v1::EventBatch& b, const BatchOrigin& origin) {
  if (!IsGatewayId(b.store_id())) {
    return Refusal{RefuseReason::kUndecodable,
                   "store_id " + Shown(b.store_id()) +
                       " is not an id (1 to 64 characters of A-Z a-z 0-9 . _ -)"};
  }
  if (!IsGatewayId(b.gateway_id())) {
    return Refusal{RefuseReason::kUndecodable,
                   "gateway_id " + Shown(b.gateway_id()) +
                       " is not an id (1 to 64 characters of A-Z a-z 0-9 . _ -)"};
  }
  if ((!origin.store_id.empty() && origin.store_id != b.store_id()) ||
      (!origin.gateway_id.empty() && origin.gateway_id != b.gateway_id())) {
    return Refusal{RefuseReason::kTopicMismatch,
                   "batch of store " + Shown(b.store_id()) + ", gateway " +
                       Shown(b.gateway_id()) + " arrived under the " + std::string(origin.what) +
                       " of store " + Shown(origin.store_id) + ", gateway " +
                       Shown(origin.gateway_id)};
  }
  const auto n = static_cast<uint64_t>(b.events_size());
  if (n == 0) {
    return Refusal{RefuseReason::kNotContiguous,
                   "batch " + Range(b.first_seq(), b.last_seq()) + " has no events"};
  }
  const std::string range = "batch " + Range(b.first_seq(), b.last_seq());
  if (b.first_seq() == 0) {
    return Refusal{RefuseReason::kNotContiguous, range + ": seqs start at 1"};
  }
  if (b.last_seq() < b.first_seq()) {
    return Refusal{RefuseReason::kNotContiguous, range + ": last_seq is below first_seq"};
  }
  if (b.last_seq() - b.first_seq() != n - 1) {
    return Refusal{RefuseReason::kNotContiguous,
                   range + " holds " + std::to_string(n) + " events, expected " +
                       std::to_string(b.last_seq() - b.first_seq() + 1) + " (one per seq)"};
  }
  for (uint64_t i = 0; i < n; ++i) {
    const uint64_t seq = b.events(static_cast<int>(i)).seq();
    if (seq != b.first_seq() + i) {
      return Refusal{RefuseReason::kNotContiguous,
                     range + ": events[" +
                         std::to_string(i) + "] has seq " + std::to_string(seq) + ", expected " +
                         std::to_string(b.first_seq() + i)};
    }
  }
  return CheckEvents(b);
}

Decoded DecodeBatch(std::string_view payload, PayloadEncoding encoding, const BatchOrigin& origin,
                    const DecodeLimits& limits) {
  try {
    if (payload.size() > limits.max_payload_bytes) {
      return Refuse(RefuseReason::kUndecodable,
                    "payload of " + std::to_string(payload.size()) + " bytes exceeds the limit of " +
                        std::to_string(limits.max_payload_bytes) + " bytes");
    }
    if (payload.empty()) return Refuse(RefuseReason::kUndecodable, "payload is empty");
    if (encoding == PayloadEncoding::kSniff) {
      const auto first = static_cast<uint8_t>(payload[0]);
      encoding = first == kZlibFirstByte          ? PayloadEncoding::kDeflate
                 : first == sync::kZstdFirstByte ? PayloadEncoding::kZstd
                                                 : PayloadEncoding::kIdentity;
    }
    std::string inflated;
    std::string_view body = payload;
    if (encoding == PayloadEncoding::kDeflate || encoding == PayloadEncoding::kZstd) {
      const bool zstd = encoding == PayloadEncoding::kZstd;
      auto r = zstd ? sync::ZstdDecompress(payload, limits.max_batch_bytes)
                    : sync::Inflate(payload, limits.max_batch_bytes);
      if (!r.ok()) {
        return Refuse(RefuseReason::kUndecodable,
                      std::string(zstd ? "zstd" : "deflate") + " payload of " +
                          std::to_string(payload.size()) + " bytes: " + r.status().message());
      }
      inflated = std::move(*r);
      body = inflated;
    } else if (body.size() > limits.max_batch_bytes) {
      return Refuse(RefuseReason::kUndecodable,
                    "batch of " + std::to_string(body.size()) + " bytes exceeds the limit of " +
                        std::to_string(limits.max_batch_bytes) + " bytes");
    }
    Decoded d;
    d.batch.wire_bytes = payload.size();
    if (sync::IsColumnar(body)) {
      // Every event takes at least a byte in each column: the count is
      // bounded by the size, and the batch it decodes to by max_batch_bytes.
      auto c = sync::DecodeColumnar(body, body.size(), limits.max_batch_bytes);
      if (!c.ok()) return Refuse(RefuseReason::kUndecodable, c.status().message());
      if (c->ByteSizeLong() > limits.max_batch_bytes) {
        return Refuse(RefuseReason::kUndecodable,
                      "columnar batch decodes to more than " +
                          std::to_string(limits.max_batch_bytes) + " bytes");
      }
      d.batch.batch = std::move(*c);
    } else if (!d.batch.batch.ParseFromArray(body.data(), static_cast<int>(body.size()))) {
      return Refuse(RefuseReason::kUndecodable,
                    std::string(encoding == PayloadEncoding::kIdentity ? "payload"
                                                                       : "decompressed payload") +
                        " of " + std::to_string(body.size()) +
                        " bytes is not a storegw.v1.EventBatch");
    }
    if (auto bad = CheckBatch(d.batch.batch, origin)) return Refuse(bad->reason, bad->detail);
    return d;
  } catch (const std::exception& e) {
    return Refuse(RefuseReason::kUndecodable, std::string("cannot decode: ") + e.what());
  }
}

}  // namespace storegw::hq
