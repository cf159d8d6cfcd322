#include "agent/config/config_files.h"

#include "base/bounded_read.h"

namespace pullagent::agent {

namespace {
constexpr size_t kMaxConfigBytes = 1 << 20;
}

Result<std::string> readConfigText(const std::filesystem::path& path) {
  // Links are followed (config management and Kubernetes mounts use them); FIFOs, devices and
  // oversized files are refused without blocking.
  auto text = readRegularFile(path, kMaxConfigBytes, Links::kFollow);
  if (!text && text.error().code != ErrorCode::kNotFound)
    return makeError(ErrorCode::kInvalidArgument, "cannot read config: " + text.error().message);
  return text;
}

Result<AgentConfig> loadAgentConfig(const std::optional<std::string>& path,
                                    const std::map<std::string, std::string>& environment) {
  const std::string file = path.value_or(kDefaultAgentConfigPath);
  auto text = readConfigText(file);
  if (!text) {
    if (path || text.error().code != ErrorCode::kNotFound)
      return text.error();
    text = std::string("{}");
  }
  auto config = parseAgentConfig(text.value(), environment);
  if (!config)
    return config.error().context(file);
  return config;
}

Result<SiteConfig> loadSiteConfig(const std::filesystem::path& path) {
  ASSIGN_OR_RETURN(auto text, readConfigText(path));
  auto site = parseSiteConfig(text);
  if (!site)
    return site.error().context(path.string());
  return site;
}

}  // namespace pullagent::agent
