// A progress bar on stderr for long offline jobs (`journal verify`,
// `journal export` of a journal with millions of events):
//   journal verify [##########----------]  51%  1,234,567 / 2,400,000 events
// Drawn only when stderr is a terminal (never into a log file or a pipe),
// at most ten times a second, and erased when the job ends, so the job's
// own output is unchanged.
//
// Threads: one thread calls Update() and Finish().
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace storegw::gateway {

// One line of the bar, without "\r": `label`, a bar of `width` cells, the
// percentage and the counts. total 0 means unknown: no bar, only the count.
std::string RenderProgressLine(std::string_view label, uint64_t done, uint64_t total, int width,
                               std::string_view unit = "events");

class TtyProgress {
 public:
  // Active when `out` is a terminal (isatty), or when `force` is set (tests).
  // `unit` names what is counted ("events", "pages").
  explicit TtyProgress(std::string label, FILE* out = stderr, bool force = false,
                       std::string unit = "events");
  ~TtyProgress();  // Finish()
  TtyProgress(const TtyProgress&) = delete;
  TtyProgress& operator=(const TtyProgress&) = delete;

  bool active() const { return active_; }
  // Redraws when at least 100 ms passed since the last draw, or at 100%.
  void Update(uint64_t done, uint64_t total);
  // Erases the bar (the line is left empty for what follows). Idempotent.
  void Finish();

 private:
  std::string label_;
  std::string unit_;
  FILE* out_;
  bool active_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point last_{};
};

}  // namespace storegw::gateway
