#pragma once

#include <map>
#include <string>
#include <vector>

#include "agent/common/process_environment.h"

namespace pullagent::agent {

// `pullagent status [SITE] [--config AGENT.json | --state DIR] [--json]`: what the daemon
// recorded for each site (or one), as a table or as the state JSON.
int runStatusCommand(const std::vector<std::string>& args, const ProcessEnvironment& env,
                     const std::map<std::string, std::string>& environment);

}  // namespace pullagent::agent
