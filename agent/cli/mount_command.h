#pragma once

#include <map>
#include <string>
#include <vector>

#include "agent/common/process_environment.h"

namespace pullagent::agent {

// `pullagent mount IMAGE TARGET [--upper DIR --work DIR] [--state DIR]`: mounts a published
// image's root filesystem at TARGET, the overlay of its layer snapshots (read-only without an
// upper directory). `pullagent unmount TARGET` undoes it. Return the process exit code.
int runMountCommand(const std::vector<std::string>& args, const ProcessEnvironment& env,
                    const std::map<std::string, std::string>& environment);
int runUnmountCommand(const std::vector<std::string>& args, const ProcessEnvironment& env);

}  // namespace pullagent::agent
