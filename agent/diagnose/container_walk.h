#pragma once

#include <cstdint>
#include <string>

#include "agent/diagnose/site_diagnosis.h"
#include "agent/diagnose/step_log.h"
#include "agent/site/site_route.h"
#include "base/context.h"

namespace pullagent::agent {

// What one container's walk learnt that the site's host steps use.
struct ContainerFindings {
  bool manifest_read = false;
  int64_t compressed_bytes = 0;  // the platform manifest's config and layers
};

// One container's steps, from its credentials to the data endpoint and its mirrors
// (site.credentials ... host.mirrors of stepCatalog()), appended to `log`.
ContainerFindings walkContainer(const DiagnoseServices& services, const SiteConfig& site,
                                const SiteContainer& container, const SiteRoute& route,
                                StepLog& log, const Context& ctx);

// The step's words for a name's DNS answer, and whether it is a private-link name answered with
// a public address (the private DNS zone is not linked to the VNet): split out for tests.
struct DnsJudgement {
  bool zone_not_linked = false;
  std::string zone;  // "privatelink.azurecr.io"
};
DnsJudgement judgeDnsAnswer(const std::vector<std::string>& chain,
                            const std::vector<std::string>& addresses);

}  // namespace pullagent::agent
