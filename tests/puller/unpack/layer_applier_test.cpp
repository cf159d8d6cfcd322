// The extractor against hostile and tricky layers. Every test checks that the canary tree next
// to the root is exactly as it was, and then the exact result inside the root.
#include "puller/unpack/layer_applier.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <set>

#include "puller/oci/sha256.h"
#include "tests/support/layer_builder.h"
#include "tests/support/privileges.h"
#include "tests/support/temp_dir.h"
#include "tests/support/tree_snapshot.h"

namespace pullagent::puller {
namespace {

namespace fs = std::filesystem;
using testing::LayerBuilder;

constexpr const char* kTar = "application/vnd.oci.image.layer.v1.tar";
constexpr const char* kGzip = "application/vnd.oci.image.layer.v1.tar+gzip";
constexpr const char* kZstd = "application/vnd.oci.image.layer.v1.tar+zstd";

class LayerApplier : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(root());
    fs::create_directories(canary() / "sub");
    testing::writeFile(canary() / "secret", "do not touch");
    testing::writeFile(canary() / "sub" / "file", "nor this");
    fs::create_symlink("secret", canary() / "link");
    ::chmod(canary().c_str(), 0755);
    before_ = testing::snapshotTree(canary());
  }
  void TearDown() override {
    EXPECT_EQ(testing::snapshotTree(canary()), before_) << "the canary beside the root changed";
  }

  fs::path root() const { return dir_ / "root"; }
  fs::path canary() const { return dir_ / "canary"; }
  std::string canaryAbs() const { return canary().string(); }

  Result<AppliedLayer> apply(const std::string& blob, const char* media_type = kTar,
                             ApplyOptions options = {}) {
    auto path = dir_ / ("layer" + std::to_string(count_++));
    testing::writeFile(path, blob);
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    auto stream = openLayerStream(std::move(fd), media_type, options.limits);
    if (!stream)
      return stream.error();
    auto confined = ConfinedRoot::open(root());
    if (!confined)
      return confined.error();
    options.privileged = options.privileged && ::geteuid() == 0;
    return applyLayer(confined.value(), **stream, options);
  }
  Result<AppliedLayer> applyPrivileged(const std::string& blob) {
    ApplyOptions options;
    options.privileged = true;
    return apply(blob, kTar, options);
  }

  std::string read(const std::string& path) { return testing::readFile(root() / path); }
  bool exists(const std::string& path) {
    struct stat info {};
    return ::lstat((root() / path).c_str(), &info) == 0;
  }
  mode_t modeOf(const std::string& path) {
    struct stat info {};
    ::lstat((root() / path).c_str(), &info);
    return info.st_mode;
  }

  testing::TempDir dir_{"pullagent-apply"};
  testing::TreeSnapshot before_;
  int count_ = 0;
};

TEST_F(LayerApplier, RegularContentModesAndDiffId) {
  LayerBuilder layer;
  layer.dir("usr", 0755)
      .dir("usr/bin", 0755)
      .file("usr/bin/tool", "#!/bin/sh\n", 04755)
      .file("etc/motd", "hello", 0640)
      .dir("tmp", 01777)
      .symlink("bin", "usr/bin");
  const std::string tar = layer.tar("trailing bytes after the end marker");
  auto applied = apply(layer.gzip("trailing bytes after the end marker"), kGzip);
  ASSERT_TRUE(applied.ok()) << applied.error().message;
  EXPECT_EQ(applied->diff_id, Sha256::of(tar));  // every decompressed byte, trailing ones too
  EXPECT_EQ(read("usr/bin/tool"), "#!/bin/sh\n");
  EXPECT_EQ(modeOf("usr/bin/tool") & 07777, 04755u);
  EXPECT_EQ(modeOf("etc/motd") & 07777, 0640u);
  EXPECT_EQ(modeOf("tmp") & 07777, 01777u);
  EXPECT_EQ(fs::read_symlink(root() / "bin"), "usr/bin");
  struct stat info {};
  ::stat((root() / "usr").c_str(), &info);
  EXPECT_EQ(info.st_mtim.tv_sec, 1600000000);  // directory mtimes set after their children
}

