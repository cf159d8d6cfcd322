// Disk is finite: the service on a small loop-mounted ext4 (root only), redeploying more
// versions than fit; admission before the first byte; stopped sites.
#include <gtest/gtest.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <thread>

#include "tests/integration/daemon_fixture.h"
#include "tests/support/image_view.h"

namespace pullagent::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr int64_t kMiB = 1024 * 1024;

class Disk : public DaemonFixture {
 protected:
  void TearDown() override {
    DaemonFixture::TearDown();
    if (mounted_)
      runProcess({"/usr/bin/umount", "-l", stateDir().string()});
  }

  // The state dir on an ext4 of its own, `mib` MiB in a file: what a full disk does, without
  // filling the host's. Skips the test where loop devices are missing (not root, a container).
  void mountSmallDisk(int mib) {
    if (::geteuid() != 0)
      GTEST_SKIP() << "needs root to mount a loop ext4 (the disk tests run as root in CI)";
    const fs::path file = dest_.path() / "disk.img";
    fs::create_directories(stateDir());
    auto made = runProcess({"/usr/bin/truncate", "-s", std::to_string(mib) + "M", file.string()});
    ASSERT_EQ(made.exit_code, 0) << made.all();
    // No blocks reserved for root: the agent runs as root, and df's Use% should be the whole.
    auto formatted = runProcess({"/usr/sbin/mkfs.ext4", "-q", "-F", "-m", "0", file.string()});
    ASSERT_EQ(formatted.exit_code, 0) << formatted.all();
    auto mounted = runProcess({"/usr/bin/mount", "-o", "loop", file.string(), stateDir().string()});
    if (mounted.exit_code != 0)
      GTEST_SKIP() << "cannot mount a loop device here: " << mounted.all();
    mounted_ = true;
    ::chmod(stateDir().c_str(), 0700);
  }
  double usedPercent() const {
    struct statvfs info {};
    if (::statvfs(stateDir().c_str(), &info) != 0)
      return 0;
    const double used = static_cast<double>(info.f_blocks - info.f_bfree);
    return 100.0 * used / (used + static_cast<double>(info.f_bavail));
  }
  int64_t totalBytes() const {
    struct statvfs info {};
    ::statvfs(stateDir().c_str(), &info);
    return static_cast<int64_t>(info.f_blocks) * static_cast<int64_t>(info.f_frsize);
  }

  static json anonymousSite(const std::string& image) {
    return {{"properties", {{"siteConfig", {{"linuxFxVersion", "DOCKER|" + image}}}}}};
  }
  std::string diskImage(int version) {
    return stack().registry("anon") + "/test/disk:v" + std::to_string(version);
  }
  std::string diskDigest(int version) {
    return stack().info()["disk_images"]["test/disk:v" + std::to_string(version)]["digest"];
  }
  // The last-use records, by image hex.
  std::map<std::string, std::string> lastUse() const {
    std::map<std::string, std::string> records;
    std::error_code ec;
    for (fs::directory_iterator it(stateDir() / "last-use", ec), end; !ec && it != end;
         it.increment(ec)) {
      records[it->path().filename().string()] = readFile(it->path());
    }
    return records;
  }
  // The images eviction removed, in order, from the service's log.
  std::vector<std::string> evicted() const {
    std::vector<std::string> images;
    const std::string text = log();
    const std::string marker = "eviction: removed image sha256:";
    for (size_t at = text.find(marker); at != std::string::npos;
         at = text.find(marker, at + marker.size())) {
      images.push_back(text.substr(at + marker.size(), 64));
    }
    return images;
  }

  bool mounted_ = false;
};

