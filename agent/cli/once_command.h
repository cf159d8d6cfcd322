#pragma once

#include <map>
#include <string>
#include <vector>

#include "agent/common/process_environment.h"

namespace pullagent::agent {

// `pullagent --once --site SITE.json [--config agent.json]`: what the daemon does for one site,
// once, printing each phase with its time. Returns the process exit code.
int runOnceCommand(const std::vector<std::string>& args, const ProcessEnvironment& env,
                   const std::map<std::string, std::string>& environment);

}  // namespace pullagent::agent
