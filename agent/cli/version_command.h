#pragma once

#include "agent/cli/command.h"

namespace pullagent::agent {

// `pullagent --version`: our version and git revision, then the libraries that do the work as
// they report themselves at run time (what a bug report needs: a distribution update changes
// them without a rebuild of pullagent).
void printVersion();
const Command& versionCommand();

}  // namespace pullagent::agent
