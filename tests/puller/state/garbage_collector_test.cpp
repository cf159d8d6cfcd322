#include "puller/state/garbage_collector.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "puller/oci/sha256.h"
#include "tests/support/temp_dir.h"
#include "tests/support/tree_snapshot.h"

namespace pullagent::puller {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;
using testing::writeFile;

class GarbageCollector : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(state() / "images");
    fs::create_directories(state() / "content" / "blobs" / "sha256");
    fs::create_directories(canary() / "sub");
    writeFile(canary() / "a", "do not touch");
    writeFile(canary() / "sub" / "b", "nor this");
    before_ = testing::snapshotTree(canary());
  }
  void TearDown() override { EXPECT_EQ(testing::snapshotTree(canary()), before_); }
  fs::path state() const { return dir_ / "state"; }
  fs::path canary() const { return dir_ / "canary"; }
  fs::path image(char c) const { return state() / "images" / std::string(64, c); }

  TempDir dir_{"pullagent-gc"};
  testing::TreeSnapshot before_;
};

TEST_F(GarbageCollector, RemovesUnkeptImagesAndUnusedBlobs) {
  fs::create_directories(image('a') / "rootfs");
  fs::create_directories(image('b') / "rootfs");
  const Digest blob = Sha256::of("orphan");
  writeFile(state() / "content" / "blobs" / "sha256" / blob.hex(), "orphan");
  auto report = collectGarbage(StateDir(state()),
                               {Digest::parse("sha256:" + std::string(64, 'a')).value()}, false);
  ASSERT_TRUE(report.ok()) << report.error().message;
  EXPECT_EQ(report->images_removed, 1);
  EXPECT_EQ(report->blobs_removed, 1);
  EXPECT_TRUE(fs::exists(image('a')));
  EXPECT_FALSE(fs::exists(image('b')));
}

TEST_F(GarbageCollector, NeverFollowsALinkedImagesOrBlobsDirectory) {
  // images/ and blobs/sha256/ replaced by links into the canary: nothing there may go.
  fs::remove_all(state() / "images");
  fs::create_directory_symlink(canary(), state() / "images");
  auto images = collectGarbage(StateDir(state()), {}, false);
  ASSERT_FALSE(images.ok());
  EXPECT_EQ(images.error().code, ErrorCode::kPermissionDenied);

  fs::remove(state() / "images");
  fs::create_directories(state() / "images");
  fs::remove_all(state() / "content" / "blobs" / "sha256");
  fs::create_directory_symlink(canary() / "sub", state() / "content" / "blobs" / "sha256");
  auto blobs = collectGarbage(StateDir(state()), {}, false);
  ASSERT_FALSE(blobs.ok());
  EXPECT_EQ(blobs.error().code, ErrorCode::kPermissionDenied);
}

TEST_F(GarbageCollector, AnImageIsRenamedAsideBeforeItIsDeletedAndLeftoversAreFinished) {
  // What a gc killed in the middle of a removal leaves: only a trash name, never a half tree
  // under the published name; the next gc finishes it.
  fs::create_directories(state() / "images" / (".trash-" + std::string(64, 'c')) / "rootfs");
  fs::create_symlink(canary(), state() / "images" / (".trash-" + std::string(64, 'c')) / "l");
  auto report = collectGarbage(StateDir(state()), {}, false);
  ASSERT_TRUE(report.ok()) << report.error().message;
  EXPECT_TRUE(fs::is_empty(state() / "images"));
}

TEST_F(GarbageCollector, AnImageWithALinkInsideIsRemovedWithoutFollowingIt) {
  fs::create_directories(image('d') / "rootfs");
  fs::create_directory_symlink(canary(), image('d') / "rootfs" / "etc");
  auto report = collectGarbage(StateDir(state()), {}, false);
  ASSERT_TRUE(report.ok()) << report.error().message;
  EXPECT_FALSE(fs::exists(image('d')));
}

}  // namespace
}  // namespace pullagent::puller
