#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/context.h"
#include "puller/oci/manifest.h"
#include "puller/oci/pull_observer.h"
#include "puller/reference/reference.h"
#include "puller/registry/registry_client.h"
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
  ImagePuller(RegistryClient& registry, ContentStore& store, PullObserver* observer)
      : registry_(registry), store_(store), observer_(observer) {}

  Result<PulledImage> pull(const ImageRef& ref, const PullOptions& options, const Context& ctx);

 private:
  Result<Descriptor> storeManifest(const FetchedManifest& fetched, const Context& ctx);
  Status fetchBlobs(const std::vector<Descriptor>& blobs, int concurrency, PulledImage& image,
                    const Context& ctx);

  RegistryClient& registry_;
  ContentStore& store_;
  PullObserver* observer_;
};

}  // namespace pullagent::puller