// Two sites redeploy six versions each (a 2 MiB app layer over a shared base) on a 32 MiB disk
// while keeping every previous image: more than fits below the marks. Sampled all along, the disk
// never goes past the high watermark by more than one pull; no pull fails for space; what is
// published is whole; and the eviction order a restarted service follows is the recorded one.
TEST_F(Disk, RedeploysMoreThanFitsStayBelowTheMarksAndEvictInTheRecordedOrder) {
  ASSERT_NO_FATAL_FAILURE(mountSmallDisk(32));
  if (IsSkipped())
    return;
  json agent = agentConfig();
  agent["keepPreviousImages"] = 10;
  // Each version then costs its snapshot alone once published (2 MiB, 8 % of the disk), so
  // what eviction does depends on the number of images only: above 30 % at the fourth version,
  // down to 20 % by evicting the two oldest.
  agent["discardUnpackedLayers"] = true;
  agent["diskHighWatermarkPercent"] = 30;
  agent["diskLowWatermarkPercent"] = 20;
  agent["diskCheckIntervalSeconds"] = 1;
  start(agent);
  std::atomic<double> highest{0};
  std::jthread sampler([&](const std::stop_token& stop) {
    while (!stop.stop_requested()) {
      highest = std::max(highest.load(), usedPercent());
      std::this_thread::sleep_for(milliseconds(10));
    }
  });
  auto deploy = [&](int version) {
    putSite("a", anonymousSite(diskImage(version)));
    putSite("b", anonymousSite(diskImage(version)));
    EXPECT_TRUE(waitForPublished("a", diskDigest(version))) << siteState("a") << log();
    EXPECT_TRUE(waitForPublished("b", diskDigest(version))) << siteState("b") << log();
  };
  for (int version = 1; version <= 4; ++version)
    deploy(version);
  // The check after a publish runs on the service's next turn: waited for.
  ASSERT_TRUE(waitUntil([&] { return !evicted().empty(); }, seconds(10)))
      << "nothing was evicted: the test no longer tests eviction\n"
      << log();

  // A restart in the middle: the candidates' records stay as they were, and the next eviction
  // takes the oldest of them.
  EXPECT_EQ(stop(), 0);
  auto records = lastUse();
  std::vector<std::pair<std::string, std::string>> candidates;  // (record, hex)
  for (const auto& [hex, record] : records) {
    if (hex != diskDigest(4).substr(7) && fs::exists(stateDir() / "images" / hex))
      candidates.emplace_back(json::parse(record)["unixMs"].dump(), hex);
  }
  ASSERT_FALSE(candidates.empty());
  std::sort(candidates.begin(), candidates.end(), [](const auto& x, const auto& y) {
    return x.first.size() != y.first.size() ? x.first.size() < y.first.size() : x < y;
  });
  fs::rename(dest_.path() / "daemon.log", dest_.path() / "daemon-1.log");
  start(agent);
  for (const auto& [record, hex] : candidates)
    EXPECT_EQ(lastUse()[hex], records[hex]) << hex;  // the start touched no candidate
  deploy(5);
  deploy(6);
  ASSERT_TRUE(waitUntil([&] { return !evicted().empty() && usedPercent() <= 30.0; }, seconds(10)))
      << usedPercent() << "\n"
      << log();
  sampler.request_stop();
  sampler.join();
  const auto after_restart = evicted();
  ASSERT_FALSE(after_restart.empty()) << log();
  EXPECT_EQ(after_restart.front(), candidates.front().second) << log();

  // One pull's worth past the high mark at most: the 2 MiB layer and its unpacked copy.
  const double one_pull = 100.0 * static_cast<double>(5 * kMiB) / static_cast<double>(totalBytes());
  EXPECT_LE(highest.load(), 30.0 + one_pull);
  EXPECT_LE(usedPercent(), 30.0);
  const std::string logs = readFile(dest_.path() / "daemon-1.log") + log();
  EXPECT_EQ(logs.find("No space left"), std::string::npos) << logs;
  EXPECT_EQ(logs.find("does not fit"), std::string::npos) << logs;
  // What is published is whole: the sites' images, and the previous ones still kept.
  for (const auto& entry : fs::directory_iterator(stateDir() / "images")) {
    const std::string hex = entry.path().filename().string();
    if (hex.starts_with("."))
      continue;
    for (int version = 1; version <= 6; ++version) {
      if (diskDigest(version).substr(7) == hex) {
        EXPECT_NE(readFile(imageFile(entry.path(), "app/version.txt"))
                      .find("disk-v" + std::to_string(version)),
                  std::string::npos)
            << hex;
      }
    }
  }
  EXPECT_NE(metrics().find("pullagent_disk_evicted_bytes_total{reason=\"unused-image\"}"),
            std::string::npos);
}

