#include "tests/support/tree_snapshot.h"

#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <set>
#include <vector>

#include "puller/oci/sha256.h"
#include "tests/support/temp_dir.h"

namespace pullagent::testing {
namespace {

// The entry's extended attributes, name=value, sorted.
std::string xattrsOf(const std::filesystem::path& path) {
  std::vector<char> names(65536);
  const ssize_t size = ::llistxattr(path.c_str(), names.data(), names.size());
  if (size <= 0)
    return "";
  std::set<std::string> sorted;
  for (size_t at = 0; at < static_cast<size_t>(size);) {
    const std::string name(names.data() + at);
    at += name.size() + 1;
    std::vector<char> value(65536);
    const ssize_t length = ::lgetxattr(path.c_str(), name.c_str(), value.data(), value.size());
    sorted.insert(name + "=" +
                  std::string(value.data(), length > 0 ? static_cast<size_t>(length) : 0));
  }
  std::string text;
  for (const auto& item : sorted)
    text += " xattr:" + item;
  return text;
}

}  // namespace

TreeSnapshot snapshotTree(const std::filesystem::path& root) {
  TreeSnapshot snapshot;
  auto describe = [](const std::filesystem::path& path) {
    struct stat info {};
    if (::lstat(path.c_str(), &info) != 0)
      return std::string("missing");
    std::string text = "mode=" + std::to_string(info.st_mode) +
                       " uid=" + std::to_string(info.st_uid) +
                       " gid=" + std::to_string(info.st_gid);
    if (S_ISREG(info.st_mode)) {
      text += " size=" + std::to_string(info.st_size) + " " +
              puller::Sha256::of(readFile(path)).str() +
              " mtime=" + std::to_string(info.st_mtim.tv_sec);
    } else if (S_ISLNK(info.st_mode)) {
      text += " -> " + std::filesystem::read_symlink(path).string();
    } else if (S_ISCHR(info.st_mode) || S_ISBLK(info.st_mode)) {
      text += " rdev=" + std::to_string(info.st_rdev);
    }
    return text + xattrsOf(path);
  };
  snapshot["."] = describe(root);
  for (auto it = std::filesystem::recursive_directory_iterator(root);
       it != std::filesystem::recursive_directory_iterator(); ++it) {
    snapshot[std::filesystem::relative(it->path(), root).string()] = describe(it->path());
  }
  return snapshot;
}

}  // namespace pullagent::testing
