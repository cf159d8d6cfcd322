#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <set>

#include "base/error.h"
#include "puller/oci/digest.h"
#include "puller/state/state_dir.h"

namespace pullagent::puller {

// When each image in the state dir was last used (published by a site, or let go by one), kept
// on disk so that the eviction order survives a restart of the service (kubelet keeps it in
// memory and forgets it). One small file per image, <state>/last-use/<manifest hex>, written
// atomically: {"unixMs": 1765000000000}. Read as hostile: a record that is missing, a link, not
// a regular file, too large or malformed reads as "never used", which evicts first, never a
// crash.
class LastUse {
 public:
  explicit LastUse(const StateDir& state) : dir_(state.lastUse()) {}

  Status touch(const Digest& image, std::chrono::system_clock::time_point at) const;
  std::optional<std::chrono::system_clock::time_point> read(const Digest& image) const;
  // Removes the records of images not in `images` (gc, once they are gone).
  void keepOnly(const std::set<Digest>& images) const;

 private:
  std::filesystem::path dir_;
};

}  // namespace pullagent::puller
