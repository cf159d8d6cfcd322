#include "agent/cli/commands.h"

#include <algorithm>

#include "agent/cli/diagnose_command.h"
#include "agent/cli/gc_command.h"
#include "agent/cli/images_command.h"
#include "agent/cli/mount_command.h"
#include "agent/cli/once_command.h"
#include "agent/cli/pull_command.h"
#include "agent/cli/refresh_command.h"
#include "agent/cli/rollback_command.h"
#include "agent/cli/status_command.h"
#include "agent/cli/verify_command.h"
#include "agent/cli/version_command.h"

namespace pullagent::agent {

const std::vector<const Command*>& allCommands() {
  static const std::vector<const Command*> commands{
      &onceCommand(), &statusCommand(), &refreshCommand(),  &rollbackCommand(),
      &pullCommand(), &verifyCommand(), &diagnoseCommand(), &imagesCommand(),
      &gcCommand(),   &mountCommand(),  &unmountCommand(),  &versionCommand()};
  return commands;
}

const Command* findCommand(const std::string& name) {
  const auto& commands = allCommands();
  auto found = std::find_if(commands.begin(), commands.end(),
                            [&](const Command* command) { return command->name == name; });
  return found == commands.end() ? nullptr : *found;
}

std::string mainUsage() {
  constexpr size_t kColumn = 27;
  auto line = [](const std::string& left, const std::string& right) {
    std::string text = "  " + left;
    text += text.size() + 1 < kColumn ? std::string(kColumn - text.size(), ' ')
                                      : "\n" + std::string(kColumn, ' ');
    return text + right + "\n";
  };
  std::string usage = "usage: pullagent [COMMAND] [options]\n\ncommands:\n";
  usage += line("(none)", "run as the service: keep every site's image published (--help-daemon)");
  for (const Command* command : allCommands()) {
    usage += line(command->name + (command->synopsis.empty() ? "" : " " + command->synopsis),
                  command->summary);
  }
  usage += "\n`pullagent COMMAND --help` prints a command's options; man pullagent for all.\n";
  return usage;
}

}  // namespace pullagent::agent
