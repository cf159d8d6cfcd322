#include "agent/config/agent_config.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace pullagent::agent {
namespace {

TEST(AgentConfig, DefaultsWhenEmpty) {
  auto config = parseAgentConfig("{}", {});
  ASSERT_TRUE(config.ok()) << config.error().message;
  EXPECT_EQ(config->state_dir.root(), puller::StateDir::kDefaultRoot);
  EXPECT_EQ(config->identity.kind, IdentityEndpoint::Kind::kImds);
  EXPECT_EQ(config->acr_audience, "https://containerregistry.azure.net");
  EXPECT_EQ(config->storage, "auto");
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

TEST(AgentConfig, AnAppServiceIdentityWithoutAnEndpointTakesTheEnvironmentsNeverImds) {
  auto config = parseAgentConfig(
      R"({"identity": {"kind": "appService"}})",
      {{"IDENTITY_ENDPOINT", "http://localhost:4141/msi/token"}, {"IDENTITY_HEADER", "h"}});
  ASSERT_TRUE(config.ok()) << config.error().message;
  EXPECT_EQ(config->identity.url, "http://localhost:4141/msi/token");
  auto missing =
      parseAgentConfig(R"({"identity": {"kind": "appService"}})", {{"IDENTITY_HEADER", "h"}});
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("identity.endpoint"), std::string::npos)
      << missing.error().message;
}

TEST(AgentConfig, FieldsAndHostOverrides) {
  auto config = parseAgentConfig(
      R"({"stateDir":"/srv/pa","concurrency":8,"stallTimeoutSeconds":60,
          "hostOverrides":{"myreg.azurecr.io":["10.0.0.7","10.0.0.8"]}})",
      {});
  ASSERT_TRUE(config.ok()) << config.error().message;
  EXPECT_EQ(config->state_dir.root(), "/srv/pa");
  EXPECT_EQ(config->concurrency, 8);
  EXPECT_EQ(config->stall_timeout, std::chrono::seconds(60));
  EXPECT_EQ(config->host_overrides.at("myreg.azurecr.io").size(), 2u);
}

TEST(AgentConfig, DaemonFields) {
  auto config = parseAgentConfig(
      R"({"sitesDir":"/srv/sites","maxConcurrentPulls":3,"rescanIntervalSeconds":5,
          "retryInitialBackoffSeconds":2,"retryMaxBackoffSeconds":8,
          "metricsAddress":"unix:/run/pullagent/metrics.sock",
          "controlSocket":"/run/pa/control.sock","discardUnpackedLayers":true})",
      {});
  ASSERT_TRUE(config.ok()) << config.error().message;
  EXPECT_EQ(config->sites_dir, "/srv/sites");
  EXPECT_EQ(config->max_concurrent_pulls, 3);
  EXPECT_EQ(config->rescan_interval, std::chrono::seconds(5));
  EXPECT_EQ(config->retry_initial_backoff, std::chrono::seconds(2));
  EXPECT_EQ(config->retry_max_backoff, std::chrono::seconds(8));
  EXPECT_EQ(config->metrics_address, "unix:/run/pullagent/metrics.sock");
  EXPECT_EQ(config->control_socket, "/run/pa/control.sock");
  EXPECT_TRUE(config->discard_unpacked_layers);
  EXPECT_FALSE(parseAgentConfig("{}", {})->discard_unpacked_layers);
  auto inverted =
      parseAgentConfig(R"({"retryInitialBackoffSeconds":20,"retryMaxBackoffSeconds":8})", {});
  ASSERT_FALSE(inverted.ok());
  EXPECT_EQ(inverted.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(inverted.error().message.find("retryMaxBackoffSeconds"), std::string::npos);
}

