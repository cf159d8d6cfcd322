#include "puller/store/oci_layout.h"

#include <fcntl.h>
#include <sys/file.h>

#include <cerrno>
#include <nlohmann/json.hpp>

#include "base/atomic_file.h"
#include "base/bounded_read.h"
#include "base/json_reader.h"
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
  // Entries of other images are kept as they are; an unreadable or malformed index.json (we wrote
  // it, but it is read as input) is replaced rather than trusted.
  if (auto text = readRegularFile(root / "index.json", kMaxManifestSize)) {
    if (auto parsed = parseJson(text.value(), "index.json"); parsed && parsed->is_object()) {
      const JsonReader existing(parsed.value(), "index.json");
      if (auto entries = existing["manifests"].elements()) {
        for (const auto& entry : entries.value()) {
          auto name = entry["annotations"]["org.opencontainers.image.ref.name"].string();
          if (entry.isObject() && !(name && name.value() == ref_name))
            index["manifests"].push_back(entry.raw());
        }
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
