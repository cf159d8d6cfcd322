#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <mutex>
#include <string>

#include "base/clock.h"
#include "base/context.h"
#include "base/secret.h"
#include "puller/auth/aad_token_source.h"
#include "puller/auth/token_cache.h"
#include "puller/http/http_client.h"
#include "puller/http/url.h"

namespace pullagent::puller {

// The largest answer a token endpoint may send (Docker token auth, ACR's exchanges): tokens are
// a few kB, and a server's body is read into memory.
inline constexpr size_t kMaxTokenResponseBody = 1024 * 1024;

// Azure Container Registry's token exchange (Azure/acr docs/AAD-OAuth.md): an AAD access token
// for the identity becomes an ACR refresh token (POST /oauth2/exchange), which buys ACR access
// tokens per scope (POST /oauth2/token). Refresh tokens are cached per registry until shortly
// before their JWT `exp`; a refused one is dropped and exchanged again once.
class AcrTokenExchange {
 public:
  AcrTokenExchange(HttpClient& http, const Clock& clock, AadTokenSource& aad,
                   std::string aad_resource);

  // The realm must be https on the registry's own host: the identity's tokens go nowhere else.
  Result<IssuedToken> accessToken(const Url& registry, const Url& realm, const std::string& service,
                                  const std::string& scope, const Context& ctx);

 private:
  Result<Secret> refreshToken(const Url& realm, const std::string& service, const Context& ctx);
  Result<HttpResponse> postForm(const Url& realm, const std::string& path, const std::string& body,
                                const Context& ctx);

  HttpClient& http_;
  const Clock& clock_;
  AadTokenSource& aad_;
  std::string aad_resource_;
  std::mutex mutex_;
  struct Cached {
    Secret token;
    std::chrono::steady_clock::time_point refresh_at;
  };
  std::map<std::string, Cached> refresh_tokens_;  // by realm origin + service
};

}  // namespace pullagent::puller
