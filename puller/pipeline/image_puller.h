#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/context.h"
#include "puller/oci/manifest.h"
#include "puller/oci/pull_observer.h"
#include "puller/reference/reference.h"
#include "puller/registry/registry_client.h"
#include "puller/snapshot/snapshot_store.h"
#include "puller/store/content_store.h"

namespace pullagent::puller {

struct PullOptions {
  Platform platform{"linux", "amd64", "", ""};
  int concurrency = 4;  // blobs downloaded at once
};

// One image pull into a content store: manifest (through an index to the wanted platform),
// config, then the layers, `concurrency` at a time, each verified as it streams.
class ImagePuller {
 public:
  // With `snapshots`, a layer whose snapshot is made already (at every place the image has
  // it) is not fetched when its blob is missing from the store: the publisher will reuse the
  // snapshot and never read the blob (the blobs of unpacked layers may have been discarded).
  ImagePuller(RegistryClient& registry, ContentStore& store, PullObserver* observer,
              const SnapshotStore* snapshots = nullptr)
      : registry_(registry), store_(store), observer_(observer), snapshots_(snapshots) {}

  Result<PulledImage> pull(const ImageRef& ref, const PullOptions& options, const Context& ctx);

 private:
  Result<Descriptor> storeManifest(const FetchedManifest& fetched, const Context& ctx);
  Status fetchBlobs(const std::vector<Descriptor>& blobs, int concurrency, PulledImage& image,
                    const Context& ctx);
  // The layer blobs the image needs no bytes of: unpacked at every place it has them.
  std::set<Digest> unpackedLayers(const PulledImage& image) const;

  RegistryClient& registry_;
  ContentStore& store_;
  PullObserver* observer_;
  const SnapshotStore* snapshots_;
};

}  // namespace pullagent::puller
