#include "agent/diagnose/walk.h"
#include "agent/identity/key_vault.h"
#include "agent/site/registry_credentials.h"
#include "agent/site/site_pull.h"

namespace pullagent::agent::walk {
namespace {

// What to change when a Key Vault reference cannot be read.
std::string keyVaultFix(const CredentialsFailure& failure) {
  const KeyVaultReference& ref = *failure.reference;
  if (failure.identity_failed) {
    return "assign the " + failure.identity +
           " to the site (keyVaultReferenceIdentity), or correct keyVaultReferenceIdentity";
  }
  if (isDisabledSecretError(failure.error)) {
    return ref.version ? "the Key Vault reference pins version " + *ref.version +
                             ", which is disabled: drop the version or point it at the current "
                             "one"
                       : "enable the secret " + ref.secret_name + " in " + ref.vault_url;
  }
  switch (failure.error.code) {
    case ErrorCode::kPermissionDenied:
    case ErrorCode::kUnauthenticated:
      return "grant the " + failure.identity + " get on secrets in " + ref.vault_url +
             " (the Key Vault Secrets User role, or an access policy)";
    case ErrorCode::kNotFound:
      return "create the secret " + ref.secret_name +
             (ref.version ? " (version " + *ref.version + ")" : "") + " in " + ref.vault_url +
             ", or correct " + failure.setting;
    default:
      return "make " + ref.vault_url +
             " reachable on the site's route (over the VNet: its private endpoint and DNS)";
  }
}

std::string credentialsSaid(const Walk& walk) {
  const SiteContainer& container = walk.container;
  std::string said = describeAuth(container);
  switch (container.auth) {
    case RegistryAuth::kManagedIdentity:
      if (!container.name.empty())
        return said + " (the sitecontainer's authType)";
      return said + (container.identity_client_id.empty()
                         ? " (acrUseManagedIdentityCreds is true, acrUserManagedIdentityID unset)"
                         : " (acrUseManagedIdentityCreds is true, acrUserManagedIdentityID)");
    case RegistryAuth::kBasic:
      return said + ": user from " +
             (container.registry_username->key_vault ? "a Key Vault reference" : "the setting") +
             ", password from " + container.password_source +
             (container.registry_password->key_vault ? " (a Key Vault reference)" : "");
    case RegistryAuth::kAnonymous:
      break;
  }
  return said + ": no managed identity and no registry credentials apply to " +
         container.image.domain;
}

}  // namespace

bool credentialSteps(Walk& walk) {
  walk.log.begin();
  walk.log.ok("site.credentials", credentialsSaid(walk));
  walk.log.begin();
  if (walk.container.auth == RegistryAuth::kManagedIdentity) {
    // The token source is the pool's, as the pull's is; identity.token asks it for a token.
    walk.credentials.aad = &walk.services.identities.identity(walk.container.identity_client_id);
    walk.credentials.aad_resource = walk.agent.acr_audience;
  }
  if (walk.container.auth != RegistryAuth::kBasic) {
    walk.log.skipped("site.key-vault", "no Key Vault reference: the credentials are not settings");
    return true;
  }
  CredentialsFailure failure;
  auto credentials = resolveBasicCredentials(walk.services.identities, walk.site, walk.container,
                                             *walk.route.http, walk.ctx, &failure);
  if (!credentials) {
    walk.log.failed("site.key-vault", credentials.error(),
                    failure.reference != nullptr ? keyVaultFix(failure) : "");
    return false;
  }
  walk.credentials.username = credentials->username;
  walk.credentials.password = credentials->password;
  walk.username_setting = credentials->username_setting;
  walk.password_setting = credentials->password_setting;
  if (credentials->read_from_key_vault.empty()) {
    walk.log.skipped("site.key-vault", "no Key Vault reference: the settings hold the values");
    return true;
  }
  std::vector<std::string> said;
  for (const auto& read : credentials->read_from_key_vault)
    said.push_back(read.setting + ": " + read.said);
  walk.log.ok("site.key-vault", joined(said, "; "));
  return true;
}

}  // namespace pullagent::agent::walk
