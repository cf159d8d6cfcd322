#pragma once

#include <string>
#include <vector>

#include "agent/config/site_config.h"
#include "agent/site/identity_pool.h"
#include "base/context.h"
#include "base/secret.h"
#include "puller/http/http_client.h"

namespace pullagent::agent {

// A container's registry user name and password (RegistryAuth::kBasic), with the Key Vault
// references among them read.
struct BasicCredentials {
  std::string username;
  Secret password;
  // Each Key Vault reference read: the setting that holds it, and in words "vault
  // https://v.vault.azure.net, secret acr-password, version latest (not pinned), read with the
  // system-assigned identity".
  struct KeyVaultRead {
    std::string setting;
    std::string said;
  };
  std::vector<KeyVaultRead> read_from_key_vault;
  // The settings they came from, for messages: "DOCKER_REGISTRY_SERVER_USERNAME" or the
  // sitecontainer's "userName", and the container's password_source.
  std::string username_setting;
  std::string password_setting;
};

// Why a container's credentials could not be had.
struct CredentialsFailure {
  Error error;
  std::string setting;  // the setting whose reference failed
  const KeyVaultReference* reference = nullptr;
  std::string identity;          // the Key Vault identity, in words
  bool identity_failed = false;  // its token could not be had (not assigned?)
};

// Reads the user name and password of a kBasic container as a pull does: literals as they are,
// Key Vault references through the site's keyVaultReferenceIdentity over `http` (the site's
// route). No secret value is ever in what it says.
Result<BasicCredentials> resolveBasicCredentials(IdentityPool& identities, const SiteConfig& site,
                                                 const SiteContainer& container,
                                                 puller::HttpClient& http, const Context& ctx,
                                                 CredentialsFailure* failure = nullptr);

}  // namespace pullagent::agent
