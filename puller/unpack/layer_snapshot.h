#pragma once

#include <stop_token>
#include <vector>

#include "puller/oci/manifest.h"
#include "puller/snapshot/snapshot_store.h"
#include "puller/store/content_store.h"
#include "puller/store/provenance.h"
#include "puller/unpack/layer_applier.h"

namespace pullagent::puller {

struct LayerSnapshot {
  bool reused = false;   // it was there already (another image, site or pull made it)
  AppliedLayer applied;  // applied.needs_lower_layers: a standalone try that must be redone
};

enum class SnapshotMethod {
  // Over an overlay of the snapshots below (which must exist): always correct.
  kOverLowerLayers,
  // On its own (ApplyOptions::standalone_upper), so that it can run beside the layers below
  // it: no snapshot is made when the layer needs them (applied.needs_lower_layers set).
  kStandalone,
};

// Makes the snapshot of layer `index` of an image whose layer chain ids are `chain` (bottom
// first), unless it exists. The snapshots below it must exist. The layer is applied the way
// containerd's overlay snapshotter applies it: onto an overlay of the snapshots below, with the
// new snapshot as the upper directory, so everything that depends on lower layers (a hardlink
// to a lower file, a path through a lower symlink, a whiteout, an opaque directory, a parent
// directory's owner) is resolved by the kernel in the merged view, and the upper directory ends
// up in overlayfs's own form (whiteout devices, opaque xattrs). The snapshot is renamed into
// place only once the layer's diff_id is verified, and the blob's diff_id recorded in
// `provenance`. An existing snapshot is this layer's only through that record (made by any pull
// of a blob with this digest) or, without it, once the blob is decompressed here and hashes to
// `diff_id`: the config's diff_ids alone never select a snapshot.
// kOverLowerLayers from a thread that entered its own mount namespace
// (enterPrivateMountNamespace); the bottom layer and kStandalone mount nothing.
Result<LayerSnapshot> ensureLayerSnapshot(const SnapshotStore& snapshots, const ContentStore& store,
                                          ProvenanceStore& provenance,
                                          const std::vector<Digest>& chain, const Descriptor& layer,
                                          const Digest& diff_id, size_t index, ApplyOptions options,
                                          const std::stop_token& stop,
                                          SnapshotMethod method = SnapshotMethod::kOverLowerLayers);

}  // namespace pullagent::puller
