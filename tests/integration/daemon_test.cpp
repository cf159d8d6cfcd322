// The daemon as systemd runs it: started with NOTIFY_SOCKET and WATCHDOG_USEC, given a sites
// directory the tests write to, against the registry stack and the Azure emulators.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <memory>
#include <sstream>
#include <thread>
#include <vector>

#include "base/unique_fd.h"
#include "puller/snapshot/overlay_mount.h"
#include "puller/unpack/image_publisher.h"
#include "tests/integration/daemon_fixture.h"
#include "tests/support/estargz_sample.h"
#include "tests/support/image_view.h"
#include "tests/support/notify_socket.h"
#include "tests/support/process.h"

namespace pullagent::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

class Daemon : public DaemonFixture {
 protected:
  // The service with lazy pulling on, and a site on the stack's eStargz image.
  json lazyAgentConfig() {
    json agent = agentConfig();
    agent["storage"] = "overlay";
    agent["lazyPulling"] = "estargz";
    return agent;
  }
  // By tag, or pinned by the image's digest.
  void putLazySite(bool pinned = false) {
    const std::string image =
        pinned ? "test/estargz@" + stack().image("test/estargz:v1")["digest"].get<std::string>()
               : "test/estargz:v1";
    putSite("lazy",
            {{"properties",
              {{"siteConfig",
                {{"linuxFxVersion", "DOCKER|" + stack().proxy("proxy_anon") + "/" + image}}}}}});
  }
  // The lazy site published over its layer read in place, and kept so: one byte of the first
  // fetch of the layer's files is flipped. What readers use is verified chunk by chunk (and
  // fetched again), but the whole copy fails its digest, and the fill tries again 30 s later;
  // the image stays read in place meanwhile, long enough for these tests (a next process fills
  // the dropped copy at once). Returns once its mount's file is in the store; `digest` is the
  // image's.
  // `put_site` writes the site ("lazy", its main container on test/estargz:v1).
  void publishHeldInPlace(const json& agent, const std::function<void()>& put_site,
                          std::string& digest);
  void readsOnThroughAKillOfTheService(bool pinned);
};

void Daemon::publishHeldInPlace(const json& agent, const std::function<void()>& put_site,
                                std::string& digest) {
  stack().setFaults(stack().proxy("proxy_anon"), json::array({{{"match", "/blobs/"},
                                                               {"range_from", 0},
                                                               {"times", 1},
                                                               {"action", "corrupt_at"},
                                                               {"at", 100}}}));
  put_site();
  start(agent);
  digest = stack().image("test/estargz:v1")["digest"];
  ASSERT_TRUE(waitForPublished("lazy", digest)) << siteState("lazy") << log();
  const json described = json::parse(readFile(imageDir(digest) / "rootfs-mounts.json"));
  ASSERT_TRUE(described["layers"][0].value("inPlace", false)) << described << log();
  ASSERT_TRUE(waitUntil([&] { return notify_->stored().size() == 1; }, seconds(10)))
      << notify_->all();
}

