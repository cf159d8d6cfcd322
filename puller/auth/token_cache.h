#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/secret.h"

namespace pullagent::puller {

// A token as a token server issued it: the value and how long it may be cached (0: not at all).
struct IssuedToken {
  Secret token;
  std::chrono::seconds lifetime{0};
};

// Bearer tokens per (registry host, service, scopes), kept until shortly before they expire:
// a tenth of the lifetime early, at most 60 s early, so a token is never sent in its last
// moments.
class TokenCache {
 public:
  explicit TokenCache(const Clock& clock) : clock_(clock) {}

  // The key: host, service and the sorted, de-duplicated scope list.
  static std::string key(const std::string& host, const std::string& service,
                         std::vector<std::string> scopes);

  std::optional<Secret> get(const std::string& key) const;
  void put(const std::string& key, Secret token, std::chrono::seconds lifetime);
  void invalidate(const std::string& key, const Secret& token);

 private:
  struct Entry {
    Secret token;
    std::chrono::steady_clock::time_point refresh_at;
  };
  const Clock& clock_;
  mutable std::mutex mutex_;
  std::map<std::string, Entry> entries_;
};

}  // namespace pullagent::puller
