// [log] format = "json": spdlog's formatter for one JSON object per line
// (logging.h says which fields). In a file of its own because it is the one
// place storegw_logging includes RapidJSON (gateway/cli/CMakeLists.txt says
// why that matters to the sanitizer builds).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <spdlog/formatter.h>

namespace storegw::gateway {

class JsonLogFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override;
  std::unique_ptr<spdlog::formatter> clone() const override;
};

// `text` with every byte sequence that is not well-formed UTF-8 (stray
// continuation bytes, truncated or overlong sequences, surrogates, above
// U+10FFFF) replaced by U+FFFD; well-formed text comes back unchanged.
std::string ValidUtf8(std::string_view text);

}  // namespace storegw::gateway
