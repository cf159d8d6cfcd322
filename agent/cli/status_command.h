#pragma once

#include "agent/cli/command.h"

namespace pullagent::agent {

// `pullagent status [SITE] [--config AGENT.json | --state DIR] [--json]`: what the daemon
// recorded for each site (or one), as a table or as the state JSON.
const Command& statusCommand();

}  // namespace pullagent::agent
