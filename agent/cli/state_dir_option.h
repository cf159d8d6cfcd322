#pragma once

#include <filesystem>
#include <map>
#include <string>

#include "agent/common/args.h"
#include "base/error.h"
#include "puller/state/state_dir.h"

namespace pullagent::agent {

// The state dir a command works on, and where that came from (for its errors).
struct StateDirChoice {
  puller::StateDir dir;
  std::string from;  // "--state", "stateDir in /etc/pullagent/agent.json", "the default"
};

// --state DIR, else the stateDir of the agent config (--config FILE, else the default
// /etc/pullagent/agent.json when it exists), else StateDir::kDefaultRoot: the same
// answer for every command, so that `gc`, `mount`, `images`, `status` and `pull --state` agree
// on a host whose agent config moves the state dir.
Result<StateDirChoice> chooseStateDir(const ParsedArgs& args,
                                      const std::map<std::string, std::string>& environment);

// For the commands that only read or collect: a state dir that does not exist is an error
// naming the path and where it came from (a typo must not look like an empty host).
Result<puller::StateDir> existingStateDir(const ParsedArgs& args,
                                          const std::map<std::string, std::string>& environment);

}  // namespace pullagent::agent
