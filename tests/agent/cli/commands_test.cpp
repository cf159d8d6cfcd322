// The command table against its texts: every option a command accepts is in its --help and in
// the man page's section for it (docs/pullagent.8.md), and `pullagent --help` lists every
// command.
#include "agent/cli/commands.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

namespace pullagent::agent {
namespace {

std::string manPage() {
  std::ifstream in(std::string(PULLAGENT_SOURCE_DIR) + "/docs/pullagent.8.md");
  EXPECT_TRUE(in) << "cannot read docs/pullagent.8.md";
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The man page's section "### pullagent NAME ..." up to the next heading.
std::string manSection(const std::string& page, const std::string& name) {
  const std::string heading = "\n### pullagent " + name;
  auto start = page.find(heading + " ");
  if (start == std::string::npos)
    start = page.find(heading + "\n");
  if (start == std::string::npos)
    return "";
  const auto end = page.find("\n#", start + heading.size());
  return page.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

TEST(Commands, EveryOptionIsInTheCommandsHelpAndInTheManPage) {
  const std::string page = manPage();
  for (const Command* command : allCommands()) {
    SCOPED_TRACE(command->name);
    const std::string section = manSection(page, command->name);
    EXPECT_FALSE(section.empty()) << "docs/pullagent.8.md has no section \"### pullagent "
                                  << command->name << "\"";
    std::set<std::string> accepted = command->options;
    accepted.insert(command->flags.begin(), command->flags.end());
    for (const auto& option : accepted) {
      if (option == "log-level" || option == "log-format")
        continue;  // every command's, checked below
      EXPECT_NE(command->usage.find("--" + option), std::string::npos)
          << "--" << option << " is accepted but missing from its --help";
      EXPECT_NE(section.find("**--" + option + "**"), std::string::npos)
          << "--" << option << " is accepted but missing from its man page section";
    }
    // Those every command accepts are in the man page's options of all commands.
    for (const std::string shared : {"log-level", "log-format", "help"})
      EXPECT_NE(page.find("**--" + shared + "**"), std::string::npos) << "--" << shared;
  }
}

TEST(Commands, TheMainHelpListsEveryCommandAndEachIsFoundByName) {
  const std::string usage = mainUsage();
  for (const Command* command : allCommands()) {
    EXPECT_NE(usage.find("  " + command->name), std::string::npos) << command->name;
    EXPECT_EQ(findCommand(command->name), command);
    EXPECT_NE(command->run, nullptr) << command->name;
  }
  EXPECT_EQ(findCommand("bogus"), nullptr);
}

}  // namespace
}  // namespace pullagent::agent
