// What a rollback's attempt pulls: each container of the previous unit, under the name it was
// published with and its tag taken at the digest it resolved to, with the credentials of the
// config as it reads now; those credentials never go to another registry.
#include "agent/daemon/rollback_config.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace pullagent::agent {
namespace {

const std::string kIndex = "sha256:" + std::string(64, 'a');

SiteContainer container(const std::string& image, RegistryAuth auth) {
  SiteContainer out;
  out.image = puller::ImageRef::parse(image).value();
  out.auth = auth;
  return out;
}

PublishedImage previous(const std::string& image) {
  PublishedImage out;
  out.image = image;
  out.digest = "sha256:" + std::string(64, 'b');
  out.resolved_digest = kIndex;
  return out;
}

TEST(RollbackConfig, TheUnitIsTakenUnderItsOwnNameAtTheDigestItResolvedTo) {
  SiteConfig site;
  site.containers.push_back(container("myreg.azurecr.io/app:v2", RegistryAuth::kManagedIdentity));
  auto back = rollbackConfig(site, {previous("myreg.azurecr.io/app:v1")});
  ASSERT_TRUE(back.ok()) << back.error().message;
  ASSERT_EQ(back->containers.size(), 1u);
  EXPECT_EQ(back->containers[0].image.str(), "myreg.azurecr.io/app:v1");
  ASSERT_TRUE(back->containers[0].resolve_at);
  EXPECT_EQ(back->containers[0].resolve_at->str(), kIndex);
  EXPECT_EQ(back->containers[0].auth, RegistryAuth::kManagedIdentity);
}

// The site moved from a public registry to a private one: rolling back must not send the
// private registry's password (or identity token) to the public one.
TEST(RollbackConfig, CredentialsNeverGoToAnotherRegistry) {
  for (auto auth : {RegistryAuth::kBasic, RegistryAuth::kManagedIdentity}) {
    SiteConfig site;
    site.containers.push_back(container("myreg.azurecr.io/app:v2", auth));
    auto back = rollbackConfig(site, {previous("docker.io/library/app:v1")});
    ASSERT_FALSE(back.ok());
    EXPECT_EQ(back.error().message,
              "the previous image of main is on docker.io, and the site's config now gives "
              "credentials for myreg.azurecr.io only; put the config back to roll back");
  }
  // Anonymous: nothing to send, so it may go back.
  SiteConfig site;
  site.containers.push_back(container("myreg.azurecr.io/app:v2", RegistryAuth::kAnonymous));
  EXPECT_TRUE(rollbackConfig(site, {previous("docker.io/library/app:v1")}).ok());
}

TEST(RollbackConfig, AContainerNoLongerInTheConfigIsRefused) {
  SiteConfig site;
  site.containers.push_back(container("myreg.azurecr.io/app:v2", RegistryAuth::kAnonymous));
  auto sidecar = previous("myreg.azurecr.io/cache:v1");
  sidecar.container = "cache";
  auto back = rollbackConfig(site, {previous("myreg.azurecr.io/app:v1"), sidecar});
  ASSERT_FALSE(back.ok());
  EXPECT_EQ(back.error().message,
            "the container cache of the previous unit is no longer in the site's config; put the "
            "config back to roll back");
}

}  // namespace
}  // namespace pullagent::agent
