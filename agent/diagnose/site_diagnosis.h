#pragma once

#include <optional>
#include <stop_token>
#include <string>

#include "agent/config/agent_config.h"
#include "agent/config/site_config.h"
#include "agent/diagnose/diagnosis.h"
#include "agent/site/identity_pool.h"
#include "base/clock.h"
#include "base/host_resolver.h"
#include "base/random.h"

namespace pullagent::agent {

// What a diagnosis borrows from the agent. It never writes to the state dir and never holds a
// pull slot: a running service is not disturbed.
struct DiagnoseServices {
  const AgentConfig& agent;
  Clock& clock;
  Random& random;
  IdentityPool& identities;
  HostResolver& system_resolver;  // identity endpoints, and the public route
};

// Walks every step a pull of `site` takes, for each of its containers, as the service would
// take them (the same route, DNS, identities and credentials), and reports each one: what was
// seen, and for a failure the fix. A failure skips only the steps that depend on it. Bounded by
// the site's attempt budget, as a pull is. `name`: what the report calls the site.
// `service_site`: its name among the service's sites (its file in sitesDir without .json),
// whose published image the state dir records; nullopt for a site file elsewhere.
Diagnosis diagnoseSite(const DiagnoseServices& services, const SiteConfig& site,
                       const std::string& name, const std::optional<std::string>& service_site,
                       const std::stop_token& stop);

}  // namespace pullagent::agent
