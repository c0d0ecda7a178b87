// Batches built by hand, in the wire format of sync/README.md, for the
// receiver's tests (unit and integration).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

#include "compress.h"  // sync/src: Deflate, as the gateway compresses
#include "storegw/v1/storegw.pb.h"
#include "sync_test_util.h"

namespace storegw::hq_test {

inline constexpr int64_t kRecordedAt = 1767225600000000;  // 2026-01-01T00:00:00Z

// A valid batch of gateway `gw` of store `store`: seqs first..first+n-1,
// till sales (sync_test_util.h's SaleEvent, event ids ev-<tag><seq>).
inline v1::EventBatch MakeBatch(const std::string& store, const std::string& gw, uint64_t epoch,
                                uint64_t first, uint64_t n, const std::string& tag = "") {
  v1::EventBatch b;
  b.set_store_id(store);
  b.set_gateway_id(gw);
  b.set_epoch(epoch);
  b.set_first_seq(first);
  b.set_last_seq(first + n - 1);
  for (uint64_t s = first; s < first + n; ++s) {
    v1::JournaledEvent* je = b.add_events();
    *je->mutable_event() = sync_test::SaleEvent(s);
    if (!tag.empty()) je->mutable_event()->set_event_id("ev-" + tag + std::to_string(s));
    je->set_seq(s);
    je->set_recorded_at(kRecordedAt + static_cast<int64_t>(s));
  }
  return b;
}

inline std::string Deflated(const v1::EventBatch& b) {
  auto z = sync::Deflate(b.SerializeAsString());
  if (!z.ok()) throw std::runtime_error("deflate failed");
  return *z;
}

}  // namespace storegw::hq_test
