#pragma once

#include <map>
#include <string>
#include <vector>

#include "agent/common/process_environment.h"

namespace pullagent::agent {

// `pullagent pull IMAGE --dest DIR ...`: pulls an image into an OCI image layout. Returns the
// process exit code (see exit_codes.h).
int runPullCommand(const std::vector<std::string>& args, const ProcessEnvironment& env,
                   const std::map<std::string, std::string>& environment);

}  // namespace pullagent::agent
