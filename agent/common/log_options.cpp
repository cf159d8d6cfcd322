#include "agent/common/log_options.h"

#include "base/log.h"

namespace pullagent::agent {

Status initLoggingFromArgs(const ParsedArgs& args, const ProcessEnvironment& env) {
  const std::string level_name = args.option("log-level").value_or("info");
  auto level = spdlog::level::from_str(level_name);
  if (level == spdlog::level::off && level_name != "off") {
    return makeError(ErrorCode::kInvalidArgument,
                     "--log-level: \"" + level_name +
                         "\" is not one of trace, debug, info, warn, error, critical, off");
  }
  LogFormat format = env.stderr_is_journal ? LogFormat::kJournal : LogFormat::kText;
  if (auto name = args.option("log-format")) {
    auto parsed = parseLogFormat(*name);
    if (!parsed) {
      return makeError(ErrorCode::kInvalidArgument,
                       "--log-format: \"" + *name + "\" is not one of text, journal, json");
    }
    format = *parsed;
  }
  initLogging(format, level);
  return {};
}

}  // namespace pullagent::agent
