#pragma once

#include <vector>

#include "puller/oci/digest.h"

namespace pullagent::puller {

// The OCI ChainIDs of an image's layers (image-spec config.md, "Layer ChainID"):
//   ChainID(L0) = DiffID(L0)
//   ChainID(Ln) = SHA256(ChainID(Ln-1) + " " + DiffID(Ln))
// A snapshot is keyed by it, as containerd keys them: what a layer unpacks to depends on every
// layer below it (a hardlink to a lower file, a path through a lower symlink), so two images
// share a snapshot only when they share the whole chain beneath it.
std::vector<Digest> chainIds(const std::vector<Digest>& diff_ids);

}  // namespace pullagent::puller
