// `pullagent diagnose` against the Azure emulators, the real registry and dnsmasq: a healthy
// site gives every step ok, and each way a site's route breaks is named by its step, with a fix
// that names the object to change.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>

#include "tests/integration/daemon_fixture.h"
#include "tests/integration/pull_fixture.h"
#include "tests/support/dnsmasq.h"

namespace pullagent::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class Diagnose : public PullTest {
 protected:
  json agentConfig() {
    return {{"stateDir", (dest_ / "state").string()},
            {"caBundle", stack().ca()},
            {"hostOverrides", azure()["host_overrides"]},
            {"identity", {{"kind", "imds"}, {"endpoint", azure()["imds"]}}}};
  }
  json managedIdentitySite(const std::string& client_id, const std::string& tag = "lnx-v1") {
    json site_config = {{"acrUseManagedIdentityCreds", true},
                        {"linuxFxVersion",
                         "DOCKER|" + azure()["acr"].get<std::string>() + "/privatewebsite:" + tag}};
    if (!client_id.empty())
      site_config["acrUserManagedIdentityID"] = client_id;
    return {{"name", "secureacrweb2021"},
            {"properties", {{"vnetImagePullEnabled", false}, {"siteConfig", site_config}}}};
  }
  json anonymousSite(const std::string& image) {
    return {{"properties", {{"siteConfig", {{"linuxFxVersion", "DOCKER|" + image}}}}}};
  }
  // The private zone in the VNet's DNS, for the registry and its data endpoint.
  static std::vector<std::string> privateZone() {
    return {"--cname=myreg.azurecr.io,myreg.privatelink.azurecr.io",
            "--host-record=myreg.privatelink.azurecr.io,127.0.0.1",
            "--cname=myreg.westus.data.azurecr.io,myreg.westus.data.privatelink.azurecr.io",
            "--host-record=myreg.westus.data.privatelink.azurecr.io,127.0.0.2"};
  }
  json overVnet(json site) {
    site["properties"]["vnetImagePullEnabled"] = true;
    return site;
  }
  json vnetAgent(const Dnsmasq& dns) {
    json agent = agentConfig();
    agent.erase("hostOverrides");
    agent["vnetDnsServers"] = json::array({dns.server().str()});
    return agent;
  }

  // pullagent diagnose --site ... --config ... --json: the report, and the process.
  json diagnose(const json& site, const json& agent, ProcessResult* process = nullptr,
                const std::vector<std::string>& extra = {}) {
    writeFile(dest_ / "mysite.json", site.dump());
    writeFile(dest_ / "agent.json", agent.dump());
    std::vector<std::string> command{PULLAGENT_BINARY, "diagnose",
                                     "--site",         (dest_ / "mysite.json").string(),
                                     "--config",       (dest_ / "agent.json").string(),
                                     "--json"};
    command.insert(command.end(), extra.begin(), extra.end());
    auto result = runProcess(command, std::chrono::seconds(120));
    if (process != nullptr)
      *process = result;
    auto report = json::parse(result.out, nullptr, false);
    EXPECT_FALSE(report.is_discarded()) << result.all();
    if (!report.is_discarded()) {
      EXPECT_EQ(report["exit_code"], result.exit_code) << result.all();
    }
    EXPECT_FALSE(fs::exists(dest_ / "state")) << "a diagnosis wrote to the state dir";
    return report.is_discarded() ? json::object() : report;
  }
  static json step(const json& report, const std::string& id) {
    for (const auto& entry : report.value("steps", json::array())) {
      if (entry["id"] == id)
        return entry;
    }
    ADD_FAILURE() << "no step " << id << " in " << report.dump(2);
    return json::object();
  }
  // Every step of the catalogue, each once and in order, whatever failed.
  static void expectEveryStep(const json& report) {
    std::vector<std::string> ids;
    for (const auto& entry : report.value("steps", json::array()))
      ids.push_back(entry["id"]);
    EXPECT_EQ(ids, (std::vector<std::string>{
                       "site.config", "site.route", "site.credentials", "site.key-vault",
                       "dns.registry", "tcp.registry", "tls.registry", "http.challenge",
                       "identity.token", "registry.token", "registry.manifest", "registry.config",
                       "registry.blob", "dns.data-endpoint", "http.data-endpoint", "host.mirrors",
                       "host.state-dir", "host.published"}));
  }
  static int freePort() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
    socklen_t size = sizeof address;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size);
    ::close(fd);
    return static_cast<int>(ntohs(address.sin_port));
  }
  // The first failed step is `id`, its fix mentions `object`, and the exit code is `exit_code`.
  static void expectFailure(const json& report, const std::string& id, const std::string& object,
                            int exit_code) {
    ASSERT_TRUE(report.contains("first_failure")) << report.dump(2);
    EXPECT_EQ(report["first_failure"], id) << report.dump(2);
    const json failed = step(report, id);
    EXPECT_EQ(failed["result"], "failed") << failed.dump(2);
    ASSERT_TRUE(failed["fix"].is_string()) << failed.dump(2);
    EXPECT_NE(failed["fix"].get<std::string>().find(object), std::string::npos) << failed.dump(2);
    EXPECT_EQ(report["exit_code"], exit_code) << report.dump(2);
    EXPECT_FALSE(report["healthy"]);
  }
};

