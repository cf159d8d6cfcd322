#include "puller/pipeline/pull_sources.h"

#include <gtest/gtest.h>

#include "resolver/system_resolver.h"
#include "tests/support/fake_clock.h"
#include "tests/support/scripted_http.h"

namespace pullagent::puller {
namespace {

RegistryHost mirrorHost(const std::string& host) {
  RegistryHost mirror;
  mirror.host = host;
  mirror.config_file = "/etc/containerd/certs.d/reg.io/hosts.toml";
  return mirror;
}

class PullSourcesTest : public ::testing::Test {
 protected:
  PullSources::Inputs inputs(std::vector<RegistryHost> mirrors) {
    RegistryHost origin;
    origin.host = "reg.io";
    origin.origin = true;
    mirrors.push_back(origin);
    PullSources::Inputs in;
    in.hosts = std::move(mirrors);
    in.registry = "reg.io";
    in.origin_http = &http_;
    in.origin_credentials.username = "user";
    in.origin_credentials.password = Secret("origin-password");
    return in;
  }

  testing::FakeClock clock_;
  testing::ScriptedHttp http_;
};

TEST_F(PullSourcesTest, MirrorsComeFirstWithTheRegistryAsNsAndTheirOwnAnonymousAuthorizers) {
  auto mirror = mirrorHost("mirror.local:5000");
  mirror.capabilities = kCapabilityPull;
  mirror.headers = {{"X-Key", "k1"}, {"authorization", "Bearer mirror-own"}};
  auto made = PullSources::create(inputs({mirror}), clock_);
  ASSERT_TRUE(made.ok()) << made.error().describe();
  const auto& sources = made.value()->sources();
  ASSERT_EQ(sources.size(), 2u);
  EXPECT_EQ(sources[0].ns, "reg.io");
  EXPECT_TRUE(sources[0].pull);
  EXPECT_FALSE(sources[0].resolve);
  ASSERT_EQ(sources[0].headers.size(), 1u);  // the Authorization is not an ordinary header
  EXPECT_EQ(sources[0].headers[0].name, "X-Key");
  ASSERT_TRUE(sources[0].authorization);
  EXPECT_EQ(sources[0].authorization->revealForWire(), "Bearer mirror-own");
  EXPECT_TRUE(sources[1].origin);
  EXPECT_EQ(sources[1].ns, "");
  EXPECT_NE(sources[0].authorizer, sources[1].authorizer);
  EXPECT_EQ(made.value()->describe(),
            "mirror https://mirror.local:5000 (pull), origin https://reg.io");
}

TEST_F(PullSourcesTest, AnOriginsAuthorizationHeaderFromHostsTomlIsNotSentAsAHeader) {
  auto in = inputs({});
  in.hosts.back().headers = {{"Authorization", "Basic c2VjcmV0"}};
  auto made = PullSources::create(in, clock_);
  ASSERT_TRUE(made.ok());
  const auto& origin = made.value()->sources().back();
  EXPECT_TRUE(origin.headers.empty());
  EXPECT_FALSE(origin.authorization);  // the origin authenticates with the pull's credentials
}

TEST_F(PullSourcesTest, SkipVerifyIsRefusedUnlessAllowedAndNamesTheFile) {
  auto mirror = mirrorHost("mirror.local:5000");
  mirror.skip_verify = true;
  auto refused = PullSources::create(inputs({mirror}), clock_);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(refused.error().message.find("allowSkipVerify"), std::string::npos);
  EXPECT_NE(refused.error().message.find("/etc/containerd/certs.d/reg.io/hosts.toml"),
            std::string::npos);
}

TEST_F(PullSourcesTest, TlsSettingsOfTheOriginNeedAClientFactory) {
  auto in = inputs({});
  in.hosts.back().ca_files = {"/etc/certs/origin-ca.pem"};
  auto refused = PullSources::create(in, clock_);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("reg.io"), std::string::npos);
}

TEST_F(PullSourcesTest, AMirrorWhoseCaCannotBeReadIsLeftOutAndTheOriginServes) {
  resolver::SystemResolver resolver;
  HttpClientOptions options;
  options.resolver = &resolver;
  auto mirror = mirrorHost("mirror.local:5000");
  mirror.ca_files = {"/nonexistent/mirror-ca.pem"};
  auto in = inputs({mirror});
  in.http_options = &options;
  auto made = PullSources::create(in, clock_);
  ASSERT_TRUE(made.ok()) << made.error().describe();
  ASSERT_EQ(made.value()->sources().size(), 1u);
  EXPECT_TRUE(made.value()->sources()[0].origin);

  // The origin's own CA missing is the pull's error.
  auto origin_ca = inputs({});
  origin_ca.hosts.back().ca_files = {"/nonexistent/origin-ca.pem"};
  origin_ca.http_options = &options;
  auto failed = PullSources::create(origin_ca, clock_);
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.error().message.find("origin-ca.pem"), std::string::npos);
}

TEST_F(PullSourcesTest, APushOnlyHostIsLeftOutAndAnInsecureOriginIsPlainHttp) {
  auto push_only = mirrorHost("push.local");
  push_only.capabilities = kCapabilityPush;
  auto in = inputs({push_only});
  in.insecure_origin = true;
  auto made = PullSources::create(in, clock_);
  ASSERT_TRUE(made.ok());
  ASSERT_EQ(made.value()->sources().size(), 1u);
  EXPECT_EQ(made.value()->sources()[0].scheme, "http");
}

}  // namespace
}  // namespace pullagent::puller
