// The daemon as systemd runs it: started with NOTIFY_SOCKET and WATCHDOG_USEC, given a sites
// directory the tests write to, against the registry stack and the Azure emulators. The fixture
// of the service's integration tests (daemon_test.cpp, disk_test.cpp).
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "base/unique_fd.h"
#include "tests/integration/pull_fixture.h"
#include "tests/support/notify_socket.h"
#include "tests/support/process.h"

namespace pullagent::testing {

class DaemonFixture : public PullTest {
 protected:
  using json = nlohmann::json;
  using milliseconds = std::chrono::milliseconds;
  using seconds = std::chrono::seconds;

  void SetUp() override {
    PullTest::SetUp();
    std::filesystem::create_directories(sitesDir());
  }
  void TearDown() override {
    if (daemon_)
      stop();
  }
  std::filesystem::path sitesDir() const { return dest_.path() / "sites"; }
  std::filesystem::path stateDir() const { return dest_.path() / "state"; }
  std::filesystem::path imageDir(const std::string& digest) const {
    return stateDir() / "images" / digest.substr(7);
  }
  std::string digestOf(const std::string& tag) {
    return azure()["images"]["privatewebsite:" + tag]["digest"];
  }

  json agentConfig() {
    return {{"stateDir", stateDir().string()},
            {"sitesDir", sitesDir().string()},
            {"caBundle", stack().ca()},
            {"hostOverrides", azure()["host_overrides"]},
            {"identity", {{"kind", "imds"}, {"endpoint", azure()["imds"]}}},
            {"metricsAddress", "unix:" + (dest_.path() / "metrics.sock").string()},
            {"controlSocket", (dest_.path() / "control.sock").string()},
            {"maxConcurrentPulls", 2},
            {"rescanIntervalSeconds", 30},
            {"retryInitialBackoffSeconds", 1},
            {"retryMaxBackoffSeconds", 2},
            {"siteRemovalGraceSeconds", 1},
            // These tests count collections of replaced images: none is kept as previous
            // (disk_test.cpp tests keeping them).
            {"keepPreviousImages", 0}};
  }
  json siteWithIdentity(const std::string& client_id, const std::string& tag) {
    return {{"properties",
             {{"siteConfig",
               {{"acrUseManagedIdentityCreds", true},
                {"acrUserManagedIdentityID", client_id},
                {"linuxFxVersion",
                 "DOCKER|" + azure()["acr"].get<std::string>() + "/privatewebsite:" + tag}}}}}};
  }
  json site(const std::string& tag) { return siteWithIdentity(azure()["user_client_id"], tag); }

  // Written as deployments write configs: a temporary file renamed into place.
  void putSite(const std::string& name, const json& config) {
    const std::filesystem::path temporary = sitesDir() / ("." + name + ".json.tmp");
    writeFile(temporary, config.dump());
    std::filesystem::rename(temporary, sitesDir() / (name + ".json"));
  }

  void start(const json& agent, const std::vector<std::string>& extra_env = {}) {
    writeFile(dest_.path() / "agent.json", agent.dump());
    // systemd keeps the service's file descriptor store across its restarts, and gives it back
    // to the next process (LISTEN_FDS).
    auto stored = notify_ ? notify_->takeStored() : std::map<std::string, UniqueFd>{};
    notify_.reset();  // first: the old socket's destructor unlinks the path
    notify_ = std::make_unique<NotifySocket>((dest_.path() / "notify.sock").string());
    notify_->keepStored(std::move(stored));
    std::vector<std::string> env = environment(extra_env);
    std::vector<int> listen_fds;
    std::string names;
    for (const auto& [name, fd] : notify_->stored()) {
      listen_fds.push_back(fd);
      names += (names.empty() ? "" : ":") + name;
    }
    if (!listen_fds.empty()) {
      env.push_back("LISTEN_FDS=" + std::to_string(listen_fds.size()));
      env.push_back("LISTEN_FDNAMES=" + names);
    }
    daemon_ = std::make_unique<BackgroundProcess>(
        std::vector<std::string>{PULLAGENT_BINARY, "--config",
                                 (dest_.path() / "agent.json").string(), "--log-format", "json"},
        env, (dest_.path() / "daemon.log").string(), listen_fds);
    ASSERT_TRUE(notify_->waitForLine("READY=1", seconds(20))) << log() << notify_->all();
  }
  void start() { start(agentConfig()); }
  std::vector<std::string> environment(std::vector<std::string> extra) const {
    extra.push_back("NOTIFY_SOCKET=" + notify_->path());
    extra.push_back("FDSTORE=1024");  // as systemd 254 says FileDescriptorStoreMax=1024
    extra.push_back("WATCHDOG_USEC=400000");
    return extra;
  }
  // SIGTERM; returns the exit code, after checking the goodbye.
  int stop() {
    daemon_->kill(SIGTERM);
    int code = daemon_->wait();
    EXPECT_TRUE(notify_->waitForLine("STOPPING=1", milliseconds(100))) << notify_->all();
    daemon_.reset();
    return code;
  }
  std::string log() const { return readFile(dest_.path() / "daemon.log"); }

