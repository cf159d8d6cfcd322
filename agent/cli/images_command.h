#pragma once

#include <map>
#include <string>
#include <vector>

#include "agent/common/process_environment.h"

namespace pullagent::agent {

// `pullagent images [--config AGENT.json | --state DIR] [--json]`: the images published in the
// state dir, how each keeps its root filesystem, the disk it uses on its own and shares with
// other images, and the sites it serves.
int runImagesCommand(const std::vector<std::string>& args, const ProcessEnvironment& env,
                     const std::map<std::string, std::string>& environment);

}  // namespace pullagent::agent
