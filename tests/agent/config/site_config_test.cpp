#include "agent/config/site_config.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "agent/site/site_pull.h"

namespace pullagent::agent {
namespace {

using nlohmann::json;

// The seed's ARM template with a user-assigned identity (shared/seed).
json armManagedIdentity() {
  return {{"name", "secureacrweb2021"},
          {"type", "Microsoft.Web/sites"},
          {"properties",
           {{"serverFarmId", "/subscriptions/x/plan"},
            {"siteConfig",
             {{"acrUseManagedIdentityCreds", true},
              {"acrUserManagedIdentityID", "11111111-2222-3333-4444-555555555555"},
              {"linuxFxVersion", "DOCKER|secureacr2021.azurecr.io/privatewebsite:lnx-v1"}}},
            {"vnetImagePullEnabled", true},
            {"httpsOnly", true}}},
          {"identity", {{"type", "UserAssigned"}}}};
}

// The seed's credentials variant: app settings in siteConfig, DOCKER| with a host-less image.
json armCredentials(json settings) {
  return {{"properties",
           {{"siteConfig",
             {{"linuxFxVersion", "DOCKER|privatewebsite:lnx-v1"}, {"appSettings", settings}}}}}};
}

json credentialSettings() {
  return json::array(
      {{{"name", "DOCKER_REGISTRY_SERVER_URL"}, {"value", "https://secureacr2021.azurecr.io"}},
       {{"name", "DOCKER_REGISTRY_SERVER_USERNAME"}, {"value", "secureacr2021"}},
       {{"name", "DOCKER_REGISTRY_SERVER_PASSWORD"}, {"value", "p4ssw0rd"}}});
}

TEST(SiteConfig, ArmTemplateWithUserAssignedIdentity) {
  auto site = parseSiteConfig(armManagedIdentity().dump());
  ASSERT_TRUE(site.ok()) << site.error().message;
  EXPECT_EQ(site->name, "secureacrweb2021");
  EXPECT_EQ(site->main().image.str(), "secureacr2021.azurecr.io/privatewebsite:lnx-v1");
  EXPECT_EQ(site->main().auth, RegistryAuth::kManagedIdentity);
  EXPECT_EQ(site->main().identity_client_id, "11111111-2222-3333-4444-555555555555");
  EXPECT_TRUE(site->pull_over_vnet);
}

TEST(SiteConfig, PublishingCredentialsKeyTheSitesOwnWebhook) {
  json site = armManagedIdentity();
  EXPECT_FALSE(parseSiteConfig(site.dump())->publishing.has_value());
  const std::string password = "Zx8kQ1rT7vB2nM5pL0aS3dF6gH9jK4wE";
  site["publishingCredentials"] = {{"name", "secureacrweb2021"},
                                   {"publishingUserName", "$secureacrweb2021"},
                                   {"publishingPassword", password}};
  auto parsed = parseSiteConfig(site.dump());
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  ASSERT_TRUE(parsed->publishing.has_value());
  EXPECT_EQ(parsed->publishing->user, "$secureacrweb2021");
  EXPECT_EQ(parsed->publishing->password.revealForWire(), password);
  // A guessable password is refused, naming the path and never the value.
  site["publishingCredentials"]["publishingPassword"] = "short-pass";
  auto weak = parseSiteConfig(site.dump());
  ASSERT_FALSE(weak.ok());
  EXPECT_NE(weak.error().message.find("publishingCredentials.publishingPassword"),
            std::string::npos)
      << weak.error().message;
  EXPECT_EQ(weak.error().message.find("short-pass"), std::string::npos) << weak.error().message;
  site["publishingCredentials"]["publishingPassword"] = 12345;
  weak = parseSiteConfig(site.dump());
  ASSERT_FALSE(weak.ok());
  EXPECT_EQ(weak.error().message.find("12345"), std::string::npos) << weak.error().message;
}

TEST(SiteConfig, SystemAssignedWhenNoClientId) {
  json doc = armManagedIdentity();
  doc["properties"]["siteConfig"].erase("acrUserManagedIdentityID");
  doc["identity"]["type"] = "SystemAssigned, UserAssigned";
  auto site = parseSiteConfig(doc.dump());
  ASSERT_TRUE(site.ok()) << site.error().message;
  EXPECT_EQ(site->main().auth, RegistryAuth::kManagedIdentity);
  EXPECT_EQ(site->main().identity_client_id, "");
  // The system-assigned identity the site does not have: said before any pull.
  doc["identity"]["type"] = "UserAssigned";
  site = parseSiteConfig(doc.dump());
  ASSERT_FALSE(site.ok());
  EXPECT_NE(site.error().message.find("system-assigned identity, but the site has none"),
            std::string::npos)
      << site.error().message;
}

TEST(SiteConfig, CredentialsFromAppSettingsAndRegistryFromTheServerUrl) {
  auto site = parseSiteConfig(armCredentials(credentialSettings()).dump());
  ASSERT_TRUE(site.ok()) << site.error().message;
  EXPECT_EQ(site->main().auth, RegistryAuth::kBasic);
  EXPECT_EQ(site->main().image.str(), "secureacr2021.azurecr.io/privatewebsite:lnx-v1");
  EXPECT_EQ(site->main().registry_username->literal.revealForWire(), "secureacr2021");
  EXPECT_EQ(site->main().registry_password->literal.revealForWire(), "p4ssw0rd");
  EXPECT_FALSE(site->main().registry_password->key_vault.has_value());
  EXPECT_FALSE(site->pull_over_vnet);
}

TEST(SiteConfig, AppSettingsAsAnObjectAndFlattenedAzShape) {
  json doc = {{"name", "app"},
              {"vnetImagePullEnabled", false},
              {"siteConfig", {{"linuxFxVersion", "Docker|nginx:1.25"}}},
              {"appSettings",
               {{"WEBSITE_PULL_IMAGE_OVER_VNET", "1"},
                {"WEBSITE_DNS_SERVER", "10.0.0.4"},
                {"WEBSITE_DNS_ALT_SERVER", "10.0.0.5:53"}}}};
  auto site = parseSiteConfig(doc.dump());
  ASSERT_TRUE(site.ok()) << site.error().message;
  EXPECT_EQ(site->main().image.str(), "docker.io/library/nginx:1.25");
  EXPECT_EQ(site->main().auth, RegistryAuth::kAnonymous);
  EXPECT_TRUE(site->pull_over_vnet);  // the legacy app setting, "1" too
  EXPECT_EQ(site->route_decided_by, "app setting WEBSITE_PULL_IMAGE_OVER_VNET");
  EXPECT_EQ(site->dns.servers, std::vector<std::string>{"10.0.0.4"});
  EXPECT_EQ(site->dns.alt_server, "10.0.0.5:53");
}

// A site with its siteConfig and whatever `extra` adds to properties / app settings.
json routedSite(const json& properties, const json& settings = json::object()) {
  json doc = {
      {"properties",
       {{"siteConfig",
         {{"linuxFxVersion", "DOCKER|myreg.azurecr.io/app:v1"}, {"appSettings", settings}}}}}};
  for (const auto& [key, value] : properties.items())
    doc["properties"][key] = value;
  return doc;
}

TEST(SiteRoute, EachSettingTurnsVnetPullsOnAndTheNewestThatDoesIsNamed) {
  struct Case {
    json properties;
    json settings;
    bool vnet;
    std::string decided_by;
  };
  const json legacy = {{"WEBSITE_PULL_IMAGE_OVER_VNET", "true"}};
  const std::vector<Case> cases = {
      {json::object(), json::object(), false, ""},
      {json::object(), legacy, true, "app setting WEBSITE_PULL_IMAGE_OVER_VNET"},
      {{{"vnetImagePullEnabled", true}}, legacy, true, "properties.vnetImagePullEnabled"},
      {{{"outboundVnetRouting", {{"imagePullTraffic", true}}}, {"vnetImagePullEnabled", true}},
       legacy,
       true,
       "properties.outboundVnetRouting.imagePullTraffic"},
      {{{"outboundVnetRouting", {{"allTraffic", true}, {"imagePullTraffic", true}}}},
       json::object(),
       true,
       "properties.outboundVnetRouting.allTraffic"},
      {{{"publicNetworkAccess", "SecuredByPerimeter"},
        {"outboundVnetRouting", {{"allTraffic", true}}}},
       json::object(),
       true,
       "properties.publicNetworkAccess SecuredByPerimeter"},
      // Settings that are off decide nothing: a newer one at false does not undo an older one.
      {{{"outboundVnetRouting", {{"allTraffic", false}, {"imagePullTraffic", false}}},
        {"publicNetworkAccess", "Enabled"}},
       legacy,
       true,
       "app setting WEBSITE_PULL_IMAGE_OVER_VNET"},
      {{{"outboundVnetRouting", {{"applicationTraffic", true}}}}, json::object(), false, ""},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.properties.dump() + " " + c.settings.dump());
    auto site = parseSiteConfig(routedSite(c.properties, c.settings).dump());
    ASSERT_TRUE(site.ok()) << site.error().message;
    EXPECT_EQ(site->pull_over_vnet, c.vnet);
    EXPECT_EQ(site->route_decided_by, c.decided_by);
  }
  auto wrong = parseSiteConfig(routedSite({{"outboundVnetRouting", true}}).dump());
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.error().message.find("properties.outboundVnetRouting"), std::string::npos);
}