TEST_F(LayerApplier, GzipWithSeveralMembers) {
  LayerBuilder layer;
  layer.file("a", std::string(300000, 'a')).file("b", "bbb");
  const std::string tar = layer.tar();
  const size_t half = tar.size() / 2;
  auto applied =
      apply(testing::gzipBytes(tar.substr(0, half)) + testing::gzipBytes(tar.substr(half)), kGzip);
  ASSERT_TRUE(applied.ok()) << applied.error().message;
  EXPECT_EQ(applied->diff_id, Sha256::of(tar));
  EXPECT_EQ(read("b"), "bbb");
}

TEST_F(LayerApplier, ZstdAndPlainLayers) {
  LayerBuilder layer;
  layer.file("a", "zstd content");
  ASSERT_TRUE(apply(layer.zstd(), kZstd).ok());
  EXPECT_EQ(read("a"), "zstd content");
  LayerBuilder plain;
  plain.file("b", "plain");
  ASSERT_TRUE(apply(plain.tar(), kTar).ok());
  EXPECT_EQ(read("b"), "plain");
}

TEST_F(LayerApplier, MediaTypeMustMatchMagicBytes) {
  LayerBuilder layer;
  layer.file("a", "x");
  auto zstd_as_gzip = apply(layer.zstd(), kGzip);
  ASSERT_FALSE(zstd_as_gzip.ok());
  EXPECT_EQ(zstd_as_gzip.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(zstd_as_gzip.error().message.find("says gzip but the data is zstd"), std::string::npos);
  EXPECT_FALSE(apply(layer.gzip(), kTar).ok());
  EXPECT_FALSE(apply(layer.tar(), kZstd).ok());
}

TEST_F(LayerApplier, TruncatedAndCorruptStreamsFail) {
  LayerBuilder layer;
  layer.file("big", std::string(200000, 'x'));
  std::string gz = layer.gzip();
  EXPECT_FALSE(apply(gz.substr(0, gz.size() / 2), kGzip).ok());
  std::string corrupt = gz;
  corrupt[corrupt.size() / 2] ^= 0x55;
  EXPECT_FALSE(apply(corrupt, kGzip).ok());
}

TEST_F(LayerApplier, DecompressionBombAndEntryCountAreBounded) {
  LayerBuilder bomb;
  bomb.file("zeros", std::string(8 << 20, '\0'));
  ApplyOptions options;
  options.limits.max_uncompressed_bytes = 1 << 20;
  auto result = apply(bomb.gzip(), kGzip, options);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code, ErrorCode::kResourceExhausted);

  LayerBuilder many;
  for (int i = 0; i < 50; ++i)
    many.file("f" + std::to_string(i), "x");
  ApplyOptions few;
  few.limits.max_entries = 10;
  EXPECT_EQ(apply(many.tar(), kTar, few).error().code, ErrorCode::kResourceExhausted);
}

TEST_F(LayerApplier, DotDotNamesAreRefused) {
  for (std::string name : {"../canary/evil", "a/../../canary/evil", "./../x", "a/.."}) {
    SCOPED_TRACE(name);
    LayerBuilder layer;
    layer.file(name, "evil");
    auto result = apply(layer.tar());
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.error().code, ErrorCode::kInvalidArgument);
  }
}

TEST_F(LayerApplier, AbsoluteNamesStayInsideTheRoot) {
  LayerBuilder layer;
  layer.file(canaryAbs() + "/secret", "inside").file("/etc/cron.d/x", "job");
  ASSERT_TRUE(apply(layer.tar()).ok());
  EXPECT_EQ(read(canaryAbs().substr(1) + "/secret"), "inside");
  EXPECT_EQ(read("etc/cron.d/x"), "job");
}

TEST_F(LayerApplier, SymlinkedParentsResolveInsideTheRoot) {
  LayerBuilder layer;
  layer.symlink("abs", canaryAbs())
      .file("abs/secret", "written through an absolute link")
      .symlink("rel", "../../../../../../../../" + canaryAbs())
      .file("rel/sub/file", "written through a relative link")
      .symlink("dots", "../..")
      .file("dots/escape", "clamped at the root");
  ASSERT_TRUE(apply(layer.tar()).ok());
  const std::string inside = canaryAbs().substr(1);
  EXPECT_EQ(read(inside + "/secret"), "written through an absolute link");
  EXPECT_EQ(read(inside + "/sub/file"), "written through a relative link");
  EXPECT_EQ(read("escape"), "clamped at the root");
}

