#include "puller/auth/token_cache.h"

#include <algorithm>

namespace pullagent::puller {

std::string TokenCache::key(const std::string& host, const std::string& service,
                            std::vector<std::string> scopes) {
  std::sort(scopes.begin(), scopes.end());
  scopes.erase(std::unique(scopes.begin(), scopes.end()), scopes.end());
  std::string key = host + "\n" + service + "\n";
  for (const auto& scope : scopes)
    key += scope + " ";
  return key;
}

std::optional<Secret> TokenCache::get(const std::string& key) const {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(key);
  if (it == entries_.end() || clock_.now() >= it->second.refresh_at)
    return std::nullopt;
  return it->second.token;
}

void TokenCache::put(const std::string& key, Secret token, std::chrono::seconds lifetime) {
  auto margin = std::min<std::chrono::seconds>(lifetime / 10, std::chrono::seconds(60));
  std::lock_guard lock(mutex_);
  entries_[key] = Entry{std::move(token), clock_.now() + lifetime - margin};
}

void TokenCache::invalidate(const std::string& key, const Secret& token) {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(key);
  // Only drop the token that was refused: another thread may already have a fresh one.
  if (it != entries_.end() && it->second.token == token)
    entries_.erase(it);
}

}  // namespace pullagent::puller
