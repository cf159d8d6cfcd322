// Pull, unpack and publish against the real registry: the result equals umoci's unpack of the
// same OCI layout, bundles are runnable-shaped, and a failed publish loses nothing.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <signal.h>

#include <filesystem>
#include <iostream>
#include <thread>

#include "tests/integration/pull_fixture.h"
#include "tests/support/image_view.h"
#include "tests/support/tree_snapshot.h"

namespace pullagent::testing {
namespace {

namespace fs = std::filesystem;

class Unpack : public PullTest {
 protected:
  ProcessResult publish(const std::string& image, const std::string& flag, const fs::path& target) {
    return runProcess({PULLAGENT_BINARY, "pull", stack().registry("anon") + "/" + image, "--state",
                       (dest_ / "state").string(), flag, target.string(), "--ca", stack().ca()});
  }
};

TEST_F(Unpack, RootfsEqualsUmociUnpack) {
  auto result = publish("test/semantics:v1", "--rootfs", dest_ / "rootfs");
  ASSERT_EQ(result.exit_code, 0) << result.all();

  // umoci reads the OCI layout pullagent keeps in its state dir.
  const bool root = ::geteuid() == 0;
  std::vector<std::string> umoci{"/usr/bin/umoci", "unpack"};
  if (!root)
    umoci.push_back("--rootless");
  umoci.insert(umoci.end(),
               {"--image", (dest_ / "state/content").string() + ":v1", (dest_ / "umoci").string()});
  auto unpacked = runProcess(umoci);
  ASSERT_EQ(unpacked.exit_code, 0) << unpacked.all();

  auto ours = snapshotTree(dest_ / "rootfs");
  auto theirs = snapshotTree(dest_ / "umoci/rootfs");
  ours.erase(".");
  theirs.erase(".");
  EXPECT_EQ(ours, theirs);

  // And the semantics, spelled out.
  EXPECT_FALSE(fs::exists(dest_ / "rootfs/gone.txt"));
  EXPECT_FALSE(fs::exists(dest_ / "rootfs/gonedir"));
  EXPECT_FALSE(fs::exists(dest_ / "rootfs/d/old1"));
  EXPECT_FALSE(fs::exists(dest_ / "rootfs/d/sub"));
  EXPECT_TRUE(fs::exists(dest_ / "rootfs/d/new"));
  EXPECT_TRUE(fs::exists(dest_ / "rootfs/usr/lib/libx.so"));
  EXPECT_TRUE(fs::is_regular_file(dest_ / "rootfs/replaced"));
  struct stat su {};
  ::stat((dest_ / "rootfs/usr/bin/su").c_str(), &su);
  EXPECT_EQ(su.st_mode & 07777, 04755u);
  if (root) {
    struct stat home {};
    ::stat((dest_ / "rootfs/home/web").c_str(), &home);
    EXPECT_EQ(home.st_uid, 1000u);
  }
}

TEST_F(Unpack, BundleHasARuntimeSpecAndAPrivateTop) {
  auto result = publish("test/semantics:v1", "--bundle", dest_ / "bundle");
  ASSERT_EQ(result.exit_code, 0) << result.all();
  struct stat top {};
  ::stat((dest_ / "bundle").c_str(), &top);
  EXPECT_EQ(top.st_mode & 0777, 0700u);
  auto spec = nlohmann::json::parse(readFile(dest_ / "bundle/config.json"));
  EXPECT_EQ(spec["process"]["args"], nlohmann::json::array({"/usr/bin/busybox", "httpd", "-f"}));
  EXPECT_EQ(spec["process"]["cwd"], "/home/web");
  EXPECT_EQ(spec["process"]["user"]["uid"], 1000);  // "web" from the image's /etc/passwd
  EXPECT_EQ(spec["root"]["path"], "rootfs");
  EXPECT_TRUE(fs::exists(imageFile(dest_ / "bundle", "usr/bin/busybox")));
  auto manifest = nlohmann::json::parse(readFile(dest_ / "bundle/manifest.json"));
  EXPECT_EQ(manifest["layers"].size(), 2u);
}

TEST_F(Unpack, StateModePublishesUnderTheManifestDigest) {
  auto result = runProcess({PULLAGENT_BINARY, "pull", stack().registry("anon") + "/test/multi:v1",
                            "--state", (dest_ / "state").string(), "--ca", stack().ca()});
  ASSERT_EQ(result.exit_code, 0) << result.all();
  const std::string digest = stack().image("test/multi:v1")["digest"];
  auto image = dest_ / "state/images" / digest.substr(7);
  EXPECT_TRUE(fs::exists(imageFile(image, "opt/app/data.bin")));
  EXPECT_TRUE(fs::exists(image / "config.json"));
}

TEST_F(Unpack, WrongDiffIdFailsAndThePreviousImageStays) {
  const fs::path target = dest_ / "rootfs";
  ASSERT_EQ(publish("test/multi:v1", "--rootfs", target).exit_code, 0);
  auto before = snapshotTree(target);
  // A leftover of a crashed run, removed at the next start.
  fs::create_directories(dest_ / ".rootfs.staging-999999-0/junk");

  auto result = publish("test/baddiff:v1", "--rootfs", target);
  EXPECT_EQ(result.exit_code, 6) << result.all();
  EXPECT_NE(result.err.find("the image config says sha256:0000"), std::string::npos) << result.err;
  EXPECT_EQ(snapshotTree(target), before);
  for (const auto& entry : fs::directory_iterator(dest_.path())) {
    EXPECT_EQ(entry.path().filename().string().find(".rootfs.staging-"), std::string::npos)
        << entry.path();
  }
}

TEST_F(Unpack, EarlyLayersAreAppliedWhileLaterOnesDownload) {
  // The big second layer stalls for a while: the first layer must be applied meanwhile.
  const auto& image = stack().image("test/multi:v1");
  const std::string big = image["layers"][1]["digest"];
  const std::string proxy = stack().proxy("proxy_anon");
  stack().setFaults(
      proxy,
      nlohmann::json::array(
          {{{"match", big}, {"times", 1}, {"action", "stall_at"}, {"at", 1000000}, {"secs", 3}}}));
  auto result = runProcess({PULLAGENT_BINARY, "pull", proxy + "/test/multi:v1", "--state",
                            (dest_ / "state").string(), "--rootfs", (dest_ / "rootfs").string(),
                            "--ca", stack().ca(), "--stall-timeout", "30"});
  ASSERT_EQ(result.exit_code, 0) << result.all();
  auto applied_first = result.err.find("layer 0 (");
  auto big_verified = result.err.find("blob " + big + ": verified");
  ASSERT_NE(applied_first, std::string::npos) << result.err;
  ASSERT_NE(big_verified, std::string::npos) << result.err;
  EXPECT_LT(applied_first, big_verified) << result.err;
  EXPECT_TRUE(fs::exists(dest_ / "rootfs/opt/app/data.bin"));
}

TEST_F(Unpack, RepublishReplacesAtomically) {
  const fs::path target = dest_ / "rootfs";
  ASSERT_EQ(publish("test/multi:v1", "--rootfs", target).exit_code, 0);
  ASSERT_TRUE(fs::exists(target / "opt/app/data.bin"));
  auto result = publish("test/multi:v2", "--rootfs", target);
  ASSERT_EQ(result.exit_code, 0) << result.all();
  EXPECT_FALSE(fs::exists(target / "opt/app/data.bin"));  // v1's layer is not in v2
  EXPECT_TRUE(fs::exists(target / "app/v2.bin"));
}

TEST_F(Unpack, GcKeepsWhatKeptImagesUseAndRemovesTheRest) {
  const fs::path state = dest_ / "state";
  for (const char* tag : {"v1", "v2"}) {
    auto pulled =
        runProcess({PULLAGENT_BINARY, "pull", stack().registry("anon") + "/test/multi:" + tag,
                    "--state", state.string(), "--ca", stack().ca()});
    ASSERT_EQ(pulled.exit_code, 0) << pulled.all();
  }
  const auto& v1 = stack().image("test/multi:v1");
  const auto& v2 = stack().image("test/multi:v2");
  auto blob = [&](const nlohmann::json& digest) {
    return state / "content/blobs/sha256" / digest.get<std::string>().substr(7);
  };

  auto all = runProcess({PULLAGENT_BINARY, "gc", "--state", state.string()});
  ASSERT_EQ(all.exit_code, 0) << all.all();
  EXPECT_NE(all.out.find("removed 0 images, 0 layer snapshots and 0 blobs"), std::string::npos)
      << all.out;

  auto gc = runProcess({PULLAGENT_BINARY, "gc", "--state", state.string(), "--keep", v2["digest"]});
  ASSERT_EQ(gc.exit_code, 0) << gc.all();
  EXPECT_FALSE(fs::exists(state / "images" / v1["digest"].get<std::string>().substr(7)));
  EXPECT_TRUE(fs::exists(state / "images" / v2["digest"].get<std::string>().substr(7) / "rootfs"));
  EXPECT_TRUE(fs::exists(blob(v2["layers"][0]["digest"])));  // shared with v1: still needed
  EXPECT_TRUE(fs::exists(blob(v2["layers"][1]["digest"])));
  EXPECT_TRUE(fs::exists(blob(v2["digest"])));
  EXPECT_FALSE(fs::exists(blob(v1["layers"][1]["digest"])));  // only v1 used it
  EXPECT_FALSE(fs::exists(blob(v1["digest"])));

  // The kept image still pulls without downloading anything.
  auto again = runProcess({PULLAGENT_BINARY, "pull", stack().registry("anon") + "/test/multi:v2",
                           "--state", state.string(), "--ca", stack().ca()});
  ASSERT_EQ(again.exit_code, 0) << again.all();
  EXPECT_NE(again.out.find("0 downloaded"), std::string::npos) << again.out;
  EXPECT_NE(again.out.find("(already published)"), std::string::npos) << again.out;
}

TEST_F(Unpack, KilledMidUnpackLeavesThePreviousImageAndRecovers) {
  const fs::path target = dest_ / "rootfs";
  const std::string proxy = stack().proxy("proxy_anon");
  auto pull = [&](const std::string& tag) {
    return std::vector<std::string>{PULLAGENT_BINARY,
                                    "pull",
                                    proxy + "/test/multi:" + tag,
                                    "--state",
                                    (dest_ / "state").string(),
                                    "--rootfs",
                                    target.string(),
                                    "--ca",
                                    stack().ca(),
                                    "--stall-timeout",
                                    "60"};
  };
  ASSERT_EQ(runProcess(pull("v1")).exit_code, 0);
  auto before = snapshotTree(target);

  // v2's second layer stalls: its first layer is being unpacked into staging when we kill.
  const std::string new_layer = stack().image("test/multi:v2")["layers"][1]["digest"];
  stack().setFaults(proxy, nlohmann::json::array({{{"match", new_layer},
                                                   {"times", 1},
                                                   {"action", "stall_at"},
                                                   {"at", 1000},
                                                   {"secs", 30}}}));
  auto staging_exists = [&] {
    for (const auto& entry : fs::directory_iterator(dest_.path())) {
      if (entry.path().filename().string().starts_with(".rootfs.staging-"))
        return true;
    }
    return false;
  };
  {
    BackgroundProcess running(pull("v2"));
    for (int i = 0; i < 400 && !(staging_exists() && bytesServed(proxy, new_layer) >= 1000); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    ASSERT_TRUE(staging_exists());
    running.kill(SIGKILL);
    EXPECT_EQ(running.wait(), 128 + SIGKILL);
  }
  EXPECT_EQ(snapshotTree(target), before);  // the published v1 is untouched

  stack().reset(proxy);
  auto result = runProcess(pull("v2"));
  ASSERT_EQ(result.exit_code, 0) << result.all();
  EXPECT_TRUE(fs::exists(target / "app/v2.bin"));
  EXPECT_FALSE(staging_exists());  // the killed run's leftovers were removed
}

TEST_F(Unpack, KilledAtAnyMomentLeavesOneWholeImage) {
  // With every blob already stored, a republish is unpack + publish only. SIGKILL lands at
  // moments spread over it - before, during the unpack, around the exchange, while the old tree
  // is removed - and the target is always exactly one of the two images, never a mix.
  const fs::path target = dest_ / "rootfs";
  auto pull = [&](const std::string& tag) {
    return std::vector<std::string>{PULLAGENT_BINARY,
                                    "pull",
                                    stack().registry("anon") + "/test/multi:" + tag,
                                    "--state",
                                    (dest_ / "state").string(),
                                    "--rootfs",
                                    target.string(),
                                    "--ca",
                                    stack().ca()};
  };
  ASSERT_EQ(runProcess(pull("v1")).exit_code, 0);
  const auto v1 = snapshotTree(target);
  ASSERT_EQ(runProcess(pull("v2")).exit_code, 0);
  const auto v2 = snapshotTree(target);
  ASSERT_NE(v1, v2);

  int switched = 0;
  auto current = v2;
  for (int i = 0; i < 20; ++i) {
    const std::string tag = i % 2 == 0 ? "v1" : "v2";
    {
      BackgroundProcess running(pull(tag));
      std::this_thread::sleep_for(std::chrono::milliseconds(30 * i));
      running.kill(SIGKILL);
      running.wait();
    }
    auto now = snapshotTree(target);
    ASSERT_TRUE(now == v1 || now == v2) << "kill after " << 30 * i << " ms left a mixed tree";
    switched += now != current ? 1 : 0;
    current = now;
  }
  std::cout << "kills that landed after the publish: " << switched << " of 20\n";
  ASSERT_EQ(runProcess(pull("v1")).exit_code, 0);
  EXPECT_EQ(snapshotTree(target), v1);
  for (const auto& entry : fs::directory_iterator(dest_.path()))
    EXPECT_FALSE(entry.path().filename().string().starts_with(".rootfs.staging-")) << entry.path();
}

}  // namespace
}  // namespace pullagent::testing
