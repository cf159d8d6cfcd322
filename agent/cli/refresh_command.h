#pragma once

#include "agent/cli/command.h"

namespace pullagent::agent {

// `pullagent refresh [SITE...] [--config AGENT.json | --socket PATH] [--no-wait]`: asks the
// running service to re-resolve the sites' tags now (every site without names), waits for the
// outcome and prints it per site (unchanged / updated old → new / failed: why).
const Command& refreshCommand();

}  // namespace pullagent::agent
