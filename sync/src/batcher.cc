#include "batcher.h"

#include <utility>

#include "storegw/storage/journal.h"

namespace storegw::sync {

size_t VarintBytes(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

namespace {
// A length-delimited field with a one-byte tag.
size_t LenField(size_t len) {
  return 1 + VarintBytes(len) + len;
}
}  // namespace

Batcher::Batcher(storage::Journal* journal, std::string store_id, std::string gateway_id,
                 uint64_t epoch, size_t max_events, size_t max_bytes)
    : journal_(journal),
      store_id_(std::move(store_id)),
      gateway_id_(std::move(gateway_id)),
      epoch_(epoch),
      max_events_(max_events),
      max_bytes_(max_bytes) {}

size_t Batcher::HeaderBytes(uint64_t first, uint64_t last) const {
  size_t n = 0;
  if (!store_id_.empty()) n += LenField(store_id_.size());
  if (!gateway_id_.empty()) n += LenField(gateway_id_.size());
  if (epoch_ != 0) n += 1 + 8;
  if (first != 0) n += 1 + VarintBytes(first);
  if (last != 0) n += 1 + VarintBytes(last);
  return n;
}

Status Batcher::Refill(uint64_t from_seq, size_t want_events) {
  // Stored bytes are a little smaller than the encoded JournaledEvent (seq,
  // recorded_at and framing add ~16 bytes); the exact check is in Build.
  auto r = journal_->ReadEvents(from_seq, want_events, max_bytes_);
  if (!r.ok()) return r.status();
  for (auto& je : *r) buf_.push_back(std::move(je));
  return {};
}

Result<std::optional<Batch>> Batcher::Build(uint64_t from_seq) {
  if (!buf_.empty() && buf_.front().seq() != from_seq) buf_.clear();
  if (buf_.empty()) {
    if (Status s = Refill(from_seq, max_events_); !s.ok()) return s;
    if (buf_.empty()) return std::optional<Batch>();
  }
  if (buf_.front().seq() != from_seq) {
    // The journal only prunes delivered events (seq <= watermark) and the
    // engine starts at watermark + 1, so this is a journal bug: never skip.
    const uint64_t got = buf_.front().seq();
    buf_.clear();
    return Status::Corruption("journal: event seq " + std::to_string(from_seq) +
                              " is missing (next stored seq is " + std::to_string(got) +
                              "); refusing to send a gap");
  }

  v1::EventBatch batch;
  batch.set_store_id(store_id_);
  batch.set_gateway_id(gateway_id_);
  batch.set_epoch(epoch_);
  size_t body = 0;
  uint64_t last = 0;
  for (;;) {
    if (static_cast<size_t>(batch.events_size()) >= max_events_) break;
    if (buf_.empty()) {
      if (Status s = Refill(last + 1, max_events_ - static_cast<size_t>(batch.events_size()));
          !s.ok()) {
        return s;
      }
      if (buf_.empty()) break;  // caught up with the journal
    }
    v1::JournaledEvent& je = buf_.front();
    if (je.seq() != (last == 0 ? from_seq : last + 1)) {
      return Status::Corruption("journal: events out of order after seq " + std::to_string(last));
    }
    je.clear_store_id();
    je.clear_gateway_id();
    je.clear_epoch();
    const size_t add = LenField(je.ByteSizeLong());
    if (batch.events_size() > 0 && HeaderBytes(from_seq, je.seq()) + body + add > max_bytes_) {
      break;
    }
    body += add;
    last = je.seq();
    *batch.add_events() = std::move(je);
    buf_.pop_front();
  }
  batch.set_first_seq(from_seq);
  batch.set_last_seq(last);
  Batch out;
  out.first_seq = from_seq;
  out.last_seq = last;
  out.events = static_cast<size_t>(batch.events_size());
  if (!batch.SerializeToString(&out.payload)) {
    return Status::Corruption("uplink: cannot encode batch " + std::to_string(from_seq) + ".." +
                              std::to_string(last));
  }
  return std::optional<Batch>(std::move(out));
}

}  // namespace storegw::sync
