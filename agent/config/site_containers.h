#pragma once

// A SITECONTAINERS site's containers: Microsoft.Web/sites/sitecontainers resources, as
// `az webapp sitecontainers list` prints them (a top-level "sitecontainers" array) or as child
// resources of the site in an ARM template ("resources"). Internal to agent/config.
#include <string>
#include <vector>

#include "agent/config/site_json.h"

namespace pullagent::agent::site_containers {

// The most containers a site runs: the main one and nine sidecars.
inline constexpr size_t kMaxContainers = 10;

// How many sitecontainers the document carries (a DOCKER| site ignores them, and says so).
size_t countSiteContainers(const site_json::json& doc);

// Every sitecontainer, the main one first, then the sidecars in the document's order. Each
// authenticates on its own terms (authType); DOCKER_REGISTRY_SERVER_* do not apply. A
// UserCredentials passwordSecret is a Key Vault reference, else the name of an app setting
// (whose value may itself be a reference), else the password itself.
Result<std::vector<SiteContainer>> readSiteContainers(const site_json::json& doc,
                                                      const site_json::Settings& settings);

// A container name that can go into state files, logs and metric labels: letters, digits, '.',
// '_' and '-', up to 64, starting with a letter or digit.
bool isContainerName(std::string_view name);

}  // namespace pullagent::agent::site_containers
