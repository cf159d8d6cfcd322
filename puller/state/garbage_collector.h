#pragma once

#include <cstdint>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "base/error.h"
#include "puller/oci/digest.h"
#include "puller/state/state_dir.h"

namespace pullagent::puller {

struct GcReport {
  int images_removed = 0;
  int blobs_removed = 0;
  int snapshots_removed = 0;
  int snapshots_kept = 0;
  int records_removed = 0;  // provenance records of blobs neither stored nor named any more
  int records_kept = 0;
  int64_t snapshot_bytes = 0;  // what the kept snapshots hold on disk
  int64_t bytes_freed = 0;
};

// Collects a state directory (its images, its content store, its snapshots: StateDir). Published
// images whose manifest digest is not in `keep` are removed (all are kept when `keep_all`); then
// every blob that no remaining image needs - its manifest, config and layers, and the indexes
// recorded for it in index.json - is deleted, index.json entries of removed images with it, and
// every layer snapshot outside the layer chains of the remaining images and of the bundles
// published outside over snapshots (BundleRoots). With `discard_unpacked_layers` (containerd's
// option of that name), the blob of a layer unpacked into its snapshot is not needed either: a pull
// reuses the snapshot without fetching it (ImagePuller), at the price of the OCI layout in content/
// no longer holding whole images (nor can a flat publish use them without fetching them again). A
// blob's provenance record (<state>/provenance) stays while the blob does or a kept image names it.
// The caller holds the state lock exclusively.
Result<GcReport> collectGarbage(const StateDir& state, const std::set<Digest>& keep, bool keep_all,
                                bool discard_unpacked_layers = false);

// A blob the content store holds, and the disk it takes.
struct StoredBlob {
  Digest digest;
  int64_t bytes = 0;
};

// The layer blobs of the images in `images` whose snapshots are made: what discard mode drops
// (a pull reuses the snapshot without them). Largest first. The caller holds the state lock
// exclusively.
Result<std::vector<StoredBlob>> unpackedLayerBlobs(const StateDir& state,
                                                   const std::set<Digest>& images);

// The blobs `images` need, by digest: each one's manifest, config and layers, except (with
// `snapshots_suffice`) the layer blobs whose snapshots are made.
std::set<Digest> blobsNeeded(const StateDir& state, const std::set<Digest>& images,
                             bool snapshots_suffice);

// The blobs among `blobs` that the store holds, and the disk each takes. Largest first.
Result<std::vector<StoredBlob>> storedBlobs(const StateDir& state, const std::set<Digest>& blobs);

// Removes one blob from the content store (never through a link); returns the disk it took.
Result<int64_t> removeBlob(const StateDir& state, const Digest& blob);

}  // namespace pullagent::puller
