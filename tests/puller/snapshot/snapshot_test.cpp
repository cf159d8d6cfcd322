// Layer chain ids, the mounts an image's layers compose into, and the snapshot store's
// bookkeeping (the kernel side is in tests/integration/snapshot_test.cpp).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "puller/oci/sha256.h"
#include "puller/snapshot/chain_id.h"
#include "puller/snapshot/overlay_mount.h"
#include "puller/snapshot/snapshot_store.h"
#include "puller/state/bundle_roots.h"
#include "tests/support/privileges.h"
#include "tests/support/temp_dir.h"

namespace pullagent::puller {
namespace {

namespace fs = std::filesystem;

Digest digestOf(const std::string& text) {
  return Sha256::of(text);
}

TEST(ChainIds, FollowTheImageSpec) {
  const Digest a = digestOf("a"), b = digestOf("b"), c = digestOf("c");
  auto chain = chainIds({a, b, c});
  ASSERT_EQ(chain.size(), 3u);
  EXPECT_EQ(chain[0], a);
  const Digest ab = Sha256::of(a.str() + " " + b.str());
  EXPECT_EQ(chain[1], ab);
  EXPECT_EQ(chain[2], Sha256::of(ab.str() + " " + c.str()));
  EXPECT_TRUE(chainIds({}).empty());
  // The same layer over another base is another snapshot.
  EXPECT_NE(chainIds({c, b})[1], chain[1]);
}

TEST(ChainIds, KnownValue) {
  // Two layers of an image whose chain id containerd reports (ctr snapshots / image-spec).
  auto first = Digest::parse("sha256:" + std::string(64, '1'));
  auto second = Digest::parse("sha256:" + std::string(64, '2'));
  ASSERT_TRUE(first.ok() && second.ok());
  auto chain = chainIds({*first, *second});
  EXPECT_EQ(chain[1],
            Sha256::of("sha256:" + std::string(64, '1') + " sha256:" + std::string(64, '2')));
}

TEST(MountSpecs, AReadOnlyViewOfOneLayerIsABindMount) {
  auto one = readOnlyView({"/s/a/fs"});
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->type, "bind");
  EXPECT_EQ(one->source, "/s/a/fs");
  EXPECT_EQ(one->options, (std::vector<std::string>{"ro", "rbind"}));

  auto two = readOnlyView({"/s/b/fs", "/s/a/fs"});
  ASSERT_TRUE(two.ok());
  EXPECT_EQ(two->type, "overlay");
  EXPECT_EQ(two->options, (std::vector<std::string>{"index=off", "lowerdir=/s/b/fs:/s/a/fs"}));
  EXPECT_FALSE(readOnlyView({}).ok());
}

TEST(MountSpecs, AWritableViewHasItsUpperLayerSelfContained) {
  auto spec = writableView({"/s/a/fs"}, "/u", "/w");
  ASSERT_TRUE(spec.ok());
  EXPECT_EQ(spec->options,
            (std::vector<std::string>{"index=off", "redirect_dir=off", "metacopy=off",
                                      "lowerdir=/s/a/fs", "upperdir=/u", "workdir=/w"}));
}

TEST(MountSpecs, PathsOverlayfsCannotNameAreRefused) {
  EXPECT_FALSE(readOnlyView({"/s/a:b/fs", "/s/c/fs"}).ok());
  EXPECT_FALSE(readOnlyView({"/s/a,b/fs"}).ok());
  EXPECT_FALSE(writableView({"/s/a/fs"}, "/u,lowerdir=/etc", "/w").ok());
}

TEST(MountSpecs, ALayerListLongerThanAPageIsMountedRelativeToItsSnapshots) {
  if (auto missing = testing::cannotUseMountNamespaces())
    GTEST_SKIP() << "mounting: " << *missing;
  testing::TempDir dir;
  const fs::path snapshots = dir / "snapshots";
  // Forty layers whose absolute paths make a lowerdir list longer than the page the kernel
  // takes as mount data; relative to snapshots/ they fit.
  constexpr int kLayers = 40;
  std::vector<fs::path> lowers;  // top first
  for (int i = kLayers - 1; i >= 0; --i) {
    const fs::path layer = snapshots / (std::string(62, 'c') + std::to_string(10 + i)) / "fs";
    fs::create_directories(layer);
    testing::writeFile(layer / ("file" + std::to_string(i)), std::to_string(i));
    testing::writeFile(layer / "top", std::to_string(i));
    lowers.push_back(layer);
  }
  auto spec = readOnlyView(lowers);
  ASSERT_TRUE(spec.ok()) << spec.error().describe();
  size_t length = 0;
  for (const auto& option : spec->options)
    length += option.size() + 1;
  EXPECT_GT(length, 4096u);

  const fs::path view = dir / "view";
  fs::create_directories(view);
  Status mounted;
  std::string seen;
  // mountSpec changes the working directory for the relative form: in a thread of its own
  // namespace and fs state, as the publisher's, so this process's stay as they were.
  std::thread([&] {
    mounted = enterPrivateMountNamespace();
    if (mounted.ok())
      mounted = mountSpec(*spec, view);
    if (!mounted.ok())
      return;
    seen = testing::readFile(view / "file0") + "," + testing::readFile(view / "file39") + "," +
           testing::readFile(view / "top");
    (void)unmount(view);
  }).join();
  ASSERT_TRUE(mounted.ok()) << mounted.error().describe();
  EXPECT_EQ(seen, "0,39,39");       // every layer's file, and the top layer's where they overlap
  EXPECT_TRUE(fs::is_empty(view));  // mounted only in that thread's namespace
}

TEST(MountSpecs, RoundTripThroughJson) {
  auto spec = readOnlyView({"/s/b/fs", "/s/a/fs"});
  ASSERT_TRUE(spec.ok());
  auto back = MountSpec::fromJson(spec->toJson(), "mounts[0]");
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->options, spec->options);
  auto odd = MountSpec::fromJson(
      {{"type", "nfs"}, {"source", "x"}, {"options", nlohmann::json::array()}}, "m");
  ASSERT_FALSE(odd.ok());
  EXPECT_NE(odd.error().message.find("m.type"), std::string::npos) << odd.error().message;
}