TEST_F(Diagnose, AHealthySiteOverTheVnetHasEveryStepOk) {
  Dnsmasq dns(privateZone());
  ProcessResult process;
  json report =
      diagnose(overVnet(managedIdentitySite(azure()["user_client_id"])), vnetAgent(dns), &process);
  EXPECT_EQ(process.exit_code, 0) << process.all();
  EXPECT_TRUE(report["healthy"]) << report.dump(2);
  expectEveryStep(report);
  for (const auto& entry : report["steps"]) {
    EXPECT_NE(entry["result"], "failed") << entry.dump(2);
    EXPECT_TRUE(entry["seconds"].is_number());
  }
  EXPECT_NE(step(report, "site.route")["detail"].get<std::string>().find(dns.server().str()),
            std::string::npos);
  EXPECT_NE(step(report, "dns.registry")["detail"].get<std::string>().find(
                "myreg.azurecr.io -> myreg.privatelink.azurecr.io -> 127.0.0.1"),
            std::string::npos)
      << step(report, "dns.registry");
  EXPECT_NE(step(report, "registry.token")["detail"].get<std::string>().find(
                "repository:privatewebsite:pull"),
            std::string::npos);
  EXPECT_NE(step(report, "registry.blob")["detail"].get<std::string>().find(
                "myreg.westus.data.azurecr.io"),
            std::string::npos);
  // One probe of the data endpoint, for its headers: no layer is downloaded by a diagnosis.
  EXPECT_EQ(stack().stats(stack().storage())["requests"].size(), 1u);
}

TEST_F(Diagnose, IdentityNotAssigned) {
  json report =
      diagnose(managedIdentitySite("99999999-9999-9999-9999-999999999999"), agentConfig());
  expectFailure(report, "identity.token", "99999999-9999-9999-9999-999999999999", 3);
  // The registry's own steps still ran: the route is fine.
  EXPECT_EQ(step(report, "http.challenge")["result"], "ok");
  EXPECT_EQ(step(report, "registry.manifest")["result"], "skipped");
}

TEST_F(Diagnose, AcrPullMissing) {
  json report = diagnose(managedIdentitySite(azure()["kv_client_id"]), agentConfig());
  expectFailure(report, "registry.token", "assign AcrPull on myreg.azurecr.io", 3);
  expectEveryStep(report);
  EXPECT_NE(step(report, "registry.token")["fix"].get<std::string>().find(
                azure()["kv_client_id"].get<std::string>()),
            std::string::npos);
}

TEST_F(Diagnose, VnetPullDisabledForAPrivateOnlyRegistry) {
  json agent = agentConfig();
  agent["hostOverrides"]["myreg.azurecr.io"] = json::array({azure()["public_endpoint_address"]});
  json report = diagnose(managedIdentitySite(azure()["user_client_id"]), agent);
  expectFailure(report, "http.challenge", "enable vnetImagePullEnabled", 3);
}

TEST_F(Diagnose, PrivateZoneNotLinkedResolvesToAPublicAddress) {
  // The VNet's DNS answers from public DNS: the private-link CNAME, then a public address.
  Dnsmasq dns({"--cname=myreg.azurecr.io,myreg.privatelink.azurecr.io",
               "--host-record=myreg.privatelink.azurecr.io,20.45.122.144"});
  json report = diagnose(overVnet(managedIdentitySite(azure()["user_client_id"])), vnetAgent(dns));
  expectFailure(report, "dns.registry", "link the private DNS zone privatelink.azurecr.io", 4);
  EXPECT_EQ(step(report, "tcp.registry")["result"], "skipped");  // never the public address
}

TEST_F(Diagnose, DataEndpointNotResolvableOnTheVnetRoute) {
  Dnsmasq dns({"--cname=myreg.azurecr.io,myreg.privatelink.azurecr.io",
               "--host-record=myreg.privatelink.azurecr.io,127.0.0.1"});
  json report = diagnose(overVnet(managedIdentitySite(azure()["user_client_id"])), vnetAgent(dns));
  expectFailure(report, "dns.data-endpoint", "myreg.westus.data", 4);
  EXPECT_EQ(step(report, "registry.manifest")["result"], "ok");
}

