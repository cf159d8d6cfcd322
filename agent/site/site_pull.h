#pragma once

#include <chrono>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "agent/common/process_environment.h"
#include "agent/config/agent_config.h"
#include "agent/config/site_config.h"
#include "agent/site/disk_admission.h"
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
  // What watches one container's pull (progress), or nothing. Called once per container before
  // the pulls start; the observers are called from the pulls' threads.
  virtual puller::PullObserver* observerFor(const SiteContainer&) { return nullptr; }
  // How the pull's hosts are resolved, and which settings decided (route, DNS servers).
  virtual void routeChosen(const std::string& route);
  // One container's pull ended: its image ready (or unchanged, a refresh), or failed.
  // Serialised with the rest.
  virtual void containerDone(const SiteContainer&, const Result<puller::PullOutcome>&) {}
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
  // Admission before the first byte (the service's); null: every pull is admitted.
  DiskAdmission* admission = nullptr;
  // A warm image's pull: admitted only below the high mark, nothing evicted or reserved for it.
  bool low_priority = false;
  // What the signature policy accepted already (the service's); null: a refresh under a policy
  // pulls again to take the verdict.
  puller::VerdictCache* verdicts = nullptr;
  // Lazy pulling (the service's host, when the agent config turns it on): eStargz images are
  // published over layers read in place. `lazy_keep` holds what the host's registry clients use
  // after the attempt (the daemon's services: identities); the site's route is added to it.
  puller::LazyLayerHost* lazy = nullptr;
  std::shared_ptr<const void> lazy_keep = nullptr;
};

// How long one attempt of the site may take, and the setting that decided it: the agent's
// attemptDeadlineSeconds, or the site's WEBSITES_CONTAINER_START_TIME_LIMIT when shorter.
struct AttemptBudget {
  std::chrono::seconds seconds;
  std::string said;  // "WEBSITES_CONTAINER_START_TIME_LIMIT = 230 s"
};
AttemptBudget attemptBudget(const AgentConfig& agent, const SiteConfig& site);

// How a container is authenticated, in words ("user-assigned managed identity <client id>").
std::string describeAuth(const SiteContainer& container);

// A site's pull: each container's outcome, in the site's order (the main container first).
struct SitePullOutcome {
  std::vector<std::pair<SiteContainer, puller::PullOutcome>> containers;
  // A refresh found every container's tag where it was: nothing was pulled.
  bool unchanged() const;
};

// The digest each container's tag resolved to when its image was pulled, by
// SiteContainer::label(): a refresh pulls only the containers whose tag has moved.
using TagPins = std::map<std::string, puller::Digest>;

// Pulls, unpacks and publishes every container image of a site as App Service would, all at the
// same time: each container's credentials (managed identity through the ACR exchange, app
// settings or a sitecontainer's userName/passwordSecret with Key Vault references resolved), the
// VNet's DNS when the site pulls over the VNet (never falling back to public DNS), into the state
// dir's images/<manifest digest>. The site's unit is complete only when every container's image
// is: one failing container fails the whole, named in the error (the caller keeps the previous
// unit). `pins`: a refresh; a container whose tag still resolves to its pin is `unchanged`.
Result<SitePullOutcome> pullSite(const SitePullServices& services, const SiteConfig& site,
                                 const ProcessEnvironment& env, SitePullEvents& events,
                                 const TagPins& pins = {});

}  // namespace pullagent::agent
