#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <vector>

#include "base/error.h"
#include "puller/oci/digest.h"
#include "puller/state/state_dir.h"

namespace pullagent::puller {

// How an image published in a state dir (<state>/images/<manifest hex>/) keeps its root
// filesystem: over layer snapshots (the chain ids of its layers, bottom first) or as a plain
// tree in rootfs/ (flat storage).
struct PublishedRootfs {
  bool flat = false;
  std::vector<Digest> chain;  // the layers' chain ids (flat: when its image config reads)
  // Layers still read in place (lazy pulling), not yet promoted: layer index (bottom first) ->
  // the directory rootfs-mounts.json names. Trust it only through inPlaceLayerServed().
  std::map<size_t, std::filesystem::path> in_place;
};

// Read from the image config the image was published with (image-config.json), never from
// paths in a file of the image directory: whatever that directory holds, only snapshots of the
// state dir's own store are named. kNotFound when no image is published at `image_dir`.
Result<PublishedRootfs> publishedRootfs(const std::filesystem::path& image_dir);

// Whether `dir` has the form of a layer the lazy host of `state` serves in place:
// <state>/lazy/<source hex>/<layer hex>/mnt/layer (its cache is in .../<layer hex>/cache).
bool isLazyLayerPath(const StateDir& state, const std::filesystem::path& dir);

// Whether `dir`, named by a rootfs-mounts.json as a layer read in place, is one the lazy host of
// `state` serves: exactly <state>/lazy/<source hex>/<layer hex>/mnt/layer, and a FUSE mount now.
// kInvalidArgument for any other path, kUnavailable for a dead mount (its service is gone).
Status inPlaceLayerServed(const StateDir& state, const std::filesystem::path& dir);

// Whether the image `digest` is published whole in `state`: its marker, written last by the
// publish, is a regular file (lstat: a link or anything else in its place is not, and no
// error of the path can throw).
bool isPublished(const StateDir& state, const Digest& digest);

// The disk a state dir's published images use, each snapshot counted once.
struct ImageDiskUsage {
  Digest digest;  // the manifest's
  bool flat = false;
  size_t layers = 0;
  size_t layers_in_place = 0;  // lazy pulling: layers not yet promoted to snapshots
  int64_t own_bytes = 0;     // its bundle (with the tree when flat) and the snapshots only it uses
  int64_t shared_bytes = 0;  // the snapshots other images use too
};
struct StateDiskUsage {
  std::vector<ImageDiskUsage> images;  // by digest
  int snapshots = 0;                   // every snapshot present, used or not
  int64_t snapshot_bytes = 0;
  int shared_snapshots = 0;  // used by more than one image
  int64_t shared_snapshot_bytes = 0;
  int64_t blob_bytes = 0;  // the content store's blobs
};

// Walks the state dir's images, snapshots and blobs (st_blocks, each inode once per tree).
// Reads only: run it beside a pull or the service (figures are those of the moment).
Result<StateDiskUsage> stateDiskUsage(const StateDir& state);

}  // namespace pullagent::puller
