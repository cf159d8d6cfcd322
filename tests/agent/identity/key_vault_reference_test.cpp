#include "agent/identity/key_vault_reference.h"

#include <gtest/gtest.h>

namespace pullagent::agent {
namespace {

struct GoodReference {
  std::string text;
  std::string url;  // secretUrl()
  friend void PrintTo(const GoodReference& c, std::ostream* out) { *out << c.text; }
};

class KeyVaultReferenceParses : public ::testing::TestWithParam<GoodReference> {};

TEST_P(KeyVaultReferenceParses, ToTheSecretUrl) {
  auto parsed = parseKeyVaultReference(GetParam().text);
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  ASSERT_TRUE(parsed->has_value());
  EXPECT_EQ((*parsed)->secretUrl(), GetParam().url);
}

INSTANTIATE_TEST_SUITE_P(
    Table, KeyVaultReferenceParses,
    ::testing::Values(
        GoodReference{
            "@Microsoft.KeyVault(SecretUri=https://myvault.vault.azure.net/secrets/mysecret/)",
            "https://myvault.vault.azure.net/secrets/mysecret?api-version=7.4"},
        GoodReference{"@Microsoft.KeyVault(SecretUri=https://myvault.vault.azure.net/secrets/"
                      "mysecret/ec96f02080254f109c51a1f14cdb1931)",
                      "https://myvault.vault.azure.net/secrets/mysecret/"
                      "ec96f02080254f109c51a1f14cdb1931?api-version=7.4"},
        GoodReference{"@Microsoft.KeyVault(VaultName=myvault;SecretName=mysecret)",
                      "https://myvault.vault.azure.net/secrets/mysecret?api-version=7.4"},
        GoodReference{
            "@microsoft.keyvault(vaultname=my-vault;secretname=acr-pass;secretversion=abc123)",
            "https://my-vault.vault.azure.net/secrets/acr-pass/abc123?api-version=7.4"},
        GoodReference{"  @Microsoft.KeyVault(SecretName=s1;VaultName=vault1;)  ",
                      "https://vault1.vault.azure.net/secrets/s1?api-version=7.4"},
        // A port, and the host's case as written.
        GoodReference{
            "@Microsoft.KeyVault(SecretUri=https://My-Vault.Vault.Azure.NET:8443/secrets/s)",
            "https://My-Vault.Vault.Azure.NET:8443/secrets/s?api-version=7.4"}));

TEST(KeyVaultReference, PlainValuesAreNotReferences) {
  for (std::string value : {"hunter2", "", "Microsoft.KeyVault(x)", "@Microsoft.KeyVaul(x)"}) {
    auto parsed = parseKeyVaultReference(value);
    ASSERT_TRUE(parsed.ok()) << value;
    EXPECT_FALSE(parsed->has_value()) << value;
  }
}

class KeyVaultReferenceRejects : public ::testing::TestWithParam<std::string> {};

TEST_P(KeyVaultReferenceRejects, Malformed) {
  auto parsed = parseKeyVaultReference(GetParam());
  ASSERT_FALSE(parsed.ok()) << GetParam();
  EXPECT_EQ(parsed.error().code, ErrorCode::kInvalidArgument);
}

TEST(KeyVaultReference, AHostThatIsNoVaultIsNamedAndRefused) {
  auto parsed =
      parseKeyVaultReference("@Microsoft.KeyVault(SecretUri=https://evil.example.com/secrets/s)");
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.error().message,
            "invalid Key Vault reference: SecretUri's host \"evil.example.com\" is not a Key Vault "
            "(<name>.vault.azure.net): the site's Key Vault token goes only to a vault");
}

INSTANTIATE_TEST_SUITE_P(
    Table, KeyVaultReferenceRejects,
    ::testing::Values(
        "@Microsoft.KeyVault(SecretUri=http://v.vault.azure.net/secrets/s)",
        "@Microsoft.KeyVault(SecretUri=https://v.vault.azure.net/keys/s)",
        "@Microsoft.KeyVault(SecretUri=https://user@evil/secrets/s)",
        // Hosts that are no vault: the site's Key Vault token would go there.
        "@Microsoft.KeyVault(SecretUri=https://evil.example.com/secrets/s)",
        "@Microsoft.KeyVault(SecretUri=https://v.vault.azure.net.evil.com/secrets/s)",
        "@Microsoft.KeyVault(SecretUri=https://vault.azure.net/secrets/s)",
        "@Microsoft.KeyVault(SecretUri=https://a.b.vault.azure.net/secrets/s)",
        "@Microsoft.KeyVault(SecretUri=https://v.vault.azure.net:x/secrets/s)",
        "@Microsoft.KeyVault(SecretUri=https://127.0.0.1:8443/secrets/s)",
        "@Microsoft.KeyVault(SecretUri=https://v.vault.azure.net:99999/secrets/s)",
        "@Microsoft.KeyVault(SecretUri=https://v.vault.azure.net./secrets/s)",
        // Other clouds' vaults: the token asked for is the public cloud's.
        "@Microsoft.KeyVault(SecretUri=https://cn.vault.azure.cn/secrets/s)",
        "@Microsoft.KeyVault(SecretUri=https://gov.vault.usgovcloudapi.net/secrets/s)",
        "@Microsoft.KeyVault(VaultName=myvault)", "@Microsoft.KeyVault(VaultName=a;SecretName=s)",
        "@Microsoft.KeyVault(VaultName=myvault;SecretName=../x)",
        "@Microsoft.KeyVault(VaultName=myvault;SecretName=s;Other=1)",
        "@Microsoft.KeyVault(VaultName=myvault;VaultName=x;SecretName=s)",
        "@Microsoft.KeyVault(VaultName=myvault;SecretName=s", "@Microsoft.KeyVault(garbage)"));

}  // namespace
}  // namespace pullagent::agent
