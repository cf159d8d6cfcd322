#include "agent/config/site_config.h"

#include <nlohmann/json.hpp>

#include <algorithm>

#include "agent/config/site_compose.h"
#include "agent/config/site_containers.h"
#include "agent/config/site_credentials.h"
#include "agent/config/site_json.h"
#include "agent/config/site_network.h"
#include "base/json_reader.h"
#include "base/redact.h"

namespace pullagent::agent {
namespace {

using namespace site_json;  // NOLINT: this file is the site_json helpers' user

// The image of a DOCKER| site; the other kinds are read elsewhere, anything else is refused.
Result<std::string> dockerImageOf(const std::string& fx, const std::string& path) {
  std::string image = fx.substr(fx.find('|') + 1);
  image.erase(0, image.find_first_not_of(" \t"));
  image.erase(image.find_last_not_of(" \t") + 1);
  if (image.empty())
    return makeError(ErrorCode::kInvalidArgument, path + ": " + safeQuoted(fx) + " names no image");
  return image;
}

Result<SiteKind> siteKindOf(const std::string& fx, const std::string& path) {
  auto bar = fx.find('|');
  const std::string kind = upper(fx.substr(0, bar));
  if (kind == "DOCKER")
    return SiteKind::kDocker;
  if (kind == "COMPOSE")
    return SiteKind::kCompose;
  if (kind == "SITECONTAINERS" && (bar == std::string::npos || bar + 1 == fx.size()))
    return SiteKind::kSiteContainers;
  std::string what;
  if (kind == "KUBE") {
    what = "Kubernetes (KUBE|) sites are not supported";
  } else if (bar != std::string::npos) {
    what = safeQuoted(fx) + " is a built-in runtime stack, not a container image";
  } else {
    what = safeQuoted(fx) + " is not a container image";
  }
  return makeError(ErrorCode::kUnsupported,
                   path + ": " + what +
                       "; pullagent pulls container sites: linuxFxVersion \"DOCKER|<image>\", " +
                       "\"SITECONTAINERS\" or \"COMPOSE|<base64 YAML>\"");
}

// A site's containers must use identities assigned to it, when the document says which are
// (ARM and `az webapp show` carry "identity": {type, userAssignedIdentities}).
Status checkAssignedIdentities(const json& doc, const std::vector<SiteContainer>& containers) {
  if (!doc.contains("identity") || !doc["identity"].is_object())
    return {};
  const json& identity = doc["identity"];
  ASSIGN_OR_RETURN(auto type, optionalString(identity, "type", "identity"));
  if (!type)
    return {};
  const bool system = upper(*type).find("SYSTEMASSIGNED") != std::string::npos;
  // The client ids, when every assigned identity carries one (`az webapp show` does; an ARM
  // template lists resource ids only, and then nothing can be said).
  std::vector<std::string> assigned;
  bool clients_known =
      identity.contains("userAssignedIdentities") && identity["userAssignedIdentities"].is_object();
  if (clients_known) {
    for (const auto& [id, entry] : identity["userAssignedIdentities"].items()) {
      if (entry.is_object() && entry.contains("clientId") && entry["clientId"].is_string())
        assigned.push_back(upper(entry["clientId"].get<std::string>()));
      else
        clients_known = false;
    }
  }
  for (const auto& container : containers) {
    if (container.auth != RegistryAuth::kManagedIdentity)
      continue;
    const std::string who =
        container.name.empty() ? std::string("the site's image") : "container " + container.name;
    if (container.identity_client_id.empty() && !system) {
      return makeError(ErrorCode::kPermissionDenied,
                       who +
                           " pulls with the system-assigned identity, but the site has none "
                           "(identity.type " +
                           safeQuoted(*type) +
                           "): enable it with "
                           "`az webapp identity assign`");
    }
    if (!container.identity_client_id.empty() && clients_known &&
        std::find(assigned.begin(), assigned.end(), upper(container.identity_client_id)) ==
            assigned.end()) {
      return makeError(
          ErrorCode::kPermissionDenied,
          who + " pulls with the user-assigned identity " +
              safeQuoted(container.identity_client_id) +
              ", which is not assigned to the site (identity.userAssignedIdentities " + "has " +
              std::to_string(assigned.size()) +
              "): assign it with `az webapp identity assign --identities <resource id>`");
    }
  }
  return {};
}
}  // namespace

std::string_view toString(SiteKind kind) {
  switch (kind) {
    case SiteKind::kDocker:
      return "DOCKER";
    case SiteKind::kSiteContainers:
      return "SITECONTAINERS";
    case SiteKind::kCompose:
      break;
  }
  return "COMPOSE";
}

std::string SiteConfig::images() const {
  if (containers.size() == 1 && containers.front().name.empty())
    return containers.front().image.str();
  std::string out;
  for (const auto& container : containers)
    out += (out.empty() ? "" : " ") + container.label() + "=" + container.image.str();
  return out;
}

namespace {

// A webhook secret guessable by trying is no secret: App Service's are 60 characters.
constexpr size_t kMinPublishingPasswordLength = 16;

Result<std::optional<SiteConfig::PublishingCredentials>> readPublishingCredentials(
    const json& doc) {
  // Errors show types only, never a value: the object holds the password.
  const JsonReader credentials = JsonReader(doc, "site config")["publishingCredentials"].secret();
  if (credentials.missing())
    return std::optional<SiteConfig::PublishingCredentials>();
  if (!credentials.isObject())
    return credentials.typeError("an object");
  SiteConfig::PublishingCredentials read;
  ASSIGN_OR_RETURN(read.user, credentials["publishingUserName"].string());
  ASSIGN_OR_RETURN(auto password, credentials["publishingPassword"].secret().string());
  if (read.user.empty() || read.user.find(':') != std::string::npos)
    return credentials["publishingUserName"].error("must be a user name without ':'");
  if (password.size() < kMinPublishingPasswordLength) {
    return credentials["publishingPassword"].error(
        "must be " + std::to_string(kMinPublishingPasswordLength) + " characters or more");
  }
  read.password = Secret(std::move(password));
  return std::optional<SiteConfig::PublishingCredentials>(std::move(read));
}

// "state": "Running" / "Stopped" (ARM's SiteProperties.state), where the document keeps it.
Result<bool> readStopped(const json& doc, const json& site, const std::string& site_path) {
  for (const auto* holder : {&site, &doc}) {
    const std::string path = holder == &site ? site_path : "";
    ASSIGN_OR_RETURN(auto state, optionalString(*holder, "state", path.empty() ? "$" : path));
    if (state)
      return upper(*state) == "STOPPED";
  }
  return false;
}

}  // namespace

bool siteStoppedIn(std::string_view json_text) {
  auto doc = parseJson(json_text, "site config", ErrorCode::kInvalidArgument);
  if (!doc || !doc->is_object())
    return false;
  const bool arm = doc->contains("properties") && (*doc)["properties"].is_object();
  auto stopped = readStopped(*doc, arm ? (*doc)["properties"] : *doc, arm ? "properties" : "");
  return stopped && stopped.value();
}

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
  const std::string fx_path = config_path + ".linuxFxVersion";
  ASSIGN_OR_RETURN(result.kind, siteKindOf(result.linux_fx_version, fx_path));
  if (result.kind == SiteKind::kSiteContainers) {
    ASSIGN_OR_RETURN(result.containers, site_containers::readSiteContainers(doc, settings));
  } else {
    ASSIGN_OR_RETURN(auto credentials, site_credentials::readSiteCredentials(sections, settings));
    if (result.kind == SiteKind::kCompose) {
      ASSIGN_OR_RETURN(result.containers, site_compose::readComposeServices(
                                              std::string_view(result.linux_fx_version)
                                                  .substr(result.linux_fx_version.find('|') + 1),
                                              credentials.server_host, fx_path));
    } else {
      ASSIGN_OR_RETURN(std::string image, dockerImageOf(result.linux_fx_version, fx_path));
      SiteContainer container;
      ASSIGN_OR_RETURN(container.image,
                       site_credentials::siteImage(image, credentials.server_host, fx_path));
      result.containers.push_back(std::move(container));
      if (size_t ignored = site_containers::countSiteContainers(doc); ignored > 0) {
        result.notes.push_back(std::to_string(ignored) +
                               " sitecontainers in the file are ignored: linuxFxVersion is "
                               "DOCKER|, as on App Service (set it to SITECONTAINERS to use them)");
      }
    }
    for (auto& container : result.containers) {
      RETURN_IF_ERROR(site_credentials::applySiteCredentials(
          credentials, result.kind == SiteKind::kDocker, container));
    }
  }
  RETURN_IF_ERROR(checkAssignedIdentities(doc, result.containers));
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
  ASSIGN_OR_RETURN(result.publishing, readPublishingCredentials(doc));
  ASSIGN_OR_RETURN(result.stopped, readStopped(doc, site, site_path));
  ASSIGN_OR_RETURN(auto start_limit,
                   integerSetting(settings, "WEBSITES_CONTAINER_START_TIME_LIMIT", 1, 1800));
  if (start_limit)
    result.start_time_limit = std::chrono::seconds(*start_limit);
  return result;
}

}  // namespace pullagent::agent
