#include "agent/config/agent_config.h"

#include <gtest/gtest.h>

namespace pullagent::agent {
namespace {

TEST(AgentConfig, DefaultsWhenEmpty) {
  auto config = parseAgentConfig("{}", {});
  ASSERT_TRUE(config.ok()) << config.error().message;
  EXPECT_EQ(config->state_dir, "/var/lib/pullagent");
  EXPECT_EQ(config->identity.kind, IdentityEndpoint::Kind::kImds);
  EXPECT_EQ(config->acr_audience, "https://containerregistry.azure.net");
}

TEST(AgentConfig, AppServiceEndpointFromTheEnvironment) {
  auto config = parseAgentConfig(
      "{}", {{"IDENTITY_ENDPOINT", "http://localhost:4141/msi/token"}, {"IDENTITY_HEADER", "h"}});
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->identity.kind, IdentityEndpoint::Kind::kAppService);
  EXPECT_EQ(config->identity.url, "http://localhost:4141/msi/token");
  EXPECT_EQ(config->identity.header.revealForWire(), "h");
  EXPECT_FALSE(parseAgentConfig("{}", {{"IDENTITY_ENDPOINT", "http://x"}}).ok());
}

TEST(AgentConfig, FieldsAndHostOverrides) {
  auto config = parseAgentConfig(
      R"({"stateDir":"/srv/pa","concurrency":8,"stallTimeoutSeconds":60,
          "hostOverrides":{"myreg.azurecr.io":["10.0.0.7","10.0.0.8"]}})",
      {});
  ASSERT_TRUE(config.ok()) << config.error().message;
  EXPECT_EQ(config->state_dir, "/srv/pa");
  EXPECT_EQ(config->concurrency, 8);
  EXPECT_EQ(config->stall_timeout, std::chrono::seconds(60));
  EXPECT_EQ(config->host_overrides.at("myreg.azurecr.io").size(), 2u);
}

TEST(AgentConfig, ErrorsNameThePathAndValue) {
  struct Case {
    const char* text;
    const char* message;
  };
  for (const Case& c :
       {Case{R"({"stateDir": 5})", "stateDir: expected a string, got 5"},
        Case{R"({"concurrency": 0})", "concurrency: expected a positive whole number, got 0"},
        Case{R"({"identity": {"kind": "magic"}})",
             "identity.kind: expected \"imds\" or \"appService\""},
        Case{R"({"hostOverrides": {"a": []}})", "hostOverrides.a: expected a non-empty array"},
        Case{"[", "not valid JSON"}}) {
    auto config = parseAgentConfig(c.text, {});
    ASSERT_FALSE(config.ok()) << c.text;
    EXPECT_NE(config.error().message.find(c.message), std::string::npos) << config.error().message;
  }
}

}  // namespace
}  // namespace pullagent::agent
