// The last hour of backlog and rates, kept in memory for the status page's
// chart (GET /v1/status/history). Lost on restart by design: the journal
// is the durable record, this is only a picture of the recent past.
//
// A fixed ring of `capacity` points, one per `interval` (default 720 x 5 s
// = one hour, ~30 KB). The daemon's main loop calls Sample() about once a
// second; a point is recorded when `interval` has passed since the last
// one, with the ingest and send rates over that interval (send = the ack
// watermark's progress, i.e. events HQ or the broker has taken).
//
// Threads: Sample() from one thread; Points() and Json() from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "storegw/storage/journal.h"

namespace storegw::gateway {

struct HistoryPoint {
  int64_t t_ms = 0;  // Unix time in milliseconds
  uint64_t backlog_events = 0;
  uint64_t backlog_bytes = 0;
  double ingest_rate = 0;  // events/s journaled since the previous point
  double send_rate = 0;    // events/s delivered (watermark) since the previous point
};

class StatusHistory {
 public:
  using SteadyTime = std::chrono::steady_clock::time_point;

  explicit StatusHistory(std::chrono::milliseconds interval = std::chrono::seconds(5),
                         size_t capacity = 720);

  // Records a point when `interval` has passed since the last one (the
  // first call records one at once, with zero rates).
  void Sample(const storage::JournalStats& stats, int64_t unix_ms, SteadyTime now);

  // Points with t_ms > since_ms, oldest first.
  std::vector<HistoryPoint> Points(int64_t since_ms = 0) const;

  // {"interval_ms":5000,"capacity":720,"points":[[t_ms,backlog_events,
  //  backlog_bytes,ingest_rate,send_rate],...]} with Points(since_ms).
  // Arrays, not objects: 720 points stay small on a phone's connection.
  std::string Json(int64_t since_ms = 0) const;

  std::chrono::milliseconds interval() const { return interval_; }
  size_t capacity() const { return capacity_; }

 private:
  struct Last {
    SteadyTime at;
    uint64_t appended = 0;
    uint64_t watermark = 0;
  };

  const std::chrono::milliseconds interval_;
  const size_t capacity_;
  mutable std::mutex mu_;
  std::vector<HistoryPoint> ring_;  // guarded by mu_; ring_[(head_ + i) % capacity_]
  size_t head_ = 0;                 // guarded by mu_: index of the oldest point
  std::optional<Last> last_;        // guarded by mu_
};

}  // namespace storegw::gateway
