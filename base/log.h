#pragma once

#include <spdlog/spdlog.h>

#include <string_view>

namespace pullagent {

enum class LogFormat { kText, kJson };

// Logs go to stderr through spdlog's default logger. Secrets never reach it: they are typed
// (Secret prints "<redacted>") and URLs pass through redactUrl() before they are logged.
void initLogging(LogFormat format, spdlog::level::level_enum level);

}  // namespace pullagent
