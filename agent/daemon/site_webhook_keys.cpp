#include "agent/daemon/site_webhook_keys.h"

#include "puller/oci/sha256.h"

namespace pullagent::agent {
namespace {

// Equal-length hex digests compared without an early exit.
bool sameDigest(const std::string& a, const std::string& b) {
  unsigned difference = a.size() == b.size() ? 0U : 1U;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i)
    difference |=
        static_cast<unsigned>(static_cast<unsigned char>(a[i]) ^ static_cast<unsigned char>(b[i]));
  return difference == 0U;
}

}  // namespace

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
    const bool match = sameDigest(key.password_sha256, offered.password_sha256);
    if (match && key.user == offered.user)
      found.push_back(site);
  }
  return found;
}

}  // namespace pullagent::agent
