// Layer snapshots against the real registry: each layer unpacked once, shared by the images
// whose chain holds it, an image's overlay-mounted view equal to umoci's unpack, nothing a
// layer carries able to pass for overlayfs's own metadata, gc freeing exactly what no image uses.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <map>
#include <set>
#include <thread>

#include "puller/snapshot/snapshot_store.h"
#include "tests/integration/pull_fixture.h"
#include "tests/support/tree_snapshot.h"

namespace pullagent::testing {
namespace {

namespace fs = std::filesystem;

class Snapshots : public PullTest {
 protected:
  void SetUp() override {
    if (::geteuid() != 0)
      GTEST_SKIP() << "overlay snapshots need root";
    PullTest::SetUp();
  }
  void TearDown() override {
    for (const auto& target : mounted_)
      ::umount2(target.c_str(), MNT_DETACH);
  }

  ProcessResult pullState(const std::string& image,
                          const std::vector<std::string>& extra = {"--storage", "overlay"}) {
    std::vector<std::string> command{
        PULLAGENT_BINARY, "pull",          stack().registry("anon") + "/" + image,
        "--state",        state_.string(), "--ca",
        stack().ca()};
    command.insert(command.end(), extra.begin(), extra.end());
    return runProcess(command);
  }
  std::string digestOf(const std::string& image) {
    return stack().image(image)["digest"].get<std::string>();
  }
  fs::path imageDir(const std::string& image) {
    return state_ / "images" / digestOf(image).substr(7);
  }
  // pullagent mount IMAGE TARGET [ARGS...]; unmounted at the end of the test.
  ProcessResult mount(const std::string& image, const fs::path& target,
                      const std::vector<std::string>& extra = {}) {
    return mountWhat(digestOf(image), target, extra);
  }
  // pullagent mount WHAT TARGET: WHAT a digest or a directory.
  ProcessResult mountWhat(const std::string& what, const fs::path& target,
                          const std::vector<std::string>& extra = {}) {
    fs::create_directories(target);
    std::vector<std::string> command{PULLAGENT_BINARY, "mount",   what,
                                     target.string(),  "--state", state_.string()};
    command.insert(command.end(), extra.begin(), extra.end());
    auto result = runProcess(command);
    if (result.exit_code == 0)
      mounted_.push_back(target);
    return result;
  }
  std::set<std::string> snapshotNames() {
    std::set<std::string> names;
    for (const auto& entry : fs::directory_iterator(state_ / "snapshots"))
      names.insert(entry.path().filename().string());
    return names;
  }
  std::set<std::string> snapshotDirs() {
    std::set<std::string> names;
    for (const auto& name : snapshotNames()) {
      if (!name.starts_with("."))
        names.insert(name);
    }
    return names;
  }

  // Mounts the image (pulled already) at `view` and expects it to equal umoci's unpack of the
  // same image from the state dir's OCI layout, file by file; returns the view's tree.
  std::map<std::string, std::string> viewAndUmoci(const std::string& image, const fs::path& view) {
    const std::string tag = image.substr(image.find(':') + 1);
    auto unpacked = runProcess({"/usr/bin/umoci", "unpack", "--image",
                                (state_ / "content").string() + ":" + tag,
                                (dest_ / ("umoci-" + tag)).string()});
    EXPECT_EQ(unpacked.exit_code, 0) << unpacked.all();
    auto mounted = mount(image, view);
    EXPECT_EQ(mounted.exit_code, 0) << mounted.all();
    auto ours = snapshotTree(view);
    auto theirs = snapshotTree(dest_ / ("umoci-" + tag) / "rootfs");
    ours.erase(".");
    theirs.erase(".");
    EXPECT_EQ(ours, theirs);
    return ours;
  }

  // What an image's own directory (its bundle, without snapshots) holds on disk.
  int64_t bundleBytes(const nlohmann::json& image) {
    return puller::diskUsage(state_ / "images" / image["digest"].get<std::string>().substr(7));
  }

