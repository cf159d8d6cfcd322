#include "puller/snapshot/snapshot_store.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <thread>
#include <unordered_set>

#include "base/confined_root.h"

namespace pullagent::puller {
namespace fs = std::filesystem;
namespace {

constexpr std::string_view kTrashPrefix = ".trash-";
constexpr std::string_view kLockSuffix = ".lock";

struct InodeKey {
  dev_t dev;
  ino_t ino;
  bool operator==(const InodeKey&) const = default;
};
struct InodeHash {
  size_t operator()(const InodeKey& key) const {
    return std::hash<ino_t>()(key.ino) ^ (std::hash<dev_t>()(key.dev) << 1);
  }
};

void addUsage(int dir_fd, std::unordered_set<InodeKey, InodeHash>& seen, int64_t& total) {
  auto names = ConfinedRoot::list(dir_fd, "snapshot");
  if (!names)
    return;
  for (const auto& name : *names) {
    struct stat info {};
    if (::fstatat(dir_fd, name.c_str(), &info, AT_SYMLINK_NOFOLLOW) != 0)
      continue;
    if (seen.insert({info.st_dev, info.st_ino}).second)
      total += static_cast<int64_t>(info.st_blocks) * 512;
    if (S_ISDIR(info.st_mode)) {
      UniqueFd sub(::openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (sub.valid())
        addUsage(sub.get(), seen, total);
    }
  }
}

}  // namespace

bool SnapshotStore::has(const Digest& chain) const {
  struct stat info {};
  return ::lstat(layerDir(chain).c_str(), &info) == 0 && S_ISDIR(info.st_mode);
}

std::vector<fs::path> SnapshotStore::lowerDirs(const std::vector<Digest>& chain,
                                               size_t count) const {
  std::vector<fs::path> lowers;
  lowers.reserve(count);
  for (size_t below = std::min(count, chain.size()); below-- > 0;)
    lowers.push_back(layerDir(chain[below]));
  return lowers;
}

Status SnapshotStore::prepare() const {
  std::error_code ec;
  fs::create_directories(root_, ec);
  if (ec)
    return errnoError(ec.value(), "create", root_);
  struct stat info {};
  if (::lstat(root_.c_str(), &info) != 0)
    return errnoError(errno, "stat", root_);
  if (!S_ISDIR(info.st_mode)) {
    return makeError(ErrorCode::kPermissionDenied,
                     root_.string() + " is not a directory of its own (a symbolic link?)");
  }
  if ((info.st_mode & 07777) != 0700 && ::chmod(root_.c_str(), 0700) != 0)
    return errnoError(errno, "chmod", root_);
  return {};
}

Result<UniqueFd> SnapshotStore::lock(const Digest& chain, const std::stop_token& stop) const {
  const fs::path path = root_ / ("." + chain.hex() + std::string(kLockSuffix));
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd.valid())
    return errnoError(errno, "open", path);
  // The holder is unpacking a whole layer: a tenth of a second between tries costs nothing.
  while (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK && errno != EINTR)
      return errnoError(errno, "lock", path);
    if (stop.stop_requested())
      return makeError(ErrorCode::kCancelled, "stop requested");
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return fd;
}

Result<std::set<Digest>> SnapshotStore::list() const {
  std::set<Digest> chains;
  UniqueFd dir(::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dir.valid()) {
    if (errno == ENOENT)
      return chains;
    return errnoError(errno, "open", root_);
  }
  ASSIGN_OR_RETURN(auto names, ConfinedRoot::list(dir.get(), root_.string()));
  for (const auto& name : names) {
    if (auto chain = Digest::parse("sha256:" + name))
      chains.insert(*chain);
  }
  return chains;
}

Result<int64_t> SnapshotStore::remove(const Digest& chain) const {
  UniqueFd dir(::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dir.valid())
    return errnoError(errno, "open", root_);
  const std::string trash = std::string(kTrashPrefix) + chain.hex();
  if (::renameat(dir.get(), chain.hex().c_str(), dir.get(), trash.c_str()) != 0)
    return errnoError(errno, "rename aside", this->dir(chain));
  const int64_t bytes = diskUsage(root_ / trash);
  RETURN_IF_ERROR(ConfinedRoot::removeAt(dir.get(), trash));
  ::unlinkat(dir.get(), ("." + chain.hex() + std::string(kLockSuffix)).c_str(), 0);
  return bytes;
}

void SnapshotStore::removeLeftovers() const {
  UniqueFd dir(::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dir.valid())
    return;
  auto names = ConfinedRoot::list(dir.get(), root_.string());
  if (!names)
    return;
  std::set<std::string> present(names->begin(), names->end());
  for (const auto& name : *names) {
    if (!name.starts_with("."))
      continue;
    if (name.ends_with(kLockSuffix)) {
      // A lock file without its snapshot: nobody holds it while gc holds the state lock.
      const std::string hex = name.substr(1, name.size() - 1 - kLockSuffix.size());
      if (present.count(hex) == 0)
        ::unlinkat(dir.get(), name.c_str(), 0);
      continue;
    }
    spdlog::info("removing snapshot leftovers {}", (root_ / name).string());
    (void)ConfinedRoot::removeAt(dir.get(), name);
  }
}

int64_t diskUsage(const fs::path& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.valid())
    return 0;
  std::unordered_set<InodeKey, InodeHash> seen;
  int64_t total = 0;
  addUsage(fd.get(), seen, total);
  return total;
}

}  // namespace pullagent::puller
