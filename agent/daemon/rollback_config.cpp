#include "agent/daemon/rollback_config.h"

#include <algorithm>

namespace pullagent::agent {

Result<SiteConfig> rollbackConfig(const SiteConfig& site, const std::vector<PublishedImage>& unit) {
  SiteConfig back = site;
  back.containers.clear();
  for (const auto& image : unit) {
    const std::string label = image.container.empty() ? "main" : image.container;
    auto found = std::find_if(site.containers.begin(), site.containers.end(),
                              [&](const SiteContainer& c) { return c.label() == label; });
    if (found == site.containers.end())
      return makeError(ErrorCode::kInvalidArgument,
                       "the container " + label +
                           " of the previous unit is no longer in the site's config; put the "
                           "config back to roll back");
    auto ref = puller::ImageRef::parse(image.image);
    auto digest = puller::Digest::parse(image.resolved_digest);
    if (!ref || !digest)
      return makeError(ErrorCode::kInvalidArgument,
                       "the site's state names the previous image as \"" + image.image + "@" +
                           image.resolved_digest + "\", which is not a reference");
    // The config's credentials are for the registry it names now: never sent to another one
    // (managed identity tokens and passwords alike).
    if (ref->domain != found->image.domain && found->auth != RegistryAuth::kAnonymous)
      return makeError(ErrorCode::kInvalidArgument,
                       "the previous image of " + label + " is on " + ref->domain +
                           ", and the site's config now gives credentials for " +
                           found->image.domain + " only; put the config back to roll back");
    SiteContainer container = *found;
    container.image = std::move(ref).value();
    container.resolve_at = *digest;
    back.containers.push_back(std::move(container));
  }
  return back;
}

}  // namespace pullagent::agent