TEST_F(LayerApplier, SymlinkFromALowerLayerIsResolvedInsideTheRoot) {
  LayerBuilder lower;
  lower.symlink("etc2", canaryAbs()).dir("usr/lib").symlink("lib", "usr/lib");
  ASSERT_TRUE(apply(lower.tar()).ok());
  LayerBuilder upper;
  upper.file("etc2/secret", "x").file("lib/libc.so", "elf");
  ASSERT_TRUE(apply(upper.tar()).ok());
  EXPECT_EQ(read(canaryAbs().substr(1) + "/secret"), "x");
  EXPECT_EQ(read("usr/lib/libc.so"), "elf");  // the usrmerge case that must keep working
}

TEST_F(LayerApplier, DirectoryReplacedBySymlinkInTheSameLayer) {
  LayerBuilder layer;
  layer.dir("d").file("d/a", "1").symlink("d", canaryAbs()).file("d/secret", "2");
  ASSERT_TRUE(apply(layer.tar()).ok());
  EXPECT_EQ(fs::read_symlink(root() / "d"), canaryAbs());
  EXPECT_EQ(read(canaryAbs().substr(1) + "/secret"), "2");
}

TEST_F(LayerApplier, HardlinksOnlyToFilesInsideTheRoot) {
  LayerBuilder lower;
  lower.file("bin/busybox", "elf", 0755);
  ASSERT_TRUE(apply(lower.tar()).ok());
  LayerBuilder upper;
  upper.hardlink("bin/sh", "bin/busybox");
  ASSERT_TRUE(apply(upper.tar()).ok());
  struct stat a {
  }, b{};
  ::stat((root() / "bin/busybox").c_str(), &a);
  ::stat((root() / "bin/sh").c_str(), &b);
  EXPECT_EQ(a.st_ino, b.st_ino);  // a target from a lower layer

  for (std::string target : {canaryAbs() + "/secret", std::string("../canary/secret")}) {
    SCOPED_TRACE(target);
    LayerBuilder evil;
    evil.hardlink("stolen", target);
    EXPECT_FALSE(apply(evil.tar()).ok());
    EXPECT_FALSE(exists("stolen"));
  }
  LayerBuilder via_symlink;
  via_symlink.symlink("out", canaryAbs()).hardlink("stolen", "out/secret");
  EXPECT_FALSE(apply(via_symlink.tar()).ok());
  LayerBuilder to_dir;
  to_dir.dir("somedir").hardlink("dirlink", "somedir");
  EXPECT_FALSE(apply(to_dir.tar()).ok());
  LayerBuilder missing;
  missing.hardlink("later", "not-yet");
  EXPECT_FALSE(apply(missing.tar()).ok());
}

TEST_F(LayerApplier, WhiteoutsRemoveLowerContentOnly) {
  LayerBuilder lower;
  lower.file("a/keep", "1")
      .file("a/gone", "2")
      .dir("a/gonedir")
      .file("a/gonedir/x", "3")
      .symlink("a/link", canaryAbs());
  ASSERT_TRUE(apply(lower.tar()).ok());
  LayerBuilder upper;
  upper.file("a/new", "4")
      .file("a/.wh.gone", "")
      .file("a/.wh.gonedir", "")
      .file("a/.wh.link", "")  // removes the link, not what it points to
      .file("a/.wh.new", "")   // same layer: not hidden
      .file("a/.wh..wh.plnk", "")
      .file("a/.wh.never-existed", "");
  ASSERT_TRUE(apply(upper.tar()).ok());
  EXPECT_TRUE(exists("a/keep"));
  EXPECT_TRUE(exists("a/new"));
  EXPECT_FALSE(exists("a/gone"));
  EXPECT_FALSE(exists("a/gonedir"));
  EXPECT_FALSE(exists("a/link"));
  EXPECT_FALSE(exists("a/.wh.gone"));
  EXPECT_FALSE(exists("a/.wh..wh.plnk"));
}

TEST_F(LayerApplier, WhiteoutThroughASymlinkedParentStaysInside) {
  LayerBuilder lower;
  lower.symlink("ln", canaryAbs()).file(canaryAbs().substr(1) + "/secret", "inside copy");
  ASSERT_TRUE(apply(lower.tar()).ok());
  LayerBuilder upper;
  upper.file("ln/.wh.secret", "").file("ln/.wh.sub", "");
  ASSERT_TRUE(apply(upper.tar()).ok());
  EXPECT_FALSE(exists(canaryAbs().substr(1) + "/secret"));  // the root's copy went
}

