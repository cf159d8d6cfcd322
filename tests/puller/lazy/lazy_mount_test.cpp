#include "puller/lazy/lazy_mount.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <thread>

#include "base/unique_fd.h"
#include "puller/lazy/layer_tree.h"
#include "tests/support/estargz_sample.h"
#include "tests/support/fake_clock.h"
#include "tests/support/temp_dir.h"

namespace pullagent::puller::estargz {
namespace {

using testing::EstargzSample;
using testing::readErrno;
using testing::readFile;

Entry entryAt(const std::string& path, EntryType type) {
  Entry entry;
  entry.path = ConfinedRoot::split(path).value();
  entry.type = type;
  entry.mode = 0644;
  return entry;
}

TEST(LayerTree, WhiteoutsBecomeOverlaysOwnAndOverlayXattrsFromTheLayerAreDropped) {
  Toc toc;
  toc.entries.push_back(entryAt("etc/", EntryType::kDirectory));
  toc.entries.push_back(entryAt("etc/.wh.passwd", EntryType::kRegular));
  toc.entries.push_back(entryAt("var/cache/.wh..wh..opq", EntryType::kRegular));
  Entry file = entryAt("usr/bin/tool", EntryType::kRegular);
  file.xattrs = {{"user.note", "kept"},
                 {"trusted.overlay.redirect", "/etc"},
                 {"user.overlay.opaque", "y"},
                 {"security.capability", "cap"}};
  toc.entries.push_back(file);
  Entry link = entryAt("usr/bin/tool2", EntryType::kHardlink);
  link.link_target = "usr/bin/tool";
  toc.entries.push_back(link);
  const LayerTree tree(toc);

  auto whiteout = tree.find("/etc/passwd");
  ASSERT_TRUE(whiteout.has_value());
  const struct stat st = tree.attributes(*whiteout);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(st.st_rdev, makedev(0, 0));
  EXPECT_FALSE(tree.find("/etc/.wh.passwd").has_value());

  auto cache = tree.find("/var/cache");  // a parent the TOC left out, made a directory
  ASSERT_TRUE(cache.has_value());
  EXPECT_TRUE(S_ISDIR(tree.attributes(*cache).st_mode));
  EXPECT_EQ(tree.xattrs(*cache),
            (std::map<std::string, std::string>{{"trusted.overlay.opaque", "y"}}));
  EXPECT_TRUE(tree.node(*cache).children.empty());

  auto tool = tree.find("usr/bin/tool");
  ASSERT_TRUE(tool.has_value());
  EXPECT_EQ(tree.xattrs(*tool), (std::map<std::string, std::string>{{"security.capability", "cap"},
                                                                    {"user.note", "kept"}}));
  EXPECT_EQ(tree.find("usr/bin/tool2"), tool);
  EXPECT_EQ(tree.attributes(*tool).st_nlink, 2u);
  EXPECT_TRUE(tree.anyXattrs());
}

TEST(LayerTree, SaysWhetherAnyNodeHasExtendedAttributes) {
  Toc plain;
  plain.entries.push_back(entryAt("etc/", EntryType::kDirectory));
  plain.entries.push_back(entryAt("etc/.wh.passwd", EntryType::kRegular));
  Entry steering = entryAt("etc/hosts", EntryType::kRegular);
  steering.xattrs = {{"trusted.overlay.redirect", "/x"}};  // dropped: not one the layer may set
  plain.entries.push_back(steering);
  EXPECT_FALSE(LayerTree(plain).anyXattrs());

  Toc opaque = plain;
  opaque.entries.push_back(entryAt("var/.wh..wh..opq", EntryType::kRegular));
  EXPECT_TRUE(LayerTree(opaque).anyXattrs());

  Toc noted = plain;
  Entry file = entryAt("etc/motd", EntryType::kRegular);
  file.xattrs = {{"user.note", "kept"}};
  noted.entries.push_back(file);
  EXPECT_TRUE(LayerTree(noted).anyXattrs());
}

class LazyMountTest : public ::testing::Test {
 protected:
  virtual std::string sample() const { return "sample"; }
  void SetUp() override {
    if (::geteuid() != 0 || ::access("/dev/fuse", R_OK | W_OK) != 0)
      GTEST_SKIP() << "needs root and /dev/fuse";
    blob_ = EstargzSample::blob(sample());
    descriptor_ = EstargzSample::descriptor(sample());
    openLayer();
    std::filesystem::create_directories(mountpoint());
    auto mounted =
        LazyMount::mount(*layer_, mountpoint(), {"test layer", std::chrono::seconds(5), ""});
    ASSERT_TRUE(mounted.ok()) << mounted.error().message;
    mount_ = std::move(mounted.value());
  }
  int64_t xattrRequests() const { return mount_->stats().xattr_requests; }
  void openLayer() {
    auto layer = LazyLayer::open(
        descriptor_,
        [this](int64_t first, int64_t last, const Context&) -> Result<std::string> {
          ++requests_;
          if (offline_)
            return makeError(ErrorCode::kUnavailable, "registry.test: connection refused");
          return blob_.substr(static_cast<size_t>(first), static_cast<size_t>(last - first + 1));
        },
        dir_.path() / "cache", clock_.context());
    ASSERT_TRUE(layer.ok()) << layer.error().message;
    layer_ = std::move(layer.value());
    layer_->setReaderWindow(0, 0);  // a request per member: the tests count them
  }
  std::filesystem::path mountpoint() const { return dir_.path() / "mnt"; }
  static dev_t deviceOf(const std::filesystem::path& path) {
    struct stat st {};
    EXPECT_EQ(::stat(path.c_str(), &st), 0);
    return st.st_dev;
  }

