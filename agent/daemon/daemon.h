#pragma once

#include <map>
#include <string>
#include <vector>

#include "agent/common/process_environment.h"

namespace pullagent::agent {

// `pullagent [--config AGENT.json]`: the service. Watches the sites directory and keeps every
// site's published image equal to what its config asks for, until SIGTERM; SIGHUP reloads the
// agent config. Speaks sd_notify (READY, STATUS, WATCHDOG, RELOADING, STOPPING) when systemd
// started it as Type=notify. Returns the process exit code.
int runDaemon(const std::vector<std::string>& args, const ProcessEnvironment& env,
              const std::map<std::string, std::string>& environment);

}  // namespace pullagent::agent
