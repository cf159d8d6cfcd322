#include "puller/state/disk_meter.h"

#include <sys/stat.h>

#include "puller/snapshot/snapshot_store.h"
#include "puller/state/bundle_roots.h"
#include "puller/state/garbage_collector.h"
#include "puller/state/published_image.h"

namespace pullagent::puller {
namespace fs = std::filesystem;

int64_t DiskMeter::treeBytes(const fs::path& dir) {
  struct stat info {};
  if (::lstat(dir.c_str(), &info) != 0 || !S_ISDIR(info.st_mode))
    return 0;
  {
    std::lock_guard lock(mutex_);
    auto found = trees_.find(dir);
    if (found != trees_.end() && found->second.first == info.st_ino)
      return found->second.second;
  }
  const int64_t bytes = diskUsage(dir);
  std::lock_guard lock(mutex_);
  trees_[dir] = {info.st_ino, bytes};
  return bytes;
}

int64_t DiskMeter::stateBytes(const StateDir& state) {
  int64_t total = 0;
  std::error_code ec;
  for (const auto& parent : {state.snapshots(), state.images()}) {
    for (fs::directory_iterator it(parent, ec), end; !ec && it != end; it.increment(ec)) {
      if (it->path().filename().string().starts_with("."))
        total += diskUsage(it->path());  // staging and trash: changing, never remembered
      else
        total += treeBytes(it->path());
    }
  }
  // Blobs, partial downloads and records change all the time, and are one stat per file.
  for (const auto& dir :
       {state.content(), state.provenance(), state.lastUse(), state.bundleRoots(), state.sites()}) {
    total += diskUsage(dir);
  }
  return total;
}

Result<int64_t> DiskMeter::evictableBytes(const StateDir& state, const std::set<Digest>& in_use,
                                          const std::set<Digest>& candidates) {
  std::set<Digest> kept_chains = BundleRoots(state).collectLive();
  for (const auto& image : in_use) {
    if (auto rootfs = publishedRootfs(state.image(image)))
      kept_chains.insert(rootfs->chain.begin(), rootfs->chain.end());
  }
  int64_t bytes = 0;
  std::set<Digest> counted;
  const SnapshotStore snapshots(state.snapshots());
  for (const auto& image : candidates) {
    bytes += treeBytes(state.image(image));
    auto rootfs = publishedRootfs(state.image(image));
    if (!rootfs || rootfs->flat)
      continue;
    for (const auto& chain : rootfs->chain) {
      if (kept_chains.count(chain) == 0 && counted.insert(chain).second)
        bytes += treeBytes(snapshots.dir(chain));
    }
  }
  std::set<Digest> held = in_use;
  held.insert(candidates.begin(), candidates.end());
  std::set<Digest> blobs = blobsNeeded(state, held, false);
  for (const auto& digest : blobsNeeded(state, in_use, true))
    blobs.erase(digest);
  ASSIGN_OR_RETURN(auto stored, storedBlobs(state, blobs));
  for (const auto& blob : stored)
    bytes += blob.bytes;
  return bytes;
}

void DiskMeter::prune() {
  std::lock_guard lock(mutex_);
  for (auto it = trees_.begin(); it != trees_.end();) {
    struct stat info {};
    if (::lstat(it->first.c_str(), &info) != 0 || info.st_ino != it->second.first)
      it = trees_.erase(it);
    else
      ++it;
  }
}

}  // namespace pullagent::puller
