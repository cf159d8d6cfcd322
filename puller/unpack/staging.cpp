#include "puller/unpack/staging.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <system_error>

#include "base/atomic_file.h"
#include "base/confined_root.h"

namespace pullagent::puller {
namespace fs = std::filesystem;
namespace {

std::string stagingPrefix(const fs::path& target) {
  return "." + target.filename().string() + ".staging-";
}

// Removal that never follows a symlink out of the tree being removed.
void removeTree(const fs::path& path) {
  UniqueFd parent(::open(path.parent_path().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (parent.valid())
    (void)ConfinedRoot::removeAt(parent.get(), path.filename().string());
}

}  // namespace

Result<Staging> Staging::create(const fs::path& target, mode_t mode) {
  static std::atomic<int> counter{0};
  std::error_code ec;
  fs::create_directories(target.parent_path(), ec);
  if (ec)
    return errnoError(ec.value(), "create directory", target.parent_path());
  fs::path dir = target.parent_path() / (stagingPrefix(target) + std::to_string(::getpid()) + "-" +
                                         std::to_string(counter++));
  removeTree(dir);
  if (::mkdir(dir.c_str(), mode) != 0)
    return errnoError(errno, "create staging directory", dir);
  ::chmod(dir.c_str(), mode);  // not narrowed by the umask
  return Staging(dir, target);
}

Staging::Staging(Staging&& other) noexcept
    : dir_(std::move(other.dir_)), target_(std::move(other.target_)), published_(other.published_) {
  other.published_ = true;
}

Staging::~Staging() {
  if (!published_)
    removeTree(dir_);
}

Status Staging::publish() {
  if (::renameat2(AT_FDCWD, dir_.c_str(), AT_FDCWD, target_.c_str(), RENAME_NOREPLACE) == 0) {
    published_ = true;
    return syncDirectory(target_.parent_path());
  }
  if (errno != EEXIST)
    return errnoError(errno, "publish", target_);
  if (::renameat2(AT_FDCWD, dir_.c_str(), AT_FDCWD, target_.c_str(), RENAME_EXCHANGE) != 0) {
    return errnoError(errno, "publish (exchange)", target_);
  }
  published_ = true;
  RETURN_IF_ERROR(syncDirectory(target_.parent_path()));
  removeTree(dir_);  // now the previous tree
  return {};
}

void removeStaleStaging(const fs::path& target) {
  std::error_code ec;
  const std::string prefix = stagingPrefix(target);
  for (const auto& entry : fs::directory_iterator(target.parent_path(), ec)) {
    if (entry.path().filename().string().starts_with(prefix)) {
      spdlog::info("removing staging leftovers {}", entry.path().string());
      removeTree(entry.path());
    }
  }
}

}  // namespace pullagent::puller
