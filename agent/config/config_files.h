#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include "agent/config/agent_config.h"
#include "agent/config/site_config.h"
#include "base/error.h"

namespace pullagent::agent {

inline constexpr const char* kDefaultAgentConfigPath = "/etc/pullagent/agent.json";

// Reads a small text file (configs: at most 1 MiB).
Result<std::string> readConfigText(const std::filesystem::path& path);

// The agent config at `path`, or at the default path, where a missing file means the defaults.
// Errors are prefixed with the file's path.
Result<AgentConfig> loadAgentConfig(const std::optional<std::string>& path,
                                    const std::map<std::string, std::string>& environment);

// A site config file; errors are prefixed with the file's path.
Result<SiteConfig> loadSiteConfig(const std::filesystem::path& path);

}  // namespace pullagent::agent