TEST(AgentConfig, MirrorsAndRegistryBackPressure) {
  auto config = parseAgentConfig(
      R"({"registryHostsDir":"/etc/containerd/certs.d","allowSkipVerify":true,
          "maxRequestsPerRegistry":16,"shareRegistryThrottle":false})",
      {});
  ASSERT_TRUE(config.ok()) << config.error().message;
  EXPECT_EQ(config->registry_hosts_dir, "/etc/containerd/certs.d");
  EXPECT_TRUE(config->allow_skip_verify);
  EXPECT_EQ(config->max_requests_per_registry, 16);
  EXPECT_FALSE(config->share_registry_throttle);

  auto defaults = parseAgentConfig("{}", {});
  ASSERT_TRUE(defaults.ok());
  EXPECT_FALSE(defaults->registry_hosts_dir);
  EXPECT_FALSE(defaults->allow_skip_verify);
  EXPECT_EQ(defaults->max_requests_per_registry, 0);
  EXPECT_TRUE(defaults->share_registry_throttle);

  auto relative = parseAgentConfig(R"({"registryHostsDir":"certs.d"})", {});
  ASSERT_FALSE(relative.ok());
  EXPECT_NE(relative.error().message.find("registryHostsDir"), std::string::npos);
  EXPECT_NE(relative.error().message.find("certs.d"), std::string::npos);
  auto huge = parseAgentConfig(R"({"maxRequestsPerRegistry":5000})", {});
  ASSERT_FALSE(huge.ok());
  EXPECT_NE(huge.error().message.find("maxRequestsPerRegistry"), std::string::npos);
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
  for (const Case& c : {
           Case{R"({"stateDir": 5})", "stateDir: expected a string, got number 5"},
           Case{R"({"concurrency": 0})", "concurrency: expected a whole number from 1 to 64"},
           Case{R"({"concurrency": 1.5})", "concurrency: expected a whole number"},
           Case{R"({"retries": 18446744073709551615})", "retries: expected a whole number"},
           Case{R"({"identity": {"kind": "magic"}})",
                "identity.kind: expected \"imds\" or \"appService\""},
           Case{R"({"hostOverrides": {"a": []}})", "hostOverrides.a: expected a non-empty array"},
           Case{R"({"hostOverrides": {"a": ["10.0.0.300"]}})",
                "hostOverrides.a[0]: expected an IP address, got string \"10.0.0.300\""},
           Case{R"({"hostOverrides": {"a b": ["10.0.0.3"]}})", "is not a host name"},
           Case{R"({"vnetDnsServers": [null]})", "vnetDnsServers[0]: missing"},
           Case{R"({"stateDir": ""})", "stateDir: must be an absolute path"},
           Case{R"({"stateDir": "var/lib/x"})", "stateDir: must be an absolute path"},
           Case{R"({"stateDir": "/"})", "stateDir: must be a directory of its own"},
           Case{R"({"stateDir": "/var/.."})", "stateDir: must be a directory of its own"},
           Case{R"({"stateDir": "/var/../etc/x"})", "must not contain \"..\""},
           Case{R"({"sitesDir": "sites"})", "sitesDir: must be an absolute path"},
           Case{R"({"controlSocket": "c.sock"})", "controlSocket: must be an absolute path"},
           Case{R"({"webhookAddress": "0.0.0.0:8099"})", "webhookSecret: must be set"},
           Case{R"({"webhookAddress": "0.0.0.0:8099", "webhookSecret": "short"})",
                "webhookSecret: must be set, 16 characters or more"},
           Case{R"({"maxConcurrentPulls": 4, "maxRunningPulls": 2})", "maxRunningPulls"},
           Case{R"({"storage": "zfs"})",
                "storage: expected \"auto\", \"overlay\" or \"flat\", got \"zfs\""},
           Case{"[", "not valid JSON"},
           Case{R"({"diskLowWatermarkPercent": 90})",
                "diskLowWatermarkPercent: must be below diskHighWatermarkPercent (85), got 90"},
           Case{R"({"stateDirHighWatermarkBytes": 100})",
                "stateDirLowWatermarkBytes: must be set with stateDirHighWatermarkBytes"},
           Case{R"({"stateDirHighWatermarkBytes": 100, "stateDirLowWatermarkBytes": 100})",
                "stateDirLowWatermarkBytes: must be below stateDirHighWatermarkBytes (100)"},
           Case{R"({"keepPreviousImages": 11})", "keepPreviousImages: expected a whole number"},
           Case{R"({"warmImages": [{"image": "Bad/Ref"}]})", "warmImages[0].image"},
           Case{R"({"warmImages": [{"image": "r.io/a:1", "managedIdentity": "system",
                                    "username": "u", "passwordFile": "/p"}]})",
                "two ways to sign in"},
           Case{R"({"warmImages": [{"image": "r.io/a:1", "username": "u"}]})",
                "username and passwordFile go together"},
           Case{R"({"warmImages": [{"image": "r.io/a:1", "username": "u", "passwordFile": "p"}]})",
                "warmImages[0].passwordFile: must be an absolute path"},
           Case{R"({"warmImages": [{"image": "r.io/a:1"}, {"image": "r.io/a:1"}]})",
                "is listed twice"},
           Case{R"({"additionalStores": [{"path": "seed", "registries": ["r.io"]}]})",
                "additionalStores[0].path: must be an absolute path"},
           Case{R"({"additionalStores": [{"path": "/seed", "registries": []}]})",
                "additionalStores[0].registries: name the registries"},
           Case{R"({"additionalStores": [{"path": "/seed", "registries": ["a b"]}]})",
                "not a registry host"},
           Case{R"({"additionalStores": [{"path": "/var/lib/pullagent", "registries": ["r.io"]}]})",
                "is the state dir itself"},
           Case{R"({"warmImages": [{"image": "r.io/a:1", "password": "x"}]})",
                "warmImages[0].password: is not a setting of a warm image"},
       }) {
    auto config = parseAgentConfig(c.text, {});
    ASSERT_FALSE(config.ok()) << c.text;
    EXPECT_EQ(config.error().code, ErrorCode::kInvalidArgument) << c.text;
    EXPECT_NE(config.error().message.find(c.message), std::string::npos) << config.error().message;
  }
}

