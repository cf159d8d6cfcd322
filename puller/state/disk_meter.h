#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <utility>

#include "base/error.h"
#include "puller/oci/digest.h"
#include "puller/state/state_dir.h"

namespace pullagent::puller {

// Measures a state dir's disk cheaply enough to do it before every pull and every minute:
// layer snapshots and published image trees never change once renamed into place, so each is
// walked once and remembered by its path and inode (a tree replaced under the same name is
// walked again). Blobs and partial downloads are counted each time (one stat per file).
// Thread-safe.
class DiskMeter {
 public:
  // What a tree takes on disk (st_blocks, each inode once), remembered while it stays.
  int64_t treeBytes(const std::filesystem::path& dir);
  // Everything under the state dir the agent wrote: blobs, partial downloads, snapshots,
  // published images, records.
  int64_t stateBytes(const StateDir& state);
  // What evicting every one of `candidates` would free, with the layer blobs of `in_use`
  // images whose snapshots are made: the candidates' trees, the snapshots no image in use (and
  // no bundle root) has, the blobs only they name. Only with the state lock held exclusively.
  Result<int64_t> evictableBytes(const StateDir& state, const std::set<Digest>& in_use,
                                 const std::set<Digest>& candidates);
  // Forgets the trees that are gone (after an eviction or a collection).
  void prune();

 private:
  std::mutex mutex_;
  std::map<std::filesystem::path, std::pair<ino_t, int64_t>> trees_;
};

}  // namespace pullagent::puller
