#pragma once

// The site-wide registry credentials of DOCKER| and COMPOSE| sites (acrUseManagedIdentityCreds,
// DOCKER_REGISTRY_SERVER_*), and the image rules they share. Internal to agent/config.
#include <optional>
#include <string>
#include <string_view>

#include "agent/config/site_json.h"

namespace pullagent::agent::site_credentials {

// DOCKER_REGISTRY_SERVER_URL is a URL ("https://myreg.azurecr.io", "https://index.docker.io/v1/")
// but a bare host is seen too. Lower case; Docker Hub's aliases as "docker.io".
std::string registryHostOf(std::string url);

// Parses an image as App Service does for DOCKER| and Compose: on DOCKER_REGISTRY_SERVER_URL's
// registry when the reference names none.
Result<puller::ImageRef> siteImage(std::string text, const std::optional<std::string>& server_host,
                                   const std::string& path);

// Managed identity when acrUseManagedIdentityCreds, else Basic from the two app settings (both),
// else anonymous.
struct SiteCredentials {
  RegistryAuth auth = RegistryAuth::kAnonymous;
  std::string identity_client_id;
  std::optional<SettingValue> username;
  std::optional<SettingValue> password;
  std::optional<std::string> server_host;  // DOCKER_REGISTRY_SERVER_URL's host
};

Result<SiteCredentials> readSiteCredentials(const site_json::SiteSections& sections,
                                            const site_json::Settings& settings);

// Gives `container` the site's credentials. Basic credentials go only to the registry
// DOCKER_REGISTRY_SERVER_URL names: elsewhere an error (`strict`, DOCKER|) or anonymous (Compose,
// where public images sit beside the private ones).
Status applySiteCredentials(const SiteCredentials& credentials, bool strict,
                            SiteContainer& container);

}  // namespace pullagent::agent::site_credentials
