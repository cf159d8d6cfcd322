#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "puller/oci/sha256.h"
#include "puller/snapshot/chain_id.h"
#include "puller/snapshot/overlay_mount.h"
#include "puller/state/disk_meter.h"
#include "puller/state/disk_space.h"
#include "puller/state/eviction.h"
#include "puller/state/garbage_collector.h"
#include "puller/state/last_use.h"
#include "puller/state/unpack_ratio.h"
#include "puller/store/content_store.h"
#include "tests/support/temp_dir.h"

namespace pullagent::puller {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using std::chrono::system_clock;
using testing::TempDir;
using testing::writeFile;

constexpr int64_t kGiB = int64_t{1} << 30;

TEST(DiskWatermarks, NothingToFreeUntilAMarkIsCrossedThenDownToTheLowOnes) {
  const DiskWatermarks marks;                                      // 85 / 80
  EXPECT_EQ(bytesToRelieve({85 * kGiB, 15 * kGiB}, 0, marks), 0);  // at the mark: not above
  // 90 % used of 100 GiB: down to 80 % frees 10 GiB.
  EXPECT_EQ(bytesToRelieve({90 * kGiB, 10 * kGiB}, 0, marks), 10 * kGiB);
  DiskWatermarks budget;
  budget.high_bytes = 10 * kGiB;
  budget.low_bytes = 8 * kGiB;
  EXPECT_EQ(bytesToRelieve({50 * kGiB, 50 * kGiB}, 10 * kGiB, budget), 0);
  EXPECT_EQ(bytesToRelieve({50 * kGiB, 50 * kGiB}, 11 * kGiB, budget), 3 * kGiB);
  // Both above: the larger need.
  EXPECT_EQ(bytesToRelieve({90 * kGiB, 10 * kGiB}, 11 * kGiB, budget), 10 * kGiB);
  // Room: what the filesystem has, within the budget.
  EXPECT_EQ(roomLeft({90 * kGiB, 10 * kGiB}, 0, marks), 10 * kGiB);
  EXPECT_EQ(roomLeft({50 * kGiB, 50 * kGiB}, 9 * kGiB, budget), 1 * kGiB);
  EXPECT_EQ(roomLeft({50 * kGiB, 50 * kGiB}, 11 * kGiB, budget), 0);
  EXPECT_DOUBLE_EQ((DiskSpace{30, 70}).usedPercent(), 30.0);
}

TEST(DiskSpaceOf, ReadsTheFilesystemOrNamesThePath) {
  TempDir dir{"pullagent-disk"};
  auto space = diskSpaceOf(dir.path());
  ASSERT_TRUE(space.ok()) << space.error().message;
  EXPECT_GT(space->used + space->available, 0);
  auto missing = diskSpaceOf(dir.path() / "nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("nope"), std::string::npos);
}

TEST(LastUse, SurvivesAsWrittenAndAnythingUnreadableIsNeverUsed) {
  TempDir dir{"pullagent-last-use"};
  const StateDir state(dir.path());
  const LastUse last_use(state);
  const Digest a = Sha256::of("a");
  const Digest b = Sha256::of("b");
  const auto at = system_clock::time_point(std::chrono::milliseconds(1765000000123));
  ASSERT_TRUE(last_use.touch(a, at).ok());  // creates last-use/
  EXPECT_EQ(LastUse(state).read(a), at);    // another instance: what is on disk
  EXPECT_FALSE(last_use.read(b).has_value());
  for (const std::string& bad : std::vector<std::string>{
           "", "{", "[]", "{\"unixMs\": \"x\"}", "{\"unixMs\": -5}", std::string(4096, ' ')}) {
    writeFile(state.lastUse() / b.hex(), bad);
    EXPECT_FALSE(last_use.read(b).has_value()) << bad;
  }
  fs::remove(state.lastUse() / b.hex());
  fs::create_symlink(state.lastUse() / a.hex(), state.lastUse() / b.hex());
  EXPECT_FALSE(last_use.read(b).has_value());  // a link is no record
  last_use.keepOnly({b});
  EXPECT_FALSE(last_use.read(a).has_value());
}

TEST(UnpackRatio, DefaultUntilLearnedThenTheMedianOfRecentImagesWithinBounds) {
  TempDir dir{"pullagent-ratio"};
  const StateDir state(dir.path());
  const UnpackRatio ratio(state);
  EXPECT_DOUBLE_EQ(ratio.ratio(), UnpackRatio::kDefault);
  ASSERT_TRUE(ratio.learn(100, 250).ok());
  ASSERT_TRUE(ratio.learn(300, 600).ok());
  EXPECT_DOUBLE_EQ(ratio.ratio(), 2.25);  // the median of 2.5 and 2.0
  // One tenant's gzip bomb moves it by one place, not by its size.
  ASSERT_TRUE(ratio.learn(1, 1000000).ok());
  EXPECT_DOUBLE_EQ(ratio.ratio(), 2.5);
  for (int i = 0; i < 40; ++i)  // only the last kKept count
    ASSERT_TRUE(ratio.learn(100, 120).ok());
  EXPECT_DOUBLE_EQ(ratio.ratio(), 1.2);
  writeFile(state.unpackRatio(), "{\"recent\": [\"x\", 1e400]}");
  EXPECT_DOUBLE_EQ(ratio.ratio(), UnpackRatio::kDefault);
  writeFile(state.unpackRatio(), "not json");
  EXPECT_DOUBLE_EQ(ratio.ratio(), UnpackRatio::kDefault);
}

// A state dir with real manifests, configs, blobs, snapshots and published images.
class Eviction : public ::testing::Test {
 protected:
  struct Image {
    Digest manifest;
    std::vector<Digest> layers;
    std::vector<Digest> chains;
  };

  // An image over snapshots whose layers are the given contents (a layer's snapshot holds a
  // file of `unpacked` bytes).
  Image publish(const std::vector<std::string>& layers, int64_t unpacked = 64 * 1024) {
    Image image;
    json layer_descriptors = json::array();
    std::vector<Digest> diff_ids;
    for (const auto& content : layers) {
      const Digest digest = put(content);
      image.layers.push_back(digest);
      layer_descriptors.push_back({{"mediaType", "application/vnd.oci.image.layer.v1.tar+gzip"},
                                   {"digest", digest.str()},
                                   {"size", content.size()}});
      diff_ids.push_back(Sha256::of("diff " + content));
    }
    json config_doc = {{"architecture", "amd64"},
                       {"os", "linux"},
                       {"rootfs", {{"type", "layers"}, {"diff_ids", json::array()}}}};
    for (const auto& diff_id : diff_ids)
      config_doc["rootfs"]["diff_ids"].push_back(diff_id.str());
    const std::string config = config_doc.dump();
    const Digest config_digest = put(config);
    const std::string manifest = json{
        {"schemaVersion", 2},
        {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
        {"config",
         {{"mediaType", "application/vnd.oci.image.config.v1+json"},
          {"digest", config_digest.str()},
          {"size", config.size()}}},
        {"layers",
         layer_descriptors}}.dump();
    image.manifest = put(manifest);
    image.chains = chainIds(diff_ids);
    for (const auto& chain : image.chains) {
      const fs::path fs_dir = state_.snapshots() / chain.hex() / "fs";
      if (!fs::exists(fs_dir) && fs::create_directories(fs_dir))
        writeFile(fs_dir / "data", std::string(static_cast<size_t>(unpacked), 'x'));
    }
    const fs::path dir = state_.image(image.manifest);
    fs::create_directories(dir / "rootfs");
    writeFile(dir / kPublishedConfigFile, config);
    writeFile(dir / kRootfsMountsFile, "{}");
    writeFile(dir / kPublishedMarker, "");
    return image;
  }
  Digest put(const std::string& content) {
    const Digest digest = Sha256::of(content);
    fs::create_directories(ContentStore::blobsDir(state_.content()));
    writeFile(ContentStore::blobsDir(state_.content()) / digest.hex(), content);
    return digest;
  }
  bool hasBlob(const Digest& digest) const {
    return fs::exists(ContentStore::blobsDir(state_.content()) / digest.hex());
  }
  bool hasImage(const Image& image) const { return fs::exists(state_.image(image.manifest)); }
  bool hasSnapshot(const Digest& chain) const {
    return fs::exists(state_.snapshots() / chain.hex());
  }
  EvictionCandidate candidate(const Image& image, int64_t ms) const {
    return {image.manifest,
            ms < 0 ? std::nullopt
                   : std::optional(system_clock::time_point(std::chrono::milliseconds(ms))),
            "previous image of site x"};
  }

  TempDir dir_{"pullagent-eviction"};
  StateDir state_{dir_.path()};
};

TEST_F(Eviction, TheOrderIsOldestFirstWithUnrecordedImagesBeforeAllAndTiesByDigest) {
  const Digest a = Sha256::of("a"), b = Sha256::of("b"), c = Sha256::of("c");
  std::vector<EvictionCandidate> candidates = {
      {a, system_clock::time_point(std::chrono::seconds(20)), ""},
      {b, std::nullopt, ""},
      {c, system_clock::time_point(std::chrono::seconds(10)), ""},
      {std::min(a, c) == a ? c : a, system_clock::time_point(std::chrono::seconds(10)), ""}};
  candidates.pop_back();
  sortForEviction(candidates);
  EXPECT_EQ(candidates[0].image, b);
  EXPECT_EQ(candidates[1].image, c);
  EXPECT_EQ(candidates[2].image, a);
  std::vector<EvictionCandidate> ties = {{std::max(a, c), {}, ""}, {std::min(a, c), {}, ""}};
  sortForEviction(ties);
  EXPECT_EQ(ties[0].image, std::min(a, c));
}

TEST_F(Eviction, BlobsOfMadeSnapshotsGoFirstThenImagesOldestFirstStoppingAtTheFirstThatSuffices) {
  const std::string base(300 * 1024, 'b');
  const Image in_use = publish({base, std::string(100 * 1024, 'u')});
  const Image old_one = publish({base, std::string(100 * 1024, 'o')});
  const Image newer = publish({base, std::string(100 * 1024, 'n')});

  // Asked for a little: one blob of a made snapshot (the largest, the shared base) suffices.
  EvictionPlan plan{
      1, {in_use.manifest}, {candidate(old_one, 10), candidate(newer, 20)}, false, {}};
  auto first = evict(state_, plan);
  ASSERT_TRUE(first.ok()) << first.error().message;
  ASSERT_EQ(first->items.size(), 1u);
  EXPECT_EQ(first->items[0].reason, "unpacked-layer-blob");
  EXPECT_FALSE(hasBlob(in_use.layers[0]));
  EXPECT_TRUE(hasImage(old_one));

  // Asked for one byte more than those blobs hold: every such blob, then the oldest image and
  // no more.
  auto blobs = unpackedLayerBlobs(state_, {in_use.manifest, old_one.manifest, newer.manifest});
  ASSERT_TRUE(blobs.ok());
  ASSERT_EQ(blobs->size(), 3u);  // the base went already
  plan.bytes = 1;
  for (const auto& blob : *blobs)
    plan.bytes += blob.bytes;
  auto second = evict(state_, plan);
  ASSERT_TRUE(second.ok()) << second.error().message;
  EXPECT_EQ(second->items.back().reason, "unused-image");
  EXPECT_FALSE(hasImage(old_one));
  EXPECT_TRUE(hasImage(newer));
  EXPECT_TRUE(hasImage(in_use));
  EXPECT_FALSE(hasSnapshot(old_one.chains[1]));  // only it used its top layer
  EXPECT_TRUE(hasSnapshot(in_use.chains[0]));    // the base stays for the image in use
  EXPECT_TRUE(hasSnapshot(newer.chains[1]));
  EXPECT_TRUE(hasBlob(in_use.manifest));
  EXPECT_GE(second->freed, plan.bytes);
  // Never more than one item past the need: without the last item it did not suffice.
  EXPECT_LT(second->freed - second->items.back().bytes, plan.bytes);

  // Everything: what is protected stays whatever is asked.
  plan.bytes = int64_t{1} << 40;
  auto all = evict(state_, plan);
  ASSERT_TRUE(all.ok()) << all.error().message;
  EXPECT_FALSE(hasImage(newer));
  EXPECT_TRUE(hasImage(in_use));
  for (const auto& chain : in_use.chains)
    EXPECT_TRUE(hasSnapshot(chain));
}

TEST_F(Eviction, WhatCouldBeFreedIsMeasuredAndTheStateDirsBytesCounted) {
  const std::string base(300 * 1024, 'b');
  const Image in_use = publish({base, std::string(100 * 1024, 'u')});
  const Image old_one = publish({base, std::string(100 * 1024, 'o')});
  DiskMeter meter;
  auto evictable = meter.evictableBytes(state_, {in_use.manifest}, {old_one.manifest});
  ASSERT_TRUE(evictable.ok()) << evictable.error().message;
  // At least: the layer blobs of both (snapshots made) and old_one's own top snapshot.
  EXPECT_GE(*evictable, 300 * 1024 + 2 * 100 * 1024 + 64 * 1024);
  auto none = meter.evictableBytes(state_, {in_use.manifest, old_one.manifest}, {});
  ASSERT_TRUE(none.ok());
  EXPECT_LT(*none, *evictable);
  const int64_t before = meter.stateBytes(state_);
  EXPECT_GE(before, 300 * 1024 + 2 * 100 * 1024 + 3 * 64 * 1024);
  EvictionPlan plan{int64_t{1} << 40, {in_use.manifest}, {candidate(old_one, -1)}, false, {}};
  ASSERT_TRUE(evict(state_, plan).ok());
  meter.prune();
  EXPECT_LT(meter.stateBytes(state_), before);
}

}  // namespace
}  // namespace pullagent::puller
