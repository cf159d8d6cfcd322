#include <algorithm>

#include "agent/diagnose/walk.h"
#include "agent/site/site_pull.h"
#include "base/redact.h"
#include "puller/auth/jwt.h"

namespace pullagent::agent::walk {
namespace {

// Whether a token's `access` entries ("repository:name:pull,push") grant pulling `repository`.
bool grantsPull(const std::vector<std::string>& access, const std::string& repository) {
  const std::string wanted = "repository:" + repository + ":";
  return std::any_of(access.begin(), access.end(), [&](const std::string& entry) {
    if (!entry.starts_with(wanted))
      return false;
    const std::string actions = "," + entry.substr(wanted.size()) + ",";
    return actions.find(",pull,") != std::string::npos || actions.find(",*,") != std::string::npos;
  });
}

// Basic credentials are tried on GET /v2/: 200 accepts them.
bool basicStep(Walk& walk, const Secret& header) {
  puller::HttpRequest request;
  request.url = walk.registry.str();
  request.authorization = header;
  if (walk.origin != nullptr)
    request.headers = walk.origin->headers;
  auto response = walk.http().send(request, walk.ctx);
  if (!response) {
    walk.log.failed("registry.token", response.error(), "the registry stopped answering");
    return false;
  }
  const int status = response->status;
  if (status == 200) {
    walk.log.ok("registry.token", "Basic credentials of " + safeQuoted(walk.credentials.username) +
                                      " accepted (GET /v2/ answered 200)");
    return true;
  }
  const bool refused = status == 401 || status == 403;
  Error error = makeError(refused ? ErrorCode::kUnauthenticated : ErrorCode::kUnavailable,
                          walk.registry.hostPort() +
                              (refused ? " refused the username and password of " +
                                             safeQuoted(walk.credentials.username)
                                       : " failed to check the credentials") +
                              " (HTTP " + std::to_string(status) + ")");
  walk.log.failed(
      "registry.token", error,
      refused ? credentialsFix(walk, error)
              : "the registry is failing (HTTP " + std::to_string(status) + "): try again later");
  return false;
}

}  // namespace

bool identityStep(Walk& walk) {
  walk.log.begin();
  if (walk.container.auth != RegistryAuth::kManagedIdentity) {
    walk.log.skipped("identity.token", "no managed identity: " + describeAuth(walk.container));
    return true;
  }
  auto& identity = walk.services.identities.identity(walk.container.identity_client_id);
  const std::string endpoint =
      std::string(walk.agent.identity.kind == IdentityEndpoint::Kind::kImds ? "IMDS "
                                                                            : "App Service ") +
      redactUrl(walk.agent.identity.url);
  auto token = identity.token(walk.agent.acr_audience, walk.ctx);
  if (!token) {
    std::string fix;
    if (token.error().code == ErrorCode::kUnauthenticated) {
      fix = walk.container.identity_client_id.empty()
                ? "enable the site's system-assigned identity (Identity > System assigned)"
                : "assign the user-assigned identity " + walk.container.identity_client_id +
                      " to the site (Identity > User assigned), or correct "
                      "acrUserManagedIdentityID";
    } else {
      fix = "the identity endpoint " + endpoint +
            " does not answer: check the host's identity service";
    }
    walk.log.failed("identity.token", token.error(), fix);
    return false;
  }
  walk.log.ok("identity.token", "a token for " + walk.agent.acr_audience + " from " + endpoint +
                                    " for the " + identity.identityName());
  return true;
}

bool tokenStep(Walk& walk) {
  walk.log.begin();
  if (walk.origin == nullptr) {
    walk.log.failed("registry.token", *walk.hosts_error,
                    "correct the registry's hosts.toml in registryHostsDir");
    return false;
  }
  puller::Authorizer& authorizer = *walk.origin->authorizer;
  const std::string scope = walk.container.image.pullScope();
  if (walk.challenge.status == 401) {
    if (auto learnt = authorizer.onUnauthorized(walk.registry, walk.challenge, scope, std::nullopt);
        !learnt) {
      walk.log.failed("registry.token", learnt.error(), credentialsFix(walk, learnt.error()));
      return false;
    }
  }
  auto header = authorizer.authorize(walk.registry, scope, walk.ctx);
  if (!header) {
    walk.log.failed("registry.token", header.error(), credentialsFix(walk, header.error()));
    return false;
  }
  if (!*header) {
    walk.log.skipped("registry.token", "the registry asked for no credentials");
    return true;
  }
  const std::string& value = (*header)->revealForWire();
  if (value.starts_with("Basic "))
    return basicStep(walk, **header);
  auto claims = puller::readJwtClaims(value.substr(std::string_view("Bearer ").size()));
  if (!claims || !claims->access) {
    walk.log.ok("registry.token",
                "a bearer token for " + scope + " (opaque: what it grants cannot be read)");
    return true;
  }
  std::vector<std::string> escaped;
  for (const auto& entry : *claims->access)
    escaped.push_back(safeEscaped(entry));
  const std::string grants = escaped.empty() ? "nothing" : joined(escaped, " ");
  if (!grantsPull(*claims->access, walk.container.image.repository)) {
    Error denied = makeError(ErrorCode::kPermissionDenied,
                             "the registry's token for " + scope + " grants " + grants);
    walk.log.failed("registry.token", denied, credentialsFix(walk, denied));
    return false;
  }
  walk.log.ok("registry.token", "a bearer token granting " + grants);
  return true;
}

std::string credentialsFix(const Walk& walk, const Error& error) {
  const SiteContainer& container = walk.container;
  const std::string& registry = container.image.domain;
  switch (container.auth) {
    case RegistryAuth::kManagedIdentity:
      // Refused before any token left: a registry that is no ACR login server.
      if (error.code == ErrorCode::kUntrusted &&
          error.message.find("exchanged only with Azure Container Registry") != std::string::npos)
        return "pull from " + registry +
               " with DOCKER_REGISTRY_SERVER_USERNAME/PASSWORD: a managed identity's token goes "
               "only to an Azure Container Registry (<name>.azurecr.io)";
      return "assign AcrPull on " + registry + " to the " +
             (container.identity_client_id.empty() ? std::string("site's system-assigned identity")
                                                   : "identity " + container.identity_client_id);
    case RegistryAuth::kBasic: {
      if (error.code == ErrorCode::kPermissionDenied) {
        return "give the user " + safeQuoted(walk.credentials.username) + " pull on " +
               container.image.repository + " in " + registry;
      }
      const auto& password = *container.registry_password;
      if (password.key_vault) {
        const KeyVaultReference& ref = *password.key_vault;
        return ref.version ? "the Key Vault reference pins version " + *ref.version + " of " +
                                 ref.secret_name +
                                 ", which the registry refuses: drop the version or point it "
                                 "at the current password"
                           : "set the secret " + ref.secret_name + " in " + ref.vault_url +
                                 " to the registry's current password";
      }
      return "update " + walk.password_setting + " and " + walk.username_setting +
             " to the registry's current credentials";
    }
    case RegistryAuth::kAnonymous:
      break;
  }
  return registry + " does not allow anonymous pulls of " + container.image.repository +
         ": set acrUseManagedIdentityCreds or DOCKER_REGISTRY_SERVER_USERNAME/PASSWORD";
}

}  // namespace pullagent::agent::walk
