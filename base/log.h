#pragma once

#include <spdlog/spdlog.h>

#include <optional>
#include <string_view>

namespace pullagent {

enum class LogFormat {
  kText,     // "2026-11-27T08:00:00.000Z info  message": people at a terminal
  kJournal,  // "<6>message": stderr under systemd; journald adds time and unit itself
  kJson,     // one JSON object per line: {"time":..., "level":..., "msg":...}
};

std::optional<LogFormat> parseLogFormat(std::string_view name);

// Logs go to stderr through spdlog's default logger. Secrets never reach it: they are typed
// (Secret prints "<redacted>") and URLs pass through redactUrl() before they are logged. Every
// record is one line whatever it says: text and journal escape control characters, NUL, escape
// sequences and invalid UTF-8 (safeEscaped), JSON escapes them as JSON does; records are cut at
// 16 KiB.
void initLogging(LogFormat format, spdlog::level::level_enum level);

}  // namespace pullagent
