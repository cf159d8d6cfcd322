#include "tests/support/tree_snapshot.h"

#include <sys/stat.h>
#include <unistd.h>

#include "puller/oci/sha256.h"
#include "tests/support/temp_dir.h"

namespace pullagent::testing {

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
    return text;
  };
  snapshot["."] = describe(root);
  for (auto it = std::filesystem::recursive_directory_iterator(root);
       it != std::filesystem::recursive_directory_iterator(); ++it) {
    snapshot[std::filesystem::relative(it->path(), root).string()] = describe(it->path());
  }
  return snapshot;
}

}  // namespace pullagent::testing