TEST_F(Daemon, KeepsASiteOnItsConfiguredImageAndCollectsWhatNoSiteUses) {
  start();
  EXPECT_TRUE(notify_->waitForLine("WATCHDOG=1", seconds(2))) << notify_->all();

  putSite("web", site("lnx-v1"));
  ASSERT_TRUE(waitForPublished("web", digestOf("lnx-v1"))) << siteState("web") << log();
  EXPECT_NE(readFile(imageFile(imageDir(digestOf("lnx-v1")), "home/site/wwwroot/index.html"))
                .find("lnx-v1"),
            std::string::npos);
  EXPECT_EQ(storageRequests(), 3);  // config and two layers
  EXPECT_TRUE(notify_->waitForLine("STATUS=idle: 1 sites, 1 published, 0 failing", seconds(5)))
      << notify_->all();

  // lnx-v2 shares the base layer: only its config and new layer are fetched.
  stack().reset(stack().storage());
  putSite("web", site("lnx-v2"));
  ASSERT_TRUE(waitForPublished("web", digestOf("lnx-v2"))) << siteState("web") << log();
  EXPECT_EQ(storageRequests(), 2);
  EXPECT_NE(readFile(imageFile(imageDir(digestOf("lnx-v2")), "home/site/wwwroot/index.html"))
                .find("lnx-v2"),
            std::string::npos);
  // lnx-v1 is no site's image any more: collected, and its blobs with it.
  EXPECT_TRUE(waitUntil([&] { return !fs::exists(imageDir(digestOf("lnx-v1"))); })) << log();

  auto table = runProcess({PULLAGENT_BINARY, "status", "--state", stateDir().string()});
  ASSERT_EQ(table.exit_code, 0) << table.all();
  EXPECT_NE(table.out.find("web"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("published"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find(digestOf("lnx-v2").substr(7, 12)), std::string::npos) << table.out;
  auto listed =
      runProcess({PULLAGENT_BINARY, "status", "web", "--json", "--state", stateDir().string()});
  ASSERT_EQ(listed.exit_code, 0) << listed.all();
  auto states = json::parse(listed.out);
  ASSERT_EQ(states.size(), 1u);
  EXPECT_EQ(states[0]["image"], azure()["acr"].get<std::string>() + "/privatewebsite:lnx-v2");
  EXPECT_EQ(states[0]["attempts"], 0);
  EXPECT_EQ(runProcess({PULLAGENT_BINARY, "status", "nosuchsite", "--state", stateDir().string()})
                .exit_code,
            4);

  // The gc's metrics are set once it is done (its first step renames the image aside), before
  // its log line.
  EXPECT_TRUE(waitUntil([&] {
    return log().find("garbage collection: removed 1 images") != std::string::npos;
  })) << log();
  const std::string scraped = metrics();
  EXPECT_NE(scraped.find("HTTP/1.1 200 OK"), std::string::npos) << scraped;
  for (const char* line :
       {"pullagent_pulls_total{result=\"success\"} 2\n",
        "pullagent_pulls_total{result=\"failure\"} 0\n", "pullagent_sites 1\n",
        "pullagent_pulls_in_flight 0\n", "pullagent_gc_removed_total{kind=\"images\"} 1\n",
        "pullagent_blobs_total{source=\"downloaded\"} 5\n",
        "pullagent_blobs_total{source=\"store\"} 1\n",
        "pullagent_pull_phase_duration_seconds_count{phase=\"identity\"} 2\n",
        "pullagent_pull_phase_duration_seconds_count{phase=\"pull\"} 2\n"}) {
    EXPECT_NE(scraped.find(line), std::string::npos) << line << "\n" << scraped;
  }
  if (::geteuid() == 0) {  // overlay storage: the base layer's snapshot served both images
    for (const char* line :
         {"pullagent_layer_snapshots_total{result=\"unpacked\"} 3\n",
          "pullagent_layer_snapshots_total{result=\"reused\"} 1\n",
          "pullagent_gc_removed_total{kind=\"snapshots\"} 1\n", "pullagent_layer_snapshots 2\n"}) {
      EXPECT_NE(scraped.find(line), std::string::npos) << line << "\n" << scraped;
    }
  }

  // The site goes: its state goes, and its image is collected.
  fs::remove(sitesDir() / "web.json");
  EXPECT_TRUE(waitForSite("web", [](const json& state) { return state.is_null(); }));
  EXPECT_TRUE(waitUntil([&] { return !fs::exists(imageDir(digestOf("lnx-v2"))); })) << log();

  EXPECT_EQ(stop(), 0);
  // JSON lines a log shipper can read, with the lines people look for.
  std::istringstream lines(log());
  std::string line;
  int records = 0;
  while (std::getline(lines, line)) {
    auto record = json::parse(line, nullptr, false);
    ASSERT_FALSE(record.is_discarded()) << line;
    EXPECT_TRUE(record.contains("level") && record.contains("msg")) << line;
    ++records;
  }
  EXPECT_GT(records, 5);
  EXPECT_NE(log().find("Pulling image " + azure()["acr"].get<std::string>()), std::string::npos);
  EXPECT_NE(log().find("Pull image successful, time taken"), std::string::npos);
}

// The site of the issue (main + three sidecars, four kinds of authentication) under the service.
TEST_F(Daemon, ASidecarSiteIsPublishedAsOneUnitAndABrokenSidecarKeepsThePreviousOne) {
  auto shop = [&](const std::string& logs_tag) { return sidecarSite("test/" + logs_tag); };
  auto digest = [&](const std::string& image) -> std::string {
    return stack().info()["images"][image]["digest"];
  };
  putSite("shop", shop("docker:v1"));
  start();
  auto unitIs = [&](const std::string& logs_digest) {
    return [&, logs_digest](const json& state) {
      if (!state.is_object() || state["phase"] != "published" || !state["sidecars"].is_array() ||
          state["sidecars"].size() != 3 || state["published"]["digest"] != digestOf("lnx-v1") ||
          state["published"]["container"] != "web") {
        return false;
      }
      std::map<std::string, std::string> sidecars;
      for (const auto& image : state["sidecars"])
        sidecars[image["container"]] = image["digest"];
      return sidecars["cache"] == digest("test/multi:v1") && sidecars["logs"] == logs_digest &&
             sidecars["otel"] == digestOf("lnx-v2");
    };
  };
  ASSERT_TRUE(waitForSite("shop", unitIs(digest("test/docker:v1")))) << log();

  // A sidecar's tag changed: only its image is new; the main one stays what it was, and of it
  // only the manifest is asked for again (its image is published already, nothing unpacked).
  stack().reset(azure()["acr_control"]);
  stack().reset(stack().storage());
  putSite("shop", shop("multi:v2"));
  ASSERT_TRUE(waitForSite("shop", unitIs(digest("test/multi:v2")))) << log();
  const json acr = stack().stats(azure()["acr_control"]);
  for (const auto& request : acr["requests"])
    EXPECT_EQ(request.value("path", "").find("/blobs/"), std::string::npos) << acr.dump();
  EXPECT_TRUE(stack().stats(stack().storage())["requests"].empty());
  EXPECT_NE(log().find("(already published)"), std::string::npos);
  const json republished = siteState("shop");
  EXPECT_TRUE(fs::exists(imageDir(digest("test/multi:v2"))));

  // A broken sidecar: the attempt fails naming it; the previous unit keeps serving.
  putSite("shop", shop("nothing:v404"));
  ASSERT_TRUE(waitForSite("shop", [](const json& state) {
    return state.is_object() && state["phase"] == "failed" && state["lastError"].is_object();
  })) << log();
  const json failed = siteState("shop");
  EXPECT_NE(failed["lastError"]["message"].get<std::string>().find("container logs ("),
            std::string::npos)
      << failed.dump(2);
  EXPECT_EQ(failed["published"], republished["published"]);
  EXPECT_EQ(failed["sidecars"], republished["sidecars"]);
  auto table = runProcess({PULLAGENT_BINARY, "status", "--state", stateDir().string()});
  EXPECT_NE(table.out.find("- logs"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find("failed"), std::string::npos) << table.out;
  // Metrics count containers by role, never by a tenant's name.
  const std::string scraped = metrics();
  EXPECT_NE(scraped.find("pullagent_container_pulls_total{result=\"ready\",role=\"sidecar\"} "),
            std::string::npos)
      << scraped;
  EXPECT_EQ(scraped.find("pullagent_container_pulls_total{result=\"failed\",role=\"sidecar\"} 0"),
            std::string::npos)
      << scraped;
  EXPECT_EQ(scraped.find("logs"), std::string::npos);
  // gc keeps every image of the unit, the sidecar's included.
  EXPECT_EQ(stop(), 0);
  auto gc = runProcess({PULLAGENT_BINARY, "gc", "--state", stateDir().string()});
  EXPECT_EQ(gc.exit_code, 0) << gc.all();
  for (const std::string& kept :
       {digestOf("lnx-v1"), digestOf("lnx-v2"), digest("test/multi:v1"), digest("test/multi:v2")})
    EXPECT_TRUE(fs::exists(imageDir(kept))) << kept;
  EXPECT_FALSE(fs::exists(imageDir(digest("test/docker:v1"))));
}

TEST_F(Daemon, ABrokenConfigIsRetriedAndTheFixIsPickedUp) {
  start();
  putSite("web", {{"properties", {{"siteConfig", {{"linuxFxVersion", 5}}}}}});
  ASSERT_TRUE(waitForSite("web", [](const json& state) {
    return state.is_object() && state["phase"] == "failed";
  })) << log();
  auto state = siteState("web");
  EXPECT_EQ(state["lastError"]["phase"], "config");
  EXPECT_NE(state["lastError"]["message"].get<std::string>().find("linuxFxVersion"),
            std::string::npos)
      << state;

  // Now a config that parses, with an identity the site does not have: retried with backoff,
  // the config read again each time.
  putSite("web", siteWithIdentity("99999999-9999-9999-9999-999999999999", "lnx-v1"));
  ASSERT_TRUE(waitForSite("web",
                          [](const json& s) {
                            return s.is_object() && s["phase"] == "failed" && s["attempts"] >= 2 &&
                                   s["lastError"]["phase"] == "identity";
                          }))
      << siteState("web") << log();
  state = siteState("web");
  EXPECT_NE(state["lastError"]["message"].get<std::string>().find("assigned to the site"),
            std::string::npos)
      << state;
  EXPECT_TRUE(state["nextAttemptAt"].is_string());
  EXPECT_TRUE(state["published"].is_null());

  putSite("web", site("lnx-v1"));
  ASSERT_TRUE(waitForPublished("web", digestOf("lnx-v1"))) << siteState("web") << log();
  EXPECT_TRUE(siteState("web")["lastError"].is_null());
  const std::string scraped = metrics();
  EXPECT_NE(scraped.find("pullagent_pulls_total{result=\"success\"} 1\n"), std::string::npos)
      << scraped;
  EXPECT_EQ(scraped.find("pullagent_pull_retries_total 0\n"), std::string::npos) << scraped;
}

TEST_F(Daemon, SitesSharingAnImageDownloadEachBlobOnce) {
  putSite("site-a", site("lnx-v1"));
  putSite("site-b", site("lnx-v1"));
  start();
  ASSERT_TRUE(waitForPublished("site-a", digestOf("lnx-v1"))) << log();
  ASSERT_TRUE(waitForPublished("site-b", digestOf("lnx-v1"))) << log();
  EXPECT_EQ(storageRequests(), 3) << stack().stats(stack().storage());
  // The waiting site took the finished blob from the shared store: nothing left half-ingested.
  EXPECT_TRUE(fs::is_empty(stateDir() / "content/ingest"));
  // Each site showed its own token to the registry for its own manifest.
  auto tokens = stack().stats(azure()["acr_control"])["requests"];
  int exchanges = 0;
  for (const auto& request : tokens) {
    if (request.value("grant_type", "") == "refresh_token")
      ++exchanges;
  }
  EXPECT_EQ(exchanges, 2);

  // One site goes; the image stays for the other.
  fs::remove(sitesDir() / "site-b.json");
  ASSERT_TRUE(waitForSite("site-b", [](const json& state) { return state.is_null(); }));
  std::this_thread::sleep_for(milliseconds(500));
  EXPECT_TRUE(fs::exists(imageDir(digestOf("lnx-v1")) / "rootfs"));
  EXPECT_EQ(siteState("site-a")["phase"], "published");
}

TEST_F(Daemon, ADiscardingHostDropsTheBlobsOfUnpackedLayersAfterAPublish) {
  if (::geteuid() != 0)
    GTEST_SKIP() << "layer snapshots need root";
  json agent = agentConfig();
  agent["storage"] = "overlay";
  agent["discardUnpackedLayers"] = true;
  putSite("site-a", site("lnx-v1"));
  start(agent);
  ASSERT_TRUE(waitForPublished("site-a", digestOf("lnx-v1"))) << log();
  const fs::path blobs = stateDir() / "content/blobs/sha256";
  const auto manifest = json::parse(readFile(blobs / digestOf("lnx-v1").substr(7)));
  ASSERT_FALSE(manifest["layers"].empty());
  auto layersGone = [&] {
    for (const auto& layer : manifest["layers"]) {
      if (fs::exists(blobs / layer["digest"].get<std::string>().substr(7)))
        return false;
    }
    return true;
  };
  const auto deadline = std::chrono::steady_clock::now() + seconds(20);
  while (!layersGone() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(milliseconds(100));
  EXPECT_TRUE(layersGone()) << log();
  EXPECT_TRUE(fs::exists(blobs / manifest["config"]["digest"].get<std::string>().substr(7)));
  EXPECT_TRUE(fs::exists(imageDir(digestOf("lnx-v1")) / "rootfs-mounts.json"));
}

TEST_F(Daemon, SecretsNeverReachLogsStateStatusOrMetrics) {
  // App Service's identity endpoint (its header is a secret), a password from Key Vault, a
  // literal password (wrong, so its failure is recorded), a managed identity.
  json agent = agentConfig();
  agent.erase("identity");
  start(agent, {"IDENTITY_ENDPOINT=" + azure()["app_service"].get<std::string>(),
                "IDENTITY_HEADER=" + azure()["identity_header"].get<std::string>()});
  const std::string password = stack().info()["basic_password"];
  putSite("vault",
          credentialsSite("@Microsoft.KeyVault(SecretUri=" +
                          azure()["key_vault"].get<std::string>() + "/secrets/acr-password/)"));
  putSite("wrong", credentialsSite(password + "-wrong"));
  putSite("identity", siteWithIdentity("", "lnx-v1"));
  ASSERT_TRUE(waitForPublished("vault", stack().image("test/multi:v1")["digest"])) << log();
  ASSERT_TRUE(waitForPublished("identity", digestOf("lnx-v1"))) << log();
  ASSERT_TRUE(waitForSite("wrong", [](const json& state) {
    return state.is_object() && state["phase"] == "failed";
  })) << log();

  std::string everything = log() + metrics();
  for (const auto& entry : fs::recursive_directory_iterator(stateDir() / "sites"))
    everything += readFile(entry.path());
  everything += runProcess({PULLAGENT_BINARY, "status", "--state", stateDir().string()}).all();
  everything +=
      runProcess({PULLAGENT_BINARY, "status", "--json", "--state", stateDir().string()}).all();
  EXPECT_EQ(stop(), 0);
  everything += log();
  EXPECT_NE(everything.find("wrong"), std::string::npos);  // the failure is there, its secret not
  for (const std::string& secret : {password, azure()["identity_header"].get<std::string>(),
                                    std::string("eyJ"), std::string("sig=")}) {
    EXPECT_EQ(everything.find(secret), std::string::npos) << secret;
  }
}

TEST_F(Daemon, ARegistrysSlowDownHoldsEverySitesPullsToItUntilItEnds) {
  // The registry's first manifest request is answered 429 with Retry-After: 3. Sites that
  // start after that must not send the registry anything before the 3 s are over: one pause
  // for every pull to the host, not one per pull.
  const std::string acr = azure()["acr_control"];
  stack().setFaults(acr, json::array({{{"match", "/manifests/"},
                                       {"times", 1},
                                       {"action", "status"},
                                       {"status", 429},
                                       {"headers", {{"Retry-After", "3"}}}}}));
  json agent = agentConfig();
  agent["maxConcurrentPulls"] = 3;
  start(agent);
  putSite("first", site("lnx-v1"));
  double paused_at = 0;
  const auto deadline = std::chrono::steady_clock::now() + seconds(30);
  while (paused_at == 0 && std::chrono::steady_clock::now() < deadline) {
    const json seen = stack().stats(acr);  // alive for the loop (not a temporary's member)
    for (const auto& request : seen["requests"]) {
      if (request.value("fault", json()) == "status")
        paused_at = request["time"];
    }
    std::this_thread::sleep_for(milliseconds(20));
  }
  ASSERT_NE(paused_at, 0) << log();
  putSite("second", site("lnx-v2"));
  putSite("third", siteWithIdentity(azure()["user_client_id"], "lnx-v1"));
  for (const auto& [name, tag] : {std::pair{"first", "lnx-v1"}, std::pair{"second", "lnx-v2"},
                                  std::pair{"third", "lnx-v1"}}) {
    ASSERT_TRUE(waitForPublished(name, digestOf(tag))) << name << siteState(name) << log();
  }
  int after_pause = 0;
  const json seen = stack().stats(acr);
  for (const auto& request : seen["requests"]) {
    const std::string path = request["path"];
    const double at = request["time"];
    if (!path.starts_with("/v2/") || at <= paused_at)
      continue;
    EXPECT_GE(at, paused_at + 2.8) << path << " arrived during the pause";
    ++after_pause;
  }
  EXPECT_GT(after_pause, 3);
  EXPECT_NE(log().find("asked to slow down (HTTP 429)"), std::string::npos);
}

TEST_F(Daemon, GcFromTheCommandLineKeepsWhatTheSitesPublish) {
  start();
  putSite("web", site("lnx-v1"));
  ASSERT_TRUE(waitForPublished("web", digestOf("lnx-v1"))) << log();
  EXPECT_EQ(stop(), 0);
  // An image pulled by hand into the same state dir: no site publishes it.
  auto pulled = runProcess({PULLAGENT_BINARY, "pull", stack().registry("anon") + "/test/multi:v1",
                            "--state", stateDir().string(), "--ca", stack().ca()});
  ASSERT_EQ(pulled.exit_code, 0) << pulled.all();
  const std::string stray = stack().image("test/multi:v1")["digest"];
  ASSERT_TRUE(fs::exists(imageDir(stray)));

  auto gc = runProcess({PULLAGENT_BINARY, "gc", "--state", stateDir().string()});
  ASSERT_EQ(gc.exit_code, 0) << gc.all();
  EXPECT_NE(gc.out.find("removed 1 images"), std::string::npos) << gc.out;
  EXPECT_FALSE(fs::exists(imageDir(stray)));
  EXPECT_TRUE(fs::exists(imageFile(imageDir(digestOf("lnx-v1")), "home/site/wwwroot/index.html")));
}

TEST_F(Daemon, SighupReloadsTheAgentConfigAndKeepsTheOldOneWhenTheNewIsBroken) {
  start();
  putSite("web", site("lnx-v1"));
  ASSERT_TRUE(waitForPublished("web", digestOf("lnx-v1"))) << log();

  // A broken config: said so in the log, and everything goes on as before.
  writeFile(dest_.path() / "agent.json", R"({"maxConcurrentPulls": "many"})");
  size_t mark = notify_->mark();
  daemon_->kill(SIGHUP);
  ASSERT_TRUE(notify_->waitForLine("RELOADING=1", seconds(5), mark)) << notify_->all();
  ASSERT_TRUE(notify_->waitForLine("READY=1", seconds(5), mark)) << notify_->all();
  EXPECT_NE(log().find("agent config not reloaded"), std::string::npos) << log();
  EXPECT_NE(log().find("maxConcurrentPulls"), std::string::npos) << log();
  EXPECT_NE(metrics().find("pullagent_sites 1\n"), std::string::npos);

  // A good one takes effect: the metrics move to the new address.
  json agent = agentConfig();
  agent["metricsAddress"] = "unix:" + (dest_.path() / "metrics2.sock").string();
  writeFile(dest_.path() / "agent.json", agent.dump());
  mark = notify_->mark();
  daemon_->kill(SIGHUP);
  ASSERT_TRUE(notify_->waitForLine("RELOADING=1", seconds(5), mark)) << notify_->all();
  ASSERT_TRUE(notify_->waitForLine("READY=1", seconds(5), mark)) << notify_->all();
  EXPECT_NE(metrics("metrics2.sock").find("pullagent_pulls_total{result=\"success\"} 1\n"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(dest_.path() / "metrics.sock"));
  // The published site is not pulled again by a reload.
  EXPECT_EQ(siteState("web")["phase"], "published");
  EXPECT_NE(metrics("metrics2.sock").find("pullagent_pulls_total{result=\"success\"} 1\n"),
            std::string::npos);
}

// Issue 16's misbehaving scraper, against the service itself: hundreds of connections to the
// metrics socket that send nothing or half a request line. /metrics still answers within the
// client's 5 s (the server's idle timeout is 10 s, so nobody waited for them to go), and the
// service has the same threads as before and one descriptor per connection.
TEST_F(Daemon, MetricsAnswerWhileHundredsOfScrapersHangAndCostNoThreads) {
  start();
  ASSERT_NE(metrics().find("pullagent_sites 0\n"), std::string::npos) << log();
  const size_t threads_before = daemonEntries("task");
  const size_t fds_before = daemonEntries("fd");

  std::vector<UniqueFd> hanging;
  for (int i = 0; i < 300; ++i) {
    hanging.push_back(connectMetrics());
    ASSERT_TRUE(hanging.back().valid()) << "connection " << i;
    if (i % 3 == 0) {
      const std::string half = "GET /metr";
      ASSERT_EQ(::send(hanging.back().get(), half.data(), half.size(), MSG_NOSIGNAL),
                static_cast<ssize_t>(half.size()));
    }
  }
  const std::string answer = metrics();
  EXPECT_EQ(answer.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << answer.substr(0, 200);
  EXPECT_NE(answer.find("pullagent_sites 0\n"), std::string::npos);
  EXPECT_EQ(daemonEntries("task"), threads_before);
  EXPECT_LE(daemonEntries("fd"), fds_before + hanging.size() + 4);
}

// Issue 15: `pullagent refresh` re-resolves the site's tag. While it stays, one HEAD and
// nothing else; moved (a push of lnx-v2 under it), only the new layer and config are fetched
// and the site republished; with the registry down, the published image stays and the command
// says why.
TEST_F(Daemon, ARefreshFollowsAMovedTagAndKeepsTheImageWhenTheRegistryIsDown) {
  const std::string acr = azure()["acr_control"];
  stack().retag(acr, "moving", "lnx-v1");
  json agent = agentConfig();
  agent["retries"] = 2;  // the registry-down refresh fails after two tries, not six
  start(agent);
  putSite("web", site("moving"));
  ASSERT_TRUE(waitForPublished("web", digestOf("lnx-v1"))) << siteState("web") << log();
  const std::string socket = (dest_.path() / "control.sock").string();
  auto refresh = [&] {
    return runProcess({PULLAGENT_BINARY, "refresh", "--socket", socket, "web"}, seconds(120));
  };
  // Manifest requests that carried a token (the first of each attempt is the anonymous one
  // the 401 challenge answers: an attempt starts with no token).
  auto manifestRequests = [&](const std::string& method) {
    const json stats = stack().stats(acr);
    int count = 0;
    for (const auto& request : stats["requests"]) {
      if (request.value("path", "").find("/manifests/") != std::string::npos &&
          request.value("method", "") == method && request.value("authorization", false)) {
        ++count;
      }
    }
    return count;
  };

  stack().reset(acr);
  stack().reset(stack().storage());
  auto same = refresh();
  EXPECT_EQ(same.exit_code, 0) << same.all() << log();
  EXPECT_NE(same.out.find("web: unchanged"), std::string::npos) << same.all();
  EXPECT_EQ(manifestRequests("HEAD"), 1) << stack().stats(acr);
  EXPECT_EQ(manifestRequests("GET"), 0);
  EXPECT_EQ(storageRequests(), 0);
  EXPECT_TRUE(siteState("web")["lastCheckedAt"].is_string());

  stack().retag(acr, "moving", "lnx-v2");
  auto moved = refresh();
  EXPECT_EQ(moved.exit_code, 0) << moved.all() << log();
  EXPECT_NE(moved.out.find("web: updated"), std::string::npos) << moved.all();
  ASSERT_TRUE(waitForPublished("web", digestOf("lnx-v2"))) << siteState("web") << log();
  EXPECT_EQ(storageRequests(), 2);  // the new layer and the config; the base layer is here

  stack().setFaults(
      acr,
      json::array(
          {{{"match", "/manifests/"}, {"times", 100}, {"action", "status"}, {"status", 503}}}));
  auto down = refresh();
  EXPECT_EQ(down.exit_code, 1) << down.all() << log();
  EXPECT_NE(down.out.find("web: failed"), std::string::npos) << down.all();
  EXPECT_EQ(siteState("web")["published"]["digest"], digestOf("lnx-v2"));
  EXPECT_TRUE(siteState("web")["lastError"].is_object()) << siteState("web");
  auto status = runProcess({PULLAGENT_BINARY, "status", "--state", stateDir().string(), "web"});
  EXPECT_NE(status.out.find("serving " + digestOf("lnx-v2") + "; refresh failed at"),
            std::string::npos)
      << status.all();
  const std::string scraped = metrics();
  for (const char* line : {"pullagent_tag_checks_total{result=\"unchanged\"} 1\n",
                           "pullagent_tag_checks_total{result=\"updated\"} 1\n"}) {
    EXPECT_NE(scraped.find(line), std::string::npos) << line << scraped;
  }
  // At least one: the failed refresh is retried with the usual backoff meanwhile.
  EXPECT_NE(scraped.find("pullagent_tag_checks_total{result=\"failed\"} "), std::string::npos);
  EXPECT_EQ(scraped.find("pullagent_tag_checks_total{result=\"failed\"} 0\n"), std::string::npos);
  stack().setFaults(acr, json::array());
}

// Continuous deployment (DOCKER_ENABLE_CI=true): the service polls the tag and republishes
// when it moves, with no command; a site without it stays where it is.
TEST_F(Daemon, ContinuousDeploymentFollowsAMovedTagByItself) {
  const std::string acr = azure()["acr_control"];
  ASSERT_NO_FATAL_FAILURE(startWithTwoSitesOnAMovingTag(1));

  stack().retag(acr, "moving", "lnx-v2");
  ASSERT_TRUE(waitForPublished("ci", digestOf("lnx-v2"))) << siteState("ci") << log();
  EXPECT_EQ(siteState("plain")["published"]["digest"], digestOf("lnx-v1"));
}

// A registry's push webhook (ACR's payload, posted to the control socket) refreshes the sites
// with continuous deployment on that image and tag, and only those.
TEST_F(Daemon, AnAcrPushWebhookRefreshesTheSitesThatFollowTheTag) {
  const std::string acr = azure()["acr_control"];
  ASSERT_NO_FATAL_FAILURE(startWithTwoSitesOnAMovingTag(3600));  // the webhook, not a poll

  stack().retag(acr, "moving", "lnx-v2");
  const std::string login = azure()["acr"];  // myreg.azurecr.io:<port> here
  const json payload = {
      {"id", "e1"},
      {"action", "push"},
      {"target",
       {{"repository", "privatewebsite"}, {"tag", "moving"}, {"digest", digestOf("lnx-v2")}}},
      {"request", {{"host", login}, {"method", "PUT"}}}};
  const std::string answer = postControl("/v1/webhooks/acr", payload.dump());
  EXPECT_EQ(answer.rfind("HTTP/1.1 202", 0), 0u) << answer;
  ASSERT_TRUE(waitForPublished("ci", digestOf("lnx-v2"))) << siteState("ci") << log();
  EXPECT_EQ(siteState("plain")["published"]["digest"], digestOf("lnx-v1"));
}

// App Service's CI webhook for one site, authenticated by that site's publishing credentials,
// refreshes that site alone; another site's name, or the host-wide secret, gets nothing.
TEST_F(Daemon, ASitesOwnWebhookRefreshesThatSiteOnly) {
  const std::string acr = azure()["acr_control"];
  stack().retag(acr, "moving", "lnx-v1");
  const std::string socket = (dest_.path() / "webhook.sock").string();
  json agent = agentConfig();
  agent["tagPollIntervalSeconds"] = 3600;
  agent["webhookAddress"] = "unix:" + socket;
  agent["webhookSecret"] = "host-wide-secret-0123456789";
  start(agent);
  const std::string password = "own-publishing-password-0123456789";
  json own = site("moving");
  own["publishingCredentials"] = {{"publishingUserName", "$own"}, {"publishingPassword", password}};
  putSite("own", own);
  putSite("plain", site("moving"));
  ASSERT_TRUE(waitForPublished("own", digestOf("lnx-v1"))) << siteState("own") << log();
  ASSERT_TRUE(waitForPublished("plain", digestOf("lnx-v1"))) << siteState("plain") << log();

  stack().retag(acr, "moving", "lnx-v2");
  auto post = [&](const std::vector<std::string>& auth) {
    std::vector<std::string> command{
        "/usr/bin/curl", "-s",   "-o", "/dev/null", "-w", "%{http_code}",
        "--unix-socket", socket, "-X", "POST",      "-d", "{}"};
    command.insert(command.end(), auth.begin(), auth.end());
    command.push_back("http://localhost/api/registry/webhook");
    return runProcess(command).out;
  };
  EXPECT_EQ(post({"-u", "$plain:" + password}), "401");
  EXPECT_EQ(post({"-H", "Authorization: Bearer host-wide-secret-0123456789"}), "401");
  EXPECT_EQ(post({"-u", "$own:" + password}), "202");
  ASSERT_TRUE(waitForPublished("own", digestOf("lnx-v2"))) << siteState("own") << log();
  EXPECT_EQ(siteState("plain")["published"]["digest"], digestOf("lnx-v1"));
  EXPECT_EQ(log().find(password), std::string::npos);
}

TEST_F(Daemon, SigtermDuringAPullStopsCleanlyAndTheNextStartResumes) {
  const auto& image = stack().image("test/multi:v1");
  const std::string big_layer = image["layers"][1]["digest"];
  stack().setFaults(stack().proxy("proxy_anon"), json::array({{{"match", big_layer.substr(7)},
                                                               {"action", "stall_at"},
                                                               {"at", 1000000},
                                                               {"secs", 60}}}));
  putSite("web",
          {{"properties",
            {{"siteConfig",
              {{"linuxFxVersion", "DOCKER|" + stack().proxy("proxy_anon") + "/test/multi:v1"}}}}}});
  start();
  ASSERT_TRUE(notify_->waitFor(
      [](const std::string& message) { return message.starts_with("STATUS=pulling web: "); },
      seconds(30)))
      << notify_->all() << log();
  ASSERT_TRUE(waitForSite("web", [](const json& state) {
    return state.is_object() && state["progress"]["bytesDone"] >= 1000000;
  })) << siteState("web");

  const auto stopping = std::chrono::steady_clock::now();
  EXPECT_EQ(stop(), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - stopping, seconds(10));
  EXPECT_EQ(siteState("web")["phase"], "interrupted");
  EXPECT_FALSE(fs::exists(imageDir(image["digest"])));
  uintmax_t partial = 0;  // ingest/<hex>.<source>
  for (const auto& entry : fs::directory_iterator(stateDir() / "content/ingest")) {
    if (entry.path().filename().string().starts_with(big_layer.substr(7)))
      partial = entry.file_size();
  }
  EXPECT_GE(partial, 1000000u);

  // Started again, it resumes where it stopped.
  stack().reset(stack().proxy("proxy_anon"));
  start();
  ASSERT_TRUE(waitForPublished("web", image["digest"])) << siteState("web") << log();
  auto ranged = requests(stack().proxy("proxy_anon"), big_layer.substr(7));
  ASSERT_FALSE(ranged.empty());
  EXPECT_TRUE(ranged.back()["range"].is_string()) << ranged.back();
  EXPECT_LT(bytesServed(stack().proxy("proxy_anon"), big_layer.substr(7)),
            image["layers"][1]["size"].get<int64_t>());
}

TEST_F(Daemon, ASitesDirectoryAwayForAMomentLosesNothingAndAReplacedOneIsFollowed) {
  json agent = agentConfig();
  agent["rescanIntervalSeconds"] = 3600;  // only inotify can bring the replaced directory's news
  start(agent);
  putSite("web", site("lnx-v1"));
  ASSERT_TRUE(waitForPublished("web", digestOf("lnx-v1"))) << siteState("web") << log();
  const auto requests_before = storageRequests();

  // Moved away (a config-management tool replacing it, a remount) and back two seconds later.
  fs::rename(sitesDir(), dest_.path() / "sites.away");
  EXPECT_TRUE(notify_->waitFor(
      [](const std::string& m) {
        return m.find("sites directory unreadable") != std::string::npos;
      },
      seconds(5)))
      << notify_->all();
  EXPECT_NE(metrics().find("pullagent_sites_directory_healthy 0"), std::string::npos);
  std::this_thread::sleep_for(seconds(2));
  EXPECT_TRUE(fs::exists(imageDir(digestOf("lnx-v1")) / "rootfs"));
  EXPECT_EQ(siteState("web")["phase"], "published");
  fs::rename(dest_.path() / "sites.away", sitesDir());
  EXPECT_TRUE(waitUntil(
      [&] { return metrics().find("pullagent_sites_directory_healthy 1") != std::string::npos; }));
  EXPECT_TRUE(fs::exists(imageDir(digestOf("lnx-v1")) / "rootfs"));
  EXPECT_EQ(storageRequests(), requests_before);  // nothing downloaded again

  // Replaced by a new directory (built aside, renamed in): the watcher follows it, so a site
  // added in the new directory is seen at once, with the hour-long rescan far away.
  const fs::path fresh = dest_.path() / "sites.new";
  fs::create_directories(fresh);
  writeFile(fresh / "web.json", readFile(sitesDir() / "web.json"));
  fs::rename(sitesDir(), dest_.path() / "sites.old");
  fs::rename(fresh, sitesDir());
  putSite("api", site("lnx-v2"));
  ASSERT_TRUE(waitForPublished("api", digestOf("lnx-v2"))) << siteState("api") << log();
  EXPECT_TRUE(fs::exists(imageDir(digestOf("lnx-v1")) / "rootfs"));
  EXPECT_EQ(siteState("web")["phase"], "published");
}

// A slot measures work, not waiting: with the default settings, an honest site added beside four
// hostile ones (two registries dribbling their manifests, two that never answer) is published
// within seconds, not after pullSlotSeconds (60).
TEST_F(Daemon, AnHonestSiteBesideFourHostileOnesIsPublishedWithinSeconds) {
  const std::string hostile = stack().proxy("proxy_anon");
  auto dribbling = [](const std::string& repository) {
    return json{{"match", "/v2/" + repository + "/manifests/"},
                {"times", 1000},
                {"action", "respond"},
                {"headers", {{"Content-Type", "application/vnd.oci.image.manifest.v1+json"}}},
                {"body", std::string(60000, ' ')},
                {"rate", 400}};
  };
  auto hanging = [](const std::string& repository) {
    return json{{"match", "/v2/" + repository + "/manifests/"},
                {"times", 1000},
                {"action", "hang"},
                {"secs", 90}};
  };
  stack().setFaults(hostile, json::array({dribbling("hostile/a"), dribbling("hostile/b"),
                                          hanging("hostile/c"), hanging("hostile/d")}));
  auto anonymous = [](const std::string& image) {
    return json{{"properties", {{"siteConfig", {{"linuxFxVersion", "DOCKER|" + image}}}}}};
  };
  json agent = agentConfig();
  agent.erase("maxConcurrentPulls");  // every limit at its default
  start(agent);
  for (const char* name : {"a", "b", "c", "d"})
    putSite(std::string(name) + "-hostile", anonymous(hostile + "/hostile/" + name + ":v1"));
  ASSERT_TRUE(waitForSite("a-hostile", [](const json& state) {
    return state.is_object() && state["phase"] == "pulling";
  })) << log();

  const auto added = std::chrono::steady_clock::now();
  putSite("z-honest", anonymous(stack().registry("anon") + "/test/multi:v1"));
  ASSERT_TRUE(waitForPublished("z-honest", stack().image("test/multi:v1")["digest"]))
      << siteState("z-honest") << log();
  EXPECT_LT(std::chrono::steady_clock::now() - added, seconds(15));
  EXPECT_EQ(siteState("a-hostile")["phase"], "pulling");
}

TEST_F(Daemon, HostileSitesNeitherStopTheHostNorHoldEverySlot) {
  const std::string hostile = stack().proxy("proxy_anon");
  const std::string honest_image = stack().registry("anon") + "/test/multi:v1";
  // Two registries that dribble their manifests (fast enough to pass the progress rule, far too
  // slow to finish), one whose manifest lies about types, and a site file nested 400,000 deep.
  const json dribble = {
      {"times", 1000},
      {"action", "respond"},
      {"headers", {{"Content-Type", "application/vnd.oci.image.manifest.v1+json"}}},
      {"body", std::string(60000, ' ')},
      {"rate", 400}};
  json slow_a = dribble, slow_b = dribble;
  slow_a["match"] = "/v2/hostile/a/manifests/";
  slow_b["match"] = "/v2/hostile/b/manifests/";
  stack().setFaults(
      hostile,
      json::array({slow_a,
                   slow_b,
                   {{"match", "/v2/hostile/types/manifests/"},
                    {"times", 1000},
                    {"action", "respond"},
                    {"headers", {{"Content-Type", "application/vnd.oci.image.manifest.v1+json"}}},
                    {"body", R"({"schemaVersion":2,"config":{"mediaType":null},"layers":{}})"}}}));
  auto anonymous = [](const std::string& image) {
    return json{{"properties", {{"siteConfig", {{"linuxFxVersion", "DOCKER|" + image}}}}}};
  };
  // Names chosen so that the slow sites are started first and take both slots.
  putSite("a-slow", anonymous(hostile + "/hostile/a:v1"));
  putSite("b-slow", anonymous(hostile + "/hostile/b:v1"));
  putSite("c-types", anonymous(hostile + "/hostile/types:v1"));
  writeFile(sitesDir() / "d-nested.json", std::string(400000, '[') + std::string(400000, ']'));
  putSite("z-honest", anonymous(honest_image));

  json agent = agentConfig();
  agent["pullSlotSeconds"] = 2;
  agent["minTransferRateBytesPerSecond"] = 100;
  agent["documentTimeoutSeconds"] = 600;
  agent["attemptDeadlineSeconds"] = 20;
  agent["retryInitialBackoffSeconds"] = 60;
  agent["retryMaxBackoffSeconds"] = 60;
  agent.erase("maxConcurrentPulls");  // the default: 2
  const auto started = std::chrono::steady_clock::now();
  start(agent);

  // The honest site is published while both slow registries are still dribbling.
  ASSERT_TRUE(waitForPublished("z-honest", stack().image("test/multi:v1")["digest"]))
      << siteState("z-honest") << log();
  EXPECT_LT(std::chrono::steady_clock::now() - started, seconds(15));
  EXPECT_EQ(siteState("a-slow")["phase"], "pulling");
  EXPECT_EQ(siteState("b-slow")["phase"], "pulling");

  // Each hostile site ends with its own error; the process lives on and keeps its watchdog.
  auto failedWith = [&](const std::string& site, const std::string& fragment) {
    return waitForSite(
        site,
        [&](const json& state) {
          return state.is_object() && state["phase"] == "failed" &&
                 state["lastError"]["message"].get<std::string>().find(fragment) !=
                     std::string::npos;
        },
        seconds(40));
  };
  EXPECT_TRUE(failedWith("c-types", "manifest: config.mediaType")) << siteState("c-types");
  EXPECT_TRUE(failedWith("d-nested", "nested deeper than")) << siteState("d-nested");
  EXPECT_TRUE(failedWith("a-slow", "deadline")) << siteState("a-slow") << log();
  EXPECT_TRUE(failedWith("b-slow", "deadline")) << siteState("b-slow");
  EXPECT_EQ(::kill(daemon_->pid(), 0), 0);  // alive
  EXPECT_TRUE(notify_->waitForLine("WATCHDOG=1", seconds(5), notify_->mark()));

  auto table = runProcess({PULLAGENT_BINARY, "status", "--state", stateDir().string()});
  EXPECT_EQ(table.exit_code, 0) << table.all();
  for (const char* fragment : {"a-slow", "deadline", "c-types", "config.mediaType", "d-nested",
                               "nested deeper than", "z-honest"}) {
    EXPECT_NE(table.out.find(fragment), std::string::npos) << fragment << "\n" << table.out;
  }
}

// Lazy pulling in the service (issue 28): an eStargz image is published over its layer read in
// place, then filled while no site pulls, promoted to an ordinary snapshot, and the FUSE layer
// retired; the site stays published throughout.
TEST_F(Daemon, ALazySiteIsPublishedOverItsLayerReadInPlaceThenPromoted) {
  if (::geteuid() != 0 || ::access("/dev/fuse", R_OK | W_OK) != 0)
    GTEST_SKIP() << "needs root and /dev/fuse";
  const json agent = lazyAgentConfig();
  putLazySite();
  start(agent);
  const std::string digest = stack().image("test/estargz:v1")["digest"];
  ASSERT_TRUE(waitForPublished("lazy", digest)) << log();
  EXPECT_NE(log().find("served in place"), std::string::npos) << log();
  const fs::path mounts = imageDir(digest) / "rootfs-mounts.json";
  auto promoted = [&] {
    const auto layers = json::parse(readFile(mounts))["layers"];
    return layers.size() == 1 && !layers[0].value("inPlace", false);
  };
  ASSERT_TRUE(waitUntil(promoted)) << readFile(mounts) << log();
  // The record is rewritten inside the promotion; its log line follows it.
  EXPECT_TRUE(waitUntil([&] {
    return log().find("promoted to ordinary layer snapshots") != std::string::npos;
  })) << log();
  auto retired = [&] {
    for (const auto& source : fs::directory_iterator(stateDir() / "lazy")) {
      if (!fs::is_empty(source.path()))
        return false;
    }
    return true;
  };
  EXPECT_TRUE(waitUntil(retired)) << log();
  EXPECT_EQ(siteState("lazy")["phase"], "published");
  // The metrics say what happened: one promotion, bytes on demand and filled, nothing in place.
  auto counted = [&] {
    const std::string scraped = metrics();
    return scraped.find("pullagent_lazy_promotions_total 1\n") != std::string::npos &&
           scraped.find("pullagent_lazy_layers 0\n") != std::string::npos;
  };
  EXPECT_TRUE(waitUntil(counted, seconds(10))) << metrics();
  const std::string scraped = metrics();
  EXPECT_NE(scraped.find("pullagent_lazy_bytes_total{kind=\"on_demand\"}"), std::string::npos)
      << scraped;
  EXPECT_NE(scraped.find("pullagent_lazy_bytes_total{kind=\"filled\"}"), std::string::npos)
      << scraped;
}

// A service restart by SIGKILL, under systemd (the fixture plays it, with its file descriptor
// store): a container reads on through the lazy layer its overlay holds. The killed process
// gave the mount's /dev/fuse file to the store; reads meanwhile wait in the kernel's queue; the
// next process is given the file back (LISTEN_FDS), serves the mount on, promotes the image
// the first one published, and tells the store to let go once the container stops.
TEST_F(Daemon, ALazyLayerReadsOnThroughAKillOfTheService) {
  readsOnThroughAKillOfTheService(false);
}

// The same, the site pinned by digest: never refreshed, but the next process checks its
// registry once at start, which lends the route its layer's reads and fill wait for.
TEST_F(Daemon, ALazyLayerOfASitePinnedByDigestReadsOnThroughAKillOfTheService) {
  readsOnThroughAKillOfTheService(true);
}

void Daemon::readsOnThroughAKillOfTheService(bool pinned) {
  if (::geteuid() != 0 || ::access("/dev/fuse", R_OK | W_OK) != 0)
    GTEST_SKIP() << "needs root and /dev/fuse";
  const json agent = lazyAgentConfig();
  std::string digest;
  publishHeldInPlace(
      agent, [&] { putLazySite(pinned); }, digest);
  if (HasFatalFailure())
    return;
  const fs::path mounts = imageDir(digest) / "rootfs-mounts.json";
  const json described = json::parse(readFile(mounts));
  const std::string kept = notify_->stored()[0].first;
  EXPECT_TRUE(kept.starts_with("lazy-")) << kept;
  ASSERT_TRUE(waitUntil(
      [&] { return log().find("the background fill failed") != std::string::npos; }, seconds(20)))
      << log();

  // A container runs over the image.
  auto spec = puller::MountSpec::fromJson(described["mounts"][0], "mounts[0]");
  ASSERT_TRUE(spec.ok()) << spec.error().message;
  const fs::path root = dest_.path() / "container-root";
  fs::create_directories(root);
  ASSERT_TRUE(puller::mountSpec(spec.value(), root).ok());
  auto container = std::make_unique<puller::ScopedMount>(root);
  EXPECT_EQ(readFile(root / "etc/hosts"), EstargzSample::hosts());
  // The connection's abort file: should the next process not serve the mount, the test ends
  // the connection rather than hang on the reader below.
  struct stat layer_mount {};
  ASSERT_EQ(::stat(described["layers"][0]["path"].get<std::string>().c_str(), &layer_mount), 0);
  const std::string abort =
      "/sys/fs/fuse/connections/" + std::to_string(minor(layer_mount.st_dev)) + "/abort";

  daemon_->kill(SIGKILL);
  daemon_->wait();
  daemon_.reset();
  std::string big;
  std::atomic<bool> done{false};
  std::thread reader([&] {
    big = readFile(root / "bin/big");
    done = true;
  });
  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_FALSE(done.load());  // waiting for a server, not failed

  start(agent);  // given the store back
  if (!waitUntil([&] { return done.load(); }, seconds(40)))
    writeFile(abort, "1");
  reader.join();
  ASSERT_TRUE(done.load());
  EXPECT_EQ(big, EstargzSample::big());
  EXPECT_NE(log().find("served on from an earlier process"), std::string::npos) << log();
  EXPECT_EQ(readFile(root / "etc/hosts"), EstargzSample::hosts());
  // The check at start lent the layer its route, and did not pull the image whole again.
  EXPECT_TRUE(waitUntil([&] { return log().find("lent it a registry route") != std::string::npos; },
                        seconds(20)))
      << log();
  // Checked once the check's pull phase is over (the image would be pulled whole after the
  // lend, at its manifest).
  const size_t restarted = log().find("served on from an earlier process");
  EXPECT_TRUE(
      waitUntil([&] { return log().find("site lazy: pull done", restarted) != std::string::npos; },
                seconds(20)))
      << log();
  EXPECT_EQ(log().find("the image is pulled whole"), std::string::npos) << log();
  if (pinned)
    return;  // the promotion through that route, and the store's release, as for a tag
  // The promotion the killed process would have made.
  auto promoted = [&] {
    const auto layers = json::parse(readFile(mounts))["layers"];
    return layers.size() == 1 && !layers[0].value("inPlace", false);
  };
  ASSERT_TRUE(waitUntil(promoted, seconds(90))) << readFile(mounts) << log();
  EXPECT_EQ(readFile(root / "bin/big"), EstargzSample::big());  // still through the FUSE layer
  // The container stops: the layer is retired and the store lets go of its connection.
  container.reset();
  EXPECT_TRUE(waitUntil([&] { return notify_->stored().empty(); }, seconds(30)))
      << notify_->all() << log();
}

// A site of a main container read in place and a sidecar: after a kill, the sidecar's registry
// refuses it, and its failure stops the attempt's other pulls; but not the main container's,
// whose layers (served on from the killed process) wait for the route its pull lends. Its
// check answers late (its first HEAD hangs), so the sidecar fails first.
TEST_F(Daemon, ABrokenSidecarDoesNotKeepTheRouteFromALayerReadInPlaceAfterARestart) {
  if (::geteuid() != 0 || ::access("/dev/fuse", R_OK | W_OK) != 0)
    GTEST_SKIP() << "needs root and /dev/fuse";
  const json agent = lazyAgentConfig();
  const std::string proxy = stack().proxy("proxy_anon");
  auto container = [&](const std::string& name, const std::string& image, bool is_main) {
    return json{{"name", name},
                {"type", "Microsoft.Web/sites/sitecontainers"},
                {"properties",
                 {{"image", proxy + "/" + image}, {"isMain", is_main}, {"authType", "Anonymous"}}}};
  };
  const json site = {{"properties", {{"siteConfig", {{"linuxFxVersion", "SITECONTAINERS"}}}}},
                     {"sitecontainers", json::array({container("web", "test/estargz:v1", true),
                                                     container("logs", "test/docker:v1", false)})}};
  std::string digest;
  publishHeldInPlace(
      agent, [&] { putSite("lazy", site); }, digest);
  if (HasFatalFailure())
    return;
  ASSERT_TRUE(waitUntil(
      [&] { return log().find("the background fill failed") != std::string::npos; }, seconds(20)))
      << log();

  daemon_->kill(SIGKILL);
  daemon_->wait();
  daemon_.reset();
  stack().setFaults(
      proxy,
      json::array(
          {{{"match", "/test/estargz/manifests/"}, {"times", 1}, {"action", "hang"}, {"secs", 4}},
           {{"match", "/test/docker/manifests/"},
            {"times", 1000},
            {"action", "status"},
            {"status", 404}}}));
  const size_t restarted = log().size();
  start(agent);
  auto after = [&](const std::string& line) { return log().find(line, restarted); };
  ASSERT_TRUE(waitUntil(
      [&] { return after("Pull image failed for site lazy") != std::string::npos; }, seconds(30)))
      << log().substr(restarted);
  const std::string seen = log().substr(restarted);
  const size_t stopped = seen.find("logs failed: stopping the site's other containers");
  const size_t lent = seen.find("lent it a registry route");
  const size_t failed = seen.find("Pull image failed for site lazy");
  EXPECT_NE(stopped, std::string::npos) << seen;
  EXPECT_NE(seen.find("web pulls on until its registry answers for the manifest"),
            std::string::npos)
      << seen;
  // Lent within that attempt, after the sidecar failed.
  ASSERT_NE(lent, std::string::npos) << seen;
  EXPECT_GT(lent, stopped) << seen;
  EXPECT_LT(lent, failed) << seen;
  // And stopped once it had lent: the rest of its pull would serve no one.
  const size_t web_stopped = seen.find("also stopped or failed: cancelled: container web");
  EXPECT_NE(web_stopped, std::string::npos) << seen;
  EXPECT_GT(web_stopped, lent) << seen;
}

// A restart that lost the lazy layers' mounts (the service stopped for good, or ran without its
// file descriptor store): the image a site pinned by digest published over them names layers
// no one serves, and the next process publishes it again at start (pinned, and without
// refreshOnStart, nothing else would).
TEST_F(Daemon, AnImageReadInPlaceFromMountsARestartLostIsPublishedAgainAtStart) {
  if (::geteuid() != 0 || ::access("/dev/fuse", R_OK | W_OK) != 0)
    GTEST_SKIP() << "needs root and /dev/fuse";
  json agent = lazyAgentConfig();
  agent["refreshOnStart"] = false;
  std::string digest;
  publishHeldInPlace(
      agent, [&] { putLazySite(true); }, digest);
  if (HasFatalFailure())
    return;
  const fs::path mounts = imageDir(digest) / "rootfs-mounts.json";
  stop();
  notify_->takeStored();  // the store lets go: the mount's connection ends with its last file

  start(agent);
  // Served: pulled whole this time, or read in place from a mount that answers (the reads
  // below say whether it does).
  auto served = [&] { return puller::ImagePublisher::inPlaceLayersPresent(imageDir(digest)); };
  ASSERT_TRUE(waitUntil(served, seconds(30))) << readFile(mounts) << log();
  EXPECT_NE(log().find("is not served: published again"), std::string::npos)
      << readFile(mounts) << log();
  // The bundle is in place before the site's state says so.
  EXPECT_TRUE(waitUntil([&] { return siteState("lazy")["phase"] == "published"; }, seconds(10)))
      << siteState("lazy");
  // A container starting now reads the image.
  auto spec = puller::MountSpec::fromJson(json::parse(readFile(mounts))["mounts"][0], "mounts[0]");
  ASSERT_TRUE(spec.ok()) << spec.error().message;
  const fs::path root = dest_.path() / "container-root";
  fs::create_directories(root);
  ASSERT_TRUE(puller::mountSpec(spec.value(), root).ok());
  const puller::ScopedMount container(root);
  EXPECT_EQ(readFile(root / "etc/hosts"), EstargzSample::hosts());
  EXPECT_EQ(readFile(root / "bin/big"), EstargzSample::big());
}

}  // namespace
}  // namespace pullagent::testing
