#pragma once

#include <cstdint>
#include <filesystem>
#include <set>
#include <stop_token>
#include <vector>

#include "base/error.h"
#include "base/unique_fd.h"
#include "puller/oci/digest.h"

namespace pullagent::puller {

// The unpacked layers of a state dir, one directory per layer chain:
//   <state>/snapshots/<chain id hex>/fs   the layer as an overlayfs lower directory
// A snapshot directory exists whole or not at all: it is built in a staging directory beside it
// and renamed into place once its diff_id is verified, and removed by renaming it aside first.
// The directories are 0700: their setuid binaries are for containers, not for host users.
class SnapshotStore {
 public:
  explicit SnapshotStore(std::filesystem::path root) : root_(std::move(root)) {}

  const std::filesystem::path& root() const { return root_; }
  std::filesystem::path dir(const Digest& chain) const { return root_ / chain.hex(); }
  // What overlayfs gets as the layer's lower directory.
  std::filesystem::path layerDir(const Digest& chain) const { return dir(chain) / "fs"; }
  bool has(const Digest& chain) const;
  // The layer directories of the first `count` layers of `chain` (bottom first), top first as
  // overlayfs's lowerdir lists them.
  std::vector<std::filesystem::path> lowerDirs(const std::vector<Digest>& chain,
                                               size_t count) const;

  // Creates the root (0700) if missing.
  Status prepare() const;

  // The chain's lock (a flock on .<hex>.lock), held while its snapshot is made, so that two
  // pulls of images sharing it (two sites, or the service and a command) unpack it once. Polled
  // so that `stop` is seen; kCancelled when it is.
  Result<UniqueFd> lock(const Digest& chain, const std::stop_token& stop) const;

  // The snapshots present, by chain id.
  Result<std::set<Digest>> list() const;
  // Removes one snapshot crash-safely (renamed aside, then deleted); the bytes it held.
  Result<int64_t> remove(const Digest& chain) const;
  // Removes what interrupted runs left: staging and trash directories, stale lock files. Only
  // with the state dir's lock held exclusively (gc): no pull is making a snapshot then.
  void removeLeftovers() const;

 private:
  std::filesystem::path root_;
};

// The bytes a tree's regular files and directories take on disk (st_blocks), each inode once.
int64_t diskUsage(const std::filesystem::path& dir);

}  // namespace pullagent::puller
