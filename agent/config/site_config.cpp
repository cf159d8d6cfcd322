#include "agent/config/site_config.h"

#include <nlohmann/json.hpp>

#include "agent/config/site_json.h"
#include "agent/config/site_network.h"
#include "base/json_reader.h"
#include "base/redact.h"

namespace pullagent::agent {
namespace {

using namespace site_json;  // NOLINT: this file is the site_json helpers' user

// DOCKER_REGISTRY_SERVER_URL is a URL ("https://myreg.azurecr.io", "https://index.docker.io/v1/")
// but a bare host is seen too.
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

Result<std::string> imageOf(const std::string& fx, const std::string& path) {
  auto bar = fx.find('|');
  std::string kind = upper(fx.substr(0, bar));
  if (kind == "DOCKER") {
    std::string image = fx.substr(bar + 1);
    image.erase(0, image.find_first_not_of(" \t"));
    image.erase(image.find_last_not_of(" \t") + 1);
    if (image.empty())
      return makeError(ErrorCode::kInvalidArgument,
                       path + ": " + safeQuoted(fx) + " names no image");
    return image;
  }
  std::string what;
  if (kind == "COMPOSE" || kind == "KUBE") {
    what = "multi-container (" + kind + "|) sites are not supported";
  } else if (kind == "SITECONTAINERS") {
    what = "sidecar (SITECONTAINERS) sites are not supported";
  } else if (bar != std::string::npos) {
    what = safeQuoted(fx) + " is a built-in runtime stack, not a container image";
  } else {
    what = safeQuoted(fx) + " is not a container image";
  }
  return makeError(ErrorCode::kUnsupported, path + ": " + what +
                                                "; pullagent pulls single-container sites, " +
                                                "linuxFxVersion \"DOCKER|<image>\"");
}

// The image: linuxFxVersion's, on DOCKER_REGISTRY_SERVER_URL's registry when it names none.
Result<puller::ImageRef> resolveImage(const std::string& linux_fx_version,
                                      const std::optional<std::string>& server_host,
                                      const std::string& fx_path) {
  ASSIGN_OR_RETURN(std::string image_text, imageOf(linux_fx_version, fx_path));
  if (!hasRegistryHost(image_text) && server_host && *server_host != "docker.io")
    image_text = *server_host + "/" + image_text;
  auto image = puller::ImageRef::parse(image_text);
  if (!image)
    return image.error().context(fx_path);
  return image;
}

// Managed identity when acrUseManagedIdentityCreds, else Basic from the two app settings (both,
// and only for the registry DOCKER_REGISTRY_SERVER_URL names), else anonymous.
struct SiteCredentials {
  RegistryAuth auth = RegistryAuth::kAnonymous;
  std::string identity_client_id;
  std::optional<SettingValue> username;
  std::optional<SettingValue> password;
};

Result<SiteCredentials> readCredentials(const SiteSections& sections, const Settings& settings,
                                        const std::optional<std::string>& server_host,
                                        const puller::ImageRef& image) {
  const std::string& config_path = sections.config_path;
  ASSIGN_OR_RETURN(auto use_mi,
                   optionalBool(sections.config, "acrUseManagedIdentityCreds", config_path));
  ASSIGN_OR_RETURN(auto client_id,
                   optionalString(sections.config, "acrUserManagedIdentityID", config_path));
  SiteCredentials credentials;
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
  // Credentials go only to the registry they were configured for.
  if (server_host && *server_host != image.domain) {
    return makeError(ErrorCode::kInvalidArgument,
                     "DOCKER_REGISTRY_SERVER_URL names " + safeQuoted(*server_host) +
                         " but the image is on " + image.domain +
                         "; registry credentials are not sent to " + "another registry");
  }
  credentials.auth = RegistryAuth::kBasic;
  ASSIGN_OR_RETURN(credentials.username, settingValue(settings, "DOCKER_REGISTRY_SERVER_USERNAME"));
  ASSIGN_OR_RETURN(credentials.password, settingValue(settings, "DOCKER_REGISTRY_SERVER_PASSWORD"));
  return credentials;
}

}  // namespace

Result<SiteConfig> parseSiteConfig(std::string_view json_text) {
  ASSIGN_OR_RETURN(const json doc,
                   parseJson(json_text, "site config", ErrorCode::kInvalidArgument));
  if (!doc.is_object())
    return typeError("$", "an object", doc);
  const bool arm = doc.contains("properties") && doc["properties"].is_object();
  const json& site = arm ? doc["properties"] : doc;
  const std::string site_path = arm ? "properties" : "";
  const std::string config_path = joinPath(site_path, "siteConfig");
  if (!site.contains("siteConfig"))
    return makeError(ErrorCode::kInvalidArgument, config_path + ": missing");
  if (!site["siteConfig"].is_object())
    return typeError(config_path, "an object", site["siteConfig"]);
  const SiteSections sections{doc, site, site["siteConfig"], site_path, config_path};

  SiteConfig result;
  ASSIGN_OR_RETURN(auto name, optionalString(doc, "name", "$"));
  result.name = name.value_or("");
  ASSIGN_OR_RETURN(auto fx, optionalString(sections.config, "linuxFxVersion", config_path));
  if (!fx)
    return makeError(ErrorCode::kInvalidArgument, config_path + ".linuxFxVersion: missing");
  result.linux_fx_version = *fx;

  ASSIGN_OR_RETURN(const Settings settings, findAppSettings(sections));
  std::optional<std::string> server_host;
  if (auto server_url = setting(settings, "DOCKER_REGISTRY_SERVER_URL"))
    server_host = registryHostOf(*server_url);
  ASSIGN_OR_RETURN(result.image, resolveImage(result.linux_fx_version, server_host,
                                              config_path + ".linuxFxVersion"));
  ASSIGN_OR_RETURN(SiteCredentials credentials,
                   readCredentials(sections, settings, server_host, result.image));
  result.auth = credentials.auth;
  result.identity_client_id = std::move(credentials.identity_client_id);
  result.registry_username = std::move(credentials.username);
  result.registry_password = std::move(credentials.password);
  ASSIGN_OR_RETURN(auto route, readRoute(sections, settings));
  result.pull_over_vnet = route.first;
  result.route_decided_by = std::move(route.second);
  ASSIGN_OR_RETURN(result.dns, readDns(sections, settings));

  ASSIGN_OR_RETURN(auto kv_identity,
                   optionalString(site, "keyVaultReferenceIdentity", sections.pathOf(site_path)));
  if (kv_identity && !kv_identity->empty())
    result.key_vault_identity = *kv_identity;
  auto ci = setting(settings, "DOCKER_ENABLE_CI");
  result.continuous_deployment = ci && (upper(*ci) == "TRUE" || *ci == "1");
  return result;
}

}  // namespace pullagent::agent