TEST_F(Diagnose, TlsNameMismatch) {
  json agent = agentConfig();
  agent["hostOverrides"]["othername.test"] = json::array({"127.0.0.1"});
  const std::string port = stack().registry("anon").substr(stack().registry("anon").find(':'));
  json report = diagnose(anonymousSite("othername.test" + port + "/test/multi:v1"), agent);
  expectFailure(report, "tls.registry", "not othername.test", 6);
}

TEST_F(Diagnose, ExpiredCertificate) {
  json agent = agentConfig();
  const std::string server = stack().info()["expired_tls"];
  agent["hostOverrides"]["expired.azurecr.io"] = json::array({"127.0.0.1"});
  json report = diagnose(
      anonymousSite("expired.azurecr.io" + server.substr(server.find(':')) + "/app:v1"), agent);
  expectFailure(report, "tls.registry", "renew the certificate of expired.azurecr.io", 6);
}

TEST_F(Diagnose, BasicCredentialsRejected) {
  json report = diagnose(credentialsSite("not-the-password"), agentConfig());
  expectFailure(report, "registry.token", "DOCKER_REGISTRY_SERVER_PASSWORD", 3);
}

// A managed identity's token goes only to an ACR login server: the emulated ACR reached by its
// address is refused before any token leaves, and the fix says what to use instead.
TEST_F(Diagnose, AManagedIdentityForARegistryThatIsNoAcr) {
  const std::string acr = azure()["acr"];  // myreg.azurecr.io:<port>
  json site = managedIdentitySite(azure()["user_client_id"]);
  site["properties"]["siteConfig"]["linuxFxVersion"] =
      "DOCKER|127.0.0.1" + acr.substr(acr.find(':')) + "/privatewebsite:lnx-v1";
  stack().reset(azure()["acr_control"]);
  json report = diagnose(site, agentConfig());
  expectFailure(report, "registry.token", "with DOCKER_REGISTRY_SERVER_USERNAME/PASSWORD", 6);
  const json stats = stack().stats(azure()["acr_control"]);  // kept: the loop reads into it
  for (const auto& request : stats["requests"])
    EXPECT_EQ(request.value("path", "").find("/oauth2/"), std::string::npos) << request.dump();
}

TEST_F(Diagnose, KeyVaultReferencePinnedToADisabledVersion) {
  const std::string version = "00000000000000000000000000000002";
  json report = diagnose(
      credentialsSite("@Microsoft.KeyVault(SecretUri=" + azure()["key_vault"].get<std::string>() +
                      "/secrets/acr-password/" + version + ")"),
      agentConfig());
  expectFailure(report, "site.key-vault", "pins version " + version + ", which is disabled", 3);
  expectEveryStep(report);
}

TEST_F(Diagnose, TagMissing) {
  json report = diagnose(managedIdentitySite(azure()["user_client_id"], "gone"), agentConfig());
  expectFailure(report, "registry.manifest", "privatewebsite:gone", 4);
}

TEST_F(Diagnose, NoImageForTheHostsPlatform) {
  json report =
      diagnose(anonymousSite(stack().registry("anon") + "/test/armonly:v1"), agentConfig());
  expectFailure(report, "registry.manifest", "linux/amd64", 4);
  EXPECT_NE(step(report, "registry.manifest")["detail"].get<std::string>().find("linux/arm64"),
            std::string::npos);
}

TEST_F(Diagnose, RegistryDown) {
  const int port = freePort();  // nothing listens there
  json report =
      diagnose(anonymousSite("127.0.0.1:" + std::to_string(port) + "/app:v1"), agentConfig());
  expectFailure(report, "tcp.registry", "open TCP port " + std::to_string(port), 5);
  expectEveryStep(report);
}

TEST_F(Diagnose, AMirrorThatDoesNotAnswerIsAWarningNotAFailure) {
  const std::string registry = stack().registry("anon");
  const fs::path hosts = dest_ / "certs.d";
  fs::create_directories(hosts / registry);
  writeFile(hosts / registry / "hosts.toml",
            "server = \"https://" + registry + "\"\n[host.\"https://127.0.0.1:" +
                std::to_string(freePort()) + "\"]\n  capabilities = [\"pull\", \"resolve\"]\n");
  json agent = agentConfig();
  agent["registryHostsDir"] = hosts.string();
  ProcessResult process;
  json report = diagnose(anonymousSite(registry + "/test/multi:v1"), agent, &process);
  EXPECT_EQ(process.exit_code, 0) << process.all();
  EXPECT_TRUE(report["healthy"]) << report.dump(2);
  const json mirrors = step(report, "host.mirrors");
  EXPECT_EQ(mirrors["result"], "warning") << mirrors.dump(2);
  EXPECT_NE(mirrors["fix"].get<std::string>().find("hosts.toml"), std::string::npos);
}

