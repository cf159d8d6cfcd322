#include "agent/config/site_credentials.h"

#include <algorithm>
#include <cctype>

#include "base/redact.h"

namespace pullagent::agent::site_credentials {
namespace {

using namespace site_json;  // NOLINT: this file is the site_json helpers' user

// Docker's rule for whether the first path component names a registry.
bool hasRegistryHost(std::string_view image) {
  auto slash = image.find('/');
  if (slash == std::string_view::npos)
    return false;
  auto first = image.substr(0, slash);
  return first == "localhost" || first.find_first_of(".:") != std::string_view::npos ||
         std::any_of(first.begin(), first.end(),
                     [](char c) { return std::isupper(static_cast<unsigned char>(c)) != 0; });
}

}  // namespace

std::string registryHostOf(std::string url) {
  if (auto scheme = url.find("://"); scheme != std::string::npos)
    url = url.substr(scheme + 3);
  url = url.substr(0, url.find('/'));
  std::transform(url.begin(), url.end(), url.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (url == "index.docker.io" || url == "registry-1.docker.io" || url == "registry.hub.docker.com")
    return "docker.io";
  return url;
}

Result<puller::ImageRef> siteImage(std::string text, const std::optional<std::string>& server_host,
                                   const std::string& path) {
  if (!hasRegistryHost(text) && server_host && *server_host != "docker.io")
    text = *server_host + "/" + text;
  auto image = puller::ImageRef::parse(text);
  if (!image)
    return image.error().context(path);
  return image;
}

Result<SiteCredentials> readSiteCredentials(const SiteSections& sections,
                                            const Settings& settings) {
  const std::string& config_path = sections.config_path;
  ASSIGN_OR_RETURN(auto use_mi,
                   optionalBool(sections.config, "acrUseManagedIdentityCreds", config_path));
  ASSIGN_OR_RETURN(auto client_id,
                   optionalString(sections.config, "acrUserManagedIdentityID", config_path));
  SiteCredentials credentials;
  if (auto server_url = setting(settings, "DOCKER_REGISTRY_SERVER_URL"))
    credentials.server_host = registryHostOf(*server_url);
  if (use_mi.value_or(false)) {
    credentials.auth = RegistryAuth::kManagedIdentity;
    credentials.identity_client_id = client_id.value_or("");
    return credentials;
  }
  const bool has_username = settings.count("DOCKER_REGISTRY_SERVER_USERNAME") != 0 &&
                            setting(settings, "DOCKER_REGISTRY_SERVER_USERNAME");
  const bool has_password = settings.count("DOCKER_REGISTRY_SERVER_PASSWORD") != 0 &&
                            setting(settings, "DOCKER_REGISTRY_SERVER_PASSWORD");
  if (!has_username && !has_password)
    return credentials;
  if (!has_username || !has_password) {
    return makeError(ErrorCode::kInvalidArgument,
                     std::string("app setting DOCKER_REGISTRY_SERVER_") +
                         (has_username ? "PASSWORD" : "USERNAME") + " is missing: set both " +
                         "DOCKER_REGISTRY_SERVER_USERNAME and DOCKER_REGISTRY_SERVER_PASSWORD");
  }
  credentials.auth = RegistryAuth::kBasic;
  ASSIGN_OR_RETURN(credentials.username, settingValue(settings, "DOCKER_REGISTRY_SERVER_USERNAME"));
  ASSIGN_OR_RETURN(credentials.password, settingValue(settings, "DOCKER_REGISTRY_SERVER_PASSWORD"));
  return credentials;
}

Status applySiteCredentials(const SiteCredentials& credentials, bool strict,
                            SiteContainer& container) {
  if (credentials.auth == RegistryAuth::kAnonymous)
    return {};
  // Credentials go only to the registry they were configured for. (A DOCKER| site's managed
  // identity is the site's whatever DOCKER_REGISTRY_SERVER_URL says, as on App Service.)
  const bool elsewhere =
      credentials.server_host && *credentials.server_host != container.image.domain;
  if (elsewhere && !(strict && credentials.auth == RegistryAuth::kManagedIdentity)) {
    if (!strict)
      return {};  // that image is pulled anonymously
    return makeError(ErrorCode::kInvalidArgument,
                     "DOCKER_REGISTRY_SERVER_URL names " + safeQuoted(*credentials.server_host) +
                         " but the image is on " + container.image.domain +
                         "; registry credentials are not sent to another registry");
  }
  container.auth = credentials.auth;
  container.identity_client_id = credentials.identity_client_id;
  container.registry_username = credentials.username;
  container.registry_password = credentials.password;
  if (credentials.auth == RegistryAuth::kBasic)
    container.password_source = "app setting DOCKER_REGISTRY_SERVER_PASSWORD";
  return {};
}

}  // namespace pullagent::agent::site_credentials
