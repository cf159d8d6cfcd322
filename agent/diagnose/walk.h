#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/diagnose/container_walk.h"
#include "puller/auth/authorizer.h"
#include "puller/auth/token_cache.h"
#include "puller/http/url.h"
#include "puller/mirror/hosts_config.h"
#include "puller/pipeline/pull_sources.h"

// What the steps of one container's walk share (container_walk.cpp runs them in order); the
// step groups live in credential_steps.cpp, network_steps.cpp, token_steps.cpp,
// registry_steps.cpp and mirror_step.cpp.
namespace pullagent::agent::walk {

struct Walk {
  Walk(const DiagnoseServices& services_, const SiteConfig& site_, const SiteContainer& container_,
       const SiteRoute& route_, StepLog& log_, const Context& ctx_)
      : services(services_),
        agent(services_.agent),
        site(site_),
        container(container_),
        route(route_),
        log(log_),
        ctx(ctx_) {}

  const DiagnoseServices& services;
  const AgentConfig& agent;
  const SiteConfig& site;
  const SiteContainer& container;
  const SiteRoute& route;
  StepLog& log;
  const Context& ctx;

  // From the credential steps.
  puller::RegistryCredentials credentials;
  std::string username_setting;  // where a Basic user name and password came from
  std::string password_setting;
  // The registry's hosts (hosts.toml: mirrors, then the origin) and the pull's sources made of
  // them, as a pull makes them: the origin's HTTP client (its own CAs, client certificate) and
  // Authorizer come from there.
  std::vector<puller::RegistryHost> hosts;
  std::optional<Error> hosts_error;
  std::unique_ptr<puller::PullSources> sources;
  const puller::RegistrySource* origin = nullptr;
  const puller::RegistryHost* origin_host = nullptr;
  puller::Url registry;  // <origin>/v2/
  // From the network steps.
  puller::HttpResponse challenge;
  ContainerFindings findings;

  puller::HttpClient& http() const { return origin ? *origin->http : *route.http; }
};

// Appends each of `ids` as skipped, because of `why`.
void skipRest(StepLog& log, const std::vector<std::string_view>& ids, const std::string& why);
std::string joined(const std::vector<std::string>& items, std::string_view separator = ", ");

// site.credentials, site.key-vault: false when the credentials cannot be had.
bool credentialSteps(Walk& walk);
// The registry's hosts and the pull's sources: hosts_error when hosts.toml cannot be used.
void makeSources(Walk& walk);
// dns.registry, tcp.registry, tls.registry, http.challenge: false when the registry's API
// cannot be reached.
bool networkSteps(Walk& walk);
// A name on the site's route, as the `id` step; nullopt (and a failed step) when it does not
// resolve usably.
std::optional<std::vector<std::string>> dnsStep(Walk& walk, const std::string& id,
                                                const std::string& host);
// identity.token: false when the container's identity has no token.
bool identityStep(Walk& walk);
// registry.token: false when the registry will not let these credentials pull.
bool tokenStep(Walk& walk);
// What to change when the registry refuses the container's credentials.
std::string credentialsFix(const Walk& walk, const Error& error);
// registry.manifest, registry.config, registry.blob, dns.data-endpoint, http.data-endpoint.
void registrySteps(Walk& walk);
// host.mirrors.
void mirrorsStep(Walk& walk);

}  // namespace pullagent::agent::walk
