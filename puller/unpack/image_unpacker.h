#pragma once

#include <cstddef>

#include "puller/oci/manifest.h"
#include "puller/store/content_store.h"
#include "puller/unpack/layer_applier.h"

namespace pullagent::puller {

// Applies layer number `index` (a verified blob in `store`) onto `root` and checks that its
// decompressed stream hashes to `diff_id` from the image config.
Result<AppliedLayer> unpackLayer(const ContentStore& store, const Descriptor& layer,
                                 const Digest& diff_id, size_t index, const ConfinedRoot& root,
                                 const ApplyOptions& options);

// What layer `layer` (a verified blob in `store`) decompresses to, computed here: the stream
// hashed, nothing extracted. How a layer snapshot made from another blob is proven to be this
// layer's.
Result<Digest> layerDiffId(const ContentStore& store, const Descriptor& layer,
                           const LayerLimits& limits);

}  // namespace pullagent::puller
