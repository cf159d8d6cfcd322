#pragma once

#include <condition_variable>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <stop_token>
#include <thread>

#include "base/context.h"
#include "base/unique_fd.h"
#include "puller/oci/pull_observer.h"
#include "puller/snapshot/snapshot_store.h"
#include "puller/state/state_dir.h"
#include "puller/store/content_store.h"
#include "puller/store/provenance.h"
#include "puller/unpack/layer_applier.h"
#include "puller/unpack/runtime_spec.h"
#include "puller/unpack/staging.h"

namespace pullagent::puller {

enum class PublishForm {
  kRootfs,  // the target is the root filesystem itself
  kBundle,  // the target is an OCI runtime bundle: config.json, rootfs/, plus manifest.json and
            // image-config.json for reference; its top directory is 0700
};

// Layer snapshots of one image unpacked at once, at most (and at most one per core).
inline constexpr size_t kMaxParallelUnpacks = 4;

// Unpacks an image while it is being pulled and publishes it atomically at `target`. Plugged
// into the pull as an observer: once the config is known it starts a thread that applies layer
// i the moment its blob is verified, while later layers are still downloading. A failure at any
// point (pull or unpack) leaves whatever was at `target` before untouched; an unpack failure
// stops the pull through `stop_pull`. Publishers of the same target (two sites of one image, in
// this process or another) take turns through a lock file beside it, so neither removes the
// other's staging directory and the second reuses what the first published.
class ImagePublisher final : public PullObserver {
 public:
  // `target_for` names the target once the image is known (the state dir keys images by
  // their manifest digest).
  using TargetFor = std::function<std::filesystem::path(const PulledImage&)>;
  // With `reuse_existing`, a target that already exists with its kPublishedMarker is taken as
  // this image's published tree (targets named by the manifest digest are immutable) and
  // nothing is unpacked; the marker is written into every tree published so.
  // With `snapshots` (bundles only), each layer is unpacked into its own snapshot there, once
  // for every image that shares it, and the bundle's rootfs/ is left empty for the runtime to
  // mount as kRootfsMountsFile says; without, the root filesystem is one plain tree.
  // Every layer it unpacks has its diff_id recorded in `provenance` (see ensureLayerSnapshot).
  ImagePublisher(const ContentStore& store, ProvenanceStore& provenance, TargetFor target_for,
                 PublishForm form, ApplyOptions options, std::stop_source stop_pull,
                 bool reuse_existing = false, RuntimeOptions runtime = {},
                 const SnapshotStore* snapshots = nullptr);

  // The lock file publishers of `target` take turns through; a promotion of a bundle read in
  // place (LazyLayerHost) takes it too.
  static std::filesystem::path lockPath(const std::filesystem::path& target) {
    return target.parent_path() / ("." + target.filename().string() + ".lock");
  }
  // True when the image was already published and left as it was.
  bool reused() const { return reused_; }
  // Layer snapshots this publish found made already and those it unpacked.
  int snapshotsReused() const { return snapshots_reused_; }
  int snapshotsUnpacked() const { return snapshots_unpacked_; }
  // Of those unpacked, the ones made over an overlay of the layers below, after the layer
  // turned out to need them (the others were unpacked on their own, side by side).
  int snapshotsOverLower() const { return snapshots_over_lower_; }

  const std::filesystem::path& target() const { return target_; }
  ~ImagePublisher() override;

  void onImageResolved(const PulledImage& image) override;
  void onBlobDone(const Descriptor& blob, bool was_present) override;

  // Called once the pull returned: waits for the unpack, completes the bundle and publishes.
  // `pull_status` is the pull's own outcome; its failure abandons the staging directory.
  Status finish(const PulledImage* image, const Status& pull_status);

  // Whether the layers a published bundle reads in place (lazy pulling) are served: a bundle
  // whose are not is not reused, nor counted unchanged by a refresh (the daemon's). Asked of
  // each mount's server, unless `served_here` says this process serves it (its server threads
  // may all be waiting for the registry route the caller is about to lend).
  static bool inPlaceLayersPresent(
      const std::filesystem::path& bundle,
      const std::function<bool(const std::filesystem::path&)>& served_here = {});

 private:
  // Waits for the target's lock; false when the pull was stopped meanwhile.
  bool lockTarget();
  void run(PulledImage image);
  // Waits until layer `index`'s blob is verified; false when the pull was abandoned.
  bool waitForLayer(const PulledImage& image, size_t index);
  // Ends every wait for a layer (an unpack failed: the rest is not wanted).
  void stopUnpacking();
  Status unpackAll(const PulledImage& image);
  Status unpackSnapshots(const PulledImage& image);
  // The image's lower directories, top first: its layer snapshots, or where a layer is read
  // in place.
  std::vector<std::filesystem::path> lowerDirs(const PulledImage& image) const;
  // config.json, image-config.json and manifest.json beside rootfs/.
  Status completeBundle(const PulledImage& image);

  const ContentStore& store_;
  ProvenanceStore& provenance_;
  TargetFor target_for_;
  std::filesystem::path target_;
  PublishForm form_;
  ApplyOptions options_;
  std::stop_source stop_pull_;
  bool reuse_existing_;
  RuntimeOptions runtime_;
  const SnapshotStore* snapshots_;
  bool reused_ = false;
  int snapshots_reused_ = 0;
  int snapshots_unpacked_ = 0;
  int snapshots_over_lower_ = 0;
  UniqueFd target_lock_;

  std::mutex mutex_;
  std::condition_variable ready_changed_;
  std::set<Digest> ready_;
  bool abandoned_ = false;
  bool stop_unpacking_ = false;
  std::optional<Staging> staging_;
  std::optional<Error> error_;
  std::thread worker_;
};

}  // namespace pullagent::puller
