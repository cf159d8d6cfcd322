#pragma once

#include <string>
#include <vector>

#include "agent/cli/command.h"

namespace pullagent::agent {

// Every command of the pullagent binary but the service itself (no command), in the order
// `pullagent --help` lists them.
const std::vector<const Command*>& allCommands();

// The command named `name` ("pull", "--once"); null if there is none.
const Command* findCommand(const std::string& name);

// `pullagent --help`: the service, then every command with its synopsis and summary.
std::string mainUsage();

}  // namespace pullagent::agent
