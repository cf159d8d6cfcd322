#pragma once

#include <vector>

#include "agent/config/site_config.h"
#include "agent/site/site_state.h"
#include "base/error.h"

namespace pullagent::agent {

// A rollback's attempt (AttemptPlan::rollback_to): the site's containers as they were
// published in `unit`, each under its own name then with its tag taken at the digest it
// resolved to (so that the policies judge the name as at its publish), with the credentials
// the config gives them now. The unit's main image comes first, as the config's does.
// A container whose previous image is on another registry than the config now names is
// refused unless it pulls anonymously: the config's credentials are for its own registry only.
Result<SiteConfig> rollbackConfig(const SiteConfig& site, const std::vector<PublishedImage>& unit);

}  // namespace pullagent::agent