// A pull that cannot fit even after eviction is refused from its manifest alone: no blob is
// requested, the error says needed, free and evictable bytes, and the published image stays.
TEST_F(Disk, APullThatCannotFitIsRefusedBeforeItsFirstBlobAndThePublishedImageStays) {
  ASSERT_NO_FATAL_FAILURE(mountSmallDisk(24));
  if (IsSkipped())
    return;
  json agent = agentConfig();
  start(agent);
  const std::string proxy = stack().proxy("proxy_anon");
  putSite("web", anonymousSite(proxy + "/test/disk:v1"));
  ASSERT_TRUE(waitForPublished("web", diskDigest(1))) << siteState("web") << log();
  // Ballast leaves about 1 MiB: v2 needs its 2 MiB layer twice, and eviction could free only
  // v1's layer blobs (its snapshots stay: v1 is in use).
  struct statvfs info {};
  ASSERT_EQ(::statvfs(stateDir().c_str(), &info), 0);
  const int64_t available =
      static_cast<int64_t>(info.f_bavail) * static_cast<int64_t>(info.f_frsize);
  auto filled = runProcess({"/usr/bin/fallocate", "-l", std::to_string(available - kMiB),
                            (stateDir() / "ballast").string()});
  ASSERT_EQ(filled.exit_code, 0) << filled.all();
  stack().reset(proxy);
  putSite("web", anonymousSite(proxy + "/test/disk:v2"));
  ASSERT_TRUE(waitForSite("web",
                          [](const json& state) {
                            return state.is_object() && state["lastError"].is_object() &&
                                   state["lastError"]["phase"] == "disk";
                          }))
      << siteState("web") << log();
  const std::string message = siteState("web")["lastError"]["message"];
  for (const char* part : {"does not fit", "needs", "free", "evictable", "published image stays"})
    EXPECT_NE(message.find(part), std::string::npos) << part << ": " << message;
  EXPECT_TRUE(requests(proxy, "/blobs/").empty()) << stack().stats(proxy).dump(2);
  EXPECT_FALSE(requests(proxy, "/manifests/").empty());
  EXPECT_EQ(siteState("web")["published"]["digest"], diskDigest(1));
  EXPECT_NE(readFile(imageFile(imageDir(diskDigest(1)), "app/version.txt")).find("disk-v1"),
            std::string::npos);
  EXPECT_NE(metrics().find("pullagent_pull_admission_refused_total "), std::string::npos);
  EXPECT_EQ(metrics().find("pullagent_pull_admission_refused_total 0"), std::string::npos);

  // Space comes back: the retry fits.
  fs::remove(stateDir() / "ballast");
  EXPECT_TRUE(waitForPublished("web", diskDigest(2))) << siteState("web") << log();
}

// "state": "Stopped": no registry request over several poll intervals; started again, its tag
// is checked.
TEST_F(Disk, AStoppedSiteCostsNoRegistryRequestAndStartingItChecksItsTag) {
  json agent = agentConfig();
  agent["tagPollIntervalSeconds"] = 1;
  start(agent);
  const std::string proxy = stack().proxy("proxy_anon");
  json site = anonymousSite(proxy + "/test/disk:v1");
  site["properties"]["siteConfig"]["appSettings"] =
      json::array({{{"name", "DOCKER_ENABLE_CI"}, {"value", "true"}}});
  putSite("web", site);
  ASSERT_TRUE(waitForPublished("web", diskDigest(1))) << siteState("web") << log();

  site["properties"]["state"] = "Stopped";
  putSite("web", site);
  ASSERT_TRUE(waitForSite(
      "web", [](const json& state) { return state.is_object() && state["phase"] == "stopped"; }))
      << siteState("web") << log();
  stack().reset(proxy);
  std::this_thread::sleep_for(seconds(4));  // four poll intervals
  EXPECT_TRUE(stack().stats(proxy)["requests"].empty()) << stack().stats(proxy).dump(2);
  EXPECT_EQ(siteState("web")["published"]["digest"], diskDigest(1));
  EXPECT_TRUE(fs::exists(imageDir(diskDigest(1))));

  site["properties"]["state"] = "Running";
  putSite("web", site);
  EXPECT_TRUE(waitUntil([&] { return !requests(proxy, "/manifests/").empty(); })) << log();
  EXPECT_TRUE(waitForPublished("web", diskDigest(1))) << siteState("web") << log();
}