TEST_F(LayerApplier, InvalidWhiteoutsAreRefused) {
  for (std::string name : {".wh.", "a/.wh.", "a/.wh..", ".wh..."}) {
    SCOPED_TRACE(name);
    LayerBuilder layer;
    layer.file(name, "");
    EXPECT_FALSE(apply(layer.tar()).ok());
  }
}

TEST_F(LayerApplier, OpaqueDirectoryHidesLowerContentWhereverTheMarkerStands) {
  for (bool marker_first : {true, false}) {
    SCOPED_TRACE(marker_first);
    fs::remove_all(root());
    fs::create_directories(root());
    LayerBuilder lower;
    lower.file("d/old", "1").file("d/sub/old", "2").file("d/kept/old", "3").file("other", "4");
    ASSERT_TRUE(apply(lower.tar()).ok());
    LayerBuilder upper;
    if (marker_first)
      upper.file("d/.wh..wh..opq", "");
    upper.file("d/new", "5").dir("d/kept").file("d/kept/new", "6");
    if (!marker_first)
      upper.file("d/.wh..wh..opq", "");
    ASSERT_TRUE(apply(upper.tar()).ok());
    EXPECT_FALSE(exists("d/old"));
    EXPECT_FALSE(exists("d/sub"));
    EXPECT_FALSE(exists("d/kept/old"));  // lower content below a re-created directory too
    EXPECT_TRUE(exists("d/new"));
    EXPECT_TRUE(exists("d/kept/new"));
    EXPECT_TRUE(exists("other"));
    EXPECT_FALSE(exists("d/.wh..wh..opq"));
  }
}

TEST_F(LayerApplier, ManyOpaqueDirectoriesOverADeepTreeFinish) {
  LayerBuilder lower;
  std::string path;
  for (int depth = 0; depth < 60; ++depth) {
    path += (depth ? "/" : "") + std::string("d") + std::to_string(depth);
    lower.file(path + "/f", "x");
  }
  ASSERT_TRUE(apply(lower.tar()).ok());
  LayerBuilder upper;
  path.clear();
  for (int depth = 0; depth < 60; ++depth) {
    path += (depth ? "/" : "") + std::string("d") + std::to_string(depth);
    upper.file(path + "/.wh..wh..opq", "");
  }
  ASSERT_TRUE(apply(upper.tar()).ok());
  EXPECT_FALSE(exists("d0/f"));
}

TEST_F(LayerApplier, PathsChangingTypeWithinALayer) {
  LayerBuilder layer;
  layer.file("x", "file").dir("x").file("x/inner", "i").symlink("x", "target").file("x", "again");
  ASSERT_TRUE(apply(layer.tar()).ok());
  EXPECT_EQ(read("x"), "again");
  EXPECT_TRUE(S_ISREG(modeOf("x")));
}

TEST_F(LayerApplier, DirectoriesMergeAndKeepTheUpperMode) {
  LayerBuilder lower;
  lower.dir("shared", 0755).file("shared/lower", "l");
  ASSERT_TRUE(apply(lower.tar()).ok());
  LayerBuilder upper;
  upper.dir("shared", 0700).file("shared/upper", "u");
  ASSERT_TRUE(apply(upper.tar()).ok());
  EXPECT_TRUE(exists("shared/lower"));
  EXPECT_TRUE(exists("shared/upper"));
  EXPECT_EQ(modeOf("shared") & 07777, 0700u);
}

TEST_F(LayerApplier, OwnersDevicesAndFifosWhenPrivileged) {
  // Root without device nodes is a container build, as podman's chroot isolation runs it.
  if (auto missing = testing::cannotMakeDeviceNodes())
    GTEST_SKIP() << *missing;
  LayerBuilder layer;
  layer.file("owned", "x", 02755, 1234, 5678)
      .file("max", "y", 0644, 4294967294LL, 4294967294LL)
      .device("dev/null", S_IFCHR, 1, 3)
      .device("fifo", S_IFIFO, 0, 0);
  auto applied = applyPrivileged(layer.tar());
  ASSERT_TRUE(applied.ok()) << applied.error().message;
  struct stat info {};
  ::lstat((root() / "owned").c_str(), &info);
  EXPECT_EQ(info.st_uid, 1234u);
  EXPECT_EQ(info.st_gid, 5678u);
  EXPECT_EQ(info.st_mode & 07777, 02755u);  // setgid survives the chown
  ::lstat((root() / "max").c_str(), &info);
  EXPECT_EQ(info.st_uid, 4294967294u);
  ::lstat((root() / "dev/null").c_str(), &info);
  EXPECT_TRUE(S_ISCHR(info.st_mode));
  EXPECT_EQ(info.st_rdev, makedev(1, 3));
  EXPECT_TRUE(S_ISFIFO(modeOf("fifo")));
}

