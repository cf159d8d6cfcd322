#pragma once

#include <chrono>
#include <string>

#include "agent/common/process_environment.h"
#include "agent/config/agent_config.h"
#include "agent/config/site_config.h"
#include "agent/site/identity_pool.h"
#include "base/clock.h"
#include "base/host_resolver.h"
#include "base/random.h"
#include "puller/pipeline/pull_pipeline.h"

namespace pullagent::agent {

// The phases of a site pull as they end: "identity", "secrets", "pull" (config parsing is the
// caller's). `--once` prints them; the daemon records them in the site's state and metrics.
class SitePullEvents {
 public:
  virtual ~SitePullEvents() = default;
  virtual void phaseDone(const std::string& phase, std::chrono::milliseconds took,
                         const std::string& what) = 0;
  virtual void phaseFailed(const std::string& phase, const Error& error) = 0;
};

// What a site pull shares with the rest of the agent.
struct SitePullServices {
  const AgentConfig& agent;
  Clock& clock;
  Random& random;
  IdentityPool& identities;
  HostResolver& system_resolver;          // identity endpoints, and the public route
  puller::ContentStore* store = nullptr;  // the state dir's store, when kept open (the daemon)
  // Every site's pulls to one registry host wait together when it says "slow down" (the
  // daemon's, kept across reloads); null: each pull keeps its own.
  puller::RegistryThrottle* throttle = nullptr;
  // Counts where the pull's requests went, failed pulls included (the service's metrics).
  puller::SourceTally* tally = nullptr;
};

// How a site is authenticated, in words ("user-assigned managed identity <client id>").
std::string describeSiteAuth(const SiteConfig& site);

// Pulls, unpacks and publishes one site's image as App Service would: the site's credentials
// (managed identity through the ACR exchange, or app settings with Key Vault references
// resolved), the VNet's DNS when the site pulls over the VNet (never falling back to public
// DNS), into the state dir's images/<manifest digest>. `observer` (optional) sees the pull.
// `unless_tag_resolves_to`: a refresh; when the tag still points there, the outcome is
// `unchanged` and nothing is pulled.
Result<puller::PullOutcome> pullSite(
    const SitePullServices& services, const SiteConfig& site, const ProcessEnvironment& env,
    SitePullEvents& events, puller::PullObserver* observer = nullptr,
    const std::optional<puller::Digest>& unless_tag_resolves_to = std::nullopt);

}  // namespace pullagent::agent
