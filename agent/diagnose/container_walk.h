#pragma once

#include <cstdint>

#include "agent/diagnose/site_diagnosis.h"
#include "agent/diagnose/step_log.h"
#include "agent/site/site_route.h"
#include "base/context.h"

namespace pullagent::agent {

// What one container's walk learnt that the site's host steps use.
struct ContainerFindings {
  bool manifest_read = false;
  // The platform manifest's config and layers that the state dir's store does not hold yet
  // (saturating), and the manifest's digest.
  int64_t missing_bytes = 0;
  std::string manifest_digest;
};

// One container's steps, from its credentials to the data endpoint and its mirrors
// (site.credentials ... host.mirrors of stepCatalog(), each exactly once and in that order),
// appended to `log`.
ContainerFindings walkContainer(const DiagnoseServices& services, const SiteConfig& site,
                                const SiteContainer& container, const SiteRoute& route,
                                StepLog& log, const Context& ctx);

// The container steps as skipped, for a site whose route cannot be made.
void skipContainer(StepLog& log, const std::string& why);

}  // namespace pullagent::agent
