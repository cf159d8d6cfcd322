#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/error.h"

namespace pullagent::agent {

// A small command-line parser: positionals plus "--name value" / "--name=value" options and
// "--flag" switches, with unknown options refused by name.
struct ParsedArgs {
  std::vector<std::string> positionals;
  std::map<std::string, std::string> options;
  std::set<std::string> flags;

  std::optional<std::string> option(const std::string& name) const;
  bool flag(const std::string& name) const { return flags.count(name) != 0; }
};

Result<ParsedArgs> parseArgs(const std::vector<std::string>& args,
                             const std::set<std::string>& value_options,
                             const std::set<std::string>& flag_options);

}  // namespace pullagent::agent
