#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "base/clock.h"
#include "base/context.h"
#include "base/secret.h"
#include "puller/auth/aad_token_source.h"
#include "puller/auth/acr_exchange.h"
#include "puller/auth/challenge.h"
#include "puller/auth/token_cache.h"
#include "puller/http/http_client.h"
#include "puller/http/url.h"

namespace pullagent::puller {

struct RegistryCredentials {
  std::string username;
  Secret password;
  // ACR with a managed identity: AAD tokens from here go through ACR's token exchange.
  AadTokenSource* aad = nullptr;
  std::string aad_resource = "https://containerregistry.azure.net";
  bool empty() const { return username.empty() && password.empty() && aad == nullptr; }
};

// Decides the Authorization header for registry requests from what the registry asked for:
// nothing (anonymous), Basic, or a Docker bearer token fetched from the challenge's realm
// (distribution's token spec). It learns each origin's challenge from a 401 and then
// authorises later requests up front.
class Authorizer {
 public:
  Authorizer(HttpClient& http, const Clock& clock, TokenCache& cache,
             RegistryCredentials credentials, bool insecure_registry);

  // The header value for a request to `target` needing `scope`, or nullopt while the origin has
  // not asked for credentials.
  Result<std::optional<Secret>> authorize(const Url& target, const std::string& scope,
                                          const Context& ctx);

  // `target` answered 401 to a request that carried `sent` (or nothing). Learns the challenge
  // and forgets a refused token. An error means another attempt cannot help (no supported
  // scheme, credentials needed but none given, ...).
  Status onUnauthorized(const Url& target, const HttpResponseHead& response,
                        const std::string& scope, const std::optional<Secret>& sent);

 private:
  Result<Secret> bearerToken(const Url& target, const Challenge& challenge,
                             const std::string& scope, const Context& ctx);
  Result<IssuedToken> fetchToken(const Url& target, const Url& realm, const std::string& service,
                                 const std::string& scope, const Context& ctx);
  std::string cacheKey(const Url& target, const Challenge& challenge,
                       const std::string& scope) const;

  HttpClient& http_;
  const Clock& clock_;
  TokenCache& cache_;
  RegistryCredentials credentials_;
  bool insecure_registry_;
  std::optional<AcrTokenExchange> acr_;

  std::mutex mutex_;
  std::map<std::string, Challenge> challenges_;                  // by origin
  std::map<std::string, std::shared_ptr<std::mutex>> fetching_;  // one token fetch per key
};

}  // namespace pullagent::puller
