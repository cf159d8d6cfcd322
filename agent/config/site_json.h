#pragma once

// What parsing a site document needs everywhere: typed reads of optional JSON fields that name
// their path in errors, the app settings (case-insensitive, their JSON path kept), and where
// ARM and `az webapp show` put a site's fields. Internal to agent/config.
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "agent/config/site_config.h"
#include "base/error.h"

namespace pullagent::agent::site_json {

using nlohmann::json;

std::string upper(std::string_view text);
Error typeError(const std::string& path, const char* want, const json& value);
// App settings may hold secrets (DOCKER_REGISTRY_SERVER_PASSWORD): their errors name the type of
// what was found, never its content.
Error settingTypeError(const std::string& path, const char* want, const json& value);
Result<std::optional<std::string>> optionalString(const json& object, const char* key,
                                                  const std::string& path);
Result<std::optional<bool>> optionalBool(const json& object, const char* key,
                                         const std::string& path);
// A whole number in [low, high], or nothing.
Result<std::optional<int>> integerField(const json& object, const char* key,
                                        const std::string& path, int low, int high);

using Settings =
    std::map<std::string, std::pair<std::string, std::string>>;  // UPPER -> (path, value)

Result<Settings> readAppSettings(const json& value, const std::string& path);
// A setting's value, or nothing when it is missing or empty.
std::optional<std::string> setting(const Settings& settings, const std::string& name);
// A setting that must exist, as a literal or a Key Vault reference.
Result<SettingValue> settingValue(const Settings& settings, const std::string& name);
// An app setting holding a whole number in [low, high], or nothing.
Result<std::optional<int>> integerSetting(const Settings& settings, const std::string& name,
                                          int low, int high);

// Where a site document keeps its fields: ARM puts them under "properties", `az webapp show`
// flattens them; siteConfig is inside either way.
struct SiteSections {
  const json& doc;
  const json& site;
  const json& config;
  std::string site_path;    // "" or "properties"
  std::string config_path;  // "siteConfig" or "properties.siteConfig"

  std::string pathOf(const std::string& holder_path) const {
    return holder_path.empty() ? "$" : holder_path;
  }
};

std::string joinPath(const std::string& a, const char* b);
// App settings: in siteConfig (ARM), beside it, or at the top (an appsettings list merged in).
Result<Settings> findAppSettings(const SiteSections& sections);

}  // namespace pullagent::agent::site_json
