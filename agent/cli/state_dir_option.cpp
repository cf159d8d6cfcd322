#include "agent/cli/state_dir_option.h"

#include <sys/stat.h>

#include "agent/config/config_files.h"

namespace pullagent::agent {

Result<StateDirChoice> chooseStateDir(const ParsedArgs& args,
                                      const std::map<std::string, std::string>& environment) {
  if (auto state = args.option("state"))
    return StateDirChoice{puller::StateDir(*state), "--state"};
  const std::string file = args.option("config").value_or(kDefaultAgentConfigPath);
  ASSIGN_OR_RETURN(auto agent, loadAgentConfig(args.option("config"), environment));
  struct stat info {};
  const bool read_file = args.option("config") || ::stat(file.c_str(), &info) == 0;
  return StateDirChoice{agent.state_dir,
                        read_file ? "stateDir in " + file : "the default (no " + file + ")"};
}

Result<puller::StateDir> existingStateDir(const ParsedArgs& args,
                                          const std::map<std::string, std::string>& environment) {
  ASSIGN_OR_RETURN(auto choice, chooseStateDir(args, environment));
  struct stat info {};
  if (::stat(choice.dir.root().c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) {
    return makeError(ErrorCode::kNotFound, "state directory " + choice.dir.root().string() +
                                               " (from " + choice.from + ") does not exist");
  }
  return choice.dir;
}

}  // namespace pullagent::agent
