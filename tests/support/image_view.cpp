#include "tests/support/image_view.h"

#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "tests/support/temp_dir.h"

namespace pullagent::testing {

std::filesystem::path imageFile(const std::filesystem::path& image_dir,
                                const std::string& relative) {
  const auto description = image_dir / "rootfs-mounts.json";
  if (!std::filesystem::exists(description))
    return image_dir / "rootfs" / relative;
  const auto layers = nlohmann::json::parse(readFile(description))["layers"];
  for (auto it = layers.rbegin(); it != layers.rend(); ++it) {
    const std::filesystem::path candidate =
        std::filesystem::path((*it)["path"].get<std::string>()) / relative;
    struct stat info {};
    if (::lstat(candidate.c_str(), &info) == 0)
      return candidate;
  }
  return image_dir / "rootfs" / relative;  // missing: a path that does not exist
}

}  // namespace pullagent::testing