// keepPreviousImages: the previous image stays published-ready, and `pullagent rollback` puts
// the site back on it at once, without a registry request.
TEST_F(Disk, ARollbackPublishesThePreviousImageWithoutARegistryRequest) {
  json agent = agentConfig();
  agent["keepPreviousImages"] = 1;
  start(agent);
  const std::string proxy = stack().proxy("proxy_anon");
  putSite("web", anonymousSite(proxy + "/test/disk:v1"));
  ASSERT_TRUE(waitForPublished("web", diskDigest(1))) << siteState("web") << log();
  putSite("web", anonymousSite(proxy + "/test/disk:v2"));
  ASSERT_TRUE(waitForPublished("web", diskDigest(2))) << siteState("web") << log();
  EXPECT_TRUE(fs::exists(imageDir(diskDigest(1))));  // kept as the previous image

  stack().reset(proxy);
  auto rolled = runProcess(
      {PULLAGENT_BINARY, "rollback", "web", "--socket", (dest_.path() / "control.sock").string()});
  EXPECT_EQ(rolled.exit_code, 0) << rolled.all();
  EXPECT_NE(rolled.out.find("updated"), std::string::npos) << rolled.all();
  EXPECT_TRUE(waitForPublished("web", diskDigest(1))) << siteState("web") << log();
  EXPECT_TRUE(stack().stats(proxy)["requests"].empty()) << stack().stats(proxy).dump(2);
  auto images = runProcess({PULLAGENT_BINARY, "images", "--state", stateDir().string()});
  EXPECT_NE(images.out.find("web:previous"), std::string::npos) << images.all();
  auto unknown = runProcess({PULLAGENT_BINARY, "rollback", "nosuchsite", "--socket",
                             (dest_.path() / "control.sock").string()});
  EXPECT_EQ(unknown.exit_code, 4) << unknown.all();
}

// warmImages: pulled at low priority (a site pull that wants to start pauses it, and it resumes
// from its partial download afterwards), recorded, shown by `images`, kept when no site uses it.
TEST_F(Disk, AWarmImageGivesWayToASitePullThenResumesAndIsKept) {
  const std::string proxy = stack().proxy("proxy_anon");
  const json layers = stack().info()["disk_images"]["test/disk:v3"]["layers"];
  const std::string app_layer = layers[1]["digest"].get<std::string>().substr(7);
  // The warm image's 2 MiB layer dribbles (about 7 s) the first time it is asked for.
  stack().setFaults(proxy, json::array({{{"match", app_layer}, {"times", 1}, {"rate", 300000}}}));
  json agent = agentConfig();
  agent["warmImages"] = json::array({{{"image", proxy + "/test/disk:v3"}}});
  start(agent);
  ASSERT_TRUE(waitUntil([&] { return !requests(proxy, app_layer).empty(); })) << log();

  putSite("web", anonymousSite(proxy + "/test/disk:v1"));
  ASSERT_TRUE(waitForPublished("web", diskDigest(1))) << siteState("web") << log();
  const fs::path records = stateDir() / "warm.json";
  // Published while the warm pull was paused, not after it.
  EXPECT_TRUE(!fs::exists(records) || readFile(records).find(diskDigest(3)) == std::string::npos)
      << readFile(records);
  EXPECT_NE(log().find("paused for site pulls"), std::string::npos) << log();

  ASSERT_TRUE(waitUntil([&] { return readFile(records).find(diskDigest(3)) != std::string::npos; },
                        seconds(60)))
      << log();
  auto asked = requests(proxy, app_layer);
  ASSERT_GE(asked.size(), 2u);
  EXPECT_TRUE(asked.back()["range"].is_string()) << asked.back().dump();  // resumed, not again
  EXPECT_TRUE(fs::exists(imageDir(diskDigest(3)) / "pullagent-published"));
  auto images = runProcess({PULLAGENT_BINARY, "images", "--state", stateDir().string()});
  EXPECT_NE(images.out.find("warm"), std::string::npos) << images.all();

  // No site uses it, and gc (the service's, after the site moves; the command's) keeps it.
  putSite("web", anonymousSite(proxy + "/test/disk:v2"));
  ASSERT_TRUE(waitForPublished("web", diskDigest(2))) << siteState("web") << log();
  EXPECT_EQ(stop(), 0);
  auto collected = runProcess({PULLAGENT_BINARY, "gc", "--state", stateDir().string()});
  EXPECT_EQ(collected.exit_code, 0) << collected.all();
  EXPECT_TRUE(fs::exists(imageDir(diskDigest(3)) / "pullagent-published"));
}