TEST(SnapshotStoreTest, ListsRemovesAndCleansUp) {
  testing::TempDir dir("pullagent-snapshots");
  SnapshotStore store(dir.path() / "snapshots");
  ASSERT_TRUE(store.prepare().ok());
  struct stat info {};
  ASSERT_EQ(::stat(store.root().c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 07777, 0700u);

  const Digest a = digestOf("a"), b = digestOf("b");
  fs::create_directories(store.layerDir(a));
  testing::writeFile(store.layerDir(a) / "file", std::string(10000, 'x'));
  fs::create_directories(store.layerDir(b));
  fs::create_directories(store.root() / ("." + b.hex() + ".staging-1-0"));
  testing::writeFile(store.root() / ("." + digestOf("gone").hex() + ".lock"), "");
  {
    auto lock = store.lock(a, {});
    ASSERT_TRUE(lock.ok());
  }
  EXPECT_TRUE(store.has(a));
  EXPECT_EQ(store.lowerDirs({a, b}, 2),
            (std::vector<fs::path>{store.layerDir(b), store.layerDir(a)}));
  EXPECT_EQ(store.lowerDirs({a, b}, 1), (std::vector<fs::path>{store.layerDir(a)}));
  auto listed = store.list();
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(*listed, (std::set<Digest>{a, b}));

  auto freed = store.remove(a);
  ASSERT_TRUE(freed.ok());
  EXPECT_GE(*freed, 10000);
  EXPECT_FALSE(store.has(a));
  store.removeLeftovers();
  std::set<std::string> names;
  for (const auto& entry : fs::directory_iterator(store.root()))
    names.insert(entry.path().filename().string());
  EXPECT_EQ(names, (std::set<std::string>{b.hex()}));
}

TEST(SnapshotStoreTest, ALockHeldElsewhereWaitsAndAStopEndsTheWait) {
  testing::TempDir dir("pullagent-snapshots");
  SnapshotStore store(dir.path() / "snapshots");
  ASSERT_TRUE(store.prepare().ok());
  const Digest a = digestOf("a");
  auto held = store.lock(a, {});
  ASSERT_TRUE(held.ok());
  std::stop_source stop;
  stop.request_stop();
  // flock locks belong to the open file description: a second open waits for the first.
  auto second = store.lock(a, stop.get_token());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code, ErrorCode::kCancelled);
}

// A state dir and a bundle directory beside it.
class BundleRootsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(bundle);
    fs::create_directories(state);
  }

  pullagent::testing::TempDir dir;
  const fs::path state = dir / "state";
  const fs::path bundle = dir / "bundle";
  const BundleRoots roots{StateDir(state)};
};

TEST_F(BundleRootsTest, KeepABundlesChainsWhileItUsesSnapshotsAndForgetItAfter) {
  const std::set<Digest> chains{digestOf("a"), digestOf("b")};
  EXPECT_TRUE(roots.chains(bundle).empty());
  ASSERT_TRUE(roots.record(bundle, chains).ok());
  EXPECT_EQ(roots.chains(bundle), chains);
  EXPECT_EQ(roots.chains(dir / "other"), std::set<Digest>{});

  // Without a rootfs-mounts.json (a flat bundle, or not published yet) the root is stale.
  EXPECT_TRUE(roots.collectLive().empty());
  EXPECT_TRUE(roots.chains(bundle).empty());

  ASSERT_TRUE(roots.record(bundle, chains).ok());
  testing::writeFile(bundle / kRootfsMountsFile, "{}");
  EXPECT_EQ(roots.collectLive(), chains);
  // An empty set removes the root.
  ASSERT_TRUE(roots.record(bundle, {}).ok());
  EXPECT_TRUE(roots.collectLive().empty());
}

TEST_F(BundleRootsTest, FilesThatAreNotRootsAsWrittenKeepNothingAndAreRemoved) {
  testing::writeFile(bundle / kRootfsMountsFile, "{}");
  ASSERT_TRUE(roots.record(bundle, {digestOf("a")}).ok());
  const fs::path root_dir = state / "bundle-roots";
  const std::string good = fs::directory_iterator(root_dir)->path().filename().string();
  // A root copied under another name (it would keep a bundle twice), one naming a bundle by a
  // relative path, garbage, and ids that are not digests.
  fs::copy_file(root_dir / good, root_dir / (std::string(64, 'f') + ".json"));
  testing::writeFile(root_dir / "relative.json", R"({"bundle": "bundle", "chainIds": ["sha256:)" +
                                                     std::string(64, 'e') + R"("]})");
  testing::writeFile(root_dir / "garbage.json", "[[[");
  testing::writeFile(root_dir / "ids.json", R"({"bundle": "/", "chainIds": ["../../etc"]})");
  EXPECT_EQ(roots.collectLive(), std::set<Digest>{digestOf("a")});
  std::set<std::string> left;
  for (const auto& entry : fs::directory_iterator(root_dir))
    left.insert(entry.path().filename().string());
  EXPECT_EQ(left, std::set<std::string>{good});
}

}  // namespace
}  // namespace pullagent::puller
