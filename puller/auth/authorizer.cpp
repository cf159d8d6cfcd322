#include "puller/auth/authorizer.h"

#include <spdlog/spdlog.h>

#include <ctime>

#include "base/base64.h"
#include "base/json_reader.h"
#include "base/redact.h"
#include "puller/http/redirects.h"
#include "puller/http/registry_errors.h"

namespace pullagent::puller {
namespace {

constexpr std::chrono::seconds kMinTokenLifetime{60};  // distribution's minimum (token spec)

Secret basicHeader(const RegistryCredentials& credentials) {
  return Secret("Basic " +
                encodeBase64(credentials.username + ":" + credentials.password.revealForWire()));
}

// RFC 3339 "2024-01-02T03:04:05Z" or with fractional seconds / offset; nullopt when unreadable.
std::optional<std::chrono::system_clock::time_point> parseRfc3339(const std::string& text) {
  std::tm parts{};
  const char* rest = ::strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &parts);
  if (rest == nullptr)
    return std::nullopt;
  if (*rest == '.') {
    ++rest;
    while (*rest >= '0' && *rest <= '9')
      ++rest;
  }
  long offset_seconds = 0;
  if (*rest == 'Z' || *rest == 'z') {
    ++rest;
  } else if (*rest == '+' || *rest == '-') {
    int hours = 0;
    int minutes = 0;
    if (std::sscanf(rest + 1, "%2d:%2d", &hours, &minutes) != 2)
      return std::nullopt;
    offset_seconds = (hours * 3600L + minutes * 60L) * (*rest == '+' ? 1 : -1);
    rest += 6;
  } else {
    return std::nullopt;
  }
  if (*rest != '\0')
    return std::nullopt;
  return fromUnixSeconds(static_cast<double>(::timegm(&parts) - offset_seconds));
}

const Challenge* preferred(const std::vector<Challenge>& challenges) {
  // Bearer over Basic, as containerd does; anything else we cannot answer.
  for (const char* scheme : {"bearer", "basic"}) {
    for (const auto& challenge : challenges) {
      if (challenge.scheme == scheme)
        return &challenge;
    }
  }
  return nullptr;
}

}  // namespace

Authorizer::Authorizer(HttpClient& http, const Clock& clock, TokenCache& cache,
                       RegistryCredentials credentials, bool insecure_registry)
    : http_(http),
      clock_(clock),
      cache_(cache),
      credentials_(std::move(credentials)),
      insecure_registry_(insecure_registry) {
  if (credentials_.aad != nullptr)
    acr_.emplace(http_, clock_, *credentials_.aad, credentials_.aad_resource);
}

Result<std::optional<Secret>> Authorizer::authorize(const Url& target, const std::string& scope,
                                                    const Context& ctx) {
  std::optional<Challenge> challenge;
  {
    std::lock_guard lock(mutex_);
    auto it = challenges_.find(target.origin());
    if (it != challenges_.end())
      challenge = it->second;
  }
  if (!challenge)
    return std::optional<Secret>();
  if (challenge->scheme == "basic")
    return std::optional<Secret>(basicHeader(credentials_));
  ASSIGN_OR_RETURN(auto token, bearerToken(target, *challenge, scope, ctx));
  return std::optional<Secret>(Secret("Bearer " + token.revealForWire()));
}

Status Authorizer::onUnauthorized(const Url& target, const HttpResponseHead& response,
                                  const std::string& scope, const std::optional<Secret>& sent) {
  auto challenges = parseChallenges(response.headerValues("WWW-Authenticate"));
  const Challenge* chosen = preferred(challenges);
  if (chosen == nullptr) {
    return makeError(ErrorCode::kUnauthenticated,
                     target.hostPort() +
                         " answered 401 without a Bearer or Basic challenge; cannot authenticate");
  }
  if (chosen->scheme == "basic" && credentials_.empty()) {
    return makeError(
        ErrorCode::kUnauthenticated,
        target.hostPort() + " requires a username and password (Basic auth); none were given");
  }
  if (chosen->scheme == "basic" && sent) {
    return makeError(ErrorCode::kUnauthenticated,
                     target.hostPort() + " rejected the username and password for user \"" +
                         credentials_.username + "\"; check the credentials");
  }
  if (chosen->scheme == "bearer" && sent && sent->revealForWire().starts_with("Bearer ")) {
    // The token was refused (expired early, revoked): the next authorize() fetches a new one.
    cache_.invalidate(cacheKey(target, *chosen, scope),
                      Secret(sent->revealForWire().substr(std::string_view("Bearer ").size())));
  }
  std::lock_guard lock(mutex_);
  challenges_[target.origin()] = *chosen;
  return {};
}

std::string Authorizer::cacheKey(const Url& target, const Challenge& challenge,
                                 const std::string& scope) const {
  std::vector<std::string> scopes{scope};
  return TokenCache::key(target.hostPort(), challenge.param("service").value_or(""), scopes);
}

