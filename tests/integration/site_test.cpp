// `pullagent --once --site` through the Azure emulators and the real registry: the seed's
// scenarios (managed identities, admin credentials, Key Vault references, lnx-v1 -> lnx-v2) and
// what a user sees when they are misconfigured.
#include <gtest/gtest.h>

#include <filesystem>

#include "base/base64.h"
#include "tests/integration/pull_fixture.h"
#include "tests/support/dnsmasq.h"
#include "tests/support/image_view.h"

namespace pullagent::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class Site : public PullTest {
 protected:
  // The agent config of the tests: emulated names pinned to loopback, the test CA.
  json agentConfig(const std::string& identity_kind = "imds") {
    json config = {{"stateDir", (dest_ / "state").string()},
                   {"caBundle", stack().ca()},
                   {"hostOverrides", azure()["host_overrides"]}};
    if (identity_kind == "imds")
      config["identity"] = {{"kind", "imds"}, {"endpoint", azure()["imds"]}};
    return config;
  }
  // The seed's ARM site with a managed identity for the emulated ACR.
  json managedIdentitySite(const std::string& client_id, const std::string& tag = "lnx-v1") {
    json site_config = {{"acrUseManagedIdentityCreds", true},
                        {"linuxFxVersion",
                         "DOCKER|" + azure()["acr"].get<std::string>() + "/privatewebsite:" + tag}};
    if (!client_id.empty())
      site_config["acrUserManagedIdentityID"] = client_id;
    return {{"name", "secureacrweb2021"},
            {"properties", {{"vnetImagePullEnabled", false}, {"siteConfig", site_config}}}};
  }
  ProcessResult once(const json& site, const json& agent,
                     const std::vector<std::string>& env = {}) {
    writeFile(dest_ / "site.json", site.dump());
    writeFile(dest_ / "agent.json", agent.dump());
    return runProcess({PULLAGENT_BINARY, "--once", "--site", (dest_ / "site.json").string(),
                       "--config", (dest_ / "agent.json").string()},
                      std::chrono::seconds(180), "", env);
  }
  fs::path published(const std::string& tag) {
    const std::string digest = azure()["images"]["privatewebsite:" + tag]["digest"];
    return dest_ / "state/images" / digest.substr(7);
  }
};

TEST_F(Site, UserAssignedIdentityPullsFromAcrThroughItsDataEndpoint) {
  auto result = once(managedIdentitySite(azure()["user_client_id"]), agentConfig());
  ASSERT_EQ(result.exit_code, 0) << result.all();
  EXPECT_NE(readFile(imageFile(published("lnx-v1"), "home/site/wwwroot/index.html")).find("lnx-v1"),
            std::string::npos);
  for (const char* phase : {"config ", "identity ", "pull "})
    EXPECT_NE(result.out.find(phase), std::string::npos) << result.out;

  auto identity = stack().stats(azure()["identity_control"])["requests"];
  ASSERT_GE(identity.size(), 1u);
  EXPECT_EQ(identity[0]["metadata"], "true");
  EXPECT_EQ(identity[0]["query"]["client_id"], azure()["user_client_id"]);
  EXPECT_EQ(identity[0]["query"]["resource"], "https://containerregistry.azure.net");

  auto acr = stack().stats(azure()["acr_control"])["requests"];
  std::vector<std::string> grants;
  for (const auto& request : acr) {
    if (request.contains("grant_type") && request["grant_type"].is_string())
      grants.push_back(request["grant_type"]);
  }
  EXPECT_EQ(grants, (std::vector<std::string>{"access_token", "refresh_token"}));
  // Blobs came from the data endpoint, which never saw a credential.
  auto storage = stack().stats(stack().storage());
  EXPECT_TRUE(storage["violations"].empty()) << storage["violations"];
  EXPECT_EQ(storage["requests"].size(), 3u);  // config and two layers
}

TEST_F(Site, SystemAssignedIdentityThroughTheAppServiceEndpoint) {
  auto result = once(managedIdentitySite(""), agentConfig("env"),
                     {"IDENTITY_ENDPOINT=" + azure()["app_service"].get<std::string>(),
                      "IDENTITY_HEADER=" + azure()["identity_header"].get<std::string>()});
  ASSERT_EQ(result.exit_code, 0) << result.all();
  auto identity = stack().stats(azure()["identity_control"])["requests"];
  ASSERT_GE(identity.size(), 1u);
  EXPECT_EQ(identity[0]["path"], "/msi/token");
  EXPECT_TRUE(identity[0]["identity_header"]);
  EXPECT_EQ(identity[0]["query"]["api-version"], "2019-08-01");
}