  fs::path state_ = dest_ / "state";
  std::vector<fs::path> mounted_;
};

TEST_F(Snapshots, TheMountedViewEqualsUmociUnpack) {
  auto pulled = pullState("test/semantics:v1");
  ASSERT_EQ(pulled.exit_code, 0) << pulled.all();
  // The top layer writes through the lower lib -> usr/lib and into the lower home/web: it is
  // made over the layer below, not on its own.
  EXPECT_NE(pulled.out.find("snapshots:  0 reused, 2 unpacked (1 side by side, 1 over the layers "
                            "below)"),
            std::string::npos)
      << pulled.out;
  EXPECT_TRUE(fs::exists(imageDir("test/semantics:v1") / "rootfs-mounts.json"));
  EXPECT_TRUE(fs::is_empty(imageDir("test/semantics:v1") / "rootfs"));

  const fs::path view = dest_ / "view";
  auto ours = viewAndUmoci("test/semantics:v1", view);
  EXPECT_GT(ours.size(), 25u);
  EXPECT_NE(ours["etc/mime"].find("xattr:user.mime_type=text/plain"), std::string::npos);
  EXPECT_NE(ours["dev/null"].find("rdev=259"), std::string::npos) << ours["dev/null"];
  // The changeset semantics, spelled out through the overlay.
  EXPECT_FALSE(fs::exists(view / "gone.txt"));
  EXPECT_FALSE(fs::exists(view / "gonedir"));
  EXPECT_FALSE(fs::exists(view / "d/old1"));
  EXPECT_TRUE(fs::exists(view / "d/new"));
  EXPECT_TRUE(fs::exists(view / "usr/lib/libx.so"));  // written through the lower lib -> usr/lib
  EXPECT_TRUE(fs::is_symlink(view / "lib"));
  EXPECT_TRUE(fs::is_regular_file(view / "replaced"));
  EXPECT_EQ(readFile(view / "usr/bin/busybox2"),
            "\x7f"
            "ELF busybox");
  struct stat home {};
  ASSERT_EQ(::stat((view / "home/web").c_str(), &home), 0);
  EXPECT_EQ(home.st_uid, 1000u);  // copied up with the lower directory's owner and mode
  EXPECT_EQ(home.st_mode & 07777, 0750u);

  // The view is read-only.
  EXPECT_EQ(::access((view / "etc").c_str(), W_OK), -1);
  auto unmounted = runProcess({PULLAGENT_BINARY, "unmount", view.string()});
  EXPECT_EQ(unmounted.exit_code, 0) << unmounted.all();
  mounted_.clear();
  EXPECT_FALSE(fs::exists(view / "etc"));
}

TEST_F(Snapshots, LayersMadeSideBySideComposeToWhatUmociUnpacks) {
  auto pulled = pullState("test/semantics:standalone");
  ASSERT_EQ(pulled.exit_code, 0) << pulled.all();
  EXPECT_NE(pulled.out.find("snapshots:  0 reused, 2 unpacked (2 side by side, 0 over the layers "
                            "below)"),
            std::string::npos)
      << pulled.out;
  const fs::path view = dest_ / "view";
  auto ours = viewAndUmoci("test/semantics:standalone", view);
  EXPECT_GT(ours.size(), 25u);
  EXPECT_FALSE(fs::exists(view / "gone.txt"));
  EXPECT_FALSE(fs::exists(view / "gonedir/x"));
  EXPECT_TRUE(fs::exists(view / "gonedir/again"));
  EXPECT_FALSE(fs::exists(view / "d/old1"));
  EXPECT_FALSE(fs::exists(view / "d/sub"));
  EXPECT_FALSE(fs::exists(view / "etc/group"));
  EXPECT_FALSE(fs::exists(view / "dev/null"));
  EXPECT_TRUE(fs::exists(view / "etc/passwd"));  // the lower directory's other files show
  EXPECT_TRUE(fs::exists(view / "usr/bin/busybox"));
  EXPECT_TRUE(fs::is_regular_file(view / "replaced"));
  EXPECT_TRUE(fs::is_directory(view / "usr/bin/wall"));
  EXPECT_EQ(fs::hard_link_count(view / "usr/bin/tool"), 2u);
  EXPECT_NE(ours["newdir/f"].find("xattr:user.note=mine"), std::string::npos) << ours["newdir/f"];
}

TEST_F(Snapshots, ARedeployUnpacksOnlyTheLayersItDoesNotShare) {
  auto cold = pullState("test/multi:v1");
  ASSERT_EQ(cold.exit_code, 0) << cold.all();
  // Every layer holds its own parent directories: all three unpacked side by side.
  EXPECT_NE(cold.out.find("snapshots:  0 reused, 3 unpacked (3 side by side, 0 over the layers "
                          "below)"),
            std::string::npos)
      << cold.out;
  EXPECT_EQ(snapshotDirs().size(), 3u);
  auto redeploy = pullState("test/multi:v2");
  ASSERT_EQ(redeploy.exit_code, 0) << redeploy.all();
  EXPECT_NE(redeploy.out.find("snapshots:  1 reused, 1 unpacked"), std::string::npos)
      << redeploy.out;
  EXPECT_EQ(snapshotDirs().size(), 4u);  // the shared base once

  const fs::path view = dest_ / "v2";
  ASSERT_EQ(mount("test/multi:v2", view).exit_code, 0);
  EXPECT_TRUE(fs::exists(view / "app/v2.bin"));
  EXPECT_FALSE(fs::exists(view / "opt/app/data.bin"));  // v1's layer is not in v2's chain
}

TEST_F(Snapshots, GcRemovesExactlyTheSnapshotsNoKeptImageUses) {
  ASSERT_EQ(pullState("test/multi:v1").exit_code, 0);
  const auto v1_only = snapshotDirs();
  ASSERT_EQ(pullState("test/multi:v2").exit_code, 0);
  const auto both = snapshotDirs();

  auto gc = runProcess(
      {PULLAGENT_BINARY, "gc", "--state", state_.string(), "--keep", digestOf("test/multi:v2")});
  ASSERT_EQ(gc.exit_code, 0) << gc.all();
  EXPECT_NE(gc.out.find("removed 1 images, 2 layer snapshots"), std::string::npos) << gc.out;
  // v1's own config and two layers lose their provenance records with their blobs; v2's config
  // and two layers keep theirs (its manifest has none: manifests are always fetched).
  EXPECT_NE(gc.out.find("provenance: 3 records kept"), std::string::npos) << gc.out;
  EXPECT_NE(gc.out.find(", 3 removed"), std::string::npos) << gc.out;
  const auto v1_layers = stack().image("test/multi:v1")["layers"];
  EXPECT_FALSE(fs::exists(state_ / "provenance" /
                          (v1_layers[1]["digest"].get<std::string>().substr(7) + ".json")));
  const auto left = snapshotDirs();
  EXPECT_EQ(left.size(), 2u);
  for (const auto& name : left)
    EXPECT_TRUE(both.count(name) != 0);
  int shared = 0;
  for (const auto& name : left)
    shared += v1_only.count(name) != 0 ? 1 : 0;
  EXPECT_EQ(shared, 1);  // the base layer both images share
  // No staging directories or stray lock files left behind.
  for (const auto& name : snapshotNames())
    EXPECT_TRUE(!name.starts_with(".") || left.count(name.substr(1, 64)) != 0) << name;

  ASSERT_EQ(mount("test/multi:v2", dest_ / "v2").exit_code, 0);
  EXPECT_TRUE(fs::exists(dest_ / "v2/app/v2.bin"));
}

TEST_F(Snapshots, ImagesSaysWhatEachImageUsesAloneAndWhatItShares) {
  ASSERT_EQ(pullState("test/multi:v1").exit_code, 0);
  ASSERT_EQ(pullState("test/multi:v2").exit_code, 0);
  ASSERT_EQ(pullState("test/docker:v1", {"--storage", "flat"}).exit_code, 0);

  auto listed = runProcess({PULLAGENT_BINARY, "images", "--state", state_.string(), "--json"});
  ASSERT_EQ(listed.exit_code, 0) << listed.all();
  const auto usage = nlohmann::json::parse(listed.out);
  std::map<std::string, nlohmann::json> images;
  for (const auto& image : usage["images"])
    images[image["digest"].get<std::string>()] = image;
  ASSERT_EQ(images.size(), 3u) << listed.out;
  const auto& v1 = images[digestOf("test/multi:v1")];
  const auto& v2 = images[digestOf("test/multi:v2")];
  const auto& flat = images[digestOf("test/docker:v1")];
  EXPECT_EQ(v1["storage"], "overlay");
  EXPECT_EQ(v1["layers"], 3);
  EXPECT_EQ(v2["layers"], 2);
  // The base layer is the one snapshot both use: counted as shared for each, once overall.
  EXPECT_EQ(usage["snapshots"]["count"], 4);
  EXPECT_EQ(usage["snapshots"]["shared"], 1);
  EXPECT_GT(v1["sharedBytes"].get<int64_t>(), 200'000);
  EXPECT_EQ(v1["sharedBytes"], v2["sharedBytes"]);
  EXPECT_EQ(usage["snapshots"]["sharedBytes"], v1["sharedBytes"]);
  EXPECT_GT(v1["ownBytes"].get<int64_t>(), 4 * 1024 * 1024);  // its 4 MiB layer
  EXPECT_LT(v2["ownBytes"].get<int64_t>(), 1024 * 1024);      // its 300 kB layer and bundle
  EXPECT_EQ(usage["snapshots"]["bytes"].get<int64_t>(),
            v1["ownBytes"].get<int64_t>() + v2["ownBytes"].get<int64_t>() +
                v1["sharedBytes"].get<int64_t>() - bundleBytes(v1) - bundleBytes(v2));
  // A flat image keeps its own tree and shares nothing.
  EXPECT_EQ(flat["storage"], "flat");
  EXPECT_EQ(flat["layers"], 2);
  EXPECT_EQ(flat["sharedBytes"], 0);
  EXPECT_GT(flat["ownBytes"].get<int64_t>(), 200'000);
  // Each is proven for the repository it came from.
  const std::string registry = stack().registry("anon");
  EXPECT_EQ(v1["provenFor"], nlohmann::json::array({registry + "/test/multi"}));
  EXPECT_EQ(v2["provenFor"], nlohmann::json::array({registry + "/test/multi"}));
  EXPECT_EQ(flat["provenFor"], nlohmann::json::array({registry + "/test/docker"}));

  auto table = runProcess({PULLAGENT_BINARY, "images", "--state", state_.string()});
  ASSERT_EQ(table.exit_code, 0) << table.all();
  EXPECT_NE(table.out.find("snapshots: 4 holding"), std::string::npos) << table.out;
  EXPECT_NE(table.out.find(digestOf("test/multi:v2").substr(0, 19)), std::string::npos);
}

TEST_F(Snapshots, ABundleOutsideTheStateDirKeepsItsSnapshotsWhileItUsesThem) {
  const fs::path bundle = dest_ / "bundle";
  auto bundleOf = [&](const std::string& image) {
    return pullState(image, {"--bundle", bundle.string(), "--storage", "overlay"});
  };
  // Keeping no image of the state dir (alone, gc would keep every image pulled into it).
  auto gc = [&] {
    auto collected = runProcess({PULLAGENT_BINARY, "gc", "--state", state_.string(), "--keep",
                                 "sha256:" + std::string(64, '0')});
    EXPECT_EQ(collected.exit_code, 0) << collected.all();
  };
  auto v1 = bundleOf("test/multi:v1");
  ASSERT_EQ(v1.exit_code, 0) << v1.all();
  EXPECT_TRUE(fs::exists(bundle / "rootfs-mounts.json"));
  EXPECT_TRUE(fs::exists(bundle / "config.json"));
  EXPECT_TRUE(fs::is_empty(bundle / "rootfs"));
  EXPECT_FALSE(fs::exists(state_ / "images") && !fs::is_empty(state_ / "images"));
  const fs::path view = dest_ / "view";
  ASSERT_EQ(mountWhat(bundle.string(), view).exit_code, 0);
  EXPECT_TRUE(fs::exists(view / "opt/app/data.bin"));
  ASSERT_EQ(runProcess({PULLAGENT_BINARY, "unmount", view.string()}).exit_code, 0);
  mounted_.clear();

  gc();  // no image in the state dir, but the bundle uses three snapshots
  EXPECT_EQ(snapshotDirs().size(), 3u);

  // Republished: its root follows it, and the layers v2 does not share become collectable.
  ASSERT_EQ(bundleOf("test/multi:v2").exit_code, 0);
  gc();
  EXPECT_EQ(snapshotDirs().size(), 2u);
  ASSERT_EQ(mountWhat(bundle.string(), view).exit_code, 0);
  EXPECT_TRUE(fs::exists(view / "app/v2.bin"));
  ASSERT_EQ(runProcess({PULLAGENT_BINARY, "unmount", view.string()}).exit_code, 0);
  mounted_.clear();

  // Removed by its user: gc forgets it and frees its snapshots.
  fs::remove_all(bundle);
  gc();
  EXPECT_TRUE(snapshotDirs().empty());
  EXPECT_TRUE(fs::is_empty(state_ / "bundle-roots"));
}

TEST_F(Snapshots, DiscardedLayerBlobsAreNeitherKeptNorFetchedAgain) {
  ASSERT_EQ(pullState("test/multi:v1").exit_code, 0);
  const fs::path blobs = state_ / "content/blobs/sha256";
  const auto layers = stack().image("test/multi:v1")["layers"];
  ASSERT_EQ(layers.size(), 3u);
  auto gc =
      runProcess({PULLAGENT_BINARY, "gc", "--state", state_.string(), "--discard-unpacked-layers"});
  ASSERT_EQ(gc.exit_code, 0) << gc.all();
  for (const auto& layer : layers)
    EXPECT_FALSE(fs::exists(blobs / layer["digest"].get<std::string>().substr(7)));
  EXPECT_TRUE(fs::exists(blobs / digestOf("test/multi:v1").substr(7)));  // the manifest stays
  EXPECT_EQ(snapshotDirs().size(), 3u);

  // v2 shares the base layer: its snapshot serves, its blob is not fetched.
  auto v2 = pullState("test/multi:v2");
  ASSERT_EQ(v2.exit_code, 0) << v2.all();
  // Downloaded: its config and its own layer.
  EXPECT_NE(v2.out.find("blobs:      2 downloaded, 0 already present, 1 not needed (unpacked "
                        "already)"),
            std::string::npos)
      << v2.out;
  EXPECT_NE(v2.out.find("snapshots:  1 reused, 1 unpacked"), std::string::npos) << v2.out;
  ASSERT_EQ(mount("test/multi:v2", dest_ / "v2").exit_code, 0);
  EXPECT_TRUE(fs::exists(dest_ / "v2/usr/lib/libbase.so"));
  EXPECT_TRUE(fs::exists(dest_ / "v2/app/v2.bin"));
  // Without the option, gc keeps the blobs an image needs, v2's new layer included.
  ASSERT_EQ(runProcess({PULLAGENT_BINARY, "gc", "--state", state_.string()}).exit_code, 0);
  EXPECT_TRUE(fs::exists(
      blobs / stack().image("test/multi:v2")["layers"][1]["digest"].get<std::string>().substr(7)));
}

TEST_F(Snapshots, AWritableMountKeepsChangesInItsUpperDirectory) {
  ASSERT_EQ(pullState("test/multi:v1").exit_code, 0);
  const fs::path upper = dest_ / "upper";
  const fs::path work = dest_ / "work";
  fs::create_directories(upper);
  fs::create_directories(work);
  const fs::path view = dest_ / "rw";
  auto mounted = mount("test/multi:v1", view, {"--upper", upper.string(), "--work", work.string()});
  ASSERT_EQ(mounted.exit_code, 0) << mounted.all();
  writeFile(view / "opt/app/written.txt", "changed");
  fs::remove(view / "opt/app/data.bin");
  ASSERT_EQ(runProcess({PULLAGENT_BINARY, "unmount", view.string()}).exit_code, 0);
  mounted_.clear();
  EXPECT_EQ(readFile(upper / "opt/app/written.txt"), "changed");
  // The snapshots are untouched: the image mounts as it was published.
  ASSERT_EQ(mount("test/multi:v1", dest_ / "again").exit_code, 0);
  EXPECT_TRUE(fs::exists(dest_ / "again/opt/app/data.bin"));
  EXPECT_FALSE(fs::exists(dest_ / "again/opt/app/written.txt"));
}

TEST_F(Snapshots, RuncRunsTheBundleOverAWritableMount) {
  // The runtime's side of the contract: the image's config.json in a bundle of its own, the
  // snapshots mounted writable on its rootfs/, runc run.
  ASSERT_EQ(pullState("test/docker:v1").exit_code, 0);
  const fs::path bundle = dest_ / "bundle";
  fs::create_directories(bundle / "rootfs");
  fs::copy_file(imageDir("test/docker:v1") / "config.json", bundle / "config.json");
  fs::create_directories(dest_ / "upper");
  fs::create_directories(dest_ / "work");
  auto mounted =
      mount("test/docker:v1", bundle / "rootfs",
            {"--upper", (dest_ / "upper").string(), "--work", (dest_ / "work").string()});
  ASSERT_EQ(mounted.exit_code, 0) << mounted.all();
  // The test images hold no programs: the host's shell goes in (into the upper directory).
  auto shell = runProcess(
      {"/usr/bin/python3", std::string(PULLAGENT_SOURCE_DIR) + "/tests/support/bundle_shell.py",
       bundle.string(), "grep -c . /etc/os-release && echo written > /written && echo overlay-ok"});
  ASSERT_EQ(shell.exit_code, 0) << shell.all();
  const std::string id = "pullagent-snapshot-" + std::to_string(::getpid());
  auto run = runProcess({"/usr/sbin/runc", "run", "--bundle", bundle.string(), id});
  runProcess({"/usr/sbin/runc", "delete", "-f", id});
  ASSERT_EQ(run.exit_code, 0) << run.all();
  EXPECT_NE(run.out.find("overlay-ok"), std::string::npos) << run.out;
  EXPECT_EQ(readFile(dest_ / "upper/written"), "written\n");
}

TEST_F(Snapshots, ALayerCannotForgeOverlayXattrs) {
  auto pulled = pullState("test/forge:xattr");
  ASSERT_EQ(pulled.exit_code, 0) << pulled.all();
  const fs::path view = dest_ / "view";
  ASSERT_EQ(mount("test/forge:xattr", view).exit_code, 0);
  // Neither user.overlay.opaque nor trusted.overlay.opaque from the layer hid the lower file.
  EXPECT_EQ(readFile(view / "d/kept.txt"), "lower content");
  EXPECT_TRUE(fs::exists(view / "d/new.txt"));
  EXPECT_EQ(readFile(view / "e/victim"), "must stay visible");
}

TEST_F(Snapshots, ALayerCannotForgeAWhiteoutDevice) {
  ASSERT_EQ(pullState("test/multi:v1").exit_code, 0);
  const auto before = snapshotDirs();
  auto pulled = pullState("test/forge:whiteout");
  EXPECT_NE(pulled.exit_code, 0) << pulled.all();
  EXPECT_NE(pulled.err.find("0:0 character device"), std::string::npos) << pulled.err;
  EXPECT_FALSE(fs::exists(imageDir("test/forge:whiteout")));
  // Its base layer's snapshot was made; the forged layer's never became one.
  EXPECT_EQ(snapshotDirs().size(), before.size() + 1);
  for (const auto& name : snapshotNames())
    EXPECT_EQ(name.find("staging"), std::string::npos) << name;
}

TEST_F(Snapshots, KilledAtAnyMomentOfARedeployEveryPublishedImageStaysWhole) {
  // v2 shares v1's base and adds a layer of its own. Its image and that snapshot are collected
  // before every round, so each round makes the snapshot anew (after fetching its blob again);
  // SIGKILL lands at moments spread over it. Every published image must then mount exactly as
  // it was published, and the next run must finish the redeploy.
  const std::string v1 = "test/multi:v1", v2 = "test/multi:v2";
  ASSERT_EQ(pullState(v1).exit_code, 0);
  ASSERT_EQ(pullState(v2).exit_code, 0);
  auto view = [&](const std::string& image, const std::string& name) {
    const fs::path target = dest_ / name;
    EXPECT_EQ(mount(image, target).exit_code, 0);
    auto tree = snapshotTree(target);
    ::umount2(target.c_str(), MNT_DETACH);
    mounted_.pop_back();
    return tree;
  };
  const auto tree1 = view(v1, "ref1");
  const auto tree2 = view(v2, "ref2");
  ASSERT_NE(tree1, tree2);

  int published = 0;
  for (int i = 0; i < 16; ++i) {
    auto gc =
        runProcess({PULLAGENT_BINARY, "gc", "--state", state_.string(), "--keep", digestOf(v1)});
    ASSERT_EQ(gc.exit_code, 0) << gc.all();
    ASSERT_FALSE(fs::exists(imageDir(v2)));
    {
      BackgroundProcess running({PULLAGENT_BINARY, "pull", stack().registry("anon") + "/" + v2,
                                 "--state", state_.string(), "--ca", stack().ca(), "--storage",
                                 "overlay"});
      std::this_thread::sleep_for(std::chrono::milliseconds(25 * i));
      running.kill(SIGKILL);
      running.wait();
    }
    EXPECT_EQ(view(v1, "v1-" + std::to_string(i)), tree1) << "round " << i;
    if (fs::exists(imageDir(v2) / "pullagent-published")) {
      ++published;
      EXPECT_EQ(view(v2, "v2-" + std::to_string(i)), tree2) << "round " << i;
    }
  }
  std::cout << "kills that landed after the publish: " << published << " of 16\n";
  auto finished = pullState(v2);
  ASSERT_EQ(finished.exit_code, 0) << finished.all();
  EXPECT_EQ(view(v2, "final"), tree2);
  // What the killed runs left (staging directories) goes with the next gc.
  ASSERT_EQ(runProcess({PULLAGENT_BINARY, "gc", "--state", state_.string()}).exit_code, 0);
  for (const auto& name : snapshotNames())
    EXPECT_EQ(name.find("staging"), std::string::npos) << name;
}

TEST_F(Snapshots, FlatStorageStillPublishesPlainTreesAndMountsThem) {
  auto pulled = pullState("test/multi:v1", {"--storage", "flat"});
  ASSERT_EQ(pulled.exit_code, 0) << pulled.all();
  EXPECT_NE(pulled.err.find("storage: a plain root filesystem tree per image"), std::string::npos)
      << pulled.err;
  EXPECT_TRUE(fs::exists(imageDir("test/multi:v1") / "rootfs/opt/app/data.bin"));
  EXPECT_FALSE(fs::exists(imageDir("test/multi:v1") / "rootfs-mounts.json"));
  ASSERT_EQ(mount("test/multi:v1", dest_ / "view").exit_code, 0);
  EXPECT_TRUE(fs::exists(dest_ / "view/opt/app/data.bin"));

  // The same state dir in overlay storage: the flat image is served as it is.
  auto again = pullState("test/multi:v1");
  ASSERT_EQ(again.exit_code, 0) << again.all();
  EXPECT_NE(again.out.find("(already published)"), std::string::npos) << again.out;
}

}  // namespace
}  // namespace pullagent::testing
