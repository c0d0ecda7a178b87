#include "storegw/cli/logging.h"

#include <memory>
#include <string>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "logging_json.h"

namespace storegw::gateway {

void InitLogging(std::string_view level, std::string_view format) {
  auto logger = spdlog::get("storegw");
  if (!logger) logger = spdlog::stderr_logger_mt("storegw");
  if (format == "json") {
    logger->set_formatter(std::make_unique<JsonLogFormatter>());
  } else {
    logger->set_pattern("%Y-%m-%d %H:%M:%S.%e %l %v");
  }
  logger->set_level(spdlog::level::from_str(std::string(level)));
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

}  // namespace storegw::gateway
