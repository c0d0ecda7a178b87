// The Prometheus text exposition format 0.0.4, written: families with HELP
// and TYPE lines, samples with escaped label values, numbers in plain
// notation. Shared by the gateway's /metrics (metrics.cc) and storegw-hq's
// (library storegw_prom_text, no other dependency). Not thread-safe: one
// writer per rendering.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace storegw::gateway {

// A label value with backslash, double quote and newline escaped.
std::string PromEscapeLabel(std::string_view v);

// The shortest exact plain form ("0.0005", not "5e-04"); "NaN", "+Inf", "-Inf".
std::string PromNumber(double v);

class PromWriter {
 public:
  using Labels = std::vector<std::pair<std::string, std::string>>;

  // Starts a family: HELP and TYPE lines, once, before its samples. `help`
  // must hold no backslash or newline.
  void Family(std::string_view name, std::string_view type, std::string_view help);
  void Sample(std::string_view name, const Labels& labels, const std::string& value);
  void Sample(std::string_view name, uint64_t v) { Sample(name, {}, std::to_string(v)); }
  void Sample(std::string_view name, const Labels& l, uint64_t v) {
    Sample(name, l, std::to_string(v));
  }
  // One-sample families.
  void Gauge(std::string_view name, std::string_view help, uint64_t v) {
    Family(name, "gauge", help);
    Sample(name, v);
  }
  void Counter(std::string_view name, std::string_view help, uint64_t v) {
    Family(name, "counter", help);
    Sample(name, v);
  }
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

}  // namespace storegw::gateway
