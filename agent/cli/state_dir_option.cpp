#include "agent/cli/state_dir_option.h"

#include "agent/config/config_files.h"

namespace pullagent::agent {

Result<std::filesystem::path> stateDirOption(
    const ParsedArgs& args, const std::map<std::string, std::string>& environment) {
  if (auto state = args.option("state"))
    return std::filesystem::path(*state);
  ASSIGN_OR_RETURN(auto agent, loadAgentConfig(args.option("config"), environment));
  return agent.state_dir;
}

}  // namespace pullagent::agent