TEST_F(Site, IdentityNotAssignedSaysSo) {
  auto result = once(managedIdentitySite("99999999-9999-9999-9999-999999999999"), agentConfig());
  EXPECT_EQ(result.exit_code, 3) << result.all();
  EXPECT_NE(result.err.find("user-assigned identity 99999999-9999-9999-9999-999999999999"),
            std::string::npos)
      << result.err;
  EXPECT_NE(result.err.find("assigned to the site"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("pullagent diagnose --site " + (dest_ / "site.json").string()),
            std::string::npos)
      << result.err;
}

TEST_F(Site, IdentityWithoutAcrPullSaysWhatToGrant) {
  auto result = once(managedIdentitySite(azure()["kv_client_id"]), agentConfig());
  EXPECT_EQ(result.exit_code, 3) << result.all();
  EXPECT_NE(result.err.find("AcrPull"), std::string::npos) << result.err;
}

TEST_F(Site, IdentityEndpointFailingForAWhileIsRetried) {
  stack().configure(azure()["identity_control"], {{"fail", json::array({404, 410, 503})}});
  auto result = once(managedIdentitySite(azure()["user_client_id"]), agentConfig());
  ASSERT_EQ(result.exit_code, 0) << result.all();
  EXPECT_EQ(stack().stats(azure()["identity_control"])["requests"].size(), 4u);
}

TEST_F(Site, ASlowIdentityEndpointIsWaitedForAndAHangingOneTimedOutAndRetried) {
  // 1.5 s is slow but within the stall timeout: one request, answered.
  stack().configure(azure()["identity_control"], {{"delays", json::array({1.5})}});
  json agent = agentConfig();
  agent["stallTimeoutSeconds"] = 2;
  auto slow = once(managedIdentitySite(azure()["user_client_id"]), agent);
  ASSERT_EQ(slow.exit_code, 0) << slow.all();
  EXPECT_EQ(stack().stats(azure()["identity_control"])["requests"].size(), 1u);

  // 5 s of silence is past it: that request is abandoned and the next one answers.
  stack().reset(azure()["identity_control"]);
  stack().configure(azure()["identity_control"], {{"delays", json::array({5})}});
  auto hanging = once(managedIdentitySite(azure()["user_client_id"]), agent);
  ASSERT_EQ(hanging.exit_code, 0) << hanging.all();
  EXPECT_EQ(stack().stats(azure()["identity_control"])["requests"].size(), 2u);
}

TEST_F(Site, AnAcrTokenExpiringMidLayerIsRenewedAndTheLayerResumes) {
  // Access tokens live 4 s; the data endpoint sends 100 kB of the base layer, goes quiet for
  // 5 s and drops the connection. The retry needs a new access token (from the cached refresh
  // token, without another AAD exchange) and resumes the layer where it broke.
  stack().configure(azure()["acr_control"], {{"access_lifetime", 4}});
  const std::string base_layer =
      azure()["images"]["privatewebsite:lnx-v1"]["layers"][0]["digest"].get<std::string>().substr(
          7);
  stack().setFaults(
      stack().storage(),
      json::array({{{"match", base_layer}, {"action", "reset_at"}, {"at", 100000}, {"pause", 5}}}));
  auto result = once(managedIdentitySite(azure()["user_client_id"]), agentConfig());
  ASSERT_EQ(result.exit_code, 0) << result.all();
  EXPECT_NE(readFile(imageFile(published("lnx-v1"), "home/site/wwwroot/index.html")).find("lnx-v1"),
            std::string::npos);

  std::vector<std::string> grants;
  int expired = 0;
  const auto acr = stack().stats(azure()["acr_control"]);
  for (const auto& request : acr["requests"]) {
    if (request.contains("grant_type") && request["grant_type"].is_string())
      grants.push_back(request["grant_type"]);
    expired += request.value("expired_token", false) ? 1 : 0;
  }
  EXPECT_EQ(grants, (std::vector<std::string>{"access_token", "refresh_token", "refresh_token"}));
  EXPECT_EQ(expired, 0) << "an expired token was presented";
  std::vector<json> layer;
  const auto storage = stack().stats(stack().storage());
  for (const auto& request : storage["requests"]) {
    if (request.value("digest", "") == base_layer)
      layer.push_back(request);
  }
  ASSERT_EQ(layer.size(), 2u) << storage;
  EXPECT_EQ(layer[1]["range"], "bytes=100000-");
  EXPECT_TRUE(stack().stats(stack().storage())["violations"].empty());
}

TEST_F(Site, AdminCredentialsFromAppSettings) {
  auto result = once(credentialsSite(stack().info()["basic_password"]), agentConfig());
  ASSERT_EQ(result.exit_code, 0) << result.all();
  EXPECT_NE(result.out.find("registry credentials from app settings"), std::string::npos);
}

TEST_F(Site, PasswordAsAKeyVaultReference) {
  json site =
      credentialsSite("@Microsoft.KeyVault(SecretUri=" + azure()["key_vault"].get<std::string>() +
                      "/secrets/acr-password/)");
  site["properties"]["keyVaultReferenceIdentity"] = azure()["kv_identity_resource_id"];
  auto result = once(site, agentConfig());
  ASSERT_EQ(result.exit_code, 0) << result.all();
  EXPECT_NE(result.out.find("from Key Vault: DOCKER_REGISTRY_SERVER_PASSWORD"), std::string::npos)
      << result.out;
  auto identity = stack().stats(azure()["identity_control"])["requests"];
  ASSERT_GE(identity.size(), 1u);
  EXPECT_EQ(identity[0]["query"]["resource"], "https://vault.azure.net");
  EXPECT_EQ(identity[0]["query"]["msi_res_id"], azure()["kv_identity_resource_id"]);
}

TEST_F(Site, AKeyVaultPasswordTheRegistryRefusesNamesTheReferenceNotTheValue) {
  // The reference pins the version from before the password was rotated.
  json site =
      credentialsSite("@Microsoft.KeyVault(SecretUri=" + azure()["key_vault"].get<std::string>() +
                      "/secrets/acr-password/00000000000000000000000000000001)");
  site["properties"]["keyVaultReferenceIdentity"] = azure()["kv_identity_resource_id"];
  auto result = once(site, agentConfig());
  EXPECT_EQ(result.exit_code, 3) << result.all();
  EXPECT_NE(result.err.find("secret acr-password version 00000000000000000000000000000001 (app "
                            "setting DOCKER_REGISTRY_SERVER_PASSWORD): the reference pins that "
                            "version; update the reference or remove the version"),
            std::string::npos)
      << result.err;
  EXPECT_EQ(result.all().find("rotated-away-password"), std::string::npos);
}

TEST_F(Site, UnreadableKeyVaultSecretIsAnErrorNotAPassword) {
  json site =
      credentialsSite("@Microsoft.KeyVault(SecretUri=" + azure()["key_vault"].get<std::string>() +
                      "/secrets/missing/)");
  auto result = once(site, agentConfig());
  EXPECT_EQ(result.exit_code, 4) << result.all();
  EXPECT_NE(result.err.find("Key Vault secret \"missing\""), std::string::npos) << result.err;
  EXPECT_EQ(result.err.find("Pulling image"), std::string::npos);  // never got as far as a pull
}

TEST_F(Site, ChangingTheImageFetchesOnlyTheNewLayer) {
  ASSERT_EQ(once(managedIdentitySite(azure()["user_client_id"], "lnx-v1"), agentConfig()).exit_code,
            0);
  stack().reset(stack().storage());
  auto result = once(managedIdentitySite(azure()["user_client_id"], "lnx-v2"), agentConfig());
  ASSERT_EQ(result.exit_code, 0) << result.all();
  EXPECT_TRUE(fs::exists(imageFile(published("lnx-v2"), "home/site/wwwroot/v2.txt")));
  // Config and the one new layer; the shared base layer was already in the store.
  EXPECT_EQ(stack().stats(stack().storage())["requests"].size(), 2u);
}

TEST_F(Site, VnetPullResolvesEveryHostThroughTheVnetDns) {
  // The private zone exists only in this DNS server: a pull that works went through it, for the
  // registry and for the data endpoint its blobs are redirected to.
  Dnsmasq dns({"--cname=myreg.azurecr.io,myreg.privatelink.azurecr.io",
               "--host-record=myreg.privatelink.azurecr.io,127.0.0.1",
               "--cname=myreg.westus.data.azurecr.io,myreg.westus.data.privatelink.azurecr.io",
               "--host-record=myreg.westus.data.privatelink.azurecr.io,127.0.0.2"});
  json agent = agentConfig();
  agent.erase("hostOverrides");
  agent["vnetDnsServers"] = json::array({dns.server().str()});
  json site = managedIdentitySite(azure()["user_client_id"]);
  site["properties"]["vnetImagePullEnabled"] = true;
  auto result = once(site, agent);
  ASSERT_EQ(result.exit_code, 0) << result.all();
  EXPECT_NE(result.out.find("over the VNet"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("VNet DNS " + dns.server().str()), std::string::npos) << result.out;
  EXPECT_EQ(stack().stats(stack().storage())["requests"].size(), 3u);
}

TEST_F(Site, WebsiteDnsServerSettingsOverrideTheAgentDefault) {
  Dnsmasq dns({"--cname=myreg.azurecr.io,myreg.privatelink.azurecr.io",
               "--host-record=myreg.privatelink.azurecr.io,127.0.0.1",
               "--host-record=myreg.westus.data.azurecr.io,127.0.0.2"});
  SilentServer dead;
  json agent = agentConfig();
  agent.erase("hostOverrides");
  agent["vnetDnsServers"] = json::array({"127.0.0.1:" + std::to_string(dead.port())});
  agent["dnsTimeoutMs"] = 300;
  agent["dnsTries"] = 1;
  json site = managedIdentitySite(azure()["user_client_id"]);
  site["properties"]["siteConfig"]["appSettings"] = json::array(
      {{{"name", "WEBSITE_PULL_IMAGE_OVER_VNET"}, {"value", "true"}},
       {{"name", "WEBSITE_DNS_SERVER"}, {"value", "127.0.0.1:" + std::to_string(dead.port())}},
       {{"name", "WEBSITE_DNS_ALT_SERVER"}, {"value", dns.server().str()}}});
  auto result = once(site, agent);
  ASSERT_EQ(result.exit_code, 0) << result.all();  // the alternate answered
}

TEST_F(Site, OutboundVnetRoutingAndDnsConfigurationOverTheirAppSettings) {
  // The newer site properties decide: imagePullTraffic routes the pull over the VNet (no
  // vnetImagePullEnabled, no app setting), and dnsConfiguration's server is asked, not the
  // dead one of WEBSITE_DNS_SERVER nor the agent's default.
  Dnsmasq dns({"--cname=myreg.azurecr.io,myreg.privatelink.azurecr.io",
               "--host-record=myreg.privatelink.azurecr.io,127.0.0.1",
               "--host-record=myreg.westus.data.azurecr.io,127.0.0.2"});
  SilentServer dead;
  const std::string dead_server = "127.0.0.1:" + std::to_string(dead.port());
  json agent = agentConfig();
  agent.erase("hostOverrides");
  agent["vnetDnsServers"] = json::array({dead_server});
  agent["dnsTimeoutMs"] = 300;
  agent["dnsTries"] = 1;
  json site = managedIdentitySite(azure()["user_client_id"]);
  site["properties"]["outboundVnetRouting"] = {{"imagePullTraffic", true}};
  site["properties"]["dnsConfiguration"] = {{"dnsServers", {dns.server().str()}},
                                            {"dnsRetryAttemptCount", 2}};
  site["properties"]["siteConfig"]["appSettings"] =
      json::array({{{"name", "WEBSITE_DNS_SERVER"}, {"value", dead_server}},
                   {{"name", "WEBSITE_DNS_ATTEMPTS"}, {"value", "5"}}});
  auto result = once(site, agent);
  ASSERT_EQ(result.exit_code, 0) << result.all();
  EXPECT_NE(result.out.find("VNet DNS " + dns.server().str() + ", 2 tries"), std::string::npos)
      << result.out;
  EXPECT_NE(result.out.find("properties.outboundVnetRouting.imagePullTraffic"), std::string::npos)
      << result.out;
  EXPECT_NE(result.out.find("properties.dnsConfiguration.dnsServers"), std::string::npos)
      << result.out;
}

// The site of the issue pulled at once over the VNet (the private ACR resolvable only through the
// VNet's DNS), one sidecar sharing its base layer with the main container.
TEST_F(Site, AMainContainerAndThreeSidecarsEachAuthenticatedItsOwnWay) {
  Dnsmasq dns({"--cname=myreg.azurecr.io,myreg.privatelink.azurecr.io",
               "--host-record=myreg.privatelink.azurecr.io,127.0.0.1",
               "--host-record=myreg.westus.data.azurecr.io,127.0.0.2"});
  json agent = agentConfig();
  agent.erase("hostOverrides");
  agent["vnetDnsServers"] = json::array({dns.server().str()});
  stack().reset(stack().storage());
  stack().reset(azure()["acr_control"]);
  json site = sidecarSite("test/docker:v1");
  site["properties"]["outboundVnetRouting"] = {{"imagePullTraffic", true}};
  auto result = once(site, agent);
  ASSERT_EQ(result.exit_code, 0) << result.all();
  for (const char* line :
       {"SITECONTAINERS, 4 containers, over the VNet "
        "(properties.outboundVnetRouting.imagePullTraffic)",
        "container  web              main  myreg.azurecr.io", "user-assigned managed identity",
        "container  cache",
        "registry credentials (sitecontainers[1].properties.passwordSecret (app "
        "setting properties.siteConfig.appSettings[0].value))",
        "container  logs", "anonymous", "container  otel", "system-assigned managed identity",
        "main container web", "sidecar cache", "sidecar logs", "sidecar otel"}) {
    EXPECT_NE(result.out.find(line), std::string::npos) << line << "\n" << result.out;
  }
  // Every image published, the main one and the one sharing its base layer among them.
  EXPECT_TRUE(fs::exists(imageFile(published("lnx-v1"), "home/site/wwwroot/index.html")));
  EXPECT_TRUE(fs::exists(imageFile(published("lnx-v2"), "home/site/wwwroot/v2.txt")));
  for (const char* image : {"test/multi:v1", "test/docker:v1"}) {
    const std::string digest = stack().info()["images"][image]["digest"];
    EXPECT_TRUE(fs::exists(dest_ / "state/images" / digest.substr(7))) << image;
  }
  // The shared base layer was downloaded from ACR once: main and otel share it. (The cache
  // sidecar's image from the other registry carries it too, but a copy from another registry
  // proves nothing for ACR: ACR serves it once whichever pull came first.) Each download is a
  // GET at the ACR front, redirected to the data endpoint.
  const std::string base = azure()["images"]["privatewebsite:lnx-v1"]["layers"][0]["digest"];
  int fetched = 0;
  const json front = stack().stats(azure()["acr_control"].get<std::string>());
  for (const auto& request : front["requests"]) {
    const bool blob = request.value("path", "").find("/blobs/" + base) != std::string::npos;
    fetched += blob && request.value("method", "GET") == "GET" ? 1 : 0;
  }
  EXPECT_EQ(fetched, 1) << front["requests"].dump(1) << "\n" << result.all();
  // The password of the app setting never shows.
  EXPECT_EQ(result.all().find(stack().info()["basic_password"].get<std::string>()),
            std::string::npos);
}

TEST_F(Site, OneFailingSidecarFailsTheSiteAndIsNamed) {
  auto result = once(sidecarSite("test/nothing:v404"), agentConfig());
  EXPECT_NE(result.exit_code, 0) << result.all();
  EXPECT_NE(result.err.find("container logs (" + stack().registry("anon") + "/test/nothing:v404)"),
            std::string::npos)
      << result.err;
}

// The main container fails at once while a sidecar's registry hangs: the failure stops the
// sidecar instead of leaving the site `pulling` until the hang or the attempt deadline ends.
TEST_F(Site, AContainerThatFailsAtOnceStopsItsSiblings) {
  const std::string hanging = stack().proxy("proxy_anon");
  stack().setFaults(hanging, json::array({{{"match", "/v2/test/multi/manifests/"},
                                           {"times", 10},
                                           {"action", "hang"},
                                           {"secs", 150}}}));
  json site = sidecarSite("test/multi:v1");
  site["sitecontainers"][0]["properties"]["image"] =
      azure()["acr"].get<std::string>() + "/privatewebsite:no-such-tag";
  site["sitecontainers"][2]["properties"]["image"] = hanging + "/test/multi:v1";
  const auto started = std::chrono::steady_clock::now();
  auto result = once(site, agentConfig());
  const auto took = std::chrono::steady_clock::now() - started;
  EXPECT_NE(result.exit_code, 0) << result.all();
  EXPECT_LT(result.exit_code, 128) << result.all();  // ended by itself, not by the test's timeout
  EXPECT_NE(result.err.find("container web"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("stopping the site's other containers"), std::string::npos)
      << result.err;
  // Far below the hang (150 s) and the document timeout (60 s) a sidecar would have waited.
  EXPECT_LT(took, std::chrono::seconds(45));
}

TEST_F(Site, AComposeSitePullsEveryServiceWithTheSitesCredentials) {
  const std::string yaml =
      "services:\n  web:\n    image: test/multi:v1\n    ports: [\"8080:80\"]\n"
      "  worker:\n    image: test/docker:v1\n    command: work\n";
  json site = credentialsSite(stack().info()["basic_password"]);
  site["properties"]["siteConfig"]["linuxFxVersion"] = "COMPOSE|" + encodeBase64(yaml);
  auto result = once(site, agentConfig());
  ASSERT_EQ(result.exit_code, 0) << result.all();
  EXPECT_NE(result.out.find("COMPOSE, 2 containers"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("main container web"), std::string::npos) << result.out;
  for (const char* image : {"test/multi:v1", "test/docker:v1"}) {
    const std::string digest = stack().info()["images"][image]["digest"];
    EXPECT_TRUE(fs::exists(dest_ / "state/images" / digest.substr(7))) << image;
  }
  // A key App Service does not support is refused before any pull, naming service and key.
  site["properties"]["siteConfig"]["linuxFxVersion"] =
      "COMPOSE|" + encodeBase64("services:\n  web:\n    build: .\n    image: test/multi:v1\n");
  result = once(site, agentConfig());
  EXPECT_EQ(result.exit_code, 2) << result.all();
  EXPECT_NE(result.err.find("services.web.build (line 3): App Service does not support"),
            std::string::npos)
      << result.err;
}

TEST_F(Site, VnetDnsWithoutTheNameFailsWithoutFallingBack) {
  Dnsmasq dns({});
  json agent = agentConfig();  // hostOverrides stay for the identity endpoint only
  agent.erase("hostOverrides");
  agent["vnetDnsServers"] = json::array({dns.server().str()});
  json site = managedIdentitySite(azure()["user_client_id"]);
  site["properties"]["vnetImagePullEnabled"] = true;
  auto result = once(site, agent);
  EXPECT_EQ(result.exit_code, 4) << result.all();
  EXPECT_NE(
      result.err.find("resolve myreg.azurecr.io via VNet DNS " + dns.server().str() + ": NXDOMAIN"),
      std::string::npos)
      << result.err;
  EXPECT_TRUE(stack().stats(azure()["acr_control"])["requests"].empty());
}

TEST_F(Site, PublicRouteToAPrivateOnlyRegistryIsDeniedWithAHint) {
  json agent = agentConfig();
  agent["hostOverrides"]["myreg.azurecr.io"] = json::array({azure()["public_endpoint_address"]});
  auto result = once(managedIdentitySite(azure()["user_client_id"]), agent);
  EXPECT_EQ(result.exit_code, 3) << result.all();
  EXPECT_NE(result.err.find("not allowed access"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("enable vnetImagePullEnabled"), std::string::npos) << result.err;
}

TEST_F(Site, SecretsNeverReachTheOutput) {
  json site =
      credentialsSite("@Microsoft.KeyVault(SecretUri=" + azure()["key_vault"].get<std::string>() +
                      "/secrets/acr-password/)");
  auto basic = once(site, agentConfig());
  auto mi = once(managedIdentitySite(""), agentConfig("env"),
                 {"IDENTITY_ENDPOINT=" + azure()["app_service"].get<std::string>(),
                  "IDENTITY_HEADER=" + azure()["identity_header"].get<std::string>()});
  for (const auto& result : {basic, mi}) {
    ASSERT_EQ(result.exit_code, 0) << result.all();
    const std::string output = result.all();
    EXPECT_EQ(output.find(stack().info()["basic_password"].get<std::string>()), std::string::npos);
    EXPECT_EQ(output.find(azure()["identity_header"].get<std::string>()), std::string::npos);
    EXPECT_EQ(output.find("eyJ"), std::string::npos);
    EXPECT_EQ(output.find("sig="), std::string::npos);
  }
}

}  // namespace
}  // namespace pullagent::testing
