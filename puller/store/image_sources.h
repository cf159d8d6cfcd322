#pragma once

#include <filesystem>
#include <set>

#include "puller/oci/digest.h"
#include "puller/oci/manifest.h"
#include "puller/store/provenance.h"

namespace pullagent::puller {

// The sources that justify an image the store holds: the (registry, repository) pairs every
// blob of it (its config and layers; through an index, those of the manifest `platform`
// selects, or without one, of each platform's manifest the store holds) is recorded for. Empty when
// nothing does: the image was published before sources were recorded, its records were lost, or its
// manifest is not in the store. A pull from a source not among them proves the image's blobs again
// before it may use the image.
std::set<BlobSource> imageSources(const std::filesystem::path& content_root,
                                  const ProvenanceStore& provenance, const Digest& manifest,
                                  const Platform* platform = nullptr);

}  // namespace pullagent::puller