TEST(SiteDns, DnsConfigurationFieldsOverTheirAppSettings) {
  const json settings = {{"WEBSITE_DNS_SERVER", "10.0.0.4"},
                         {"WEBSITE_DNS_ALT_SERVER", "10.0.0.5"},
                         {"WEBSITE_DNS_ATTEMPTS", "4"},
                         {"WEBSITE_DNS_TIMEOUT", "7"}};
  auto from_settings = parseSiteConfig(routedSite(json::object(), settings).dump());
  ASSERT_TRUE(from_settings.ok()) << from_settings.error().message;
  EXPECT_EQ(from_settings->dns.servers, std::vector<std::string>{"10.0.0.4"});
  EXPECT_EQ(from_settings->dns.alt_server, "10.0.0.5");
  EXPECT_EQ(from_settings->dns.attempts, 4);
  EXPECT_EQ(from_settings->dns.timeout_seconds, 7);

  auto from_property =
      parseSiteConfig(routedSite({{"dnsConfiguration",
                                   {{"dnsServers", {"10.1.0.10", "10.1.0.11:5353"}},
                                    {"dnsAltServer", "10.1.0.12"},
                                    {"dnsRetryAttemptCount", 2},
                                    {"dnsRetryAttemptTimeout", 3},
                                    {"dnsMaxCacheTimeout", 30}}}},
                                 settings)
                          .dump());
  ASSERT_TRUE(from_property.ok()) << from_property.error().message;
  EXPECT_EQ(from_property->dns.servers, (std::vector<std::string>{"10.1.0.10", "10.1.0.11:5353"}));
  EXPECT_EQ(from_property->dns.alt_server, "10.1.0.12");
  EXPECT_EQ(from_property->dns.attempts, 2);
  EXPECT_EQ(from_property->dns.timeout_seconds, 3);
  EXPECT_EQ(from_property->dns.decided_by.front(), "properties.dnsConfiguration.dnsServers");

  // Field by field: an empty dnsServers leaves WEBSITE_DNS_SERVER in force.
  auto mixed = parseSiteConfig(
      routedSite(
          {{"dnsConfiguration", {{"dnsServers", json::array()}, {"dnsRetryAttemptCount", 1}}}},
          settings)
          .dump());
  ASSERT_TRUE(mixed.ok()) << mixed.error().message;
  EXPECT_EQ(mixed->dns.servers, std::vector<std::string>{"10.0.0.4"});
  EXPECT_EQ(mixed->dns.attempts, 1);
  EXPECT_EQ(mixed->dns.timeout_seconds, 7);
}

