#include "agent/daemon/site_webhook_keys.h"

#include "base/secret.h"
#include "puller/oci/sha256.h"

namespace pullagent::agent {

SiteWebhookKeys::Key SiteWebhookKeys::keyOf(const std::string& user, const std::string& password) {
  return Key{user, puller::Sha256::of(password).hex()};
}

void SiteWebhookKeys::set(const std::string& site, std::optional<Key> key) {
  std::lock_guard lock(mutex_);
  if (key)
    keys_[site] = std::move(*key);
  else
    keys_.erase(site);
}

void SiteWebhookKeys::erase(const std::string& site) {
  std::lock_guard lock(mutex_);
  keys_.erase(site);
}

std::vector<std::string> SiteWebhookKeys::sitesFor(const std::string& user,
                                                   const std::string& password) const {
  const Key offered = keyOf(user, password);
  std::vector<std::string> found;
  std::lock_guard lock(mutex_);
  for (const auto& [site, key] : keys_) {
    const bool match = constantTimeEquals(offered.password_sha256, key.password_sha256);
    if (match && key.user == offered.user)
      found.push_back(site);
  }
  return found;
}

}  // namespace pullagent::agent
