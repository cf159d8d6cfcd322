#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/context.h"
#include "puller/reference/reference.h"
#include "puller/registry/manifest.h"
#include "puller/registry/registry_client.h"
#include "puller/store/content_store.h"

namespace pullagent::puller {

struct PullOptions {
  Platform platform{"linux", "amd64", "", ""};
  int concurrency = 4;  // blobs downloaded at once
};

struct PulledImage {
  Descriptor manifest;              // the platform's image manifest (digest, size, media type)
  std::optional<Descriptor> index;  // the index it was selected from, if any
  Descriptor config;
  std::vector<Descriptor> layers;
  std::vector<Digest> diff_ids;
  int64_t bytes_downloaded = 0;
  int blobs_downloaded = 0;
  int blobs_present = 0;
};

// Observer of a whole pull: the manifest is known, then the blob events.
class PullObserver : public BlobObserver {
 public:
  virtual void onManifest(const Descriptor& manifest, const std::vector<Descriptor>& layers) = 0;
  virtual void onBlobDone(const Descriptor& blob, bool was_present) = 0;
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
