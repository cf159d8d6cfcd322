#include "agent/identity/key_vault.h"

#include "base/json_reader.h"

#include "puller/http/url.h"

namespace pullagent::agent {
namespace {

// Key Vault's answer for a disabled secret (or secret version): 403 with
// {"error": {"code": "Forbidden", "innererror": {"code": "SecretDisabled"}}}. Not a permission
// the identity lacks: granting more would change nothing.
bool disabledSecret(const std::string& body) {
  auto parsed = parseJson(body, "Key Vault error");
  if (!parsed)
    return false;
  const JsonReader error = JsonReader(parsed.value(), "Key Vault error")["error"];
  auto inner = error["innererror"]["code"].string();
  return inner && inner.value() == "SecretDisabled";
}

constexpr std::string_view kDisabledMarker = "(HTTP 403 SecretDisabled)";

}  // namespace

bool isDisabledSecretError(const Error& error) {
  return error.code == ErrorCode::kPermissionDenied &&
         error.message.find(kDisabledMarker) != std::string::npos;
}

Result<Secret> readKeyVaultSecret(puller::HttpClient& http, puller::AadTokenSource& identity,
                                  const KeyVaultReference& reference, const Context& ctx) {
  const std::string what =
      "Key Vault secret \"" + reference.secret_name + "\" in " + reference.vault_url;
  auto url = puller::Url::parse(reference.secretUrl());
  if (!url || url->scheme != "https")
    return makeError(ErrorCode::kInvalidArgument, what + ": the vault URL must be https");
  // Checked where the reference is read too; here, where the token is sent.
  if (!isKeyVaultHost(url->host))
    return makeError(ErrorCode::kUntrusted, what + ": not a Key Vault host, no token sent");
  auto token = identity.token("https://vault.azure.net", ctx);
  if (!token)
    return token.error().context(what);
  puller::HttpRequest request;
  request.url = reference.secretUrl();
  request.authorization = Secret("Bearer " + token->token.revealForWire());
  request.max_body = 1024 * 1024;
  auto response = http.send(request, ctx);  // no redirects: the request carries the token
  if (!response)
    return response.error().context(what);
  if (response->status == 403 && disabledSecret(response->body)) {
    return makeError(ErrorCode::kPermissionDenied,
                     what + (reference.version ? " version " + *reference.version : "") +
                         " is disabled " + std::string(kDisabledMarker) + ": " +
                         (reference.version ? "the reference pins a disabled version; drop the "
                                              "version or point it at the current one"
                                            : "enable the secret in the vault"));
  }
  if (response->status == 401 || response->status == 403) {
    return makeError(ErrorCode::kPermissionDenied,
                     what + ": the " + identity.identityName() + " may not read it (HTTP " +
                         std::to_string(response->status) +
                         "): grant it get permission on secrets (Key Vault Secrets User)");
  }
  if (response->status == 404) {
    return makeError(ErrorCode::kNotFound, what + " does not exist (HTTP 404)");
  }
  if (response->status != 200) {
    Error error =
        makeError(response->status >= 500 || response->status == 429 ? ErrorCode::kUnavailable
                                                                     : ErrorCode::kProtocol,
                  what + ": HTTP " + std::to_string(response->status));
    return error;
  }
  ASSIGN_OR_RETURN(auto parsed, parseJson(response->body, what + " answer"));
  // The whole answer holds the secret: errors name its type only.
  ASSIGN_OR_RETURN(auto value, JsonReader(parsed, what + " answer")["value"].secret().string());
  return Secret(std::move(value));
}

}  // namespace pullagent::agent
