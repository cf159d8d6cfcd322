#include "agent/config/config_files.h"

#include <fstream>
#include <sstream>

namespace pullagent::agent {

namespace {
constexpr std::uintmax_t kMaxConfigBytes = 1 << 20;
}

Result<std::string> readConfigText(const std::filesystem::path& path) {
  std::error_code ec;
  auto size = std::filesystem::file_size(path, ec);
  if (ec) {
    return makeError(ec == std::errc::no_such_file_or_directory ? ErrorCode::kNotFound
                                                                : ErrorCode::kInvalidArgument,
                     "cannot read " + path.string() + ": " + ec.message());
  }
  if (size > kMaxConfigBytes) {
    return makeError(ErrorCode::kInvalidArgument, path.string() + " is " + std::to_string(size) +
                                                      " bytes; configs are at most " +
                                                      std::to_string(kMaxConfigBytes));
  }
  std::ifstream in(path);
  if (!in)
    return makeError(ErrorCode::kInvalidArgument, "cannot read " + path.string());
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
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
  auto text = readConfigText(path);
  if (!text)
    return text.error();
  auto site = parseSiteConfig(text.value());
  if (!site)
    return site.error().context(path.string());
  return site;
}

}  // namespace pullagent::agent
