#pragma once

#include "agent/cli/command.h"

namespace pullagent::agent {

// `pullagent --once --site SITE.json [--config agent.json]`: what the daemon does for one site,
// once, printing each phase with its time.
const Command& onceCommand();

}  // namespace pullagent::agent