  // The service started with the tag "moving" at lnx-v1 and two sites on it, both published:
  // "ci" with continuous deployment (DOCKER_ENABLE_CI=true), "plain" without.
  void startWithTwoSitesOnAMovingTag(int poll_seconds) {
    stack().retag(azure()["acr_control"], "moving", "lnx-v1");
    json agent = agentConfig();
    agent["tagPollIntervalSeconds"] = poll_seconds;
    start(agent);
    json ci = site("moving");
    ci["properties"]["siteConfig"]["appSettings"] =
        json::array({{{"name", "DOCKER_ENABLE_CI"}, {"value", "true"}}});
    putSite("ci", ci);
    putSite("plain", site("moving"));
    ASSERT_TRUE(waitForPublished("ci", digestOf("lnx-v1"))) << siteState("ci") << log();
    ASSERT_TRUE(waitForPublished("plain", digestOf("lnx-v1"))) << siteState("plain") << log();
  }

  json siteState(const std::string& name) const {
    const std::filesystem::path path = stateDir() / "sites" / (name + ".json");
    if (!std::filesystem::exists(path))
      return nullptr;
    auto doc = json::parse(readFile(path), nullptr, false);
    return doc.is_discarded() ? json(nullptr) : doc;
  }
  // Polls the site's state file until `check` holds.
  bool waitForSite(const std::string& name, const std::function<bool(const json&)>& check,
                   seconds timeout = seconds(60)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (check(siteState(name)))
        return true;
      std::this_thread::sleep_for(milliseconds(50));
    }
    return false;
  }
  bool waitForPublished(const std::string& name, const std::string& digest) {
    return waitForSite(name, [&](const json& state) {
      return state.is_object() && state["phase"] == "published" && state["published"].is_object() &&
             state["published"]["digest"] == digest;
    });
  }
  static bool waitUntil(const std::function<bool()>& check, seconds timeout = seconds(30)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (check())
        return true;
      std::this_thread::sleep_for(milliseconds(50));
    }
    return false;
  }

  // A connection to the daemon's metrics socket; reads give up after 5 s, so a server that
  // does not answer fails the test instead of hanging it.
  UniqueFd connectMetrics(const std::string& socket_name = "metrics.sock") const {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    const std::string path = (dest_.path() / socket_name).string();
    std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
    timeval timeout{5, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0)
      return UniqueFd();
    return fd;
  }
  // GET /metrics over the daemon's unix socket.
  std::string metrics(const std::string& socket_name = "metrics.sock") const {
    UniqueFd fd = connectMetrics(socket_name);
    std::string response;
    const std::string request =
        "GET /metrics HTTP/1.1\r\nHost: pullagent\r\nConnection: close\r\n\r\n";
    if (fd.valid() && ::write(fd.get(), request.data(), request.size()) > 0) {
      char buffer[4096];
      ssize_t n = 0;
      while ((n = ::read(fd.get(), buffer, sizeof buffer)) > 0)
        response.append(buffer, static_cast<size_t>(n));
    }
    return response;
  }
  // POST to the daemon's control socket; the raw answer.
  std::string postControl(const std::string& path, const std::string& body) const {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    const std::string socket_path = (dest_.path() / "control.sock").string();
    std::memcpy(address.sun_path, socket_path.c_str(), socket_path.size() + 1);
    timeval timeout{5, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    std::string response;
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0)
      return response;
    const std::string request = "POST " + path +
                                " HTTP/1.1\r\nHost: pullagent\r\nConnection: close\r\n"
                                "Content-Type: application/json\r\nContent-Length: " +
                                std::to_string(body.size()) + "\r\n\r\n" + body;
    if (::write(fd.get(), request.data(), request.size()) > 0) {
      char buffer[4096];
      ssize_t n = 0;
      while ((n = ::read(fd.get(), buffer, sizeof buffer)) > 0)
        response.append(buffer, static_cast<size_t>(n));
    }
    return response;
  }
  size_t daemonEntries(const char* dir) const {
    const std::filesystem::path path =
        std::filesystem::path("/proc") / std::to_string(daemon_->pid()) / dir;
    return static_cast<size_t>(std::distance(std::filesystem::directory_iterator(path),
                                             std::filesystem::directory_iterator()));
  }
  int storageRequests() {
    return static_cast<int>(stack().stats(stack().storage())["requests"].size());
  }

  std::unique_ptr<NotifySocket> notify_;
  std::unique_ptr<BackgroundProcess> daemon_;
};

}  // namespace pullagent::testing
