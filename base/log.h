#pragma once

#include <spdlog/spdlog.h>

#include <optional>
#include <string_view>

namespace pullagent {

enum class LogFormat {
  kText,     // "2026-11-27T08:00:00.000 info  message": people at a terminal
  kJournal,  // "<6>message": stderr under systemd; journald adds time and unit itself
  kJson,     // one JSON object per line: {"time":..., "level":..., "msg":...}
};

std::optional<LogFormat> parseLogFormat(std::string_view name);

// Logs go to stderr through spdlog's default logger. Secrets never reach it: they are typed
// (Secret prints "<redacted>") and URLs pass through redactUrl() before they are logged.
void initLogging(LogFormat format, spdlog::level::level_enum level);

}  // namespace pullagent
