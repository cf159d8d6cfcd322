#pragma once

#include "agent/cli/command.h"

namespace pullagent::agent {

// `pullagent mount IMAGE TARGET [--upper DIR --work DIR] [--state DIR]`: mounts a published
// image's root filesystem at TARGET, the overlay of its layer snapshots (read-only without an
// upper directory). `pullagent unmount TARGET` undoes it.
const Command& mountCommand();
const Command& unmountCommand();

}  // namespace pullagent::agent
