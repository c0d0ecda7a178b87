// libFuzzer target: what gateways (or strangers) send storegw-hq, through
// the receiver's decoder (storegw/hq/decode.h: DecodeBatch), the one
// function between the network and the store.
//
// Input: byte 0 chooses how the rest is decoded: bits 0-1 the encoding (0
// kSniff, 1 kIdentity, 2 kDeflate, 3: the rest is deflated here first and
// decoded as kDeflate, so that mutations of a plain batch also travel the
// inflate path); bit 2: the batch must come from the topic of store
// "store-0001", gateway "gw-01"; bit 3 (with bits 0-1 = 0): the rest is
// zstd-compressed here first and decoded as kZstd. The rest is the
// payload (a plain or columnar batch is sniffed by its first bytes).
//
// Properties checked besides "no crash, no sanitizer report, no throw":
//   * a refusal carries one of the decoder's reasons (never one only the
//     store gives) and a non-empty detail of bounded length;
//   * an accepted batch keeps the wire protocol: ids of the gateway's id
//     format, the topic's identity when asked, 1 <= first_seq, events
//     exactly first_seq..last_seq, recorded_at set; wire_bytes is the
//     payload's size;
//   * accepting is stable: the accepted batch re-serialized is accepted
//     again, plain and deflated, and its columnar encoding decodes to the
//     same batch.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "columnar.h"
#include "compress.h"
#include "fuzz_common.h"
#include "storegw/hq/decode.h"

namespace {

namespace fz = storegw::fuzz;
namespace hq = storegw::hq;

constexpr size_t kMaxDetail = 4096;

void CheckAccepted(const hq::Decoded& d, const hq::BatchOrigin& origin, size_t payload_size) {
  const storegw::v1::EventBatch& b = d.batch.batch;
  fz::Check(d.batch.wire_bytes == payload_size, "wire_bytes is not the payload's size");
  fz::Check(hq::IsGatewayId(b.store_id()) && hq::IsGatewayId(b.gateway_id()),
            "accepted a batch without valid ids", b.ShortDebugString());
  if (!origin.store_id.empty()) {
    fz::Check(b.store_id() == origin.store_id && b.gateway_id() == origin.gateway_id,
              "accepted a batch under another gateway's topic");
  }
  fz::Check(b.events_size() > 0 && b.first_seq() >= 1, "accepted an empty batch or seq 0");
  fz::Check(b.last_seq() - b.first_seq() + 1 == static_cast<uint64_t>(b.events_size()),
            "accepted a batch whose range does not match its events");
  for (int i = 0; i < b.events_size(); ++i) {
    fz::Check(b.events(i).seq() == b.first_seq() + static_cast<uint64_t>(i),
              "accepted a batch with seqs out of order");
    fz::Check(b.events(i).recorded_at() > 0, "accepted an event without recorded_at");
  }
  const std::string again = b.SerializeAsString();
  const hq::Decoded plain = hq::DecodeBatch(again, hq::PayloadEncoding::kIdentity, origin);
  fz::Check(plain.ok(), "the accepted batch, re-serialized, is refused", plain.detail);
  auto z = storegw::sync::Deflate(again);
  fz::Check(z.ok(), "deflate failed");
  const hq::Decoded deflated = hq::DecodeBatch(*z, hq::PayloadEncoding::kDeflate, origin);
  fz::Check(deflated.ok(), "the accepted batch, deflated, is refused", deflated.detail);
  auto col = storegw::sync::EncodeColumnar(b);
  if (col.ok()) {  // (nested identity set: the uplink would send it plain)
    const hq::Decoded c = hq::DecodeBatch(*col, hq::PayloadEncoding::kSniff, origin);
    fz::Check(c.ok(), "the accepted batch, columnar, is refused", c.detail);
    fz::Check(c.batch.batch.SerializeAsString() == again,
              "the columnar encoding does not give the batch back");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  std::string payload(reinterpret_cast<const char*>(data + 1), size - 1);
  hq::PayloadEncoding enc = hq::PayloadEncoding::kSniff;
  switch (mode & 3) {
    case 1:
      enc = hq::PayloadEncoding::kIdentity;
      break;
    case 2:
      enc = hq::PayloadEncoding::kDeflate;
      break;
    case 3: {
      auto z = storegw::sync::Deflate(payload);
      fz::Check(z.ok(), "deflate failed");
      payload = std::move(*z);
      enc = hq::PayloadEncoding::kDeflate;
      break;
    }
    default:
      if (mode & 8) {
        auto z = storegw::sync::ZstdCompress(payload, 1);
        fz::Check(z.ok(), "zstd failed");
        payload = std::move(*z);
        enc = hq::PayloadEncoding::kZstd;
      }
      break;
  }
  hq::BatchOrigin origin;
  if (mode & 4) origin = hq::BatchOrigin{"store-0001", "gw-01", "topic"};

  const hq::Decoded d = hq::DecodeBatch(payload, enc, origin);
  if (d.ok()) {
    CheckAccepted(d, origin, payload.size());
    return 0;
  }
  const hq::RefuseReason r = *d.refused;
  fz::Check(r == hq::RefuseReason::kUndecodable || r == hq::RefuseReason::kNotContiguous ||
                r == hq::RefuseReason::kInvalidEvent || r == hq::RefuseReason::kTopicMismatch,
            "refused with a reason only the store gives", hq::RefuseReasonName(r));
  fz::Check(!d.detail.empty() && d.detail.size() <= kMaxDetail, "refusal detail empty or huge",
            d.detail.substr(0, 200));
  return 0;
}
