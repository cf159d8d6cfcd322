#pragma once

#include <map>
#include <string>
#include <vector>

#include "agent/common/process_environment.h"

namespace pullagent::agent {

// `pullagent gc [--state DIR] [--keep DIGEST[,DIGEST...]]`: removes published images not kept
// and every blob no remaining image needs. Returns the process exit code.
int runGcCommand(const std::vector<std::string>& args, const ProcessEnvironment& env,
                 const std::map<std::string, std::string>& environment);

}  // namespace pullagent::agent
