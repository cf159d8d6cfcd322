#pragma once

// A COMPOSE| site's services: linuxFxVersion "COMPOSE|<base64 of a Docker Compose YAML>".
// Internal to agent/config.
#include <string>
#include <string_view>
#include <vector>

#include "agent/config/site_config.h"
#include "base/error.h"

namespace pullagent::agent::site_compose {

// The largest Compose file accepted (decoded): App Service keeps linuxFxVersion far smaller.
inline constexpr size_t kMaxComposeBytes = 64 * 1024;

// Each service with its image, in the file's order; the first is the main container (the one
// App Service routes to when no service names port 80 or 8080; otherwise the first that does).
// Keys App Service does not support in Compose files (build, depends_on, networks, ...) are
// errors naming the service and the key. `path` is linuxFxVersion's JSON path, for errors.
// Images without a registry host are on `server_host` (DOCKER_REGISTRY_SERVER_URL's), if any.
Result<std::vector<SiteContainer>> readComposeServices(
    std::string_view base64_yaml, const std::optional<std::string>& server_host,
    const std::string& path);

}  // namespace pullagent::agent::site_compose
