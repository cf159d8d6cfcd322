#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "puller/oci/digest.h"
#include "puller/oci/manifest.h"

// The events of a pull, in their own header so that every room can watch a pull (the registry
// client reports bytes, the publisher unpacks verified layers, the agent draws progress and
// keeps site state) without including the pipeline that emits them.
namespace pullagent::puller {

// What a blob download reports while it runs (progress bars, metrics, tests).
class BlobObserver {
 public:
  virtual ~BlobObserver() = default;
  // A transfer (re)starts at `offset` bytes already in the ingest file.
  virtual void onBlobStart(const Descriptor& blob, int64_t offset) = 0;
  virtual void onBlobBytes(const Descriptor& blob, int64_t bytes) = 0;
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
  // Layers not fetched at all: missing from the store, but unpacked into their snapshots
  // already (their blobs were discarded), so nothing needs their bytes.
  int blobs_not_needed = 0;
  // Layers served in place (lazy pulling, issue 28): not fetched by the pull; the directory
  // each is read from, as a lower layer.
  std::map<Digest, std::string> in_place;
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
  // The downloads are over (done, failed or stopped); unpacking and publishing may go on.
  virtual void onPullDone() {}
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
  void onPullDone() override {
    for (auto* o : observers_)
      o->onPullDone();
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

}  // namespace pullagent::puller
