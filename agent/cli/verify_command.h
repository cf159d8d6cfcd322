#pragma once

#include "agent/cli/command.h"

namespace pullagent::agent {

// `pullagent verify IMAGE (--signature-policy FILE | --notation-dir DIR) [--json]`: the
// signature policies' verdict on an image, taken as a pull takes it, without pulling it.
const Command& verifyCommand();

}  // namespace pullagent::agent