  testing::TempDir dir_;
  testing::FakeClock clock_;
  std::string blob_;  // the sample's, read at SetUp (a virtual call)
  Descriptor descriptor_;
  std::atomic<int> requests_{0};
  std::atomic<bool> offline_{false};
  std::unique_ptr<LazyLayer> layer_;
  std::unique_ptr<LazyMount> mount_;
};

TEST_F(LazyMountTest, TheLayersFilesReadThroughTheMountAsTheyAre) {
  EXPECT_EQ(readFile(mountpoint() / "bin/big"), EstargzSample::big());
  EXPECT_EQ(readFile(mountpoint() / "bin/big2"), EstargzSample::big());
  EXPECT_EQ(readFile(mountpoint() / "etc/hosts"), "127.0.0.1 localhost\n");
  EXPECT_EQ(std::filesystem::read_symlink(mountpoint() / "bin/sh"), "big");
  EXPECT_EQ(std::filesystem::file_size(mountpoint() / "bin/big"), 2500u);
  std::set<std::string> names;
  for (const auto& item : std::filesystem::directory_iterator(mountpoint() / "bin"))
    names.insert(item.path().filename().string());
  EXPECT_EQ(names, (std::set<std::string>{"big", "big2", "sh"}));
  // readdir(3) itself: "." and ".." are there, and no entry has inode number 0 (which it
  // would skip).
  DIR* listing = ::opendir((mountpoint() / "bin").c_str());
  ASSERT_NE(listing, nullptr);
  std::set<std::string> all;
  while (const dirent* item = ::readdir(listing)) {
    EXPECT_NE(item->d_ino, 0u) << item->d_name;
    all.insert(item->d_name);
  }
  ::closedir(listing);
  EXPECT_EQ(all, (std::set<std::string>{".", "..", "big", "big2", "sh"}));
  // A name that is not there, asked twice (the second answer the kernel's own), and under a
  // file.
  for (int i = 0; i < 2; ++i) {
    struct stat none {};
    EXPECT_EQ(::stat((mountpoint() / "bin/none").c_str(), &none), -1);
    EXPECT_EQ(errno, ENOENT);
  }
  struct stat under {};
  EXPECT_EQ(::stat((mountpoint() / "etc/hosts/x").c_str(), &under), -1);
  EXPECT_EQ(errno, ENOTDIR);
  // No extended attributes in this layer: none listed, and asking for one is "not supported",
  // which the kernel answers itself after the first time (overlayfs asks every file).
  char value[64];
  EXPECT_EQ(::listxattr((mountpoint() / "etc/hosts").c_str(), value, sizeof value), 0);
  for (const char* path : {"etc/hosts", "bin/big", "etc"}) {
    EXPECT_EQ(::getxattr((mountpoint() / path).c_str(), "user.x", value, sizeof value), -1);
    EXPECT_EQ(errno, ENOTSUP) << path;
  }
  EXPECT_EQ(xattrRequests(), 1);
  // The kernel reads ahead 1 MiB on this mount (128 KiB by default), where /sys lets it.
  const std::string read_ahead_path =
      "/sys/class/bdi/0:" + std::to_string(mount_->connection()) + "/read_ahead_kb";
  if (::access(read_ahead_path.c_str(), W_OK) == 0) {
    std::ifstream read_ahead(read_ahead_path);
    std::string kib;
    EXPECT_TRUE(std::getline(read_ahead, kib));
    EXPECT_EQ(kib, "1024");
  }
  struct stat big {};
  struct stat big2 {};
  ASSERT_EQ(::stat((mountpoint() / "bin/big").c_str(), &big), 0);
  ASSERT_EQ(::stat((mountpoint() / "bin/big2").c_str(), &big2), 0);
  EXPECT_EQ(big.st_ino, big2.st_ino);
  // Read-only.
  EXPECT_LT(::open((mountpoint() / "etc/hosts").c_str(), O_WRONLY), 0);
  EXPECT_LT(::open((mountpoint() / "etc/new").c_str(), O_WRONLY | O_CREAT, 0644), 0);
  const auto stats = mount_->stats();
  EXPECT_EQ(stats.read_errors, 0);
  // Each read's time counted in one bucket of the latency histogram.
  int64_t timed = 0;
  for (const int64_t count : stats.read_seconds)
    timed += count;
  EXPECT_GT(stats.reads, 0);
  EXPECT_EQ(timed, stats.reads);
  EXPECT_GT(stats.read_seconds_sum, 0);
}

// A layer with extended attributes answers every file's, as the extractor would apply them, and
// overlay's opaque marker on the directory its whiteout makes opaque.
class MarkedLazyMountTest : public LazyMountTest {
 protected:
  std::string sample() const override { return "marked"; }
};

TEST_F(MarkedLazyMountTest, ALayerWithExtendedAttributesAnswersThemAll) {
  const std::string ping = (mountpoint() / "usr/bin/ping").string();
  char value[64];
  const ssize_t listed = ::listxattr(ping.c_str(), value, sizeof value);
  ASSERT_GT(listed, 0) << std::strerror(errno);
  EXPECT_EQ(std::string(value, static_cast<size_t>(listed)),
            std::string("security.capability\0user.note\0", 30));
  ASSERT_EQ(::getxattr(ping.c_str(), "user.note", value, sizeof value), 4);
  EXPECT_EQ(std::string(value, 4), "kept");
  EXPECT_EQ(::getxattr(ping.c_str(), "security.capability", value, sizeof value), 20)
      << std::strerror(errno);
  // Each is asked of the server (a layer with any keeps the kernel asking).
  const int64_t asked = xattrRequests();
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(::getxattr(ping.c_str(), "user.none", value, sizeof value), -1);
    EXPECT_EQ(errno, ENODATA);
  }
  EXPECT_EQ(xattrRequests(), asked + 2);
  const std::string cache = (mountpoint() / "var/cache").string();
  ASSERT_EQ(::getxattr(cache.c_str(), "trusted.overlay.opaque", value, sizeof value), 1);
  EXPECT_EQ(value[0], 'y');
  EXPECT_EQ(::getxattr((mountpoint() / "usr").c_str(), "user.note", value, sizeof value), -1);
  EXPECT_EQ(errno, ENODATA);
  EXPECT_EQ(readFile(ping), "#!/bin/true\n");
}

TEST_F(LazyMountTest, AChunkThatCannotBeFetchedIsAnErrorOnThatReadOnly) {
  ASSERT_TRUE(layer_->prefetch(clock_.context()).ok());  // etc/hosts is held
  offline_ = true;
  EXPECT_EQ(readFile(mountpoint() / "etc/hosts"), "127.0.0.1 localhost\n");
  EXPECT_EQ(readErrno(mountpoint() / "bin/big"), EIO);
  EXPECT_GE(mount_->stats().read_errors, 1);
}

// Lists a directory of the mount, as a walk would (readdirplus: the kernel makes its inodes).
std::set<std::string> listNames(const std::filesystem::path& dir) {
  std::set<std::string> names;
  for (const auto& item : std::filesystem::directory_iterator(dir))
    names.insert(item.path().filename().string());
  return names;
}

// Polls `done` for up to 10 s (a push happens on the server's own thread).
bool eventually(const std::function<bool()>& done) {
  for (int i = 0; i < 1000 && !done(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  return done();
}

TEST_F(LazyMountTest, ListedFilesTheLayerHoldsAreInThePageCacheBeforeTheyAreRead) {
  ASSERT_TRUE(layer_->fill(clock_.context()).ok());  // every byte held
  const int requests = requests_.load();
  EXPECT_EQ(listNames(mountpoint() / "bin"), (std::set<std::string>{"big", "big2", "sh"}));
  EXPECT_EQ(listNames(mountpoint() / "etc"), (std::set<std::string>{"hosts"}));
  // bin/big and its hardlink bin/big2 are one node: pushed once, with etc/hosts.
  ASSERT_TRUE(eventually([&] { return mount_->stats().pushed.files == 2; }))
      << mount_->stats().pushed.files;
  EXPECT_EQ(readFile(mountpoint() / "bin/big"), EstargzSample::big());
  EXPECT_EQ(readFile(mountpoint() / "bin/big2"), EstargzSample::big());
  EXPECT_EQ(readFile(mountpoint() / "etc/hosts"), "127.0.0.1 localhost\n");
  const auto stats = mount_->stats();
  EXPECT_EQ(stats.reads, 0);  // no READ reached the server: the kernel had the pages
  EXPECT_EQ(stats.pushed.bytes, 2500 + 20);
  EXPECT_EQ(stats.pushed.missed, 0);
  EXPECT_EQ(requests_.load(), requests);
}

// Held bytes that fail their digest are not pushed and not fetched again by the push: the
// file's own read fetches them again, as it would without the push.
TEST_F(LazyMountTest, AListedFileWhoseHeldBytesFailIsLeftForItsRead) {
  ASSERT_TRUE(layer_->fill(clock_.context()).ok());
  const Entry* hosts = layer_->find("etc/hosts");
  ASSERT_NE(hosts, nullptr);
  {
    const UniqueFd blob(::open((dir_.path() / "cache/blob").c_str(), O_WRONLY | O_CLOEXEC));
    ASSERT_TRUE(blob.valid());
    const char wrong = 'x';
    ASSERT_EQ(::pwrite(blob.get(), &wrong, 1, static_cast<off_t>(hosts->chunks[0].offset + 12)), 1);
  }
  const int requests = requests_.load();
  EXPECT_EQ(listNames(mountpoint() / "etc"), (std::set<std::string>{"hosts"}));
  ASSERT_TRUE(eventually([&] { return mount_->stats().pushed.skipped == 1; }));
  EXPECT_EQ(mount_->stats().pushed.files, 0);
  EXPECT_EQ(requests_.load(), requests);
  EXPECT_EQ(readFile(mountpoint() / "etc/hosts"), "127.0.0.1 localhost\n");
  EXPECT_EQ(requests_.load(), requests + 1);  // the read fetched the member again
  EXPECT_EQ(mount_->stats().reads, 1);
}

TEST_F(LazyMountTest, AListedFileTheLayerDoesNotHoldIsLeftForItsReadNotFetched) {
  const int requests = requests_.load();  // the TOC's
  EXPECT_EQ(listNames(mountpoint() / "bin"), (std::set<std::string>{"big", "big2", "sh"}));
  ASSERT_TRUE(eventually([&] { return mount_->stats().pushed.skipped >= 1; }));
  EXPECT_EQ(requests_.load(), requests);  // a listing costs the registry nothing
  EXPECT_EQ(mount_->stats().pushed.files, 0);
  EXPECT_EQ(readFile(mountpoint() / "bin/big"), EstargzSample::big());
  EXPECT_GT(mount_->stats().reads, 0);
}

TEST_F(LazyMountTest, AMountStillHeldIsEndedAtUnmountNotWaitedFor) {
  const int fd = ::open((mountpoint() / "bin/big").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  const auto started = std::chrono::steady_clock::now();
  mount_.reset();  // the file stays open: the connection is aborted
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(10));
  char buffer[16];
  EXPECT_LT(::pread(fd, buffer, sizeof buffer, 0), 0);
  ::close(fd);
}

// A service restart as systemd's file descriptor store makes it: the first server releases the
// mount, the store keeps the connection's /dev/fuse file, the next server adopts it.
TEST_F(LazyMountTest, AReleasedMountIsServedByTheNextServerAndReadersWaitMeanwhile) {
  LazyMount::Handover handover{UniqueFd(::fcntl(mount_->deviceFd(), F_DUPFD_CLOEXEC, 3)),
                               mount_->initRequest(), mount_->connection()};
  ASSERT_FALSE(handover.init_request.empty());
  const dev_t device = deviceOf(mountpoint());
  const int opened = ::open((mountpoint() / "bin/big").c_str(), O_RDONLY);
  ASSERT_GE(opened, 0);
  ASSERT_TRUE(layer_->fill(clock_.context()).ok());
  listNames(mountpoint() / "bin");  // its push stops with the release, done or not
  mount_->release();
  mount_.reset();                             // not unmounted
  layer_.reset();                             // the next server opens the cache
  EXPECT_EQ(deviceOf(mountpoint()), device);  // answered from the kernel's cache

  std::string read_meanwhile;
  std::atomic<bool> done{false};
  std::thread reader([&] {
    read_meanwhile = readFile(mountpoint() / "etc/hosts");
    done = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_FALSE(done.load());  // waits in the kernel's queue, neither failed nor answered

  openLayer();
  auto adopted = LazyMount::adopt(*layer_, mountpoint(),
                                  {"test layer", std::chrono::seconds(5), ""}, std::move(handover));
  ASSERT_TRUE(adopted.ok()) << adopted.error().message;
  mount_ = std::move(adopted.value());
  reader.join();
  EXPECT_EQ(read_meanwhile, "127.0.0.1 localhost\n");
  // A file opened under the first server reads on under the next.
  std::string head(2500, '\0');
  EXPECT_EQ(::pread(opened, head.data(), head.size(), 0), 2500);
  EXPECT_EQ(head, EstargzSample::big());
  ::close(opened);
  EXPECT_EQ(readFile(mountpoint() / "bin/big2"), EstargzSample::big());
  EXPECT_EQ(std::filesystem::read_symlink(mountpoint() / "bin/sh"), "big");
  EXPECT_EQ(deviceOf(mountpoint()), device);

  mount_.reset();  // the adopted mount unmounts as the first would have
  EXPECT_NE(deviceOf(mountpoint()), device);
}

TEST_F(LazyMountTest, AConnectionThatEndedIsNotAdopted) {
  LazyMount::Handover handover{UniqueFd(::fcntl(mount_->deviceFd(), F_DUPFD_CLOEXEC, 3)),
                               mount_->initRequest(), mount_->connection()};
  mount_.reset();  // unmounted: the connection ends although its file is kept
  auto adopted = LazyMount::adopt(*layer_, mountpoint(),
                                  {"test layer", std::chrono::seconds(5), ""}, std::move(handover));
  ASSERT_FALSE(adopted.ok());
  EXPECT_NE(adopted.error().message.find("connection ended"), std::string::npos);
}

TEST_F(LazyMountTest, AMountIsNotAdoptedWithoutTheINITItsKernelSent) {
  LazyMount::Handover handover{UniqueFd(::fcntl(mount_->deviceFd(), F_DUPFD_CLOEXEC, 3)),
                               mount_->initRequest(), mount_->connection()};
  handover.init_request[4] = 1;  // the opcode: FUSE_LOOKUP
  auto adopted = LazyMount::adopt(*layer_, mountpoint(),
                                  {"test layer", std::chrono::seconds(5), ""}, std::move(handover));
  ASSERT_FALSE(adopted.ok());
  EXPECT_NE(adopted.error().message.find("not an INIT"), std::string::npos);
  // Refused without touching the mount: the first server still serves it.
  EXPECT_EQ(readFile(mountpoint() / "etc/hosts"), "127.0.0.1 localhost\n");
}

TEST_F(LazyMountTest, OverlayTakesTheMountAsALowerLayer) {
  const auto upper = dir_.path() / "upper";
  const auto work = dir_.path() / "work";
  const auto merged = dir_.path() / "merged";
  for (const auto& dir : {upper, work, merged})
    std::filesystem::create_directories(dir);
  const std::string options = "lowerdir=" + mountpoint().string() + ",upperdir=" + upper.string() +
                              ",workdir=" + work.string();
  ASSERT_EQ(::mount("overlay", merged.c_str(), "overlay", 0, options.c_str()), 0)
      << std::strerror(errno);
  EXPECT_EQ(readFile(merged / "bin/big"), EstargzSample::big());
  std::ofstream(merged / "etc/hosts") << "changed\n";  // copied up, the layer unchanged
  EXPECT_EQ(readFile(merged / "etc/hosts"), "changed\n");
  EXPECT_EQ(readFile(mountpoint() / "etc/hosts"), "127.0.0.1 localhost\n");
  ASSERT_EQ(::umount2(merged.c_str(), MNT_DETACH), 0);
}

}  // namespace
}  // namespace pullagent::puller::estargz
