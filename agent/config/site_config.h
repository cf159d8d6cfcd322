#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/identity/key_vault_reference.h"
#include "base/error.h"
#include "base/secret.h"
#include "puller/reference/reference.h"

namespace pullagent::agent {

// An app setting value: a literal, or a Key Vault reference to resolve before use. Literals are
// kept as Secrets: app settings hold passwords.
struct SettingValue {
  Secret literal;
  std::optional<KeyVaultReference> key_vault;
};

enum class RegistryAuth {
  kManagedIdentity,  // acrUseManagedIdentityCreds: AAD token -> ACR exchange
  kBasic,            // DOCKER_REGISTRY_SERVER_USERNAME / _PASSWORD
  kAnonymous,
};

// What App Service runs a site's containers from. DOCKER|<image>: one container;
// SITECONTAINERS: a main container and up to nine sidecars (Microsoft.Web/sites/sitecontainers);
// COMPOSE|<base64 YAML>: a Docker Compose file's services.
enum class SiteKind { kDocker, kSiteContainers, kCompose };

std::string_view toString(SiteKind kind);

// One container of a site, reduced to what its pull needs (and the run-time properties the
// runtime needs, validated and kept).
struct SiteContainer {
  std::string name;  // the sitecontainer's or Compose service's name; "" for a DOCKER| site
  bool is_main = true;
  puller::ImageRef image;  // normalised, registry host filled in
  RegistryAuth auth = RegistryAuth::kAnonymous;
  // The user-assigned identity's client id (acrUserManagedIdentityID, or a sitecontainer's
  // userManagedIdentityClientId); empty = system-assigned.
  std::string identity_client_id;
  std::optional<SettingValue> registry_username;  // with kBasic
  std::optional<SettingValue> registry_password;  // with kBasic
  // Where the password came from, for errors: "app setting DOCKER_REGISTRY_SERVER_PASSWORD",
  // "sitecontainers[1].properties.passwordSecret (app setting ACR_PASSWORD)". Never the value.
  std::string password_source;
  // Run-time properties (sitecontainers and Compose): pullagent pulls, the runtime runs.
  std::string target_port;
  std::string startup_command;
  std::vector<std::pair<std::string, std::string>> environment;  // variable -> app setting name
  bool inherit_app_settings = true;

  // A rollback's container (never read from a config): its tag taken at this digest, what it
  // resolved to when the image was published (PullOptions::resolve_at).
  std::optional<puller::Digest> resolve_at;

  // "main" for a DOCKER| site's one container, else its name.
  std::string label() const { return name.empty() ? "main" : name; }
};

// A site as App Service configures it, reduced to what a pull needs.
struct SiteConfig {
  std::string name;              // the resource's "name", when present
  std::string linux_fx_version;  // as written: "DOCKER|myreg.azurecr.io/app:v1"
  SiteKind kind = SiteKind::kDocker;
  // Every container the site runs, the main one first.
  std::vector<SiteContainer> containers;
  // Things the parser chose to ignore, for the log ("sitecontainers ignored: ...").
  std::vector<std::string> notes;
  // Image pulls over the VNet, and the setting that decided it (the first that says so of
  // publicNetworkAccess SecuredByPerimeter, outboundVnetRouting.allTraffic,
  // outboundVnetRouting.imagePullTraffic, vnetImagePullEnabled, WEBSITE_PULL_IMAGE_OVER_VNET).
  bool pull_over_vnet = false;
  std::string route_decided_by;  // its JSON path or app setting; empty: none (public route)
  std::string key_vault_identity = "SystemAssigned";  // keyVaultReferenceIdentity
  // The VNet's DNS as the site asks for it: each dnsConfiguration field over its app setting
  // (dnsServers > WEBSITE_DNS_SERVER, dnsAltServer > WEBSITE_DNS_ALT_SERVER,
  // dnsRetryAttemptCount > WEBSITE_DNS_ATTEMPTS, dnsRetryAttemptTimeout > WEBSITE_DNS_TIMEOUT);
  // what is unset comes from the agent config.
  struct Dns {
    std::vector<std::string> servers;  // in order; empty: the agent's vnetDnsServers
    std::optional<std::string> alt_server;
    std::optional<int> attempts;
    std::optional<int> timeout_seconds;
    std::vector<std::string> decided_by;  // the paths and settings that set the above
  } dns;
  // DOCKER_ENABLE_CI=true: continuous deployment; the service follows the tag (polls it).
  bool continuous_deployment = false;
  // The site's publishing credentials (top-level "publishingCredentials", as `az webapp
  // deployment list-publishing-credentials` prints them): App Service's CI webhook for the site
  // (https://$site:<password>@site.scm.azurewebsites.net/api/registry/webhook) carries them,
  // and a webhook request authenticated by them refreshes this site only.
  struct PublishingCredentials {
    std::string user;  // "$site"
    Secret password;
  };
  std::optional<PublishingCredentials> publishing;
  // The site's run state ("state": "Stopped" in the ARM body or `az webapp show`): a stopped
  // site costs no registry request and keeps its published image while space allows.
  bool stopped = false;
  // WEBSITES_CONTAINER_START_TIME_LIMIT (App Service's container start budget, 1 to 1800 s):
  // when set, it bounds each attempt of the site (below the agent's attemptDeadlineSeconds).
  std::optional<std::chrono::seconds> start_time_limit;

  const SiteContainer& main() const { return containers.front(); }
  // "myreg.azurecr.io/app:v1", or "main=...:v1 sidecar=...:v2" for several containers.
  std::string images() const;
};

// Parses a site in any of the shapes Azure writes it: the ARM resource body (properties.*,
// properties.siteConfig.*), the flattened `az webapp show` output (top-level siteConfig and
// vnetImagePullEnabled), app settings as [{name, value}] (ARM, `az webapp config appsettings
// list`) or {name: value}; sitecontainers under a top-level "sitecontainers" array (as
// `az webapp sitecontainers list` prints them) or as child resources in "resources" (ARM).
// Unknown fields are ignored; a wrong type or a missing required field is an error naming the
// JSON path and the value.
Result<SiteConfig> parseSiteConfig(std::string_view json_text);

// True when the site document says the site is stopped ("state": "Stopped", under
// "properties" or at the top, any case). The service reads it for every file it scans, before
// any pull: a document that does not parse is not stopped (its attempt says what is wrong).
bool siteStoppedIn(std::string_view json_text);

}  // namespace pullagent::agent
