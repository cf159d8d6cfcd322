#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "base/clock.h"
#include "base/random.h"
#include "base/secret.h"
#include "puller/auth/aad_token_source.h"
#include "puller/http/http_client.h"
#include "puller/http/retry.h"

namespace pullagent::agent {

// Where managed-identity tokens are requested.
struct IdentityEndpoint {
  enum class Kind {
    kImds,        // Azure IMDS: Metadata: true, api-version 2018-02-01
    kAppService,  // App Service IDENTITY_ENDPOINT: X-IDENTITY-HEADER, api-version 2019-08-01
  };
  Kind kind = Kind::kImds;
  std::string url = "http://169.254.169.254/metadata/identity/oauth2/token";
  Secret header;  // IDENTITY_HEADER for kAppService
};

// IMDS's documented retry guidance: 404 (endpoint updating, or an identity just assigned), 410
// (for up to 70 s), 429 and 5xx are retried with backoff; 400 (identity not assigned) is not.
puller::RetryPolicy imdsRetryPolicy();

// Managed-identity tokens for one identity (system-assigned, or user-assigned by client id),
// cached per resource until shortly before they expire; concurrent requests for the same
// resource make one request.
class ManagedIdentityTokenSource final : public puller::AadTokenSource {
 public:
  // `client_id` selects a user-assigned identity by client id, `resource_id` by its ARM
  // resource id (keyVaultReferenceIdentity); neither: the system-assigned identity.
  ManagedIdentityTokenSource(puller::HttpClient& http, Clock& clock, Random& random,
                             IdentityEndpoint endpoint, std::string client_id,
                             puller::RetryPolicy policy = imdsRetryPolicy(),
                             std::string resource_id = "");

  Result<puller::AadToken> token(const std::string& resource, const Context& ctx) override;
  std::string identityName() const override;

 private:
  Result<puller::AadToken> request(const std::string& resource, const Context& ctx);
  Result<puller::AadToken> requestOnce(const std::string& resource, const Context& ctx);

  puller::HttpClient& http_;
  Clock& clock_;
  Random& random_;
  IdentityEndpoint endpoint_;
  std::string client_id_;
  puller::RetryPolicy policy_;
  std::string resource_id_;
  std::mutex mutex_;  // one request at a time: IMDS throttles bursts with 429
  struct Cached {
    puller::AadToken token;
    std::chrono::system_clock::time_point refresh_at;
  };
  std::map<std::string, Cached> cache_;
};

// expires_on as the identity endpoints write it: POSIX seconds (number or string), or the
// App Service 2017 dates "06/20/2019 02:57:58 +00:00" and "1/16/2020 5:24:12 AM +00:00".
std::optional<std::chrono::system_clock::time_point> parseExpiresOn(const std::string& text);

}  // namespace pullagent::agent