TEST_F(LayerApplier, DevicesAreSkippedWithoutPrivilege) {
  LayerBuilder layer;
  layer.device("dev/null", S_IFCHR, 1, 3).file("ok", "x");
  ASSERT_TRUE(apply(layer.tar()).ok());  // privileged=false
  EXPECT_FALSE(exists("dev/null"));
  EXPECT_TRUE(exists("ok"));
}

TEST_F(LayerApplier, OnlySafeXattrsAreApplied) {
  LayerBuilder layer;
  layer.xattr("user.note", "kept").xattr("trusted.overlay.opaque", "y").file("f", "x");
  auto applied = applyPrivileged(layer.tar());
  ASSERT_TRUE(applied.ok()) << applied.error().message;
  char value[16] = {};
  ssize_t n = ::lgetxattr((root() / "f").c_str(), "user.note", value, sizeof value);
  if (n >= 0) {  // user xattrs need filesystem support
    EXPECT_EQ(std::string(value, static_cast<size_t>(n)), "kept");
  }
  EXPECT_LT(::lgetxattr((root() / "f").c_str(), "trusted.overlay.opaque", value, sizeof value), 0);
}

TEST_F(LayerApplier, AnOverlayLayerCannotBringAWhiteoutDevice) {
  LayerBuilder layer;
  layer.file("before", "x").device("etc/passwd", S_IFCHR, 0, 0);
  ApplyOptions options;
  options.overlay_lower = true;
  // Refused before privilege is even looked at: overlayfs would read it as "etc/passwd is gone".
  auto refused = apply(layer.tar(), kTar, options);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(refused.error().message.find("0:0 character device"), std::string::npos)
      << refused.error().message;
  // Other devices, and the same device outside an overlay layer, are image content.
  LayerBuilder other;
  other.device("dev/null", S_IFCHR, 1, 3).device("dev/zero", S_IFCHR, 0, 0);
  EXPECT_TRUE(apply(other.tar()).ok());
}

TEST_F(LayerApplier, AnOverlayLayerCannotBringOverlayXattrs) {
  LayerBuilder layer;
  layer.xattr("user.overlay.opaque", "y").xattr("user.overlay.redirect", "/etc");
  layer.xattr("user.note", "kept").dir("d");
  ApplyOptions options;
  options.overlay_lower = true;
  options.privileged = true;
  auto applied = apply(layer.tar(), kTar, options);
  ASSERT_TRUE(applied.ok()) << applied.error().message;
  char value[16] = {};
  EXPECT_LT(::lgetxattr((root() / "d").c_str(), "user.overlay.opaque", value, sizeof value), 0);
  EXPECT_LT(::lgetxattr((root() / "d").c_str(), "user.overlay.redirect", value, sizeof value), 0);
  ssize_t n = ::lgetxattr((root() / "d").c_str(), "user.note", value, sizeof value);
  if (n >= 0) {  // user xattrs need filesystem support
    EXPECT_EQ(std::string(value, static_cast<size_t>(n)), "kept");
  }
}

class StandaloneUpper : public LayerApplier {
 protected:
  void SetUp() override {
    // The canary first: TearDown checks it, also after a skip.
    LayerApplier::SetUp();
    // Whiteout devices, trusted.* xattrs and the applier's own mount namespace.
    for (const auto& missing :
         {testing::cannotMakeDeviceNodes(), testing::cannotUseMountNamespaces()})
      if (missing)
        GTEST_SKIP() << *missing;
  }
  Result<AppliedLayer> applyStandalone(const std::string& tar) {
    ApplyOptions options;
    options.standalone_upper = true;
    options.privileged = true;
    return apply(tar, kTar, options);
  }
  std::string opaque(const std::string& dir) {
    char value[8] = {};
    ssize_t n = ::lgetxattr((root() / dir).c_str(), "trusted.overlay.opaque", value, sizeof value);
    return n > 0 ? std::string(value, static_cast<size_t>(n)) : "";
  }
};

