#include "agent/diagnose/container_walk.h"

#include "agent/diagnose/walk.h"

namespace pullagent::agent {
namespace walk {

void skipRest(StepLog& log, const std::vector<std::string_view>& ids, const std::string& why) {
  for (auto id : ids)
    log.skipped(std::string(id), "skipped: " + why);
}

std::string joined(const std::vector<std::string>& items, std::string_view separator) {
  std::string text;
  for (const auto& item : items)
    text += (text.empty() ? "" : std::string(separator)) + item;
  return text;
}

void makeSources(Walk& walk) {
  const std::string& registry = walk.container.image.domain;
  if (walk.agent.registry_hosts_dir) {
    auto hosts = puller::loadRegistryHosts(*walk.agent.registry_hosts_dir, registry);
    if (hosts)
      walk.hosts = std::move(hosts.value());
    else
      walk.hosts_error = hosts.error();
  }
  if (walk.hosts.empty()) {
    puller::RegistryHost origin;
    origin.host = walk.container.image.apiHost();
    origin.origin = true;
    walk.hosts.push_back(origin);
  }
  puller::PullSources::Inputs inputs;
  inputs.hosts = walk.hosts;
  inputs.registry = registry;
  inputs.origin_http = walk.route.http.get();
  inputs.origin_credentials = walk.credentials;
  inputs.http_options = &walk.route.http_options;
  inputs.allow_skip_verify = walk.agent.allow_skip_verify;
  auto sources = puller::PullSources::create(inputs, walk.services.clock);
  if (!sources) {
    walk.hosts_error = sources.error();
    return;
  }
  walk.sources = std::move(sources.value());
  walk.origin = &walk.sources->sources().back();
  walk.origin_host = &walk.hosts.back();
}

}  // namespace walk

namespace {

const std::vector<std::string_view> kAfterCredentials = {
    "dns.registry",   "tcp.registry",      "tls.registry",       "http.challenge",
    "identity.token", "registry.token",    "registry.manifest",  "registry.config",
    "registry.blob",  "dns.data-endpoint", "http.data-endpoint", "host.mirrors"};

}  // namespace

void skipContainer(StepLog& log, const std::string& why) {
  walk::skipRest(log, {"site.credentials", "site.key-vault"}, why);
  walk::skipRest(log, kAfterCredentials, why);
}

ContainerFindings walkContainer(const DiagnoseServices& services, const SiteConfig& site,
                                const SiteContainer& container, const SiteRoute& route,
                                StepLog& log, const Context& ctx) {
  walk::Walk walk(services, site, container, route, log, ctx);
  const bool credentials = walk::credentialSteps(walk);
  walk::makeSources(walk);
  const std::string origin =
      walk.origin ? walk.origin->scheme + "://" + walk.origin->host + walk.origin->api_root + "/"
                  : "https://" + container.image.apiHost() + "/v2/";
  auto registry = puller::Url::parse(origin);
  if (!registry) {
    log.begin();
    log.failed("dns.registry", registry.error(), "correct the image reference's registry");
    walk::skipRest(log, {kAfterCredentials.begin() + 1, kAfterCredentials.end()},
                   "the registry's address is not valid");
    return walk.findings;
  }
  walk.registry = registry.value();
  const bool reachable = walk::networkSteps(walk);
  const bool identity = walk::identityStep(walk);
  if (!reachable || !credentials || !identity) {
    walk::skipRest(log,
                   {"registry.token", "registry.manifest", "registry.config", "registry.blob",
                    "dns.data-endpoint", "http.data-endpoint"},
                   !reachable ? "the registry is not reachable" : "no credentials to present");
  } else if (walk::tokenStep(walk)) {
    walk::registrySteps(walk);
  } else {
    walk::skipRest(log,
                   {"registry.manifest", "registry.config", "registry.blob", "dns.data-endpoint",
                    "http.data-endpoint"},
                   "registry.token failed");
  }
  walk::mirrorsStep(walk);
  return walk.findings;
}

}  // namespace pullagent::agent
