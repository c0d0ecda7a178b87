// libFuzzer target: the TOML config parser (gateway::ParseConfig, what
// `storegw run --config` and `storegw config check` use). Properties
// checked besides "no crash, no sanitizer report":
//   * a failure carries a message, and every problem listed is non-empty;
//   * a config that parses is printed by ConfigToToml (what `storegw config
//     check` prints as the effective configuration) as TOML that parses
//     again to the very same config (printing twice gives the same text).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "storegw/config/config.h"
#include "fuzz_common.h"

namespace gw = storegw::gateway;
namespace fz = storegw::fuzz;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> problems;
  auto parsed = gw::ParseConfig(text, "fuzz.toml", &problems);
  if (!parsed.ok()) {
    fz::Check(!parsed.status().message().empty(), "config error without a message");
    fz::Check(!problems.empty(), "config error but no problem listed", parsed.status().message());
    for (const auto& p : problems) fz::Check(!p.empty(), "an empty problem message");
    return 0;
  }
  if (!problems.empty()) fz::Fail("config parsed but problems listed", problems.front());
  const std::string printed = gw::ConfigToToml(*parsed);
  auto again = gw::ParseConfig(printed, "printed.toml");
  fz::Check(again.ok(), "ConfigToToml output does not parse",
            (again.ok() ? std::string() : again.status().message()) + "\n" + printed);
  fz::Check(gw::ConfigToToml(*again) == printed, "ConfigToToml round trip changed the config",
            printed);
  return 0;
}