// additionalStores: a read-only store of the base layer serves a site of the registry it is
// configured for (only the new layer is fetched); a flipped byte in the store is caught and the
// blob fetched from the registry; a store configured for another registry is not consulted.
TEST_F(Disk, AReadOnlyStoreServesOnlyItsRegistriesAndAFlippedByteIsFetchedInstead) {
  const std::string proxy = stack().proxy("proxy_anon");
  const fs::path seed = dest_.path() / "seed";
  auto seeded = runProcess({PULLAGENT_BINARY, "pull", stack().registry("anon") + "/test/disk:v1",
                            "--state", seed.string(), "--ca", stack().ca(), "--storage", "flat"});
  ASSERT_EQ(seeded.exit_code, 0) << seeded.all();
  const fs::path broken = dest_.path() / "broken-seed";
  fs::copy(seed, broken, fs::copy_options::recursive);
  const json v2 = stack().info()["disk_images"]["test/disk:v2"];
  const std::string base = v2["layers"][0]["digest"].get<std::string>().substr(7);
  const std::string app = v2["layers"][1]["digest"].get<std::string>().substr(7);
  {
    const fs::path blob = broken / "content" / "blobs" / "sha256" / base;
    std::string bytes = readFile(blob);
    bytes[bytes.size() / 2] = static_cast<char>(bytes[bytes.size() / 2] ^ 0x01);
    fs::remove(blob);
    writeFile(blob, bytes);
  }
  bool read_only = false;
  if (::geteuid() == 0) {  // the store as hosts mount it: read-only
    read_only =
        runProcess({"/usr/bin/mount", "--bind", seed.string(), seed.string()}).exit_code == 0 &&
        runProcess({"/usr/bin/mount", "-o", "remount,bind,ro", seed.string()}).exit_code == 0;
  }
  struct Unmount {
    fs::path path;
    bool mounted;
    ~Unmount() {
      if (mounted)
        runProcess({"/usr/bin/umount", "-l", path.string()});
    }
  } unmount{seed, read_only};

  json agent = agentConfig();
  agent["additionalStores"] = json::array({{{"path", seed.string()}, {"registries", {proxy}}}});
  start(agent);
  putSite("web", anonymousSite(proxy + "/test/disk:v2"));
  ASSERT_TRUE(waitForPublished("web", diskDigest(2))) << siteState("web") << log();
  auto methods = [&](const std::string& blob) {
    std::vector<std::string> seen;
    for (const auto& request : requests(proxy, "/blobs/sha256:" + blob))
      seen.push_back(request.value("method", ""));
    return seen;
  };
  // From the store, once the registry showed it holds the blob in this repository (one HEAD).
  EXPECT_EQ(methods(base), std::vector<std::string>{"HEAD"}) << stack().stats(proxy).dump(2);
  EXPECT_FALSE(requests(proxy, app).empty());
  EXPECT_NE(log().find("from the additional store"), std::string::npos) << log();
  EXPECT_NE(readFile(imageFile(imageDir(diskDigest(2)), "app/version.txt")).find("disk-v2"),
            std::string::npos);
  EXPECT_EQ(stop(), 0);

  // Afresh: the broken copy is the proxy's store, the good one another registry's.
  fs::rename(stateDir(), dest_.path() / "old-state");
  fs::rename(dest_.path() / "daemon.log", dest_.path() / "daemon-1.log");
  stack().reset(proxy);
  agent["additionalStores"] =
      json::array({{{"path", broken.string()}, {"registries", {proxy}}},
                   {{"path", seed.string()}, {"registries", {stack().registry("anon")}}}});
  start(agent);
  putSite("web", anonymousSite(proxy + "/test/disk:v2"));
  ASSERT_TRUE(waitForPublished("web", diskDigest(2))) << siteState("web") << log();
  const auto fetched = methods(base);  // fetched from the registry
  EXPECT_NE(std::find(fetched.begin(), fetched.end(), "GET"), fetched.end()) << log();
  EXPECT_NE(log().find("does not hold it whole"), std::string::npos) << log();
}

}  // namespace
}  // namespace pullagent::testing
