#include "tests/integration/pull_fixture.h"

#include <filesystem>

namespace pullagent::testing {

void PullTest::SetUp() {
  auto& s = stack();
  for (const auto& name : {"proxy_token", "proxy_anon"})
    s.reset(s.proxy(name));
  s.reset(s.tokenServer());
  s.configure(s.tokenServer(), {{"expires_in", 300}, {"anonymous", false}});
  s.reset(s.storage());
  // The Azure emulators too: a reset puts back their initial scripts (failures, lifetimes).
  for (const char* control : {"identity_control", "acr_control", "key_vault_control"})
    s.reset(s.info()["azure"][control]);
}

std::vector<std::string> PullTest::pullCommand(const std::string& image,
                                               const std::vector<std::string>& args) const {
  std::vector<std::string> argv{
      PULLAGENT_BINARY,        "pull", image, "--dest", dest_.path().string(), "--ca",
      TestStack::shared().ca()};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

ProcessResult PullTest::pull(const std::string& image, const std::vector<std::string>& args) {
  return runProcess(pullCommand(image, args));
}

nlohmann::json PullTest::credentialsSite(const std::string& password) {
  using nlohmann::json;
  auto setting = [](const std::string& name, const json& value) {
    return json{{"name", name}, {"value", value}};
  };
  return {{"properties",
           {{"siteConfig",
             {{"linuxFxVersion", "DOCKER|test/multi:v1"},
              {"appSettings",
               json::array(
                   {setting("DOCKER_REGISTRY_SERVER_URL", "https://" + stack().registry("basic")),
                    setting("DOCKER_REGISTRY_SERVER_USERNAME", stack().info()["basic_user"]),
                    setting("DOCKER_REGISTRY_SERVER_PASSWORD", password)})}}}}}};
}

nlohmann::json PullTest::sidecarSite(const std::string& logs_image) {
  using nlohmann::json;
  const json& azure = this->azure();
  const TestStack& stack = this->stack();
  auto container = [](const std::string& name, const std::string& image, bool is_main,
                      json properties) {
    properties["image"] = image;
    properties["isMain"] = is_main;
    return json{
        {"name", name}, {"type", "Microsoft.Web/sites/sitecontainers"}, {"properties", properties}};
  };
  const std::string acr = azure["acr"];
  return {
      {"name", "shop"},
      {"identity",
       {{"type", "SystemAssigned, UserAssigned"},
        {"userAssignedIdentities",
         {{"/subscriptions/s/ua/web", {{"clientId", azure["user_client_id"]}}}}}}},
      {"properties",
       {{"siteConfig",
         {{"linuxFxVersion", "SITECONTAINERS"},
          {"appSettings",
           json::array(
               {{{"name", "CACHE_REGISTRY_PASSWORD"}, {"value", stack.info()["basic_password"]}},
                // Not for sitecontainers: were they used, the anonymous pull would fail.
                {{"name", "DOCKER_REGISTRY_SERVER_URL"},
                 {"value", "https://" + stack.registry("anon")}},
                {{"name", "DOCKER_REGISTRY_SERVER_USERNAME"}, {"value", "nobody"}},
                {{"name", "DOCKER_REGISTRY_SERVER_PASSWORD"}, {"value", "wrong"}}})}}}}},
      {"sitecontainers",
       json::array({container("web", acr + "/privatewebsite:lnx-v1", true,
                              {{"authType", "UserAssigned"},
                               {"userManagedIdentityClientId", azure["user_client_id"]},
                               {"targetPort", "8080"}}),
                    container("cache", stack.registry("basic") + "/test/multi:v1", false,
                              {{"authType", "UserCredentials"},
                               {"userName", stack.info()["basic_user"]},
                               {"passwordSecret", "CACHE_REGISTRY_PASSWORD"}}),
                    container("logs", stack.registry("anon") + "/" + logs_image, false,
                              {{"authType", "Anonymous"}}),
                    container("otel", acr + "/privatewebsite:lnx-v2", false,
                              {{"authType", "SystemIdentity"}})})}};
}

std::string PullTest::tokenCreds() const {
  const auto& info = TestStack::shared().info();
  return info["token_user"].get<std::string>() + ":" + info["token_password"].get<std::string>();
}

std::string PullTest::basicCreds() const {
  const auto& info = TestStack::shared().info();
  return info["basic_user"].get<std::string>() + ":" + info["basic_password"].get<std::string>();
}

bool PullTest::hasBlob(const std::string& digest) const {
  return std::filesystem::exists(dest_.path() / "blobs" / "sha256" / digest.substr(7));
}

std::vector<std::string> PullTest::ingestFiles() const {
  std::vector<std::string> names;
  if (!std::filesystem::exists(dest_.path() / "ingest"))
    return names;
  for (const auto& entry : std::filesystem::directory_iterator(dest_.path() / "ingest")) {
    names.push_back(entry.path().filename().string());
  }
  return names;
}

std::vector<nlohmann::json> PullTest::requests(const std::string& server,
                                               const std::string& fragment) {
  std::vector<nlohmann::json> matching;
  const auto stats = stack().stats(server);  // keep it alive: the loop runs over a member of it
  for (const auto& request : stats["requests"]) {
    if (request["path"].get<std::string>().find(fragment) != std::string::npos) {
      matching.push_back(request);
    }
  }
  return matching;
}

int64_t PullTest::bytesServed(const std::string& server, const std::string& fragment) {
  int64_t total = 0;
  for (const auto& request : requests(server, fragment))
    total += request.value("bytes", 0);
  return total;
}

}  // namespace pullagent::testing