TEST(SiteDns, OutOfRangeOrMalformedValuesNameTheirPathAndValue) {
  auto too_many =
      parseSiteConfig(routedSite({{"dnsConfiguration", {{"dnsRetryAttemptCount", 9}}}}).dump());
  ASSERT_FALSE(too_many.ok());
  EXPECT_NE(too_many.error().message.find("properties.dnsConfiguration.dnsRetryAttemptCount"),
            std::string::npos);
  EXPECT_NE(too_many.error().message.find("9"), std::string::npos);
  auto bad_server = parseSiteConfig(
      routedSite({{"dnsConfiguration", {{"dnsServers", {"10.0.0.1", "not an address"}}}}}).dump());
  ASSERT_FALSE(bad_server.ok());
  EXPECT_NE(bad_server.error().message.find("dnsServers[1]"), std::string::npos);
  auto bad_setting =
      parseSiteConfig(routedSite(json::object(), {{"WEBSITE_DNS_TIMEOUT", "soon"}}).dump());
  ASSERT_FALSE(bad_setting.ok());
  EXPECT_NE(bad_setting.error().message.find("WEBSITE_DNS_TIMEOUT"), std::string::npos);
  EXPECT_NE(bad_setting.error().message.find("soon"), std::string::npos);
}

TEST(SiteConfig, DockerHubServerUrlDoesNotPrefixTheImage) {
  json settings = json::array(
      {{{"name", "DOCKER_REGISTRY_SERVER_URL"}, {"value", "https://index.docker.io/v1/"}},
       {{"name", "DOCKER_REGISTRY_SERVER_USERNAME"}, {"value", "me"}},
       {{"name", "DOCKER_REGISTRY_SERVER_PASSWORD"}, {"value", "pat"}}});
  auto site = parseSiteConfig(armCredentials(settings).dump());
  ASSERT_TRUE(site.ok()) << site.error().message;
  EXPECT_EQ(site->main().image.domain, "docker.io");
  EXPECT_EQ(site->main().image.repository, "library/privatewebsite");
}

