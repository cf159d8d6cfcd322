#include "puller/state/published_image.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/vfs.h>

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

// The layers a bundle's rootfs-mounts.json says are read in place ("inPlace": lazy pulling), by
// index, with the directory it names (empty when the entry names none as a string).
std::map<size_t, fs::path> layersInPlace(const fs::path& image_dir) {
  std::map<size_t, fs::path> in_place;
  auto text = readRegularFile(image_dir / kRootfsMountsFile, size_t{1} << 20);
  if (!text)
    return in_place;
  const auto description = nlohmann::json::parse(*text, nullptr, false);
  if (!description.is_object() || !description.contains("layers") ||
      !description["layers"].is_array())
    return in_place;
  const auto& layers = description["layers"];
  for (size_t i = 0; i < layers.size(); ++i) {
    const auto& layer = layers[i];
    if (layer.is_object() && layer.contains("inPlace") && layer["inPlace"].is_boolean() &&
        layer["inPlace"].get<bool>()) {
      const bool named = layer.contains("path") && layer["path"].is_string();
      in_place[i] = named ? fs::path(layer["path"].get<std::string>()) : fs::path();
    }
  }
  return in_place;
}

bool isHexDigest(const std::string& name) {
  return name.size() == 64 && name.find_first_not_of("0123456789abcdef") == std::string::npos;
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
      return PublishedRootfs{true, {}, {}};  // its tree is all it needs
    return config.error();
  }
  return PublishedRootfs{flat, chainIds(config->diff_ids),
                         flat ? std::map<size_t, fs::path>{} : layersInPlace(image_dir)};
}

bool isLazyLayerPath(const StateDir& state, const fs::path& dir) {
  const fs::path relative = dir.lexically_relative(state.lazy());
  std::vector<std::string> parts;
  for (const auto& part : relative)
    parts.push_back(part.string());
  return dir.is_absolute() && dir.lexically_normal() == dir && parts.size() == 4 &&
         isHexDigest(parts[0]) && isHexDigest(parts[1]) && parts[2] == "mnt" && parts[3] == "layer";
}

Status inPlaceLayerServed(const StateDir& state, const fs::path& dir) {
  // The path's form first: whatever a bundle's file says, only the lazy host's own mounts.
  if (!isLazyLayerPath(state, dir)) {
    return makeError(ErrorCode::kInvalidArgument, "a layer read in place at " + dir.string() +
                                                      " is not one the lazy host of " +
                                                      state.root().string() + " serves");
  }
  // Then that it is served: the layer directory of a live FUSE mount. Its mount point's own
  // directory would be an empty (or stale) tree under the overlay, never the layer.
  constexpr long kFuseSuperMagic = 0x65735546;
  struct statfs info {};
  if (::statfs(dir.parent_path().c_str(), &info) != 0 || info.f_type != kFuseSuperMagic) {
    return makeError(ErrorCode::kUnavailable,
                     "the layer read in place at " + dir.string() +
                         " is not served now (the service that served it stopped; it serves "
                         "the image again when it next publishes it)");
  }
  return {};
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
    ImageDiskUsage image{
        digest, published.flat, published.chain.size(), published.in_place.size(), 0, 0};
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
