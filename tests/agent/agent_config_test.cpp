#include "agent/config/agent_config.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

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

TEST(AgentConfig, DaemonFields) {
  auto config = parseAgentConfig(
      R"({"sitesDir":"/srv/sites","maxConcurrentPulls":3,"rescanIntervalSeconds":5,
          "retryInitialBackoffSeconds":2,"retryMaxBackoffSeconds":8,
          "metricsAddress":"unix:/run/pullagent/metrics.sock"})",
      {});
  ASSERT_TRUE(config.ok()) << config.error().message;
  EXPECT_EQ(config->sites_dir, "/srv/sites");
  EXPECT_EQ(config->max_concurrent_pulls, 3);
  EXPECT_EQ(config->rescan_interval, std::chrono::seconds(5));
  EXPECT_EQ(config->retry_initial_backoff, std::chrono::seconds(2));
  EXPECT_EQ(config->retry_max_backoff, std::chrono::seconds(8));
  EXPECT_EQ(config->metrics_address, "unix:/run/pullagent/metrics.sock");
  auto inverted =
      parseAgentConfig(R"({"retryInitialBackoffSeconds":20,"retryMaxBackoffSeconds":8})", {});
  ASSERT_FALSE(inverted.ok());
  EXPECT_NE(inverted.error().message.find("retryMaxBackoffSeconds"), std::string::npos);
}

TEST(AgentConfig, TheShippedExampleParses) {
  std::ifstream in(std::string(PULLAGENT_SOURCE_DIR) + "/systemd/agent.example.json");
  ASSERT_TRUE(in.good());
  std::stringstream text;
  text << in.rdbuf();
  auto config = parseAgentConfig(text.str(), {});
  ASSERT_TRUE(config.ok()) << config.error().message;
  EXPECT_EQ(config->sites_dir, "/etc/pullagent/sites");
  EXPECT_EQ(config->metrics_address, "127.0.0.1:9464");
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
