#pragma once

#include <cstddef>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "agent/common/args.h"
#include "agent/common/process_environment.h"

namespace pullagent::agent {

using Environment = std::map<std::string, std::string>;

// One command of the pullagent binary: how `pullagent --help` lists it, the --help text it
// prints, what it accepts, and the function that runs it once its arguments are read. What every
// command does first (parse, --help, usage errors, logging) is runCommand's, in one place.
struct Command {
  static constexpr size_t kAny = std::numeric_limits<size_t>::max();

  std::string name;               // as typed: "pull", "--once"
  std::string synopsis;           // what follows the name in the list: "IMAGE TARGET"
  std::string summary;            // one line for the list
  std::string usage;              // its --help text; every option and flag appears in it
  std::set<std::string> options;  // taking a value; --log-level and --log-format are added
  std::set<std::string> flags;    // switches; --help is added
  size_t min_positionals = 0;
  size_t max_positionals = 0;
  std::vector<std::string> one_of;  // at least one of these options must be given
  // Ends at once on SIGINT/SIGTERM: it only reads, or is crash-safe (gc renames aside first).
  bool ends_at_once = false;
  int (*run)(const ParsedArgs& args, const ProcessEnvironment& env,
             const Environment& environment) = nullptr;

  // Every option and flag it accepts, those added for all commands included.
  std::set<std::string> acceptedOptions() const;
  std::set<std::string> acceptedFlags() const;
};

// Parses `args` (after the command's name) as `command` accepts them, prints its usage on
// --help (exit 0) or on a usage error (exit kExitUsage, with the reason), sets up logging, and
// runs it. Returns the process exit code.
int runCommand(const Command& command, const std::vector<std::string>& args,
               const ProcessEnvironment& env, const Environment& environment);

// For a check of the command's own: "pullagent mount: --upper needs --work" and its usage.
int usageError(const Command& command, const std::string& message);

}  // namespace pullagent::agent
