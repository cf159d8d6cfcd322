#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace pullagent::agent {

// The per-site webhook credentials the service accepts: App Service's CI webhook for a site
// carries that site's publishing credentials, and a request authenticated by them may refresh
// that site and nothing else. Kept as the user name and the SHA-256 of the password, never the
// password. Written by the daemon's loop as it reads site configs, read by the webhook server's
// threads.
class SiteWebhookKeys {
 public:
  struct Key {
    std::string user;
    std::string password_sha256;  // hex
    bool operator==(const Key&) const = default;
  };
  static Key keyOf(const std::string& user, const std::string& password);

  // The site's key as its config now says (nothing: the site takes no webhook of its own).
  void set(const std::string& site, std::optional<Key> key);
  void erase(const std::string& site);
  // The sites these credentials are the key of (App Service's user-level deployment credentials
  // may be shared by one user's sites). Every key is compared, each in constant time, so the
  // time taken tells nothing about any password.
  std::vector<std::string> sitesFor(const std::string& user, const std::string& password) const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, Key> keys_;  // by site
};

}  // namespace pullagent::agent
