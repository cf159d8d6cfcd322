#pragma once

// A site's network settings for its pulls: whether they go over the VNet (and which setting
// said so), and the VNet DNS it asks for.
#include <string>
#include <utility>

#include "agent/config/site_config.h"
#include "agent/config/site_json.h"

namespace pullagent::agent {

// Over the VNet or not, and the JSON path or app setting that decided (empty: none did).
Result<std::pair<bool, std::string>> readRoute(const site_json::SiteSections& sections,
                                               const site_json::Settings& settings);
Result<SiteConfig::Dns> readDns(const site_json::SiteSections& sections,
                                const site_json::Settings& settings);

}  // namespace pullagent::agent
