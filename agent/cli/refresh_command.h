#pragma once

#include <map>
#include <string>
#include <vector>

#include "agent/common/process_environment.h"

namespace pullagent::agent {

// `pullagent refresh [SITE...] [--config AGENT.json | --socket PATH] [--no-wait]`: asks the
// running service to re-resolve the sites' tags now (every site without names), waits for the
// outcome and prints it per site (unchanged / updated old → new / failed: why).
int runRefreshCommand(const std::vector<std::string>& args, const ProcessEnvironment& env,
                      const std::map<std::string, std::string>& environment);

}  // namespace pullagent::agent
