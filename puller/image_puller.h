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

// Observer of a whole pull: the manifest is known, then the config (diff_ids), then the blob
// events. Every method has a do-nothing default so observers override what they need.
class PullObserver : public BlobObserver {
 public:
  virtual void onManifest(const Descriptor& /*manifest*/,
                          const std::vector<Descriptor>& /*layers*/) {}
  // Manifest and config are verified; the layers are about to be fetched.
  virtual void onImageResolved(const PulledImage& /*image*/) {}
  // A blob is verified in the store (downloaded now, or already there).
  virtual void onBlobDone(const Descriptor& /*blob*/, bool /*was_present*/) {}
  void onBlobStart(const Descriptor& /*blob*/, int64_t /*offset*/) override {}
  void onBlobBytes(const Descriptor& /*blob*/, int64_t /*bytes*/) override {}
};

// Forwards every event to several observers, in order.
class ObserverList final : public PullObserver {
 public:
  explicit ObserverList(std::vector<PullObserver*> observers) : observers_(std::move(observers)) {}
  void onManifest(const Descriptor& manifest, const std::vector<Descriptor>& layers) override {
    for (auto* o : observers_)
      o->onManifest(manifest, layers);
  }
  void onImageResolved(const PulledImage& image) override {
    for (auto* o : observers_)
      o->onImageResolved(image);
  }
  void onBlobDone(const Descriptor& blob, bool was_present) override {
    for (auto* o : observers_)
      o->onBlobDone(blob, was_present);
  }
  void onBlobStart(const Descriptor& blob, int64_t offset) override {
    for (auto* o : observers_)
      o->onBlobStart(blob, offset);
  }
  void onBlobBytes(const Descriptor& blob, int64_t bytes) override {
    for (auto* o : observers_)
      o->onBlobBytes(blob, bytes);
  }

 private:
  std::vector<PullObserver*> observers_;
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
