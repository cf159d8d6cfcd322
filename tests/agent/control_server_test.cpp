#include "agent/daemon/control_server.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "tests/support/temp_dir.h"

namespace pullagent::agent {
namespace {

using nlohmann::json;

ServerRequest request(std::string method, std::string path, std::string body = "") {
  return ServerRequest{std::move(method), std::move(path), {}, std::move(body)};
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

TEST(ControlServer, ListensOnASocketOnlyRootCanOpen) {
  testing::TempDir dir;
  RefreshBroker broker(nullptr);
  const std::string path = (dir / "control.sock").string();
  auto server = ControlServer::start(path, broker);
  ASSERT_TRUE(server.ok()) << server.error().message;
  struct stat info {};
  ASSERT_EQ(::lstat(path.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
}

}  // namespace
}  // namespace pullagent::agent
