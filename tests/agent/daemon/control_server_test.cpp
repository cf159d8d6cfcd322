#include "agent/daemon/control_server.h"
#include "agent/daemon/webhook_server.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "base/base64.h"
#include "tests/support/temp_dir.h"

namespace pullagent::agent {
namespace {

using nlohmann::json;

ServerRequest request(std::string method, std::string path, std::string body = "") {
  ServerRequest made;
  made.method = std::move(method);
  made.path = std::move(path);
  made.body = std::move(body);
  return made;
}

TEST(ControlServer, StartsARefreshAndReportsItsOutcomes) {
  RefreshBroker broker(nullptr);
  auto started =
      ControlServer::handle(request("POST", "/v1/refresh", R"({"sites":["web"]})"), broker);
  ASSERT_EQ(started.status, 202u) << started.body;
  const uint64_t id = json::parse(started.body)["id"];
  auto taken = broker.take();
  ASSERT_EQ(taken.size(), 1u);
  EXPECT_EQ(taken[0].sites, std::vector<std::string>{"web"});

  auto pending = json::parse(
      ControlServer::handle(request("GET", "/v1/refresh/" + std::to_string(id)), broker).body);
  EXPECT_EQ(pending["done"], false);
  broker.begin(id, {"web"});
  broker.record(id, {"web", RefreshOutcome::kUpdated, "sha256:1", "sha256:2", ""});
  auto answer = ControlServer::handle(request("GET", "/v1/refresh/" + std::to_string(id)), broker);
  ASSERT_EQ(answer.status, 200u);
  auto done = json::parse(answer.body);
  EXPECT_EQ(done["done"], true);
  EXPECT_EQ(done["sites"][0]["site"], "web");
  EXPECT_EQ(done["sites"][0]["outcome"], "updated");
  EXPECT_EQ(done["sites"][0]["to"], "sha256:2");

  // Every site, when none are named.
  EXPECT_EQ(ControlServer::handle(request("POST", "/v1/refresh"), broker).status, 202u);
  EXPECT_TRUE(broker.take().at(0).sites.empty());
}

TEST(ControlServer, RefusesWhatItDoesNotUnderstand) {
  RefreshBroker broker(nullptr);
  for (const char* body : {"not json", R"(["web"])", R"({"sites":"web"})",
                           R"({"sites":["../etc/passwd"]})", R"({"sites":[".hidden"]})"}) {
    auto answer = ControlServer::handle(request("POST", "/v1/refresh", body), broker);
    EXPECT_EQ(answer.status, 400u) << body << ": " << answer.body;
  }
  EXPECT_TRUE(broker.take().empty());
  EXPECT_EQ(ControlServer::handle(request("GET", "/v1/refresh"), broker).status, 405u);
  EXPECT_EQ(ControlServer::handle(request("POST", "/v1/refresh/1"), broker).status, 405u);
  EXPECT_EQ(ControlServer::handle(request("GET", "/v1/refresh/99"), broker).status, 404u);
  EXPECT_EQ(ControlServer::handle(request("GET", "/v1/refresh/x1"), broker).status, 404u);
  EXPECT_EQ(ControlServer::handle(request("GET", "/"), broker).status, 404u);
}

TEST(ControlServer, RegistryWebhooksBecomeRefreshesOfTheImageAndTag) {
  RefreshBroker broker(nullptr);
  const char* acr =
      R"({"id":"1","timestamp":"2026-11-27T10:00:00Z","action":"push",)"
      R"("target":{"mediaType":"application/vnd.docker.distribution.manifest.v2+json",)"
      R"("size":524,"digest":"sha256:ab","length":524,"repository":"privatewebsite","tag":"lnx-v1"},)"
      R"("request":{"id":"2","host":"myreg.azurecr.io","method":"PUT","useragent":"docker"}})";
  auto answer = ControlServer::handle(request("POST", "/v1/webhooks/acr", acr), broker);
  ASSERT_EQ(answer.status, 202u) << answer.body;
  auto taken = broker.take();
  ASSERT_EQ(taken.size(), 1u);
  ASSERT_TRUE(taken[0].push.has_value());
  EXPECT_EQ(taken[0].push->host, "myreg.azurecr.io");
  EXPECT_EQ(taken[0].push->repository, "privatewebsite");
  EXPECT_EQ(taken[0].push->tag, "lnx-v1");

  const char* hub = R"({"push_data":{"pusher":"me","tag":"latest"},)"
                    R"("repository":{"repo_name":"nginx","namespace":"library"}})";
  ASSERT_EQ(ControlServer::handle(request("POST", "/v1/webhooks/dockerhub", hub), broker).status,
            202u);
  taken = broker.take();
  EXPECT_EQ(taken.at(0).push->host, "docker.io");
  EXPECT_EQ(taken[0].push->repository, "library/nginx");
  EXPECT_EQ(taken[0].push->tag, "latest");

  // ACR's ping, a delete, a push by digest only: nothing to do.
  for (const char* ignored :
       {R"({"action":"ping"})", R"({"action":"delete","target":{"repository":"a"}})",
        R"({"action":"push","target":{"repository":"a","digest":"sha256:ab"},)"
        R"("request":{"host":"r.io"}})"}) {
    EXPECT_EQ(ControlServer::handle(request("POST", "/v1/webhooks/acr", ignored), broker).status,
              200u)
        << ignored;
  }
  EXPECT_TRUE(broker.take().empty());
  EXPECT_EQ(
      ControlServer::handle(request("POST", "/v1/webhooks/acr", R"({"action":5})"), broker).status,
      400u);
  EXPECT_EQ(ControlServer::handle(request("GET", "/v1/webhooks/acr"), broker).status, 405u);
}

TEST(WebhookServer, TakesOnlyWebhooksAndOnlyWithTheSecret) {
  RefreshBroker broker(nullptr);
  const Secret secret("a-long-shared-secret");
  const char* acr = R"({"action":"push","target":{"repository":"app","tag":"v1"},)"
                    R"("request":{"host":"myreg.azurecr.io"}})";
  auto with = [&](std::map<std::string, std::string> headers,
                  std::map<std::string, std::string> query, std::string path) {
    ServerRequest post = request("POST", std::move(path), acr);
    post.headers = std::move(headers);
    post.query = std::move(query);
    return WebhookServer::handle(post, secret, broker, SiteWebhookKeys{}).status;
  };
  EXPECT_EQ(with({}, {}, "/v1/webhooks/acr"), 401u);
  EXPECT_EQ(with({{"authorization", "Bearer wrong-secret-of-len"}}, {}, "/v1/webhooks/acr"), 401u);
  EXPECT_EQ(with({{"authorization", "Bearer a-long-shared-secre"}}, {}, "/v1/webhooks/acr"), 401u);
  EXPECT_EQ(with({}, {{"secret", "a-long-shared-secret-and-more"}}, "/v1/webhooks/acr"), 401u);
  EXPECT_TRUE(broker.take().empty());
  EXPECT_EQ(with({{"authorization", "Bearer a-long-shared-secret"}}, {}, "/v1/webhooks/acr"), 202u);
  EXPECT_EQ(with({}, {{"secret", "a-long-shared-secret"}}, "/v1/webhooks/acr"), 202u);
  EXPECT_EQ(broker.take().size(), 1u);  // the same push while the first is unfinished: coalesced
  // The control endpoint's other routes are not on the network, secret or not.
  EXPECT_EQ(with({{"authorization", "Bearer a-long-shared-secret"}}, {}, "/v1/refresh"), 404u);
}

// App Service's CI webhook for one site carries that site's publishing credentials: they refresh
// that site and nothing else, and the host-wide secret does not stand in for them.
TEST(WebhookServer, ASitesOwnCredentialsRefreshThatSiteOnly) {
  RefreshBroker broker(nullptr);
  SiteWebhookKeys keys;
  keys.set("web", SiteWebhookKeys::keyOf("$web", "web-publishing-password-0123456789"));
  keys.set("api", SiteWebhookKeys::keyOf("$api", "api-publishing-password-0123456789"));
  const Secret secret("a-long-shared-secret");
  auto post = [&](const std::string& authorization) {
    ServerRequest request;
    request.method = "POST";
    request.path = kSiteWebhookPath;
    request.body = R"({"action":"push","target":{"repository":"anything","tag":"x"}})";
    if (!authorization.empty())
      request.headers["authorization"] = authorization;
    return WebhookServer::handle(request, secret, broker, keys);
  };
  auto basic = [](const std::string& user, const std::string& password) {
    return "Basic " + encodeBase64(user + ":" + password);
  };
  EXPECT_EQ(post("").status, 401u);
  EXPECT_EQ(post(basic("$web", "api-publishing-password-0123456789")).status, 401u);
  EXPECT_EQ(post(basic("$api", "web-publishing-password-0123456789")).status, 401u);
  EXPECT_EQ(post("Bearer a-long-shared-secret").status, 401u);
  EXPECT_EQ(post("Basic !!!").status, 401u);
  EXPECT_TRUE(broker.take().empty());
  auto accepted = post(basic("$web", "web-publishing-password-0123456789"));
  EXPECT_EQ(accepted.status, 202u);
  EXPECT_NE(accepted.body.find("\"site\":\"web\""), std::string::npos) << accepted.body;
  EXPECT_EQ(accepted.body.find("api"), std::string::npos) << accepted.body;
  auto taken = broker.take();
  ASSERT_EQ(taken.size(), 1u);
  EXPECT_EQ(taken[0].sites, std::vector<std::string>{"web"});
  EXPECT_FALSE(taken[0].push.has_value());
  // A flood of the same site's webhook is one request.
  for (int i = 0; i < 100; ++i)
    EXPECT_EQ(post(basic("$web", "web-publishing-password-0123456789")).status, 202u);
  EXPECT_TRUE(broker.take().empty());
  // A site that drops its credentials takes no more webhooks.
  keys.set("web", std::nullopt);
  EXPECT_EQ(post(basic("$web", "web-publishing-password-0123456789")).status, 401u);
}

TEST(ControlServer, ListensOnASocketOnlyRootCanOpen) {
  testing::TempDir dir;
  RefreshBroker broker(nullptr);
  SystemClock clock;
  SystemRandom random;
  DiagnosisRunner diagnoses(clock, random);
  const std::string path = (dir / "control.sock").string();
  auto server = ControlServer::start(path, broker, diagnoses);
  ASSERT_TRUE(server.ok()) << server.error().message;
  struct stat info {};
  ASSERT_EQ(::lstat(path.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
}

TEST(ControlServer, ADiagnosisNeedsASiteName) {
  RefreshBroker broker(nullptr);
  SystemClock clock;
  SystemRandom random;
  DiagnosisRunner diagnoses(clock, random);
  auto post = [&](const std::string& body) {
    return ControlServer::handle({"POST", "/v1/diagnose", {}, {}, body}, broker, &diagnoses);
  };
  EXPECT_EQ(post(R"({"site": "../etc/passwd"})").status, 400u);
  EXPECT_EQ(post(R"({"sites": ["web"]})").status, 400u);
  EXPECT_EQ(post("not json").status, 400u);
  // Before the service has its config, nothing can be diagnosed.
  EXPECT_EQ(post(R"({"site": "web"})").status, 503u);
  EXPECT_EQ(ControlServer::handle({"GET", "/v1/diagnose/7", {}, {}, ""}, broker, &diagnoses).status,
            404u);
  EXPECT_EQ(ControlServer::handle({"GET", "/v1/diagnose", {}, {}, ""}, broker, &diagnoses).status,
            405u);
  // A control server without diagnoses (tests) does not know the path.
  EXPECT_EQ(
      ControlServer::handle({"POST", "/v1/diagnose", {}, {}, R"({"site": "web"})"}, broker).status,
      404u);
}

}  // namespace
}  // namespace pullagent::agent
