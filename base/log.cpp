#include "base/log.h"

#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

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

// One line per record; each record goes out in a single write so lines from threads never mix.
class LineSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit LineSink(LogFormat format) : format_(format) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    std::string text(msg.payload.data(), msg.payload.size());
    std::string line;
    if (format_ == LogFormat::kJournal) {
      // A multi-line message would lose its priority after the first line.
      for (auto& c : text)
        c = c == '\n' ? ' ' : c;
      line = "<" + std::to_string(syslogPriority(msg.level)) + ">" + text + "\n";
    } else {
      const auto since_epoch = msg.time.time_since_epoch();
      const auto millis =
          std::chrono::duration_cast<std::chrono::milliseconds>(since_epoch).count() % 1000;
      std::time_t seconds = std::chrono::system_clock::to_time_t(msg.time);
      std::tm utc{};
      gmtime_r(&seconds, &utc);
      const std::string stamp =
          fmt::format("{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}.{:03d}Z", utc.tm_year + 1900,
                      utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, millis);
      auto level = spdlog::level::to_string_view(msg.level);
      // dump() escapes quotes and control characters, and replaces invalid UTF-8 from peers.
      nlohmann::json record = {
          {"time", stamp}, {"level", std::string(level.data(), level.size())}, {"msg", text}};
      line = record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
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
  std::shared_ptr<spdlog::logger> logger;
  if (format == LogFormat::kText) {
    auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    logger = std::make_shared<spdlog::logger>("pullagent", sink);
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%-5l%$ %v");
  } else {
    logger = std::make_shared<spdlog::logger>("pullagent", std::make_shared<LineSink>(format));
  }
  logger->set_level(level);
  spdlog::set_default_logger(logger);
}

}  // namespace pullagent
