#include "base/log.h"

#include <spdlog/sinks/stdout_sinks.h>

#include <memory>

namespace pullagent {

void initLogging(LogFormat format, spdlog::level::level_enum level) {
  auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  auto logger = std::make_shared<spdlog::logger>("pullagent", sink);
  if (format == LogFormat::kJson) {
    // Messages are produced by our code and never contain raw quotes from peers unescaped:
    // peer text is quoted through fmt's {:?}-free path, so keep the pattern minimal.
    logger->set_pattern(R"({"time":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","msg":"%v"})",
                        spdlog::pattern_time_type::utc);
  } else {
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%-5l%$ %v");
  }
  logger->set_level(level);
  spdlog::set_default_logger(logger);
}

}  // namespace pullagent
