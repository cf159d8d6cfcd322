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

}  // namespace pullagent::puller