TEST(SiteConfig, KeyVaultReferencesAreRecognised) {
  json settings = credentialSettings();
  settings[2]["value"] = "@Microsoft.KeyVault(VaultName=myvault;SecretName=acr-password)";
  json doc = armCredentials(settings);
  doc["properties"]["keyVaultReferenceIdentity"] =
      "/subscriptions/s/resourceGroups/r/providers/Microsoft.ManagedIdentity/"
      "userAssignedIdentities/id";
  auto site = parseSiteConfig(doc.dump());
  ASSERT_TRUE(site.ok()) << site.error().message;
  ASSERT_TRUE(site->main().registry_password->key_vault.has_value());
  EXPECT_EQ(site->main().registry_password->key_vault->secret_name, "acr-password");
  EXPECT_NE(site->key_vault_identity.find("userAssignedIdentities/id"), std::string::npos);
}

TEST(SiteConfig, CredentialsAreNotSentToAnotherRegistry) {
  json settings = credentialSettings();
  json doc = armCredentials(settings);
  doc["properties"]["siteConfig"]["linuxFxVersion"] = "DOCKER|evil.example.com/app:v1";
  auto site = parseSiteConfig(doc.dump());
  ASSERT_FALSE(site.ok());
  EXPECT_EQ(site.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(site.error().message.find("not sent to another registry"), std::string::npos);
}

struct Rejection {
  std::string name;
  std::function<void(json&)> mutate;
  std::string message;  // a part of the error message: the JSON path, the value, the advice
  ErrorCode code = ErrorCode::kInvalidArgument;
  friend void PrintTo(const Rejection& c, std::ostream* out) { *out << c.name; }
};

class SiteConfigRejects : public ::testing::TestWithParam<Rejection> {};

TEST_P(SiteConfigRejects, NamingThePathAndValue) {
  json doc = armManagedIdentity();
  GetParam().mutate(doc);
  auto site = parseSiteConfig(doc.dump());
  ASSERT_FALSE(site.ok());
  EXPECT_EQ(site.error().code, GetParam().code) << site.error().message;
  EXPECT_NE(site.error().message.find(GetParam().message), std::string::npos)
      << site.error().message;
}

INSTANTIATE_TEST_SUITE_P(
    Table, SiteConfigRejects,
    ::testing::Values(
        Rejection{"fx_wrong_type",
                  [](json& d) { d["properties"]["siteConfig"]["linuxFxVersion"] = 5; },
                  "properties.siteConfig.linuxFxVersion: expected a string, got number 5"},
        Rejection{"fx_missing",
                  [](json& d) { d["properties"]["siteConfig"].erase("linuxFxVersion"); },
                  "properties.siteConfig.linuxFxVersion: missing"},
        Rejection{"site_config_missing", [](json& d) { d["properties"].erase("siteConfig"); },
                  "properties.siteConfig: missing"},
        Rejection{
            "mi_flag_wrong_type",
            [](json& d) { d["properties"]["siteConfig"]["acrUseManagedIdentityCreds"] = "yes"; },
            "properties.siteConfig.acrUseManagedIdentityCreds: expected true or false, got "
            "string \"yes\""},
        Rejection{"vnet_wrong_type", [](json& d) { d["properties"]["vnetImagePullEnabled"] = 1; },
                  "properties.vnetImagePullEnabled: expected true or false, got number 1"},
        Rejection{"compose_not_base64",
                  [](json& d) {
                    d["properties"]["siteConfig"]["linuxFxVersion"] = "COMPOSE|not base64!";
                  },
                  "COMPOSE| must be followed by the base64 of a Compose file"},
        Rejection{
            "sitecontainers_missing",
            [](json& d) { d["properties"]["siteConfig"]["linuxFxVersion"] = "SITECONTAINERS"; },
            "sitecontainers: missing: a SITECONTAINERS site needs its containers"},
        Rejection{"kube",
                  [](json& d) { d["properties"]["siteConfig"]["linuxFxVersion"] = "KUBE|eA=="; },
                  "Kubernetes (KUBE|) sites are not supported", ErrorCode::kUnsupported},
        Rejection{"runtime_stack",
                  [](json& d) { d["properties"]["siteConfig"]["linuxFxVersion"] = "NODE|18-lts"; },
                  "\"NODE|18-lts\" is a built-in runtime stack, not a container image",
                  ErrorCode::kUnsupported},
        Rejection{"empty_image",
                  [](json& d) { d["properties"]["siteConfig"]["linuxFxVersion"] = "DOCKER|"; },
                  "names no image"},
        Rejection{"bad_image",
                  [](json& d) {
                    d["properties"]["siteConfig"]["linuxFxVersion"] = "DOCKER|reg.io/App:v1";
                  },
                  "properties.siteConfig.linuxFxVersion: invalid image reference"},
        Rejection{"settings_wrong_type",
                  [](json& d) { d["properties"]["siteConfig"]["appSettings"] = json::array({5}); },
                  "properties.siteConfig.appSettings[0]: expected an object"},
        Rejection{"setting_without_name",
                  [](json& d) {
                    d["properties"]["siteConfig"]["appSettings"] = json::array({{{"value", "x"}}});
                  },
                  "properties.siteConfig.appSettings[0].name: missing"},
        Rejection{"duplicate_setting",
                  [](json& d) {
                    d["properties"]["siteConfig"]["appSettings"] = json::array(
                        {{{"name", "A"}, {"value", "1"}}, {{"name", "a"}, {"value", "2"}}});
                  },
                  "app setting \"a\" is given twice"},
        Rejection{"password_without_user",
                  [](json& d) {
                    d["properties"]["siteConfig"]["acrUseManagedIdentityCreds"] = false;
                    d["properties"]["siteConfig"]["appSettings"] = json::array(
                        {{{"name", "DOCKER_REGISTRY_SERVER_PASSWORD"}, {"value", "x"}}});
                  },
                  "DOCKER_REGISTRY_SERVER_USERNAME is missing"},
        Rejection{"bad_key_vault_reference",
                  [](json& d) {
                    d["properties"]["siteConfig"]["acrUseManagedIdentityCreds"] = false;
                    d["properties"]["siteConfig"]["appSettings"] =
                        json::array({{{"name", "DOCKER_REGISTRY_SERVER_USERNAME"}, {"value", "u"}},
                                     {{"name", "DOCKER_REGISTRY_SERVER_PASSWORD"},
                                      {"value", "@Microsoft.KeyVault(VaultName=v)"}}});
                  },
                  "properties.siteConfig.appSettings[1].value: invalid Key Vault reference"},
        Rejection{"state_wrong_type", [](json& d) { d["properties"]["state"] = false; },
                  "properties.state: expected a string, got boolean false"},
        Rejection{"start_time_limit_too_long",
                  [](json& d) {
                    d["properties"]["siteConfig"]["appSettings"] = json::array(
                        {{{"name", "WEBSITES_CONTAINER_START_TIME_LIMIT"}, {"value", "1801"}}});
                  },
                  "app setting WEBSITES_CONTAINER_START_TIME_LIMIT must be a whole number from 1 "
                  "to 1800, got \"1801\""},
        Rejection{"not_json", [](json& d) { d = "[1,2"; }, "expected an object"}));

// "state": "Stopped" (ARM's properties.state, or the flattened `az webapp show` top level),
// read both by the full parser and by the cheap check the service runs on every scan.
TEST(SiteConfig, AStoppedSiteIsSeenInEveryShape) {
  json arm = armManagedIdentity();
  EXPECT_FALSE(parseSiteConfig(arm.dump())->stopped);
  EXPECT_FALSE(siteStoppedIn(arm.dump()));
  arm["properties"]["state"] = "Stopped";
  EXPECT_TRUE(parseSiteConfig(arm.dump())->stopped);
  EXPECT_TRUE(siteStoppedIn(arm.dump()));
  arm["properties"]["state"] = "Running";
  EXPECT_FALSE(siteStoppedIn(arm.dump()));

  json flat = {{"state", "stopped"}, {"siteConfig", {{"linuxFxVersion", "DOCKER|reg.io/app:v1"}}}};
  EXPECT_TRUE(parseSiteConfig(flat.dump())->stopped);
  EXPECT_TRUE(siteStoppedIn(flat.dump()));
  // What does not parse is not stopped: its attempt says what is wrong.
  EXPECT_FALSE(siteStoppedIn("{\"state\": \"Stopped\""));
  EXPECT_FALSE(siteStoppedIn("{\"state\": 5}"));
}

TEST(SiteConfig, TheStartTimeLimitBoundsTheAttemptWhenShorter) {
  json doc = armCredentials(credentialSettings());
  AgentConfig agent;
  auto plain = parseSiteConfig(doc.dump());
  ASSERT_TRUE(plain.ok()) << plain.error().message;
  EXPECT_FALSE(plain->start_time_limit.has_value());
  EXPECT_EQ(attemptBudget(agent, *plain).seconds, std::chrono::seconds(1800));
  EXPECT_EQ(attemptBudget(agent, *plain).said, "attemptDeadlineSeconds = 1800 s");

  doc["properties"]["siteConfig"]["appSettings"].push_back(
      {{"name", "WEBSITES_CONTAINER_START_TIME_LIMIT"}, {"value", "230"}});
  auto limited = parseSiteConfig(doc.dump());
  ASSERT_TRUE(limited.ok()) << limited.error().message;
  EXPECT_EQ(limited->start_time_limit, std::chrono::seconds(230));
  EXPECT_EQ(attemptBudget(agent, *limited).seconds, std::chrono::seconds(230));
  EXPECT_EQ(attemptBudget(agent, *limited).said, "WEBSITES_CONTAINER_START_TIME_LIMIT = 230 s");
  agent.attempt_deadline = std::chrono::seconds(100);  // the agent's bound is shorter
  EXPECT_EQ(attemptBudget(agent, *limited).seconds, std::chrono::seconds(100));
}

TEST(SiteConfig, InvalidJsonIsSaidSo) {
  auto site = parseSiteConfig("{\"properties\": ");
  ASSERT_FALSE(site.ok());
  EXPECT_EQ(site.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(site.error().message.find("not valid JSON"), std::string::npos);
}

TEST(SiteConfig, APasswordOfTheWrongTypeIsNamedButNeverShown) {
  for (const json& password :
       {json::array({"p4ssw0rd"}), json(31415926), json({{"x", "p4ssw0rd"}})}) {
    json settings = credentialSettings();
    settings[2]["value"] = password;
    auto site = parseSiteConfig(armCredentials(settings).dump());
    ASSERT_FALSE(site.ok());
    EXPECT_EQ(site.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(site.error().message.find("appSettings[2].value: expected a string"),
              std::string::npos)
        << site.error().message;
    EXPECT_EQ(site.error().message.find("p4ssw0rd"), std::string::npos) << site.error().message;
    EXPECT_EQ(site.error().message.find("31415926"), std::string::npos) << site.error().message;
  }
}

TEST(SiteConfig, DeepNestingAndHugeValuesGiveShortErrors) {
  const std::string deep = R"({"properties": {"siteConfig": {"linuxFxVersion": )" +
                           std::string(500000, '[') + std::string(500000, ']') + "}}}";
  auto nested = parseSiteConfig(deep);
  ASSERT_FALSE(nested.ok());
  EXPECT_EQ(nested.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(nested.error().message.find("nested deeper than"), std::string::npos);

  json doc = armManagedIdentity();
  doc["properties"]["siteConfig"]["linuxFxVersion"] = "NODE|" + std::string(900000, 'x') + "\n<2>";
  auto huge = parseSiteConfig(doc.dump());
  ASSERT_FALSE(huge.ok());
  EXPECT_LT(huge.error().message.size(), 600u);
  EXPECT_EQ(huge.error().message.find('\n'), std::string::npos);
}

TEST(SiteConfig, SecretsNeverAppearInErrors) {
  json doc = armCredentials(credentialSettings());
  doc["properties"]["siteConfig"]["linuxFxVersion"] = "DOCKER|evil.example.com/app:v1";
  auto site = parseSiteConfig(doc.dump());
  ASSERT_FALSE(site.ok());
  EXPECT_EQ(site.error().message.find("p4ssw0rd"), std::string::npos);
}

}  // namespace
}  // namespace pullagent::agent
