#include "agent/common/args.h"

namespace pullagent::agent {

std::optional<std::string> ParsedArgs::option(const std::string& name) const {
  auto it = options.find(name);
  if (it == options.end())
    return std::nullopt;
  return it->second;
}

Result<ParsedArgs> parseArgs(const std::vector<std::string>& args,
                             const std::set<std::string>& value_options,
                             const std::set<std::string>& flag_options) {
  ParsedArgs parsed;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (!arg.starts_with("--")) {
      parsed.positionals.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2);
    std::optional<std::string> value;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    if (flag_options.count(name) != 0) {
      if (value)
        return makeError(ErrorCode::kInvalidArgument, "--" + name + " takes no value");
      parsed.flags.insert(name);
    } else if (value_options.count(name) != 0) {
      if (!value) {
        if (i + 1 >= args.size()) {
          return makeError(ErrorCode::kInvalidArgument, "--" + name + " needs a value");
        }
        value = args[++i];
      }
      parsed.options[name] = *value;
    } else {
      return makeError(ErrorCode::kInvalidArgument, "unknown option --" + name);
    }
  }
  return parsed;
}

}  // namespace pullagent::agent
