#pragma once

#include "agent/cli/command.h"

namespace pullagent::agent {

// `pullagent rollback SITE [--config AGENT.json | --socket PATH] [--no-wait]`: asks the running
// service to publish the site's previous image again at once (kept while space allows), and
// prints the outcome (updated new → previous / failed: why).
const Command& rollbackCommand();

}  // namespace pullagent::agent
