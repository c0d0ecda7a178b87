// The uplink's status: UplinkStatus (status(), any thread), the fields it
// writes into a GatewayStatus, and the retained status payload it publishes.
// Everything here takes status_mu_; nothing else in the engine does.
#include <spdlog/spdlog.h>

#include <string_view>

#include "storegw/storage/journal.h"
#include "uplink_impl.h"

namespace storegw::sync {

using uplink_detail::NowUs;
using uplink_detail::SteadyClock;
using uplink_detail::TimePoint;

namespace uplink_detail {

namespace {
int64_t SecondOf(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}
}  // namespace

void RateMeter::Add(uint64_t n, TimePoint now) {
  const int64_t sec = SecondOf(now);
  auto& b = buckets_[static_cast<size_t>(sec % kSlots)];
  if (b.sec != sec) b = {sec, 0};
  b.count += n;
}

double RateMeter::Rate(TimePoint now, TimePoint started) const {
  const int64_t sec = SecondOf(now);
  uint64_t sum = 0;
  for (const auto& b : buckets_) {
    if (b.sec > sec - kSlots && b.sec <= sec) sum += b.count;
  }
  const double span = std::clamp(std::chrono::duration<double>(now - started).count(), 1.0,
                                 static_cast<double>(kSlots));
  return static_cast<double>(sum) / span;
}

}  // namespace uplink_detail

UplinkStatus Uplink::Impl::status() const {
  std::lock_guard lk(status_mu_);
  UplinkStatus s = st_;
  s.send_rate = rate_.Rate(SteadyClock::now(), started_at_);
  return s;
}

void Uplink::Impl::FillStatus(v1::GatewayStatus* gs) const {
  UplinkStatus s = status();
  gs->set_link(s.link);
  gs->set_last_error(s.last_error);
  gs->set_last_error_at(s.last_error.empty() ? 0 : s.last_error_at_us);
  gs->set_reconnects(s.reconnects);
  gs->set_send_rate(s.send_rate);
}

uint64_t Uplink::Impl::connects() const {
  std::lock_guard lk(status_mu_);
  return st_.connects;
}

void Uplink::Impl::SetLink(const char* link) {
  std::lock_guard lk(status_mu_);
  st_.link = link;
  if (std::string_view(link) != "up") st_.connected_since_us = 0;
}

void Uplink::Impl::SetErrorLocked(const Status& s) {
  st_.last_error = s.message();
  st_.last_error_at_us = NowUs();
}

void Uplink::Impl::RecordError(const Status& s) {
  std::lock_guard lk(status_mu_);
  SetErrorLocked(s);
}

void Uplink::Impl::RecordConnectFailure(const Status& why) {
  std::lock_guard lk(status_mu_);
  ++st_.connect_failures;
  SetErrorLocked(why);
}

void Uplink::Impl::RecordConnected(int protocol_version) {
  std::lock_guard lk(status_mu_);
  st_.link = "up";
  st_.connected_since_us = NowUs();
  st_.protocol_version = protocol_version;
  if (st_.connects++ > 0) ++st_.reconnects;
}

void Uplink::Impl::RecordSent(size_t events, size_t bytes, size_t inflight) {
  std::lock_guard lk(status_mu_);
  ++st_.batches_sent;
  st_.events_sent += events;
  st_.bytes_sent += bytes;
  st_.inflight_batches = inflight;
}

void Uplink::Impl::RecordInflight(size_t inflight) {
  std::lock_guard lk(status_mu_);
  st_.inflight_batches = inflight;
}

void Uplink::Impl::RecordDelivered(uint64_t watermark, uint64_t events, size_t batches,
                                   TimePoint now) {
  std::lock_guard lk(status_mu_);
  st_.watermark = watermark;
  st_.events_acked += events;
  st_.batches_acked += batches;
  rate_.Add(events, now);
}

void Uplink::Impl::RecordHqResend() {
  std::lock_guard lk(status_mu_);
  ++st_.hq_resends;
}

void Uplink::Impl::RecordHalted() {
  std::lock_guard lk(status_mu_);
  st_.halted = true;
}

v1::GatewayStatus Uplink::Impl::BuildStatus(bool online) {
  v1::GatewayStatus gs;
  if (status_source_) {
    try {
      gs = status_source_();
    } catch (const std::exception& e) {
      spdlog::warn("uplink: status source failed: {}", e.what());
    }
  }
  const storage::JournalStats js = journal_->Stats();
  if (gs.store_id().empty()) gs.set_store_id(opt_.store_id);
  if (gs.gateway_id().empty()) gs.set_gateway_id(opt_.gateway_id);
  if (gs.epoch() == 0) gs.set_epoch(js.epoch);
  if (gs.last_seq() == 0) gs.set_last_seq(js.last_seq);
  if (gs.watermark() == 0) gs.set_watermark(js.watermark);
  if (gs.backlog_events() == 0) gs.set_backlog_events(js.backlog_events);
  if (gs.backlog_bytes() == 0) gs.set_backlog_bytes(js.backlog_bytes);
  if (gs.journal_bytes() == 0) gs.set_journal_bytes(js.journal_bytes);
  if (gs.journal_max_bytes() == 0) gs.set_journal_max_bytes(js.max_bytes);
  if (gs.oldest_undelivered_age_s() == 0 && js.oldest_undelivered_recorded_at > 0) {
    const int64_t age = NowUs() - js.oldest_undelivered_recorded_at;
    gs.set_oldest_undelivered_age_s(age > 0 ? static_cast<uint64_t>(age / 1000000) : 0);
  }
  FillStatus(&gs);
  if (!online) gs.set_link("down");
  gs.set_online(online);
  gs.set_updated_at(NowUs());
  return gs;
}

std::string Uplink::Impl::StatusPayload(bool online) {
  std::string out;
  BuildStatus(online).SerializeToString(&out);
  return out;
}

}  // namespace storegw::sync
