#include "puller/auth/acr_exchange.h"

#include <spdlog/spdlog.h>

#include "base/json_reader.h"

#include "puller/auth/jwt.h"
#include "puller/http/registry_errors.h"

namespace pullagent::puller {
namespace {

// How long to keep a token: until a tenth of its life (at most 5 minutes) before `exp`;
// a token without `exp` is used once.
std::chrono::seconds lifetimeOf(const std::string& token,
                                std::chrono::system_clock::time_point now) {
  auto claims = readJwtClaims(token);
  if (!claims || !claims->expires)
    return std::chrono::seconds(0);
  return secondsUntil(*claims->expires, now);
}

// Azure Container Registry's login servers in the public cloud (the audience the agent asks
// tokens for, acrAudience, is the public cloud's by default; other clouds are not supported). An
// identity's AAD token is exchanged only with these: a registry elsewhere is not ACR, and the
// token must not reach it. A private endpoint keeps the login server's name; a data endpoint
// (<name>.<region>.data.azurecr.io) is no login server.
constexpr std::string_view kAcrSuffix = ".azurecr.io";

bool isAcrLoginServer(std::string_view host) {  // lowercase, as Url keeps it
  return host.size() > kAcrSuffix.size() && host.ends_with(kAcrSuffix) &&
         host.substr(0, host.size() - kAcrSuffix.size()).find('.') == std::string_view::npos;
}

// The string `name` of a JSON answer, or "" when the answer has no such string.
std::string field(const HttpResponse& response, const char* name) {
  auto json = parseJson(response.body, "ACR token answer");
  if (!json)
    return {};
  auto value = JsonReader(json.value(), "ACR token answer")[name].string();
  return value ? value.value() : std::string();
}

}  // namespace

AcrTokenExchange::AcrTokenExchange(HttpClient& http, const Clock& clock, AadTokenSource& aad,
                                   std::string aad_resource)
    : http_(http), clock_(clock), aad_(aad), aad_resource_(std::move(aad_resource)) {}

Result<HttpResponse> AcrTokenExchange::postForm(const Url& realm, const std::string& path,
                                                const std::string& body, const Context& ctx) {
  HttpRequest request;
  request.method = "POST";
  request.url = realm.origin() + path;
  request.headers = {{"Content-Type", "application/x-www-form-urlencoded"},
                     {"Accept", "application/json"}};
  request.body = body;
  request.max_body = kMaxTokenResponseBody;
  // No redirects: the form carries the token and must stay on the registry.
  return http_.send(request, ctx);
}

Result<Secret> AcrTokenExchange::refreshToken(const Url& realm, const std::string& service,
                                              const Context& ctx) {
  const std::string key = realm.origin() + "\n" + service;
  {
    std::lock_guard lock(mutex_);
    auto it = refresh_tokens_.find(key);
    if (it != refresh_tokens_.end() && clock_.now() < it->second.refresh_at)
      return it->second.token;
  }
  ASSIGN_OR_RETURN(auto aad, aad_.token(aad_resource_, ctx));
  auto claims = readJwtClaims(aad.token.revealForWire());
  std::string body = "grant_type=access_token&service=" + urlEncode(service) +
                     "&access_token=" + urlEncode(aad.token.revealForWire());
  if (claims && !claims->tenant.empty())
    body += "&tenant=" + urlEncode(claims->tenant);
  auto response = postForm(realm, "/oauth2/exchange", body, ctx);
  if (!response)
    return response.error().context("ACR token exchange at " + realm.hostPort());
  if (response->status == 401 || response->status == 403) {
    return makeError(ErrorCode::kUnauthenticated,
                     "ACR " + realm.hostPort() + " refused the token of the " +
                         aad_.identityName() + " (HTTP " + std::to_string(response->status) +
                         "): check that the identity has the AcrPull role on the registry");
  }
  if (response->status != 200) {
    return registryError(response.value(), "ACR token exchange at " + realm.hostPort(),
                         clock_.wallNow());
  }
  std::string token = field(response.value(), "refresh_token");
  if (token.empty()) {
    return makeError(ErrorCode::kProtocol, "ACR token exchange at " + realm.hostPort() +
                                               " answered without a refresh_token");
  }
  auto lifetime = lifetimeOf(token, clock_.wallNow());
  auto margin = std::min<std::chrono::seconds>(lifetime / 10, std::chrono::minutes(5));
  std::lock_guard lock(mutex_);
  refresh_tokens_[key] = Cached{Secret(token), clock_.now() + lifetime - margin};
  return Secret(token);
}

Result<IssuedToken> AcrTokenExchange::accessToken(const Url& registry, const Url& realm,
                                                  const std::string& service,
                                                  const std::string& scope, const Context& ctx) {
  if (!isAcrLoginServer(registry.host)) {
    return makeError(ErrorCode::kUntrusted,
                     "refusing to send the " + aad_.identityName() + "'s token to " +
                         registry.hostPort() +
                         ": managed-identity credentials (acrUseManagedIdentityCreds) are "
                         "exchanged only with Azure Container Registry login servers "
                         "(<name>.azurecr.io); for another registry "
                         "set DOCKER_REGISTRY_SERVER_USERNAME and DOCKER_REGISTRY_SERVER_PASSWORD");
  }
  if (realm.scheme != "https" ||
      !realm.sameOrigin(Url{"https", registry.host, registry.port, ""})) {
    return makeError(ErrorCode::kUntrusted, "refusing to send the " + aad_.identityName() +
                                                "'s token to realm " + realm.hostPort() +
                                                ": ACR token realms are https on the registry (" +
                                                registry.hostPort() + ") itself");
  }
  for (int round = 0; round < 2; ++round) {
    ASSIGN_OR_RETURN(auto refresh, refreshToken(realm, service, ctx));
    std::string body = "grant_type=refresh_token&service=" + urlEncode(service) +
                       "&scope=" + urlEncode(scope) +
                       "&refresh_token=" + urlEncode(refresh.revealForWire());
    auto response = postForm(realm, realm.target.substr(0, realm.target.find('?')), body, ctx);
    if (!response)
      return response.error().context("ACR token request at " + realm.hostPort());
    if (response->status == 401 && round == 0) {
      // The refresh token was revoked or expired early: exchange again, once.
      std::lock_guard lock(mutex_);
      refresh_tokens_.erase(realm.origin() + "\n" + service);
      continue;
    }
    if (response->status == 401 || response->status == 403) {
      return makeError(ErrorCode::kPermissionDenied,
                       "ACR " + realm.hostPort() + " gave the " + aad_.identityName() +
                           " no token for " + scope + " (HTTP " + std::to_string(response->status) +
                           "): check that the identity may pull this repository (AcrPull)");
    }
    if (response->status != 200) {
      return registryError(response.value(), "ACR token request at " + realm.hostPort(),
                           clock_.wallNow());
    }
    std::string token = field(response.value(), "access_token");
    if (token.empty()) {
      return makeError(ErrorCode::kProtocol,
                       "ACR " + realm.hostPort() + " answered without an access_token");
    }
    return IssuedToken{Secret(token), lifetimeOf(token, clock_.wallNow())};
  }
  return makeError(ErrorCode::kInternal, "unreachable");
}

}  // namespace pullagent::puller
