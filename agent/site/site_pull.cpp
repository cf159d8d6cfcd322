#include "agent/site/site_pull.h"

#include <spdlog/spdlog.h>

#include <memory>
#include <optional>

#include "agent/common/progress.h"
#include "agent/identity/key_vault.h"
#include "puller/http/curl_http_client.h"
#include "resolver/ares_resolver.h"
#include "resolver/static_hosts_resolver.h"

namespace pullagent::agent {
namespace {

class PhaseTimer {
 public:
  PhaseTimer(const Clock& clock, SitePullEvents& events)
      : clock_(clock), events_(events), start_(clock.now()) {}
  void done(const std::string& phase, const std::string& what) {
    auto now = clock_.now();
    events_.phaseDone(phase, std::chrono::duration_cast<std::chrono::milliseconds>(now - start_),
                      what);
    start_ = now;
  }
  Error failed(const std::string& phase, Error error) {
    events_.phaseFailed(phase, error);
    return error;
  }

 private:
  const Clock& clock_;
  SitePullEvents& events_;
  std::chrono::steady_clock::time_point start_;
};

// The VNet's DNS for this site: its dnsConfiguration / WEBSITE_DNS_* servers, attempts and
// timeout, else the agent's defaults.
Result<resolver::AresOptions> vnetDns(const AgentConfig& agent, const SiteConfig& site) {
  std::vector<std::string> names = agent.vnet_dns_servers;
  if (!site.dns.servers.empty())
    names = site.dns.servers;
  if (site.dns.alt_server)
    names.push_back(*site.dns.alt_server);
  resolver::AresOptions dns;
  dns.timeout = site.dns.timeout_seconds
                    ? std::chrono::milliseconds(std::chrono::seconds(*site.dns.timeout_seconds))
                    : agent.dns_timeout;
  dns.tries = site.dns.attempts.value_or(agent.dns_tries);
  for (const auto& name : names) {
    ASSIGN_OR_RETURN(auto server, resolver::DnsServer::parse(name));
    dns.servers.push_back(server);
  }
  return dns;
}

}  // namespace

std::string describeSiteAuth(const SiteConfig& site) {
  switch (site.auth) {
    case RegistryAuth::kManagedIdentity:
      return site.identity_client_id.empty()
                 ? "system-assigned managed identity"
                 : "user-assigned managed identity " + site.identity_client_id;
    case RegistryAuth::kBasic:
      return "registry credentials from app settings";
    case RegistryAuth::kAnonymous:
      break;
  }
  return "anonymous";
}

Result<puller::PullOutcome> pullSite(const SitePullServices& services, const SiteConfig& site,
                                     const ProcessEnvironment& env, SitePullEvents& events,
                                     puller::PullObserver* observer,
                                     const std::optional<puller::Digest>& unless_tag_resolves_to) {
  const AgentConfig& agent = services.agent;
  PhaseTimer phases(services.clock, events);
  // Identity endpoints are local to the host: always the system resolver. Everything the pull
  // itself reaches (registry, token realm, data endpoint, Key Vault) goes through the VNet's DNS
  // when the site pulls over the VNet - with no fallback to public DNS.
  std::unique_ptr<resolver::AresResolver> vnet;
  std::string route = "system resolver (public route: no setting routes image pulls over the VNet)";
  if (site.pull_over_vnet) {
    auto dns = vnetDns(agent, site);
    if (!dns)
      return phases.failed("config", dns.error());
    auto created = resolver::AresResolver::create(dns.value(), services.clock);
    if (!created)
      return phases.failed("config", created.error());
    vnet = std::move(created.value());
    route = "VNet DNS";
    for (const auto& server : dns->servers)
      route += " " + server.str();
    route += ", " + std::to_string(dns->tries) + " tries of " +
             std::to_string(dns->timeout.count()) +
             " ms (image pulls over the VNet: " + site.route_decided_by;
    for (const auto& source : site.dns.decided_by)
      route += "; " + source;
    route += ")";
  }
  HostResolver& base = vnet ? static_cast<HostResolver&>(*vnet)
                            : static_cast<HostResolver&>(services.system_resolver);
  resolver::StaticHostsResolver resolver(agent.host_overrides, base);
  puller::HttpClientOptions http_options = agentHttpOptions(agent, resolver);
  if (site.pull_over_vnet)
    http_options.bind_to = agent.vnet_bind;
  auto http = puller::CurlHttpClient::create(http_options);
  if (!http)
    return phases.failed("config", http.error());
  spdlog::info("the pull's hosts are resolved by the {}", route);

  // The whole attempt (identity, secrets, pull, unpack, publish) has one deadline, so that no
  // registry or identity endpoint can hold a site, or a pull slot, for ever.
  const auto deadline = services.clock.now() + agent.attempt_deadline;
  Context ctx{&services.clock, env.stop, deadline};
  puller::PullJob job;
  job.ref = site.image;
  job.options.concurrency = agent.concurrency;
  job.retries = agent.retries;
  job.state = agent.state_dir;
  job.stop = env.stop;
  job.privileged = env.privileged;
  job.snapshots = env.snapshots;
  job.store = services.store;
  job.throttle = services.throttle;
  job.tally = services.tally;
  job.hosts_dir = agent.registry_hosts_dir;
  job.allow_skip_verify = agent.allow_skip_verify;
  job.http_options = http_options;
  job.runtime.seccomp_profile = agent.seccomp_profile;
  job.unless_tag_resolves_to = unless_tag_resolves_to;

  if (site.auth == RegistryAuth::kManagedIdentity) {
    auto& identity = services.identities.identity(site.identity_client_id);
    // Fetched up front so that identity problems are reported as such, not as pull failures.
    auto token = identity.token(agent.acr_audience, ctx);
    if (!token)
      return phases.failed("identity", token.error());
    phases.done("identity", "token for the " + identity.identityName());
    job.credentials.aad = &identity;
    job.credentials.aad_resource = agent.acr_audience;
  } else if (site.auth == RegistryAuth::kBasic) {
    const bool system =
        site.key_vault_identity.empty() || site.key_vault_identity == "SystemAssigned";
    std::string resolved;
    auto resolve = [&](const SettingValue& value, const std::string& name) -> Result<Secret> {
      if (!value.key_vault)
        return value.literal;
      auto& vault_identity =
          services.identities.identity("", system ? "" : site.key_vault_identity);
      auto secret = readKeyVaultSecret(**http, vault_identity, *value.key_vault, ctx);
      if (!secret)
        return secret.error().context(name + " (Key Vault reference)");
      resolved += (resolved.empty() ? "" : ", ") + name;
      return secret;
    };
    auto username = resolve(*site.registry_username, "DOCKER_REGISTRY_SERVER_USERNAME");
    if (!username)
      return phases.failed("secrets", username.error());
    auto password = resolve(*site.registry_password, "DOCKER_REGISTRY_SERVER_PASSWORD");
    if (!password)
      return phases.failed("secrets", password.error());
    job.credentials.username = username->revealForWire();
    job.credentials.password = password.value();
    phases.done("secrets", resolved.empty() ? "app settings" : "from Key Vault: " + resolved);
  }

  job.deadline = std::chrono::ceil<std::chrono::seconds>(deadline - services.clock.now());
  PullProgress progress(services.clock, env.stderr_is_terminal);
  job.observers.push_back(&progress);
  if (observer != nullptr)
    job.observers.push_back(observer);
  auto outcome = puller::runPull(**http, services.clock, services.random, job);
  if (!outcome) {
    Error error = outcome.error();
    if (error.code == ErrorCode::kTimeout && services.clock.now() >= deadline) {
      error.message += " (the attempt's deadline, attemptDeadlineSeconds = " +
                       std::to_string(agent.attempt_deadline.count()) + ")";
    }
    // The seed's pitfall: a registry reachable only through its private endpoint refuses the
    // public route with 403 DENIED "... is not allowed access".
    if (!site.pull_over_vnet && error.code == ErrorCode::kPermissionDenied &&
        error.message.find("not allowed access") != std::string::npos) {
      error.message +=
          "; if the registry is only reachable through the VNet, enable "
          "vnetImagePullEnabled on the site (outboundVnetRouting.imagePullTraffic in newer "
          "API versions)";
    }
    return phases.failed("pull", error);
  }
  phases.done("pull", std::to_string(outcome->image.layers.size()) + " layers, " +
                          std::to_string(outcome->image.blobs_downloaded) + " blobs downloaded");
  return outcome;
}

}  // namespace pullagent::agent
