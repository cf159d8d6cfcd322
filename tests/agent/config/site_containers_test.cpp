// Sites with several containers: SITECONTAINERS (Microsoft.Web/sites/sitecontainers, as
// `az webapp sitecontainers list` prints them or as ARM child resources) and COMPOSE|.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "agent/config/site_config.h"
#include "base/base64.h"

namespace pullagent::agent {
namespace {

using nlohmann::json;

json sitecontainer(const std::string& name, const std::string& image, bool is_main,
                   json properties = json::object()) {
  properties["image"] = image;
  properties["isMain"] = is_main;
  return {
      {"name", name}, {"type", "Microsoft.Web/sites/sitecontainers"}, {"properties", properties}};
}

// `az webapp show` output with the sitecontainers list merged in, and app settings.
json sidecarSite(json containers) {
  return {{"name", "shop"},
          {"siteConfig", {{"linuxFxVersion", "sitecontainers"}}},
          {"appSettings",
           {{"DOCKER_REGISTRY_SERVER_URL", "https://ignored.azurecr.io"},
            {"DOCKER_REGISTRY_SERVER_USERNAME", "ignored"},
            {"DOCKER_REGISTRY_SERVER_PASSWORD", "ignored"},
            {"CACHE_PASSWORD", "s3cret-from-setting"},
            {"GREETING", "hello"}}},
          {"sitecontainers", std::move(containers)}};
}

json composeSite(const std::string& yaml) {
  return {{"properties",
           {{"siteConfig",
             {{"linuxFxVersion", "COMPOSE|" + encodeBase64(yaml)},
              {"appSettings",
               json::array(
                   {{{"name", "DOCKER_REGISTRY_SERVER_URL"}, {"value", "https://myreg.azurecr.io"}},
                    {{"name", "DOCKER_REGISTRY_SERVER_USERNAME"}, {"value", "myreg"}},
                    {{"name", "DOCKER_REGISTRY_SERVER_PASSWORD"}, {"value", "pw"}}})}}}}}};
}

TEST(SiteContainers, EachContainerAuthenticatesOnItsOwnTerms) {
  json containers = json::array(
      {sitecontainer("logs", "docker.io/fluent/fluent-bit:3", false),
       sitecontainer("web", "myreg.azurecr.io/web:v1", true,
                     {{"authType", "UserAssigned"},
                      {"userManagedIdentityClientId", "aaaa-bbbb"},
                      {"targetPort", "8080"},
                      {"environmentVariables", {{{"name", "HELLO"}, {"value", "GREETING"}}}}}),
       sitecontainer("cache", "other.example/cache:2", false,
                     {{"authType", "UserCredentials"},
                      {"userName", "cacheuser"},
                      {"passwordSecret", "CACHE_PASSWORD"}}),
       sitecontainer("otel", "myreg.azurecr.io/otel:1", false,
                     {{"authType", "systemIdentity"}, {"targetPort", 4317}}),
       sitecontainer("kv", "kv.example/x:1", false,
                     {{"authType", "UserCredentials"},
                      {"userName", "u"},
                      {"passwordSecret",
                       "@Microsoft.KeyVault(SecretUri=https://v.vault.azure.net/secrets/pw/)"}}),
       sitecontainer("literal", "lit.example/x:1", false,
                     {{"authType", "UserCredentials"},
                      {"userName", "u"},
                      {"passwordSecret", "not-a-setting-name"}})});
  auto site = parseSiteConfig(sidecarSite(containers).dump());
  ASSERT_TRUE(site.ok()) << site.error().message;
  EXPECT_EQ(site->kind, SiteKind::kSiteContainers);
  ASSERT_EQ(site->containers.size(), 6u);
  // The main container first, the sidecars in the file's order.
  EXPECT_EQ(site->main().name, "web");
  EXPECT_TRUE(site->main().is_main);
  EXPECT_EQ(site->main().auth, RegistryAuth::kManagedIdentity);
  EXPECT_EQ(site->main().identity_client_id, "aaaa-bbbb");
  EXPECT_EQ(site->main().target_port, "8080");
  ASSERT_EQ(site->main().environment.size(), 1u);
  EXPECT_EQ(site->main().environment[0].second, "GREETING");
  const auto& logs = site->containers[1];
  EXPECT_EQ(logs.name, "logs");
  // DOCKER_REGISTRY_SERVER_* do not apply to sitecontainers.
  EXPECT_EQ(logs.auth, RegistryAuth::kAnonymous);
  EXPECT_EQ(logs.image.str(), "docker.io/fluent/fluent-bit:3");
  const auto& cache = site->containers[2];
  EXPECT_EQ(cache.auth, RegistryAuth::kBasic);
  EXPECT_EQ(cache.registry_username->literal.revealForWire(), "cacheuser");
  // passwordSecret names an app setting: its value is the password.
  EXPECT_EQ(cache.registry_password->literal.revealForWire(), "s3cret-from-setting");
  EXPECT_NE(cache.password_source.find("app setting"), std::string::npos);
  EXPECT_EQ(site->containers[3].auth, RegistryAuth::kManagedIdentity);
  EXPECT_EQ(site->containers[3].identity_client_id, "");
  EXPECT_EQ(site->containers[3].target_port, "4317");
  ASSERT_TRUE(site->containers[4].registry_password->key_vault.has_value());
  EXPECT_EQ(site->containers[4].registry_password->key_vault->secret_name, "pw");
  EXPECT_EQ(site->containers[5].registry_password->literal.revealForWire(), "not-a-setting-name");
  EXPECT_EQ(site->containers[5].password_source, "sitecontainers[5].properties.passwordSecret");
  EXPECT_EQ(site->images(),
            "web=myreg.azurecr.io/web:v1 logs=docker.io/fluent/fluent-bit:3 "
            "cache=other.example/cache:2 otel=myreg.azurecr.io/otel:1 kv=kv.example/x:1 "
            "literal=lit.example/x:1");
}

TEST(SiteContainers, ArmChildResourcesAreRead) {
  json doc = {{"name", "shop"},
              {"type", "Microsoft.Web/sites"},
              {"properties", {{"siteConfig", {{"linuxFxVersion", "SITECONTAINERS"}}}}},
              {"resources",
               json::array({sitecontainer("shop/main", "myreg.azurecr.io/web:v1", true),
                            {{"type", "config"}, {"name", "web"}},
                            json{{"type", "sitecontainers"},
                                 {"name", "sidecar"},
                                 {"properties", {{"image", "redis:7"}, {"isMain", false}}}}})}};
  auto site = parseSiteConfig(doc.dump());
  ASSERT_TRUE(site.ok()) << site.error().message;
  ASSERT_EQ(site->containers.size(), 2u);
  EXPECT_EQ(site->containers[0].name, "main");
  EXPECT_EQ(site->containers[1].name, "sidecar");
  EXPECT_EQ(site->containers[1].image.str(), "docker.io/library/redis:7");
}

TEST(SiteContainers, ADockerSiteIgnoresThemAndSaysSo) {
  json doc = sidecarSite(json::array({sitecontainer("web", "myreg.azurecr.io/web:v1", true)}));
  doc["siteConfig"]["linuxFxVersion"] = "DOCKER|ignored.azurecr.io/app:v1";
  auto site = parseSiteConfig(doc.dump());
  ASSERT_TRUE(site.ok()) << site.error().message;
  EXPECT_EQ(site->kind, SiteKind::kDocker);
  ASSERT_EQ(site->containers.size(), 1u);
  EXPECT_EQ(site->main().image.str(), "ignored.azurecr.io/app:v1");
  EXPECT_EQ(site->main().auth, RegistryAuth::kBasic);
  ASSERT_EQ(site->notes.size(), 1u);
  EXPECT_NE(site->notes[0].find("1 sitecontainers in the file are ignored"), std::string::npos);
}

struct ContainerRejection {
  const char* name;
  json containers;
  const char* message;
};

class SiteContainersReject : public ::testing::TestWithParam<ContainerRejection> {};

TEST_P(SiteContainersReject, NamingThePathAndNeverThePassword) {
  auto site = parseSiteConfig(sidecarSite(GetParam().containers).dump());
  ASSERT_FALSE(site.ok());
  EXPECT_NE(site.error().message.find(GetParam().message), std::string::npos)
      << site.error().message;
  EXPECT_EQ(site.error().message.find("s3cret"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(
    Table, SiteContainersReject,
    ::testing::
        Values(
            ContainerRejection{"no_main", json::array({sitecontainer("a", "x/a:1", false)}),
                               "no container has isMain true"},
            ContainerRejection{
                "two_mains",
                json::array({sitecontainer("a", "x/a:1", true), sitecontainer("b", "x/b:1", true)}),
                "2 containers have isMain true (a, b)"},
            ContainerRejection{"no_image",
                               json::array({{{"name", "a"}, {"properties", {{"isMain", true}}}}}),
                               "sitecontainers[0].properties.image: missing"},
            ContainerRejection{"is_main_missing",
                               json::array({{{"name", "a"}, {"properties", {{"image", "x/a:1"}}}}}),
                               "sitecontainers[0].properties.isMain: missing"},
            ContainerRejection{
                "bad_auth",
                json::array({sitecontainer("a", "x/a:1", true, {{"authType", "Magic"}})}),
                "sitecontainers[0].properties.authType: expected Anonymous, "
                "UserCredentials, SystemIdentity or UserAssigned"},
            ContainerRejection{
                "no_password",
                json::
                    array(
                        {sitecontainer(
                            "a", "x/a:1",
                            true, {{"authType", "UserCredentials"}, {"userName", "u"}})}),
                "sitecontainers[0].properties.passwordSecret: missing"},
            ContainerRejection{
                "password_not_string",
                json::
                    array(
                        {sitecontainer(
                            "a", "x/a:1",
                            true,
                            {{"authType", "UserCredentials"},
                             {"userName", "u"},
                             {"passwordSecret", {{"s3cret", 1}}}})}),
                "passwordSecret: expected a string, got a value of type object"},
            ContainerRejection{
                "no_client_id",
                json::array({sitecontainer("a", "x/a:1", true, {{"authType", "UserAssigned"}})}),
                "properties.userManagedIdentityClientId: missing"},
            ContainerRejection{
                "bad_name", json::array({sitecontainer("web;rm -rf", "x/a:1", true)}),
                "is not a container name"},
            ContainerRejection{"duplicate",
                               json::array({sitecontainer("a", "x/a:1", true),
                                            sitecontainer("a", "x/b:1", false)}),
                               "container \"a\" is given twice"},
            ContainerRejection{
                "bad_port", json::array({sitecontainer("a", "x/a:1", true, {{"targetPort", "0"}})}),
                "properties.targetPort: expected a port from 1 to 65535"},
            ContainerRejection{
                "relative_mount",
                json::
                    array(
                        {sitecontainer(
                            "a", "x/a:1",
                            true,
                            {{"volumeMounts", {{{"containerMountPath", "data"}}}}})}),
                "volumeMounts[0].containerMountPath: expected an absolute path"},
            ContainerRejection{
                "eleven",
                [] {
                  json list = json::array({sitecontainer("m", "x/m:1", true)});
                  for (int i = 0; i < 10; ++i)
                    list.push_back(sitecontainer("s" + std::to_string(i), "x/s:1", false));
                  return list;
                }(),
                "11 containers; a site runs at most 10"}),
    [](const auto& param_info) { return std::string(param_info.param.name); });

TEST(SiteContainers, IdentitiesNotAssignedToTheSiteAreNamed) {
  json doc = sidecarSite(json::array(
      {sitecontainer("web", "myreg.azurecr.io/web:v1", true,
                     {{"authType", "UserAssigned"}, {"userManagedIdentityClientId", "cid-2"}})}));
  doc["identity"] = {
      {"type", "UserAssigned"},
      {"userAssignedIdentities", {{"/subscriptions/x/id1", {{"clientId", "CID-1"}}}}}};
  auto site = parseSiteConfig(doc.dump());
  ASSERT_FALSE(site.ok());
  EXPECT_EQ(site.error().code, ErrorCode::kPermissionDenied);
  EXPECT_NE(site.error().message.find("container web pulls with the user-assigned identity "
                                      "\"cid-2\", which is not assigned to the site"),
            std::string::npos)
      << site.error().message;
  doc["identity"]["userAssignedIdentities"]["/subscriptions/x/id2"] = {{"clientId", "CID-2"}};
  EXPECT_TRUE(parseSiteConfig(doc.dump()).ok());
}

TEST(Compose, ServicesWithTheSitesCredentialsForItsRegistryOnly) {
  auto site = parseSiteConfig(composeSite(R"(version: '3'
services:
  cache:
    image: redis:7
  web:
    image: shop/web:v2
    ports:
      - "8080:80"
    environment:
      - A=b
  worker:
    image: myreg.azurecr.io/shop/worker:v2
    command: run --queue
)")
                                  .dump());
  ASSERT_TRUE(site.ok()) << site.error().message;
  EXPECT_EQ(site->kind, SiteKind::kCompose);
  ASSERT_EQ(site->containers.size(), 3u);
  // The service publishing port 8080 is the main one.
  EXPECT_EQ(site->main().name, "web");
  EXPECT_EQ(site->main().image.str(), "myreg.azurecr.io/shop/web:v2");
  EXPECT_EQ(site->main().auth, RegistryAuth::kBasic);
  // redis:7 is Docker Hub's: the site's credentials are not sent there.
  EXPECT_EQ(site->containers[1].name, "cache");
  EXPECT_EQ(site->containers[1].image.str(), "myreg.azurecr.io/redis:7");
  EXPECT_EQ(site->containers[2].auth, RegistryAuth::kBasic);
  EXPECT_EQ(site->containers[2].startup_command, "run --queue");
}

TEST(Compose, DockerHubImagesGetNoCredentials) {
  json doc = composeSite(
      "services:\n  web:\n    image: nginx:1.25\n  side:\n"
      "    image: myreg.azurecr.io/side:1\n");
  doc["properties"]["siteConfig"]["appSettings"][0]["value"] = "https://myreg.azurecr.io";
  auto site = parseSiteConfig(doc.dump());
  ASSERT_TRUE(site.ok()) << site.error().message;
  EXPECT_EQ(site->main().name, "web");  // no service publishes 80 or 8080: the first
  EXPECT_EQ(site->main().image.str(), "myreg.azurecr.io/nginx:1.25");
  doc = composeSite("services:\n  web:\n    image: docker.io/library/nginx:1.25\n");
  site = parseSiteConfig(doc.dump());
  ASSERT_TRUE(site.ok()) << site.error().message;
  EXPECT_EQ(site->main().auth, RegistryAuth::kAnonymous);
}

struct ComposeRejection {
  const char* name;
  std::string yaml;
  const char* message;
};

class ComposeRejects : public ::testing::TestWithParam<ComposeRejection> {};

TEST_P(ComposeRejects, NamingTheServiceAndKey) {
  auto site = parseSiteConfig(composeSite(GetParam().yaml).dump());
  ASSERT_FALSE(site.ok());
  EXPECT_NE(site.error().message.find(GetParam().message), std::string::npos)
      << site.error().message;
}

INSTANTIATE_TEST_SUITE_P(
    Table, ComposeRejects,
    ::testing::Values(
        ComposeRejection{"build", "services:\n  web:\n    build: .\n    image: a/b:1\n",
                         "services.web.build (line 3): App Service does not support \"build\" "
                         "in Compose files (it pulls images"},
        ComposeRejection{"depends_on",
                         "services:\n  web:\n    image: a/b:1\n    depends_on: [db]\n",
                         "services.web.depends_on (line 4): App Service does not support"},
        ComposeRejection{"top_level_networks",
                         "services:\n  web:\n    image: a/b:1\nnetworks:\n  n: {}\n",
                         "networks (line 4): App Service does not support top-level"},
        ComposeRejection{"no_image", "services:\n  web:\n    ports: ['80']\n",
                         "services.web.image (line 3): missing"},
        ComposeRejection{"no_services", "version: '3'\n", "services: missing or empty"},
        ComposeRejection{"not_yaml", "services: [unclosed\n", "the Compose file is not YAML"},
        ComposeRejection{"too_deep", "services: " + std::string(200, '[') + "\n",
                         "the Compose file nests too deeply"},
        ComposeRejection{"bad_service_name", "services:\n  \"a b\":\n    image: x/y:1\n",
                         "service name \"a b\" is not a container name"},
        ComposeRejection{"bad_image", "services:\n  web:\n    image: \"UPPER/Case:1\"\n",
                         "services.web.image"}),
    [](const auto& param_info) { return std::string(param_info.param.name); });

}  // namespace
}  // namespace pullagent::agent
