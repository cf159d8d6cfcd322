#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "agent/cli/command.h"

namespace pullagent::agent {

// `pullagent refresh [SITE...] [--config AGENT.json | --socket PATH] [--no-wait]`: asks the
// running service to re-resolve the sites' tags now (every site without names), waits for the
// outcome and prints it per site (unchanged / updated old → new / failed: why).
const Command& refreshCommand();

// Posts `request` to the service's control socket at `path` (--socket, else the agent config's
// controlSocket), then, unless --no-wait, polls the outcome (--timeout) and prints it per site.
// `command` names the command in messages. Returns the exit code. Shared by refresh and
// rollback.
int askServiceAndWait(const ParsedArgs& args, const ProcessEnvironment& env,
                      const Environment& environment, const std::string& command,
                      const std::string& path, const nlohmann::json& request);

}  // namespace pullagent::agent
