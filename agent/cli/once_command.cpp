#include "agent/cli/once_command.h"

#include <spdlog/spdlog.h>

#include <cstdio>
#include <iostream>

#include "agent/cli/pull_outcome.h"
#include "agent/common/args.h"
#include "agent/common/exit_codes.h"
#include "agent/common/log_options.h"
#include "agent/config/agent_config.h"
#include "agent/config/config_files.h"
#include "agent/config/site_config.h"
#include "agent/site/identity_pool.h"
#include "agent/site/site_pull.h"
#include "agent/site/storage_choice.h"
#include "puller/http/curl_http_client.h"
#include "resolver/static_hosts_resolver.h"
#include "resolver/system_resolver.h"

namespace pullagent::agent {
namespace {

constexpr const char* kOnceUsage = R"(usage: pullagent --once --site SITE.json [--config AGENT.json]

Pulls, unpacks and publishes the images of one site (its ARM or `az webapp show` JSON: DOCKER|,
SITECONTAINERS or COMPOSE|) with the credentials App Service would use, all containers at once,
printing each phase with its time and a summary per container.
  --config FILE      agent config (default /etc/pullagent/agent.json; defaults if it is absent)
  --log-level LEVEL  trace, debug, info (default), warn, error
  --log-format FMT   text (default on a terminal), journal or json
)";

// Prints each phase with its time on stdout, failures on stderr through the log.
class PhasePrinter final : public SitePullEvents {
 public:
  void phaseDone(const std::string& phase, std::chrono::milliseconds took,
                 const std::string& what) override {
    std::printf("%-10s %6lld ms  %s\n", phase.c_str(), static_cast<long long>(took.count()),
                what.c_str());
    std::fflush(stdout);
  }
  void routeChosen(const std::string& route) override {
    std::printf("%-10s %9s  %s\n", "route", "", route.c_str());
    std::fflush(stdout);
  }
  void phaseFailed(const std::string& phase, const Error& error) override {
    std::printf("%-10s failed\n", phase.c_str());
    std::fflush(stdout);
    spdlog::error("{} failed: {}", phase, error.describe());
  }
};

}  // namespace

namespace {

int runOnce(const ParsedArgs& args, const ProcessEnvironment& env, const Environment& environment) {
  SystemClock clock;
  SystemRandom random;
  PhasePrinter printer;
  const auto started = clock.now();

  auto agent = loadAgentConfig(args.option("config"), environment);
  if (!agent) {
    printer.phaseFailed("config", agent.error());
    return exitCodeFor(agent.error());
  }
  const std::string site_path = *args.option("site");
  auto site = loadSiteConfig(site_path);
  if (!site) {
    printer.phaseFailed("config", site.error());
    return exitCodeFor(site.error());
  }
  std::string said = "site " + (site->name.empty() ? site_path : site->name) + ": ";
  if (site->kind == SiteKind::kDocker) {
    said += site->main().image.str() + ", " + describeAuth(site->main());
  } else {
    said += std::string(toString(site->kind)) + ", " + std::to_string(site->containers.size()) +
            " containers";
  }
  said +=
      site->pull_over_vnet ? ", over the VNet (" + site->route_decided_by + ")" : ", public route";
  printer.phaseDone(
      "config", std::chrono::duration_cast<std::chrono::milliseconds>(clock.now() - started), said);
  if (site->kind != SiteKind::kDocker) {
    for (const auto& container : site->containers) {
      std::printf("container  %-16s %-5s %s, %s\n", container.label().c_str(),
                  container.is_main ? "main" : "", container.image.str().c_str(),
                  describeAuth(container).c_str());
    }
  }
  resolver::SystemResolver system_resolver;
  resolver::StaticHostsResolver identity_resolver(agent->host_overrides, system_resolver);
  auto identity_http = createIdentityClient(agent.value(), identity_resolver);
  if (!identity_http) {
    printer.phaseFailed("config", identity_http.error());
    return exitCodeFor(identity_http.error());
  }
  IdentityPool identities(**identity_http, clock, random, agent->identity);
  auto snapshots = chooseSnapshots(agent->storage, agent->state_dir, env.privileged);
  if (!snapshots) {
    printer.phaseFailed("config", snapshots.error());
    return exitCodeFor(snapshots.error());
  }
  ProcessEnvironment pull_env = env;
  pull_env.snapshots = snapshots.value();
  SitePullServices services{agent.value(), clock, random, identities, system_resolver};
  auto outcome = pullSite(services, site.value(), pull_env, printer);
  if (!outcome) {
    std::fprintf(stderr, "every step of the site's route: pullagent diagnose --site %s%s%s\n",
                 site_path.c_str(), args.option("config") ? " --config " : "",
                 args.option("config") ? args.option("config")->c_str() : "");
    return exitCodeFor(outcome.error());
  }
  for (const auto& [container, pulled] : outcome->containers) {
    if (!container.name.empty())
      std::printf("\n%s %s\n", container.is_main ? "main container" : "sidecar",
                  container.name.c_str());
    printOutcome(container.image, pulled);
  }
  return kExitOk;
}

}  // namespace

const Command& onceCommand() {
  static const Command command{"--once",
                               "--site SITE.json",
                               "pull and publish one App Service site's image",
                               kOnceUsage,
                               {"site", "config"},
                               {},
                               0,
                               0,
                               {"site"},
                               false,
                               runOnce};
  return command;
}

}  // namespace pullagent::agent