TEST_F(StandaloneUpper, WritesOverlayWhiteoutsAndOpaqueDirectories) {
  LayerBuilder layer;
  layer.dir("etc").file("etc/.wh.passwd", "").file("etc/new", "n");
  layer.file("etc/.wh.new", "");  // hides lower layers only: etc/new stays
  layer.dir("var").file("var/.wh..wh..opq", "").file("var/kept", "k");
  layer.dir("srv").file("srv/.wh.www", "").dir("srv/www");  // removed, then made anew
  auto applied = applyStandalone(layer.tar());
  ASSERT_TRUE(applied.ok()) << applied.error().message;
  EXPECT_FALSE(applied->needs_lower_layers) << *applied->needs_lower_layers;
  struct stat info {};
  ASSERT_EQ(::lstat((root() / "etc/passwd").c_str(), &info), 0);
  EXPECT_TRUE(S_ISCHR(info.st_mode));
  EXPECT_EQ(info.st_rdev, makedev(0, 0));
  EXPECT_EQ(read("etc/new"), "n");
  EXPECT_EQ(opaque("var"), "y");
  EXPECT_EQ(read("var/kept"), "k");
  EXPECT_EQ(opaque("srv/www"), "y");  // the lower srv/www must not show through
  EXPECT_EQ(opaque("etc"), "");
}

TEST_F(StandaloneUpper, EntriesThatNeedTheLowerLayersEndItEarly) {
  struct Case {
    LayerBuilder layer;
    const char* why;
  };
  std::vector<Case> cases;
  cases.push_back({LayerBuilder().file("usr/bin/tool", "x"), "\"usr\" is not a directory"});
  cases.push_back(
      {LayerBuilder().dir("bin").hardlink("bin/sh", "bin/busybox"), "not in this layer"});
  cases.push_back({LayerBuilder().symlink("lib", "usr/lib").file("lib/libx.so", "x"),
                   "\"lib\" is not a directory"});
  cases.push_back({LayerBuilder().file("gone/.wh.file", ""), "\"gone\" is not a directory"});
  for (auto& c : cases) {
    fs::remove_all(root());
    fs::create_directories(root());
    auto applied = applyStandalone(c.layer.tar());
    ASSERT_TRUE(applied.ok()) << c.why << ": " << applied.error().message;
    ASSERT_TRUE(applied->needs_lower_layers.has_value()) << c.why;
    EXPECT_NE(applied->needs_lower_layers->find(c.why), std::string::npos)
        << *applied->needs_lower_layers;
  }
}

TEST_F(StandaloneUpper, HardlinksWithinTheLayerAndForgedDevices) {
  LayerBuilder layer;
  layer.dir("bin").file("bin/busybox", "bb", 0755).hardlink("bin/sh", "bin/busybox");
  auto applied = applyStandalone(layer.tar());
  ASSERT_TRUE(applied.ok()) << applied.error().message;
  EXPECT_FALSE(applied->needs_lower_layers);
  EXPECT_EQ(read("bin/sh"), "bb");

  fs::remove_all(root());
  fs::create_directories(root());
  LayerBuilder forged;
  forged.dir("etc").device("etc/shadow", S_IFCHR, 0, 0);
  auto refused = applyStandalone(forged.tar());
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message.find("0:0 character device"), std::string::npos);
}

TEST_F(LayerApplier, OpaqueDirectoriesAreReported) {
  LayerBuilder layer;
  layer.dir("a").file("a/.wh..wh..opq", "").file("b/c/.wh..wh..opq", "").file("x", "1");
  auto applied = apply(layer.tar());
  ASSERT_TRUE(applied.ok()) << applied.error().message;
  std::set<std::string> opaque(applied->opaque_dirs.begin(), applied->opaque_dirs.end());
  EXPECT_EQ(opaque, (std::set<std::string>{"a", "b/c"}));
}

TEST_F(LayerApplier, NotATarIsAClearError) {
  auto result = apply(testing::gzipBytes(std::string(5000, 'z')), kGzip);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code, ErrorCode::kInvalidArgument);
}

TEST_F(LayerApplier, EmptyBlobIsAnEmptyLayer) {
  auto result = apply("", kGzip);
  ASSERT_TRUE(result.ok()) << result.error().message;
  EXPECT_EQ(result->diff_id, Sha256::of(""));
}

}  // namespace
}  // namespace pullagent::puller
