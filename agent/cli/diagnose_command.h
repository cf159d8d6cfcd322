#pragma once

#include "agent/cli/command.h"

namespace pullagent::agent {

// `pullagent diagnose (SITE | --site FILE) [--config AGENT.json] [--json]`: every step of a
// site's route checked from this host, each with what was seen and, for a failure, the fix.
const Command& diagnoseCommand();

}  // namespace pullagent::agent
