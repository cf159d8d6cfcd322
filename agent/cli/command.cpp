#include "agent/cli/command.h"

#include <iostream>

#include "agent/common/exit_codes.h"
#include "agent/common/log_options.h"

namespace pullagent::agent {

std::set<std::string> Command::acceptedOptions() const {
  std::set<std::string> all = options;
  all.insert({"log-level", "log-format"});
  return all;
}

std::set<std::string> Command::acceptedFlags() const {
  std::set<std::string> all = flags;
  all.insert("help");
  return all;
}

int usageError(const Command& command, const std::string& message) {
  std::cerr << "pullagent " << command.name << ": " << message << "\n" << command.usage;
  return kExitUsage;
}

int runCommand(const Command& command, const std::vector<std::string>& args,
               const ProcessEnvironment& env, const Environment& environment) {
  auto parsed = parseArgs(args, command.acceptedOptions(), command.acceptedFlags());
  if (!parsed)
    return usageError(command, parsed.error().message);
  if (parsed->flag("help")) {
    std::cout << command.usage;
    return kExitOk;
  }
  const size_t given = parsed->positionals.size();
  if (given < command.min_positionals || given > command.max_positionals) {
    const std::string expected = command.min_positionals == command.max_positionals
                                     ? std::to_string(command.min_positionals)
                                 : command.max_positionals == Command::kAny
                                     ? "at least " + std::to_string(command.min_positionals)
                                     : std::to_string(command.min_positionals) + " to " +
                                           std::to_string(command.max_positionals);
    return usageError(command, "expected " + expected + " argument" + (expected == "1" ? "" : "s") +
                                   " besides options, got " + std::to_string(given));
  }
  if (!command.one_of.empty()) {
    bool any = false;
    std::string names;
    for (const auto& option : command.one_of) {
      any = any || parsed->option(option).has_value();
      names += (names.empty() ? "--" : ", --") + option;
    }
    if (!any)
      return usageError(command, "needs one of " + names);
  }
  if (auto logging = initLoggingFromArgs(parsed.value(), env); !logging)
    return usageError(command, logging.error().message);
  return command.run(parsed.value(), env, environment);
}

}  // namespace pullagent::agent
