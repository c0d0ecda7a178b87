#include "storegw/cli/logging.h"

#include <string>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace storegw::gateway {

void InitLogging(std::string_view level) {
  auto logger = spdlog::get("storegw");
  if (!logger) logger = spdlog::stderr_logger_mt("storegw");
  logger->set_pattern("%Y-%m-%d %H:%M:%S.%e %l %v");
  logger->set_level(spdlog::level::from_str(std::string(level)));
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

}  // namespace storegw::gateway
