#pragma once

#include "agent/cli/command.h"

namespace pullagent::agent {

// `pullagent pull IMAGE (--dest DIR | --rootfs DIR | --bundle DIR | --state DIR)`: pulls an
// image into an OCI image layout, or unpacks and publishes it.
const Command& pullCommand();

}  // namespace pullagent::agent