TEST_F(Diagnose, StateDirWithoutRoomForTheImage) {
  if (::geteuid() != 0)
    GTEST_SKIP() << "needs root to mount a small tmpfs";
  const fs::path small = dest_ / "small";
  fs::create_directories(small);
  auto mounted =
      runProcess({"/usr/bin/mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", small.string()});
  if (mounted.exit_code != 0)
    GTEST_SKIP() << "cannot mount a tmpfs here: " << mounted.all();
  json agent = agentConfig();
  agent["stateDir"] = (small / "state").string();
  json report = diagnose(managedIdentitySite(azure()["user_client_id"]), agent);
  runProcess({"/usr/bin/umount", "-l", small.string()});
  expectFailure(report, "host.state-dir", small.string(), 1);
}

TEST_F(Diagnose, NoSecretInTheOutput) {
  const std::string password = stack().info()["basic_password"];
  const std::string header = azure()["identity_header"];
  ProcessResult vault, identity;
  diagnose(credentialsSite("@Microsoft.KeyVault(SecretUri=" +
                           azure()["key_vault"].get<std::string>() + "/secrets/acr-password/)"),
           agentConfig(), &vault);
  json agent = agentConfig();
  agent.erase("identity");  // the App Service endpoint, from the environment
  writeFile(dest_ / "mysite.json", managedIdentitySite("").dump());
  writeFile(dest_ / "agent.json", agent.dump());
  for (const char* format : {"--json", "--log-level=debug"}) {
    identity = runProcess({PULLAGENT_BINARY, "diagnose", "--site", (dest_ / "mysite.json").string(),
                           "--config", (dest_ / "agent.json").string(), format},
                          std::chrono::seconds(120), "",
                          {"IDENTITY_ENDPOINT=" + azure()["app_service"].get<std::string>(),
                           "IDENTITY_HEADER=" + header});
    EXPECT_EQ(identity.exit_code, 0) << identity.all();
    for (const auto& output : {vault.all(), identity.all()}) {
      EXPECT_EQ(output.find(password), std::string::npos);
      EXPECT_EQ(output.find(header), std::string::npos);
      EXPECT_EQ(output.find("eyJ"), std::string::npos);  // no JWT
      // The data endpoint's URL is shown with its SAS values redacted.
      for (size_t at = output.find("sig="); at != std::string::npos;
           at = output.find("sig=", at + 1)) {
        EXPECT_EQ(output.substr(at, 12), "sig=REDACTED") << output;
      }
    }
  }
  EXPECT_EQ(vault.exit_code, 0) << vault.all();
}

class DiagnoseService : public DaemonFixture {};

TEST_F(DiagnoseService, ASiteOfTheServiceIsDiagnosedByTheServiceWithItsEnvironment) {
  // The service gets its identity endpoint from its environment (App Service's
  // IDENTITY_ENDPOINT and IDENTITY_HEADER); the command does not have them: only a diagnosis
  // in the service sees the identity the service's pulls use.
  json agent = agentConfig();
  agent.erase("identity");
  start(agent, {"IDENTITY_ENDPOINT=" + azure()["app_service"].get<std::string>(),
                "IDENTITY_HEADER=" + azure()["identity_header"].get<std::string>()});
  putSite("web", site("lnx-v1"));
  ASSERT_TRUE(waitForPublished("web", digestOf("lnx-v1"))) << siteState("web") << log();
  const json before = siteState("web");

  auto result = runProcess({PULLAGENT_BINARY, "diagnose", "web", "--config",
                            (dest_.path() / "agent.json").string(), "--json"},
                           seconds(120));
  ASSERT_EQ(result.exit_code, 0) << result.all();
  auto report = json::parse(result.out, nullptr, false);
  ASSERT_TRUE(report.is_object()) << result.all();
  EXPECT_TRUE(report["healthy"]) << report.dump(2);
  EXPECT_NE(report["diagnosed_by"].get<std::string>().find("the service"), std::string::npos);
  for (const auto& entry : report["steps"]) {
    if (entry["id"] == "identity.token") {
      EXPECT_EQ(entry["result"], "ok") << entry.dump(2);
    } else if (entry["id"] == "host.published") {
      EXPECT_NE(entry["detail"].get<std::string>().find(digestOf("lnx-v1")), std::string::npos);
    }
  }
  // Nothing was pulled or written for it: the site's state is as it was.
  EXPECT_EQ(siteState("web"), before);
  EXPECT_EQ(result.all().find(azure()["identity_header"].get<std::string>()), std::string::npos);
}

}  // namespace
}  // namespace pullagent::testing
