#include "agent/site/registry_credentials.h"

#include "agent/identity/key_vault.h"

namespace pullagent::agent {

Result<BasicCredentials> resolveBasicCredentials(IdentityPool& identities, const SiteConfig& site,
                                                 const SiteContainer& container,
                                                 puller::HttpClient& http, const Context& ctx,
                                                 CredentialsFailure* failure) {
  BasicCredentials credentials;
  const bool own = !container.name.empty() && site.kind == SiteKind::kSiteContainers;
  credentials.username_setting = own ? "userName" : "DOCKER_REGISTRY_SERVER_USERNAME";
  credentials.password_setting =
      own ? container.password_source : "DOCKER_REGISTRY_SERVER_PASSWORD";
  const bool system =
      site.key_vault_identity.empty() || site.key_vault_identity == "SystemAssigned";
  auto resolve = [&](const SettingValue& value, const std::string& setting) -> Result<Secret> {
    if (!value.key_vault)
      return value.literal;
    const KeyVaultReference& ref = *value.key_vault;
    auto& identity = identities.identity("", system ? "" : site.key_vault_identity);
    auto fail = [&](Error error, bool identity_failed) {
      if (failure != nullptr)
        *failure = {error, setting, &ref, identity.identityName(), identity_failed};
      return error;
    };
    // Asked first so that an identity the site lacks is named as such.
    if (auto token = identity.token("https://vault.azure.net", ctx); !token) {
      return fail(token.error()
                      .context("Key Vault secret \"" + ref.secret_name + "\" in " + ref.vault_url)
                      .context(setting + " (Key Vault reference)"),
                  true);
    }
    auto secret = readKeyVaultSecret(http, identity, ref, ctx);
    if (!secret)
      return fail(secret.error().context(setting + " (Key Vault reference)"), false);
    credentials.read_from_key_vault.push_back(
        {setting, "vault " + ref.vault_url + ", secret " + ref.secret_name + ", version " +
                      ref.version.value_or("latest (not pinned)") + ", read with the " +
                      identity.identityName()});
    return secret;
  };
  ASSIGN_OR_RETURN(auto username,
                   resolve(*container.registry_username, credentials.username_setting));
  ASSIGN_OR_RETURN(credentials.password,
                   resolve(*container.registry_password, credentials.password_setting));
  credentials.username = username.revealForWire();
  return credentials;
}

}  // namespace pullagent::agent
