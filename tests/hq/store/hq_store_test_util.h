// Batches and events for the store tests and the store benchmark.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "common/ids.h"
#include "storegw/hq/store.h"
#include "storegw/v1/storegw.pb.h"

namespace storegw::hq_test {

inline int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// recorded_at of seq s: t0 + s ms (t0: an hour ago, so this month's
// partition, or last month's in the first hour of a month).
inline int64_t T0() {
  static const int64_t t0 = NowMicros() - 3600LL * 1000000;
  return t0;
}

// A till sale, as a gateway journals it.
inline v1::JournaledEvent SaleEvent(uint64_t seq, const std::string& id_prefix = "e",
                                    int64_t recorded_at = 0) {
  v1::JournaledEvent je;
  je.set_seq(seq);
  je.set_recorded_at(recorded_at ? recorded_at : T0() + static_cast<int64_t>(seq) * 1000);
  v1::Event* e = je.mutable_event();
  e->set_event_id(test::Id(id_prefix, static_cast<long long>(seq)));
  e->set_device_id("till-1");
  e->set_occurred_at(je.recorded_at() - 500);
  v1::Sale* s = e->mutable_sale();
  s->set_basket_id(test::Id("b", static_cast<long long>(seq)));
  s->set_tender("card");
  v1::SaleLine* l = s->add_lines();
  l->set_sku(test::Id("SKU-", static_cast<long long>(seq % 97)));
  l->set_qty(1 + static_cast<int64_t>(seq % 3));
  l->set_unit_price(199);
  l->set_currency("EUR");
  return je;
}

// Batch first..last of (gateway, epoch) of `store`.
inline hq::IncomingBatch Batch(const std::string& store, const std::string& gateway, uint64_t epoch,
                               uint64_t first, uint64_t last, const std::string& id_prefix = "e") {
  hq::IncomingBatch in;
  v1::EventBatch& b = in.batch;
  b.set_store_id(store);
  b.set_gateway_id(gateway);
  b.set_epoch(epoch);
  b.set_first_seq(first);
  b.set_last_seq(last);
  for (uint64_t s = first; s <= last; ++s) *b.add_events() = SaleEvent(s, id_prefix);
  in.wire_bytes = b.ByteSizeLong();
  return in;
}

}  // namespace storegw::hq_test
