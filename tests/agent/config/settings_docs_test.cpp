// The agent config reference in docs/service.md against the parser: every setting the parser
// knows is documented, every documented setting is one, and the documented examples, all in one
// config, are accepted.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/config/agent_config.h"

namespace pullagent::agent {
namespace {

struct DocumentedSetting {
  std::string key;      // dotted for nested settings
  std::string example;  // a JSON value
};

std::string unquoted(std::string cell) {
  while (!cell.empty() && cell.front() == ' ')
    cell.erase(cell.begin());
  while (!cell.empty() && cell.back() == ' ')
    cell.pop_back();
  if (cell.size() >= 2 && cell.front() == '`' && cell.back() == '`')
    return cell.substr(1, cell.size() - 2);
  return cell;
}

// The rows of the table between "<!-- settings: NAME -->" and "<!-- /settings -->".
std::vector<DocumentedSetting> documentedSettings(const std::string& page,
                                                  const std::string& name) {
  std::ifstream in(std::string(PULLAGENT_SOURCE_DIR) + "/" + page);
  EXPECT_TRUE(in) << "cannot read " << page;
  std::vector<DocumentedSetting> settings;
  bool inside = false;
  for (std::string line; std::getline(in, line);) {
    if (line == "<!-- settings: " + name + " -->") {
      inside = true;
      continue;
    }
    if (line == "<!-- /settings -->")
      inside = false;
    if (!inside || !line.starts_with("| `"))
      continue;
    std::vector<std::string> cells;
    std::stringstream row(line.substr(1));
    for (std::string cell; std::getline(row, cell, '|');)
      cells.push_back(cell);
    EXPECT_GE(cells.size(), 5u) << page << ": a row of fewer than five cells: " << line;
    if (cells.size() >= 5)
      settings.push_back({unquoted(cells[0]), unquoted(cells[3])});
  }
  return settings;
}

TEST(SettingsDocs, EveryAgentConfigSettingIsDocumentedAndNothingElse) {
  const auto documented = documentedSettings("docs/service.md", "agent-config");
  std::set<std::string> in_docs;
  for (const auto& setting : documented)
    EXPECT_TRUE(in_docs.insert(setting.key).second) << setting.key << " is documented twice";
  const auto keys = agentConfigKeys();
  const std::set<std::string> in_code(keys.begin(), keys.end());
  for (const auto& key : in_code)
    EXPECT_EQ(in_docs.count(key), 1u) << key << " is a setting, missing from docs/service.md";
  for (const auto& key : in_docs)
    EXPECT_EQ(in_code.count(key), 1u) << key << " is documented in docs/service.md, not a setting";
}

TEST(SettingsDocs, TheDocumentedExamplesTogetherAreAValidAgentConfig) {
  nlohmann::json config = nlohmann::json::object();
  for (const auto& setting : documentedSettings("docs/service.md", "agent-config")) {
    auto value = nlohmann::json::parse(setting.example, nullptr, false);
    ASSERT_FALSE(value.is_discarded())
        << setting.key << ": its example is not a JSON value: " << setting.example;
    // Read when the config is: the documented /etc path stands for the tests' own directory.
    if (setting.key == "notationDir")
      value = std::string(PULLAGENT_SOURCE_DIR) + "/tests/puller/trust/data/notation";
    const auto dot = setting.key.find('.');
    if (dot == std::string::npos)
      config[setting.key] = value;
    else
      config[setting.key.substr(0, dot)][setting.key.substr(dot + 1)] = value;
  }
  auto parsed = parseAgentConfig(config.dump(), {});
  ASSERT_TRUE(parsed.ok()) << parsed.error().message << "\n" << config.dump(2);
}

// agentConfigKeys() is the list the parser refuses other keys by; each of them must be one the
// parser reads: a value of the wrong type is refused, naming the key.
TEST(SettingsDocs, EverySettingTheParserListsItReads) {
  for (const auto& key : agentConfigKeys()) {
    nlohmann::json config = nlohmann::json::object();
    const nlohmann::json wrong = nlohmann::json::array({nlohmann::json::object()});
    const auto dot = key.find('.');
    if (dot == std::string::npos)
      config[key] = wrong;
    else
      config[key.substr(0, dot)][key.substr(dot + 1)] = wrong;
    auto parsed = parseAgentConfig(config.dump(), {});
    ASSERT_FALSE(parsed.ok()) << key << " = " << wrong.dump() << " was accepted";
    EXPECT_NE(parsed.error().message.find(key), std::string::npos)
        << key << ": " << parsed.error().message;
  }
}

TEST(SettingsDocs, AMisspeltSettingIsRefusedWithTheOneMeant) {
  auto parsed = parseAgentConfig(R"({"stateDIr": "/srv/pullagent"})", {});
  ASSERT_FALSE(parsed.ok());
  EXPECT_NE(parsed.error().message.find("stateDIr"), std::string::npos) << parsed.error().message;
  EXPECT_NE(parsed.error().message.find("did you mean \"stateDir\""), std::string::npos)
      << parsed.error().message;
  auto nested = parseAgentConfig(R"({"identity": {"kind": "imds", "clientId": "x"}})", {});
  ASSERT_FALSE(nested.ok());
  EXPECT_NE(nested.error().message.find("identity.clientId"), std::string::npos)
      << nested.error().message;
  EXPECT_TRUE(parseAgentConfig(R"({"identity": {"kind": "imds"}})", {}).ok());
}

}  // namespace
}  // namespace pullagent::agent
