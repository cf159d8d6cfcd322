#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "base/error.h"

namespace pullagent::agent {

// An app setting of the form @Microsoft.KeyVault(SecretUri=...) or
// @Microsoft.KeyVault(VaultName=...;SecretName=...[;SecretVersion=...]) (App Service's Key Vault
// references), resolved to the data-plane coordinates of the secret.
struct KeyVaultReference {
  std::string vault_url;               // "https://myvault.vault.azure.net"
  std::string secret_name;             // "mysecret"
  std::optional<std::string> version;  // absent: the latest version

  // GET <vault_url>/secrets/<name>[/<version>]?api-version=7.4
  std::string secretUrl() const;
};

// Whether `host` (a name, without a port) is a Key Vault in the public cloud
// (<name>.vault.azure.net), the only hosts a site's Key Vault token is sent to.
bool isKeyVaultHost(std::string_view host);

// nullopt when `value` is not a Key Vault reference at all; an error when it is one but
// malformed (the literal must then never be used as a password either).
Result<std::optional<KeyVaultReference>> parseKeyVaultReference(std::string_view value);

}  // namespace pullagent::agent
