#include "puller/store/oci_layout.h"

#include <fcntl.h>
#include <sys/file.h>

#include <cerrno>
#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

#include "base/atomic_file.h"
#include "base/unique_fd.h"

namespace pullagent::puller {

Status recordInOciLayout(const std::filesystem::path& root, const Descriptor& manifest,
                         const std::string& ref_name, const std::string& full_name) {
  using nlohmann::json;
  if (auto status = writeFileAtomic(root / "oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
      !status) {
    return status;
  }
  // index.json is read, changed and replaced: pulls running side by side (threads of the
  // daemon, or processes) take turns, or one's entry would be lost.
  const auto lock_path = root / ".index.json.lock";
  UniqueFd lock(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!lock.valid())
    return errnoError(errno, "open", lock_path);
  while (::flock(lock.get(), LOCK_EX) != 0) {
    if (errno != EINTR)
      return errnoError(errno, "lock", lock_path);
  }
  json index = {
      {"schemaVersion", 2}, {"mediaType", media_type::kOciIndex}, {"manifests", json::array()}};
  std::ifstream existing(root / "index.json");
  if (existing) {
    std::stringstream text;
    text << existing.rdbuf();
    auto parsed = json::parse(text.str(), nullptr, false);
    if (parsed.is_object() && parsed.contains("manifests") && parsed["manifests"].is_array()) {
      for (const auto& entry : parsed["manifests"]) {
        bool same_name =
            entry.contains("annotations") && entry["annotations"].is_object() &&
            entry["annotations"].value("org.opencontainers.image.ref.name", "") == ref_name;
        if (!same_name)
          index["manifests"].push_back(entry);
      }
    }
  }
  json entry = {
      {"mediaType", manifest.media_type},
      {"digest", manifest.digest.str()},
      {"size", manifest.size},
      {"annotations",
       {{"org.opencontainers.image.ref.name", ref_name}, {"io.containerd.image.name", full_name}}}};
  index["manifests"].push_back(entry);
  return writeFileAtomic(root / "index.json", index.dump(2) + "\n");
}

}  // namespace pullagent::puller