TEST(AgentConfig, DiskSettingsAndWarmImages) {
  auto config = parseAgentConfig(R"({
    "diskHighWatermarkPercent": 90, "diskLowWatermarkPercent": 70,
    "stateDirHighWatermarkBytes": 1000, "stateDirLowWatermarkBytes": 800,
    "diskCheckIntervalSeconds": 5, "keepPreviousImages": 3,
    "warmImages": [{"image": "mcr.microsoft.com/appsvc/staticsite:latest"},
                   {"image": "myreg.azurecr.io/base:1", "managedIdentity": "system"},
                   {"image": "myreg.azurecr.io/base:2", "managedIdentity": "1111-2222"},
                   {"image": "reg.io/x@sha256:)" +
                                     std::string(64, 'a') + R"(",
                    "username": "u", "passwordFile": "/etc/pullagent/x.password"}]})",
                                 {});
  ASSERT_TRUE(config.ok()) << config.error().message;
  EXPECT_EQ(config->disk_watermarks.high_percent, 90);
  EXPECT_EQ(config->disk_watermarks.low_percent, 70);
  EXPECT_EQ(config->disk_watermarks.high_bytes, 1000);
  EXPECT_EQ(config->disk_watermarks.low_bytes, 800);
  EXPECT_EQ(config->disk_check_interval, std::chrono::seconds(5));
  EXPECT_EQ(config->keep_previous_images, 3);
  ASSERT_EQ(config->warm_images.size(), 4u);
  EXPECT_EQ(config->warm_images[0].auth, WarmImageConfig::Auth::kAnonymous);
  EXPECT_EQ(config->warm_images[1].auth, WarmImageConfig::Auth::kManagedIdentity);
  EXPECT_EQ(config->warm_images[1].identity_client_id, "");
  EXPECT_EQ(config->warm_images[2].identity_client_id, "1111-2222");
  EXPECT_EQ(config->warm_images[3].auth, WarmImageConfig::Auth::kBasic);
  EXPECT_EQ(config->warm_images[3].password_file, "/etc/pullagent/x.password");
  EXPECT_TRUE(config->warm_images[3].ref.digest.has_value());
  auto stores = parseAgentConfig(
      R"({"additionalStores": [{"path": "/srv/seed/", "registries": ["myreg.azurecr.io", "reg:5000"]}]})",
      {});
  ASSERT_TRUE(stores.ok()) << stores.error().message;
  ASSERT_EQ(stores->additional_stores.size(), 1u);
  EXPECT_EQ(stores->additional_stores[0].root, "/srv/seed/");
  EXPECT_TRUE(stores->additional_stores[0].serves("reg:5000"));
  EXPECT_FALSE(stores->additional_stores[0].serves("other.io"));
}

TEST(AgentConfig, DeeplyNestedValuesAreRefusedWithoutRecursion) {
  // A million levels: parsing, printing or destroying that recursively would overflow the stack.
  std::string text =
      R"({"hostOverrides": )" + std::string(1000000, '[') + std::string(1000000, ']') + "}";
  auto config = parseAgentConfig(text, {});
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(config.error().message.find("nested deeper than"), std::string::npos);
}

TEST(AgentConfig, TimeBoundsAndFairness) {
  auto defaults = parseAgentConfig("{}", {});
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(defaults->min_transfer_rate, 8192);
  EXPECT_EQ(defaults->document_timeout, std::chrono::seconds(60));
  EXPECT_EQ(defaults->attempt_deadline, std::chrono::seconds(1800));
  EXPECT_EQ(defaults->pull_slot, std::chrono::seconds(60));
  EXPECT_EQ(defaults->pull_slot_idle, std::chrono::seconds(2));
  EXPECT_EQ(defaults->shared_blob_proof, "head");
  EXPECT_EQ(defaults->max_running_pulls, 8);
  auto config = parseAgentConfig(
      R"({"minTransferRateBytesPerSecond": 1000, "documentTimeoutSeconds": 5,
          "attemptDeadlineSeconds": 90, "pullSlotSeconds": 7, "maxConcurrentPulls": 3,
          "pullSlotIdleSeconds": 4, "sharedBlobProof": "fetch"})",
      {});
  ASSERT_TRUE(config.ok()) << config.error().message;
  EXPECT_EQ(config->min_transfer_rate, 1000);
  EXPECT_EQ(config->document_timeout, std::chrono::seconds(5));
  EXPECT_EQ(config->attempt_deadline, std::chrono::seconds(90));
  EXPECT_EQ(config->pull_slot, std::chrono::seconds(7));
  EXPECT_EQ(config->pull_slot_idle, std::chrono::seconds(4));
  EXPECT_EQ(config->shared_blob_proof, "fetch");
  EXPECT_EQ(config->max_running_pulls, 12);  // four times maxConcurrentPulls unless set
  auto wrong = parseAgentConfig(R"({"sharedBlobProof": "ranges"})", {});
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.error().message.find("sharedBlobProof"), std::string::npos)
      << wrong.error().message;
}

}  // namespace
}  // namespace pullagent::agent
