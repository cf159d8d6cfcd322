#include "base/log.h"

#include <spdlog/sinks/base_sink.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

#include "base/redact.h"

namespace pullagent {
namespace {

// sd-daemon(3) priorities: journald reads "<N>" at the start of each stderr line.
int syslogPriority(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::critical:
      return 2;
    case spdlog::level::err:
      return 3;
    case spdlog::level::warn:
      return 4;
    case spdlog::level::info:
      return 6;
    default:
      return 7;
  }
}

void writeAll(const std::string& line) {
  size_t done = 0;
  while (done < line.size()) {
    ssize_t n = ::write(STDERR_FILENO, line.data() + done, line.size() - done);
    if (n <= 0)
      return;  // nowhere left to report a failing stderr
    done += static_cast<size_t>(n);
  }
}

std::string timestamp(std::chrono::system_clock::time_point at) {
  const auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(at.time_since_epoch()).count() % 1000;
  std::time_t seconds = std::chrono::system_clock::to_time_t(at);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  return fmt::format("{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}.{:03d}Z", utc.tm_year + 1900,
                     utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, millis);
}

std::string levelName(spdlog::level::level_enum level) {
  auto name = spdlog::level::to_string_view(level);
  return std::string(name.data(), name.size());
}

// A record longer than this is cut: no peer's text may fill the log.
constexpr size_t kMaxLine = 16 * 1024;

// One line per record; each record goes out in a single write so lines from threads never mix.
class LineSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit LineSink(LogFormat format) : format_(format) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    const std::string_view payload(msg.payload.data(), msg.payload.size());
    std::string line;
    if (format_ == LogFormat::kJournal) {
      // Messages carry tenants' strings: a newline would start a record of the tenant's making,
      // a NUL ends journald's record early (and what follows, "<2>...", would be read as a
      // record of its own), escape sequences drive terminals. Escaped, one record stays one.
      line = fmt::format("<{}>{}\n", syslogPriority(msg.level), safeEscaped(payload, kMaxLine));
    } else if (format_ == LogFormat::kText) {
      line = fmt::format("{} {:<5} {}\n", timestamp(msg.time), levelName(msg.level),
                         safeEscaped(payload, kMaxLine));
    } else {
      std::string text(payload.substr(0, kMaxLine));
      // dump() escapes quotes and every control character (NUL and ESC too), replaces invalid
      // UTF-8 from peers and, ASCII only, writes the rest (C1 controls too) as \uXXXX.
      nlohmann::json record = {
          {"time", timestamp(msg.time)}, {"level", levelName(msg.level)}, {"msg", text}};
      line = record.dump(-1, ' ', true, nlohmann::json::error_handler_t::replace) + "\n";
    }
    writeAll(line);
  }
  void flush_() override {}

 private:
  LogFormat format_;
};

}  // namespace

std::optional<LogFormat> parseLogFormat(std::string_view name) {
  if (name == "text")
    return LogFormat::kText;
  if (name == "journal")
    return LogFormat::kJournal;
  if (name == "json")
    return LogFormat::kJson;
  return std::nullopt;
}

void initLogging(LogFormat format, spdlog::level::level_enum level) {
  auto logger = std::make_shared<spdlog::logger>("pullagent", std::make_shared<LineSink>(format));
  logger->set_level(level);
  spdlog::set_default_logger(logger);
}

}  // namespace pullagent
