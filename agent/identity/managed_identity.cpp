#include "agent/identity/managed_identity.h"

#include <spdlog/spdlog.h>

#include <charconv>
#include <ctime>
#include <nlohmann/json.hpp>

#include "base/json_reader.h"
#include "base/redact.h"
#include "puller/http/url.h"

namespace pullagent::agent {
namespace {

using nlohmann::json;

constexpr size_t kMaxTokenBody = 1024 * 1024;

// A whole number of seconds as IMDS (a string) or the App Service endpoint (a number) sends it.
std::optional<double> secondsValue(const json& value) {
  if (value.is_number())
    return value.get<double>();
  if (value.is_string()) {
    const auto& text = value.get_ref<const std::string&>();
    long long number = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
    if (ec == std::errc() && ptr == text.data() + text.size())
      return static_cast<double>(number);
  }
  return std::nullopt;
}

std::string describeFailure(const puller::HttpResponse& response) {
  auto body = parseJson(response.body, "identity error");
  std::string text;
  if (body && body->is_object()) {
    for (const char* key : {"error", "error_description", "message"}) {
      auto it = body->find(key);
      if (it != body->end() && it->is_string())
        text += (text.empty() ? "" : ": ") + it->get<std::string>();
    }
  }
  if (text.size() > 300)
    text = text.substr(0, 300) + "...";
  return text;
}

}  // namespace

puller::RetryPolicy imdsRetryPolicy() {
  puller::RetryPolicy policy;
  // Enough attempts to outlast IMDS's announced 70 s of 410s (backoff capped at 15 s).
  policy.max_attempts = 10;
  policy.initial_backoff = std::chrono::seconds(1);
  policy.max_backoff = std::chrono::seconds(15);
  return policy;
}

std::optional<std::chrono::system_clock::time_point> parseExpiresOn(const std::string& text) {
  if (auto seconds = secondsValue(json(text)))
    return fromUnixSeconds(*seconds);
  for (const char* format : {"%m/%d/%Y %H:%M:%S +00:00", "%m/%d/%Y %I:%M:%S %p +00:00"}) {
    std::tm parts{};
    const char* end = ::strptime(text.c_str(), format, &parts);
    if (end != nullptr && *end == '\0')
      return fromUnixSeconds(static_cast<double>(::timegm(&parts)));
  }
  return std::nullopt;
}

ManagedIdentityTokenSource::ManagedIdentityTokenSource(puller::HttpClient& http, Clock& clock,
                                                       Random& random, IdentityEndpoint endpoint,
                                                       std::string client_id,
                                                       puller::RetryPolicy policy,
                                                       std::string resource_id)
    : http_(http),
      clock_(clock),
      random_(random),
      endpoint_(std::move(endpoint)),
      client_id_(std::move(client_id)),
      policy_(policy),
      resource_id_(std::move(resource_id)) {}

std::string ManagedIdentityTokenSource::identityName() const {
  if (!resource_id_.empty())
    return "user-assigned identity " + resource_id_;
  return client_id_.empty() ? "system-assigned identity" : "user-assigned identity " + client_id_;
}

Result<puller::AadToken> ManagedIdentityTokenSource::token(const std::string& resource,
                                                           const Context& ctx) {
  std::lock_guard lock(mutex_);
  auto it = cache_.find(resource);
  if (it != cache_.end() && clock_.wallNow() < it->second.refresh_at)
    return it->second.token;
  ASSIGN_OR_RETURN(auto fresh, request(resource, ctx));
  // Renew 2 minutes before expiry, or at half-life for long-lived tokens (Azure SDK practice).
  auto lifetime = fresh.expires_on - clock_.wallNow();
  auto refresh_at = lifetime >= std::chrono::hours(2) ? clock_.wallNow() + lifetime / 2
                                                      : fresh.expires_on - std::chrono::minutes(2);
  cache_[resource] = Cached{fresh, refresh_at};
  return fresh;
}

Result<puller::AadToken> ManagedIdentityTokenSource::request(const std::string& resource,
                                                             const Context& ctx) {
  std::optional<puller::AadToken> result;
  auto status = puller::retryLoop(policy_, clock_, random_, ctx, "managed identity token",
                                  [&](int) -> puller::AttemptOutcome {
                                    ASSIGN_OR_RETURN(auto token, requestOnce(resource, ctx));
                                    result = token;
                                    return {};
                                  });
  if (!status)
    return status.error();
  return *result;
}

Result<puller::AadToken> ManagedIdentityTokenSource::requestOnce(const std::string& resource,
                                                                 const Context& ctx) {
  const bool imds = endpoint_.kind == IdentityEndpoint::Kind::kImds;
  puller::HttpRequest request;
  request.url = endpoint_.url + (endpoint_.url.find('?') == std::string::npos ? "?" : "&") +
                "api-version=" + (imds ? "2018-02-01" : "2019-08-01") +
                "&resource=" + puller::urlEncode(resource);
  if (!client_id_.empty())
    request.url += "&client_id=" + puller::urlEncode(client_id_);
  else if (!resource_id_.empty())  // IMDS and App Service spell this parameter differently
    request.url += (imds ? "&msi_res_id=" : "&mi_res_id=") + puller::urlEncode(resource_id_);
  if (imds) {
    request.headers.push_back({"Metadata", "true"});
  } else {
    request.secret_headers.emplace_back("X-IDENTITY-HEADER", endpoint_.header);
  }
  request.max_body = kMaxTokenBody;
  const std::string where = (imds ? "IMDS " : "identity endpoint ") + redactUrl(endpoint_.url);
  auto response = http_.send(request, ctx);  // never redirected: the header is a secret
  if (!response)
    return response.error().context("token for " + identityName() + " from " + where);

  const int status = response->status;
  if (status == 400 || status == 401 || status == 403) {
    return makeError(
        ErrorCode::kUnauthenticated,
        where + " refused a token for the " + identityName() + " (HTTP " + std::to_string(status) +
            ": " + describeFailure(response.value()) +
            "): check that this identity is assigned to the site" +
            (client_id_.empty() && resource_id_.empty() ? " (system-assigned identity enabled?)"
                                                        : ""));
  }
  if (status == 404 || status == 410 || status == 429 || status >= 500) {
    Error error =
        makeError(ErrorCode::kUnavailable, where + " answered HTTP " + std::to_string(status) +
                                               (status == 410 ? " (updating, up to 70 s)" : "") +
                                               " " + describeFailure(response.value()));
    if (auto retry_after = response->header("Retry-After"))
      error.retry_after = puller::parseRetryAfter(*retry_after, clock_.wallNow());
    return error;
  }
  if (status != 200) {
    return makeError(ErrorCode::kProtocol, where + " answered HTTP " + std::to_string(status));
  }
  ASSIGN_OR_RETURN(auto parsed, parseJson(response->body, where + " answer"));
  const JsonReader body(parsed, where + " answer");
  if (!body.isObject())
    return body.typeError("an object");
  ASSIGN_OR_RETURN(auto access_token, body["access_token"].secret().string());
  puller::AadToken token{Secret(std::move(access_token)), {}};
  std::optional<std::chrono::system_clock::time_point> expires;
  if (auto seconds = secondsValue(body["expires_on"].raw())) {
    expires = fromUnixSeconds(*seconds);
  } else if (auto text = body["expires_on"].string()) {
    expires = parseExpiresOn(text.value());
  }
  if (!expires) {
    if (auto seconds = secondsValue(body["expires_in"].raw()))
      expires = clock_.wallNow() + clampedSeconds(*seconds);
  }
  if (!expires)
    return makeError(ErrorCode::kProtocol, where + " answered without a usable expiry");
  token.expires_on = *expires;
  spdlog::debug("token for {} ({}) valid until {}", identityName(), resource,
                std::chrono::system_clock::to_time_t(token.expires_on));
  return token;
}

}  // namespace pullagent::agent
