#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "base/error.h"
#include "puller/oci/manifest.h"
#include "puller/snapshot/snapshot_store.h"
#include "puller/store/content_store.h"
#include "puller/store/provenance.h"

namespace pullagent::puller {

// What a pull will write, known from its manifest alone, before the first blob byte: the blobs
// the store does not hold, and the layers not unpacked yet (their compressed size; the caller
// turns it into disk with what it learned of unpacking).
struct PullDemand {
  Digest manifest;
  int64_t download_bytes = 0;       // config and layer blobs missing from the store
  int64_t unpack_source_bytes = 0;  // compressed size of the layers still to unpack
  size_t layers = 0;
  size_t layers_to_download = 0;
  size_t layers_to_unpack = 0;
};

// Asked once per image pull with its demand, before the config or any layer is fetched; an
// error ends the pull there (a refusal for space, or "wait until space is made").
using AdmissionCheck = std::function<Status(const PullDemand&)>;

// With `snapshots` (null: every layer is unpacked into a tree of the image's own), a layer
// counts as unpacked when its snapshot is made: its chain id is known from the diff_ids the
// agent recorded for it and every layer below (provenance), since the config is not fetched
// yet. A layer whose snapshot is made needs no download either.
PullDemand predictDemand(const Descriptor& manifest, const Descriptor& config,
                         const std::vector<Descriptor>& layers, const ContentStore& store,
                         const ProvenanceStore* provenance, const SnapshotStore* snapshots);

}  // namespace pullagent::puller
