#include "puller/state/published_image.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "base/bounded_read.h"
#include "base/confined_root.h"
#include "base/unique_fd.h"
#include "puller/oci/manifest.h"
#include "puller/snapshot/chain_id.h"
#include "puller/snapshot/overlay_mount.h"
#include "puller/snapshot/snapshot_store.h"
#include "puller/store/content_store.h"

namespace pullagent::puller {
namespace fs = std::filesystem;

bool isPublished(const StateDir& state, const Digest& digest) {
  struct stat info {};
  return ::lstat((state.image(digest) / kPublishedMarker).c_str(), &info) == 0 &&
         S_ISREG(info.st_mode);
}

namespace {

// The layers a bundle's rootfs-mounts.json says are read in place ("inPlace": lazy pulling).
size_t layersInPlace(const fs::path& image_dir) {
  auto text = readRegularFile(image_dir / kRootfsMountsFile, size_t{1} << 20);
  if (!text)
    return 0;
  const auto description = nlohmann::json::parse(*text, nullptr, false);
  if (!description.is_object() || !description.contains("layers") ||
      !description["layers"].is_array())
    return 0;
  size_t count = 0;
  for (const auto& layer : description["layers"]) {
    if (layer.is_object() && layer.contains("inPlace") && layer["inPlace"].is_boolean() &&
        layer["inPlace"].get<bool>())
      ++count;
  }
  return count;
}

}  // namespace

Result<PublishedRootfs> publishedRootfs(const fs::path& image_dir) {
  struct stat info {};
  if (::lstat((image_dir / kPublishedMarker).c_str(), &info) != 0)
    return makeError(ErrorCode::kNotFound, "no image published at " + image_dir.string());
  const bool flat = ::lstat((image_dir / kRootfsMountsFile).c_str(), &info) != 0;
  auto text =
      readRegularFile(image_dir / kPublishedConfigFile, static_cast<size_t>(kMaxConfigSize));
  auto config = text ? parseImageConfig(*text) : Result<ImageConfigSummary>(text.error());
  if (!config) {
    if (flat)
      return PublishedRootfs{true, {}, 0};  // its tree is all it needs
    return config.error();
  }
  return PublishedRootfs{flat, chainIds(config->diff_ids), flat ? 0 : layersInPlace(image_dir)};
}

Result<StateDiskUsage> stateDiskUsage(const StateDir& state_dir) {
  StateDiskUsage usage;
  const SnapshotStore snapshots(state_dir.snapshots());
  std::map<Digest, int64_t> snapshot_bytes;
  if (auto present = snapshots.list()) {
    for (const auto& chain : *present)
      snapshot_bytes[chain] = diskUsage(snapshots.dir(chain));
  }
  usage.snapshots = static_cast<int>(snapshot_bytes.size());
  for (const auto& [chain, bytes] : snapshot_bytes)
    usage.snapshot_bytes += bytes;

  std::map<Digest, PublishedRootfs> rootfs;
  std::map<Digest, int> users;
  UniqueFd images(
      ::open(state_dir.images().c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (images.valid()) {
    ASSIGN_OR_RETURN(auto names, ConfinedRoot::list(images.get(), "images"));
    for (const auto& name : names) {
      auto digest = Digest::parse("sha256:" + name);
      if (!digest)
        continue;  // staging directories and lock files
      auto published = publishedRootfs(state_dir.images() / name);
      if (!published)
        continue;
      // An image lists a chain once even if its layers repeat one (a duplicated layer); a flat
      // image uses no snapshot.
      if (!published->flat) {
        for (const auto& chain : std::set<Digest>(published->chain.begin(), published->chain.end()))
          ++users[chain];
      }
      rootfs.emplace(*digest, std::move(*published));
    }
  }
  for (const auto& [chain, count] : users) {
    auto found = snapshot_bytes.find(chain);
    if (count > 1 && found != snapshot_bytes.end()) {
      ++usage.shared_snapshots;
      usage.shared_snapshot_bytes += found->second;
    }
  }
  for (const auto& [digest, published] : rootfs) {
    ImageDiskUsage image{digest, published.flat, published.chain.size(), published.in_place, 0, 0};
    image.own_bytes = diskUsage(state_dir.image(digest));
    const std::set<Digest> chains =
        published.flat ? std::set<Digest>{}
                       : std::set<Digest>(published.chain.begin(), published.chain.end());
    for (const auto& chain : chains) {
      auto found = snapshot_bytes.find(chain);
      if (found == snapshot_bytes.end())
        continue;
      (users[chain] > 1 ? image.shared_bytes : image.own_bytes) += found->second;
    }
    usage.images.push_back(image);
  }
  usage.blob_bytes = diskUsage(ContentStore::blobsDir(state_dir.content()));
  return usage;
}

}  // namespace pullagent::puller
