#pragma once

#include "agent/identity/key_vault_reference.h"
#include "base/context.h"
#include "base/secret.h"
#include "puller/auth/aad_token_source.h"
#include "puller/http/http_client.h"

namespace pullagent::agent {

// Reads a secret a Key Vault reference points to (GET secret, api-version 7.4) with a token of
// the site's Key Vault identity for https://vault.azure.net. The token goes only to the vault
// host the reference names, over https.
// A disabled secret (or secret version) is refused with 403 like a missing permission, but
// granting more would change nothing: the error of readKeyVaultSecret says which it was.
bool isDisabledSecretError(const Error& error);

Result<Secret> readKeyVaultSecret(puller::HttpClient& http, puller::AadTokenSource& identity,
                                  const KeyVaultReference& reference, const Context& ctx);

}  // namespace pullagent::agent
