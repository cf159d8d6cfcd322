#pragma once

#include <filesystem>
#include <map>
#include <string>

#include "agent/common/args.h"
#include "base/error.h"

namespace pullagent::agent {

// The state dir a read-only command looks at: --state DIR, else the one the agent config
// (--config FILE, default /etc/pullagent/agent.json) names.
Result<std::filesystem::path> stateDirOption(const ParsedArgs& args,
                                             const std::map<std::string, std::string>& environment);

}  // namespace pullagent::agent
