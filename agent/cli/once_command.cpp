#include "agent/cli/once_command.h"

#include <spdlog/spdlog.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "agent/cli/args.h"
#include "agent/cli/exit_codes.h"
#include "agent/cli/pull_runner.h"
#include "agent/config/agent_config.h"
#include "agent/config/site_config.h"
#include "agent/identity/key_vault.h"
#include "agent/identity/managed_identity.h"
#include "base/log.h"
#include "puller/http/curl_http_client.h"
#include "resolver/ares_resolver.h"
#include "resolver/static_hosts_resolver.h"
#include "resolver/system_resolver.h"

namespace pullagent::agent {
namespace {

constexpr const char* kUsage = R"(usage: pullagent --once --site SITE.json [--config AGENT.json]

Pulls, unpacks and publishes the image of one site (its ARM or `az webapp show` JSON) with the
credentials App Service would use, printing each phase with its time.
  --config FILE   agent config (default /etc/pullagent/agent.json; defaults if it is absent)
)";

Result<std::string> readText(const std::string& path, bool missing_ok) {
  std::ifstream in(path);
  if (!in) {
    if (missing_ok)
      return std::string("{}");
    return makeError(ErrorCode::kInvalidArgument, "cannot read " + path);
  }
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

int fail(const std::string& phase, const Error& error) {
  std::printf("%-10s failed\n", phase.c_str());
  spdlog::error("{} failed: {}", phase, error.describe());
  return exitCodeFor(error);
}

class PhaseClock {
 public:
  explicit PhaseClock(const Clock& clock) : clock_(clock), start_(clock.now()) {}
  void done(const std::string& phase, const std::string& what) {
    auto now = clock_.now();
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now - start_).count();
    std::printf("%-10s %6lld ms  %s\n", phase.c_str(), static_cast<long long>(ms), what.c_str());
    std::fflush(stdout);
    start_ = now;
  }

 private:
  const Clock& clock_;
  std::chrono::steady_clock::time_point start_;
};

std::string describeAuth(const SiteConfig& site) {
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

}  // namespace

int runOnceCommand(const std::vector<std::string>& argv, const ProcessEnvironment& env,
                   const std::map<std::string, std::string>& environment) {
  auto parsed = parseArgs(argv, {"site", "config", "log-level"}, {"help"});
  if (!parsed || parsed->flag("help") || !parsed->option("site") || !parsed->positionals.empty()) {
    if (!parsed)
      std::cerr << "pullagent --once: " << parsed.error().message << "\n";
    std::cerr << kUsage;
    return parsed && parsed->flag("help") ? kExitOk : kExitUsage;
  }
  initLogging(LogFormat::kText,
              spdlog::level::from_str(parsed->option("log-level").value_or("info")));
  SystemClock clock;
  SystemRandom random;
  PhaseClock phases(clock);

  const std::string config_path = parsed->option("config").value_or("/etc/pullagent/agent.json");
  auto agent_text = readText(config_path, !parsed->option("config"));
  if (!agent_text)
    return fail("config", agent_text.error());
  auto agent = parseAgentConfig(agent_text.value(), environment);
  if (!agent)
    return fail("config", agent.error().context(config_path));
  auto site_text = readText(*parsed->option("site"), false);
  if (!site_text)
    return fail("config", site_text.error());
  auto site = parseSiteConfig(site_text.value());
  if (!site)
    return fail("config", site.error().context(*parsed->option("site")));
  phases.done("config", "site " + (site->name.empty() ? *parsed->option("site") : site->name) +
                            ": " + site->image.str() + ", " + describeAuth(site.value()) +
                            (site->pull_over_vnet ? ", over the VNet" : ", public route"));
  // Identity endpoints are local to the host: always the system resolver. Everything the pull
  // itself reaches (registry, token realm, data endpoint, Key Vault) goes through the VNet's DNS
  // when the site pulls over the VNet - with no fallback to public DNS.
  resolver::SystemResolver system_resolver;
  std::unique_ptr<resolver::AresResolver> vnet_resolver;
  std::string route = "system resolver (public route)";
  if (site->pull_over_vnet) {
    std::vector<std::string> names = agent->vnet_dns_servers;
    if (site->dns_server) {
      names = {*site->dns_server};
      if (site->dns_alt_server)
        names.push_back(*site->dns_alt_server);
    }
    resolver::AresOptions dns;
    dns.timeout = agent->dns_timeout;
    dns.tries = agent->dns_tries;
    for (const auto& name : names) {
      auto server = resolver::DnsServer::parse(name);
      if (!server)
        return fail("config", server.error());
      dns.servers.push_back(server.value());
    }
    auto created = resolver::AresResolver::create(dns, clock);
    if (!created)
      return fail("config", created.error());
    vnet_resolver = std::move(created.value());
    route = "VNet DNS";
    for (const auto& server : dns.servers)
      route += " " + server.str();
  }
  HostResolver& pull_base = vnet_resolver ? static_cast<HostResolver&>(*vnet_resolver)
                                          : static_cast<HostResolver&>(system_resolver);
  resolver::StaticHostsResolver resolver(agent->host_overrides, pull_base);
  resolver::StaticHostsResolver identity_resolver(agent->host_overrides, system_resolver);
  auto makeClient = [&](HostResolver& chosen, bool pull) {
    puller::HttpClientOptions http_options;
    if (pull && site->pull_over_vnet)
      http_options.bind_to = agent->vnet_bind;
    http_options.resolver = &chosen;
    http_options.extra_ca_file = agent->ca_bundle;
    http_options.connect_timeout = agent->connect_timeout;
    http_options.stall_timeout = agent->stall_timeout;
    return puller::CurlHttpClient::create(http_options);
  };
  auto http = makeClient(resolver, true);
  if (!http)
    return fail("config", http.error());
  auto identity_http = makeClient(identity_resolver, false);
  if (!identity_http)
    return fail("config", identity_http.error());
  spdlog::info("the pull's hosts are resolved by the {}", route);

  Context ctx{&clock, env.stop, std::nullopt};
  PullJob job;
  job.ref = site->image;
  job.options.concurrency = agent->concurrency;
  job.retries = agent->retries;
  job.state = agent->state_dir;

  std::optional<ManagedIdentityTokenSource> registry_identity;
  if (site->auth == RegistryAuth::kManagedIdentity) {
    registry_identity.emplace(**identity_http, clock, random, agent->identity,
                              site->identity_client_id);
    // Fetched up front so that identity problems are reported as such, not as pull failures.
    auto token = registry_identity->token(agent->acr_audience, ctx);
    if (!token)
      return fail("identity", token.error());
    phases.done("identity", "token for the " + registry_identity->identityName());
    job.credentials.aad = &*registry_identity;
    job.credentials.aad_resource = agent->acr_audience;
  } else if (site->auth == RegistryAuth::kBasic) {
    const bool system =
        site->key_vault_identity.empty() || site->key_vault_identity == "SystemAssigned";
    std::optional<ManagedIdentityTokenSource> vault_identity;
    std::string resolved;
    auto resolve = [&](const SettingValue& value, const std::string& name) -> Result<Secret> {
      if (!value.key_vault)
        return value.literal;
      if (!vault_identity) {
        vault_identity.emplace(**identity_http, clock, random, agent->identity, "",
                               imdsRetryPolicy(), system ? "" : site->key_vault_identity);
      }
      auto secret = readKeyVaultSecret(**http, *vault_identity, *value.key_vault, ctx);
      if (!secret)
        return secret.error().context(name + " (Key Vault reference)");
      resolved += (resolved.empty() ? "" : ", ") + name;
      return secret;
    };
    auto username = resolve(*site->registry_username, "DOCKER_REGISTRY_SERVER_USERNAME");
    if (!username)
      return fail("secrets", username.error());
    auto password = resolve(*site->registry_password, "DOCKER_REGISTRY_SERVER_PASSWORD");
    if (!password)
      return fail("secrets", password.error());
    job.credentials.username = username->revealForWire();
    job.credentials.password = password.value();
    phases.done("secrets", resolved.empty() ? "app settings" : "from Key Vault: " + resolved);
  }

  auto outcome = runPullJob(**http, clock, random, job, env);
  if (!outcome) {
    Error error = outcome.error();
    // The seed's pitfall: a registry reachable only through its private endpoint refuses the
    // public route with 403 DENIED "... is not allowed access".
    if (!site->pull_over_vnet && error.code == ErrorCode::kPermissionDenied &&
        error.message.find("not allowed access") != std::string::npos) {
      error.message +=
          "; if the registry is only reachable through the VNet, enable "
          "vnetImagePullEnabled on the site";
    }
    return fail("pull", error);
  }
  phases.done("pull", std::to_string(outcome->image.layers.size()) + " layers, " +
                          std::to_string(outcome->image.blobs_downloaded) + " blobs downloaded");
  printOutcome(job, outcome.value());
  return kExitOk;
}

}  // namespace pullagent::agent
