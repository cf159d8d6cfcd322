#pragma once

#include "agent/cli/command.h"

namespace pullagent::agent {

// `pullagent gc [--state DIR] [--keep DIGEST[,DIGEST...]]`: removes published images not kept
// and every blob no remaining image needs.
const Command& gcCommand();

}  // namespace pullagent::agent
