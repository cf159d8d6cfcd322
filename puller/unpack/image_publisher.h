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
#include "puller/store/content_store.h"
#include "puller/unpack/layer_applier.h"
#include "puller/unpack/runtime_spec.h"
#include "puller/unpack/staging.h"

namespace pullagent::puller {

enum class PublishForm {
  kRootfs,  // the target is the root filesystem itself
  kBundle,  // the target is an OCI runtime bundle: config.json, rootfs/, plus manifest.json and
            // image-config.json for reference; its top directory is 0700
};

// Unpacks an image while it is being pulled and publishes it atomically at `target`. Plugged
// into the pull as an observer: once the config is known it starts a thread that applies layer
// i the moment its blob is verified, while later layers are still downloading. A failure at any
// point (pull or unpack) leaves whatever was at `target` before untouched; an unpack failure
// stops the pull through `stop_pull`. Publishers of the same target (two sites of one image, in
// this process or another) take turns through a lock file beside it, so neither removes the
// other's staging directory and the second reuses what the first published.
// The file inside a state-dir image (images/<digest>/) that says it is complete: written last,
// published by the same rename as the tree. gc and reuse go by it, never by the directory alone.
inline constexpr const char* kPublishedMarker = "pullagent-published";

class ImagePublisher final : public PullObserver {
 public:
  // `target_for` names the target once the image is known (the state dir keys images by
  // their manifest digest).
  using TargetFor = std::function<std::filesystem::path(const PulledImage&)>;
  // With `reuse_existing`, a target that already exists with its kPublishedMarker is taken as
  // this image's published tree (targets named by the manifest digest are immutable) and
  // nothing is unpacked; the marker is written into every tree published so.
  ImagePublisher(const ContentStore& store, TargetFor target_for, PublishForm form,
                 ApplyOptions options, std::stop_source stop_pull, bool reuse_existing = false,
                 RuntimeOptions runtime = {});

  // True when the image was already published and left as it was.
  bool reused() const { return reused_; }

  const std::filesystem::path& target() const { return target_; }
  ~ImagePublisher() override;

  void onImageResolved(const PulledImage& image) override;
  void onBlobDone(const Descriptor& blob, bool was_present) override;

  // Called once the pull returned: waits for the unpack, completes the bundle and publishes.
  // `pull_status` is the pull's own outcome; its failure abandons the staging directory.
  Status finish(const PulledImage* image, const Status& pull_status);

 private:
  // Waits for the target's lock; false when the pull was stopped meanwhile.
  bool lockTarget();
  void run(PulledImage image);
  Status unpackAll(const PulledImage& image);

  const ContentStore& store_;
  TargetFor target_for_;
  std::filesystem::path target_;
  PublishForm form_;
  ApplyOptions options_;
  std::stop_source stop_pull_;
  bool reuse_existing_;
  RuntimeOptions runtime_;
  bool reused_ = false;
  UniqueFd target_lock_;

  std::mutex mutex_;
  std::condition_variable ready_changed_;
  std::set<Digest> ready_;
  bool abandoned_ = false;
  std::optional<Staging> staging_;
  std::optional<Error> error_;
  std::thread worker_;
};

}  // namespace pullagent::puller