Result<Secret> Authorizer::bearerToken(const Url& target, const Challenge& challenge,
                                       const std::string& scope, const Context& ctx) {
  auto realm_text = challenge.param("realm");
  if (!realm_text || realm_text->empty()) {
    return makeError(ErrorCode::kProtocol,
                     target.hostPort() + " sent a Bearer challenge without a realm");
  }
  auto realm = Url::parse(*realm_text);
  if (!realm)
    return realm.error().context("bearer realm of " + target.hostPort());
  // Credentials travel to the realm: never in clear text, unless the user explicitly declared
  // this registry plain-HTTP and the realm is on the registry's own host.
  if (realm->scheme != "https" && !(insecure_registry_ && realm->host == target.host)) {
    return makeError(ErrorCode::kUntrusted, "refusing token realm " + redactUrl(realm->str()) +
                                                " of " + target.hostPort() + ": not https");
  }

  const std::string key = cacheKey(target, challenge, scope);
  if (auto cached = cache_.get(key))
    return *cached;

  std::shared_ptr<std::mutex> fetch_lock;
  {
    std::lock_guard lock(mutex_);
    auto& slot = fetching_[key];
    if (!slot)
      slot = std::make_shared<std::mutex>();
    fetch_lock = slot;
  }
  // Concurrent layer downloads needing the same token wait for one fetch.
  std::lock_guard fetch_guard(*fetch_lock);
  if (auto cached = cache_.get(key))
    return *cached;

  const std::string service = challenge.param("service").value_or("");
  ASSIGN_OR_RETURN(IssuedToken issued,
                   acr_ ? acr_->accessToken(target, realm.value(), service, scope, ctx)
                        : fetchToken(target, realm.value(), service, scope, ctx));
  if (issued.lifetime.count() > 0)
    cache_.put(key, issued.token, issued.lifetime);
  return std::move(issued.token);
}

Result<IssuedToken> Authorizer::fetchToken(const Url& target, const Url& realm,
                                           const std::string& service, const std::string& scope,
                                           const Context& ctx) {
  std::string url = realm.str();
  url += realm.target.find('?') == std::string::npos ? "?" : "&";
  url += "service=" + urlEncode(service) + "&scope=" + urlEncode(scope);
  HttpRequest request;
  request.url = url;
  request.max_body = kMaxTokenResponseBody;
  if (!credentials_.empty()) {
    // distribution's client adds account=<user>; token servers use it for logging only.
    request.url += "&account=" + urlEncode(credentials_.username);
    request.authorization = basicHeader(credentials_);
  }
  spdlog::debug("requesting a token for {} from {}", scope, redactUrl(realm.str()));
  auto response = sendFollowingRedirects(http_, request, ctx);
  if (!response)
    return response.error().context("token request to " + realm.hostPort());
  if ((response->status == 404 || response->status == 405) && !credentials_.empty()) {
    // Some token servers implement only the OAuth2 POST form (distribution's auth/oauth.md);
    // containerd falls back between the two the same way.
    HttpRequest post;
    post.method = "POST";
    post.url = realm.str();
    post.headers.push_back({"Content-Type", "application/x-www-form-urlencoded"});
    post.body = "grant_type=password&client_id=pullagent&service=" + urlEncode(service) +
                "&scope=" + urlEncode(scope) + "&username=" + urlEncode(credentials_.username) +
                "&password=" + urlEncode(credentials_.password.revealForWire());
    post.max_body = kMaxTokenResponseBody;
    spdlog::debug("token server {} answered GET with {}; trying the OAuth2 POST form",
                  realm.hostPort(), response->status);
    response = http_.send(post, ctx);  // not redirected: the body holds the password
    if (!response)
      return response.error().context("token request to " + realm.hostPort());
  }
  if (response->status == 401 || response->status == 403) {
    return makeError(ErrorCode::kUnauthenticated,
                     credentials_.empty()
                         ? "token server " + realm.hostPort() + " refused anonymous access to " +
                               scope + " on " + target.hostPort() + "; credentials are needed"
                         : "token server " + realm.hostPort() + " rejected the credentials of " +
                               "user \"" + credentials_.username + "\" for " + scope +
                               "; check the username and password");
  }
  if (response->status != 200) {
    return registryError(response.value(), "token request to " + realm.hostPort(),
                         clock_.wallNow());
  }
  const std::string document = "token answer from " + realm.hostPort();
  ASSIGN_OR_RETURN(auto parsed, parseJson(response->body, document));
  const JsonReader json(parsed, document);
  if (!json.isObject())
    return json.typeError("an object");
  std::string token;
  for (const char* field : {"access_token", "token"}) {
    ASSIGN_OR_RETURN(auto value, json[field].secret().optionalString());
    if (value && !value->empty()) {
      token = std::move(*value);
      break;
    }
  }
  if (token.empty()) {
    return makeError(ErrorCode::kProtocol,
                     "token server " + realm.hostPort() + " answered without a token");
  }
  // expires_in and issued_at only shorten how long we cache; odd values fall back to the
  // minimum the token spec guarantees.
  std::chrono::seconds lifetime = kMinTokenLifetime;
  if (auto expires_in = json["expires_in"].number())
    lifetime = std::max(kMinTokenLifetime, clampedSeconds(expires_in.value()));
  if (auto issued_text = json["issued_at"].string()) {
    if (auto issued = parseRfc3339(issued_text.value())) {
      auto left = secondsUntil(*issued + lifetime, clock_.wallNow());
      // A skewed clock must not make every token look expired: trust expires_in then.
      if (left.count() > 0 && left < lifetime)
        lifetime = left;
    }
  }
  return IssuedToken{Secret(std::move(token)), lifetime};
}

}  // namespace pullagent::puller
