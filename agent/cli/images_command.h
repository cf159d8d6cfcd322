#pragma once

#include "agent/cli/command.h"

namespace pullagent::agent {

// `pullagent images [--config AGENT.json | --state DIR] [--json]`: the images published in the
// state dir, how each keeps its root filesystem, the disk it uses on its own and shares with
// other images, and the sites it serves.
const Command& imagesCommand();

}  // namespace pullagent::agent
