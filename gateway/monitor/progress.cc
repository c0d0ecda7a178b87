#include "storegw/monitor/progress.h"

#include <unistd.h>

#include <algorithm>

#include "storegw/monitor/humanize.h"

namespace storegw::gateway {

std::string RenderProgressLine(std::string_view label, uint64_t done, uint64_t total, int width,
                               std::string_view unit) {
  std::string line(label);
  if (total == 0) {
    line += "  " + FormatCount(done) + " " + std::string(unit);
    return line;
  }
  done = std::min(done, total);
  const long double frac = static_cast<long double>(done) / static_cast<long double>(total);
  const int cells = std::max(width, 1);
  const int filled = static_cast<int>(frac * cells);
  line += " [";
  line.append(static_cast<size_t>(filled), '#');
  line.append(static_cast<size_t>(cells - filled), '-');
  line += "] ";
  std::string pct = std::to_string(static_cast<int>(frac * 100)) + "%";
  line.append(pct.size() < 4 ? 4 - pct.size() : 0, ' ');
  line += pct + "  " + FormatCount(done) + " / " + FormatCount(total) + " " + std::string(unit);
  return line;
}

TtyProgress::TtyProgress(std::string label, FILE* out, bool force, std::string unit)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      out_(out),
      active_(force || (out && isatty(fileno(out)) == 1)) {}

TtyProgress::~TtyProgress() {
  Finish();
}

void TtyProgress::Update(uint64_t done, uint64_t total) {
  if (!active_) return;
  auto now = std::chrono::steady_clock::now();
  const bool complete = total > 0 && done >= total;
  if (drawn_ && !complete && now - last_ < std::chrono::milliseconds(100)) return;
  last_ = now;
  drawn_ = true;
  std::string line = RenderProgressLine(label_, done, total, 30, unit_);
  // \r to the line's start, the bar, then clear whatever a longer previous
  // line left behind.
  std::fprintf(out_, "\r%s\x1b[K", line.c_str());
  std::fflush(out_);
}

void TtyProgress::Finish() {
  if (!active_ || !drawn_) return;
  std::fputs("\r\x1b[K", out_);
  std::fflush(out_);
  drawn_ = false;
}

}  // namespace storegw::gateway
