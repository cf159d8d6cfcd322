#include "puller/unpack/image_publisher.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <thread>

#include "base/atomic_file.h"
#include "base/bounded_read.h"
#include "puller/snapshot/chain_id.h"
#include "puller/snapshot/overlay_mount.h"
#include "puller/unpack/image_unpacker.h"
#include "puller/unpack/layer_snapshot.h"
#include "puller/unpack/runtime_spec.h"

namespace pullagent::puller {

ImagePublisher::ImagePublisher(const ContentStore& store, ProvenanceStore& provenance,
                               TargetFor target_for, PublishForm form, ApplyOptions options,
                               std::stop_source stop_pull, bool reuse_existing,
                               RuntimeOptions runtime, const SnapshotStore* snapshots)
    : store_(store),
      provenance_(provenance),
      target_for_(std::move(target_for)),
      form_(form),
      options_(options),
      stop_pull_(std::move(stop_pull)),
      reuse_existing_(reuse_existing),
      runtime_(std::move(runtime)),
      snapshots_(form == PublishForm::kBundle ? snapshots : nullptr) {}

ImagePublisher::~ImagePublisher() {
  {
    std::lock_guard lock(mutex_);
    abandoned_ = true;
  }
  ready_changed_.notify_all();
  if (worker_.joinable())
    worker_.join();
}

bool ImagePublisher::lockTarget() {
  const auto path = lockPath(target_);
  std::error_code ec;
  std::filesystem::create_directories(target_.parent_path(), ec);  // open() reports a failure
  target_lock_ = UniqueFd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!target_lock_.valid()) {
    std::lock_guard lock(mutex_);
    error_ = errnoError(errno, "open", path);
    stop_pull_.request_stop();
    return false;
  }
  // Polled rather than blocking so that a stop request (SIGTERM, a removed site) is seen; the
  // holder is unpacking a whole image, so a tenth of a second is no delay worth a clock.
  while (::flock(target_lock_.get(), LOCK_EX | LOCK_NB) != 0) {
    if ((errno != EWOULDBLOCK && errno != EINTR) || stop_pull_.stop_requested()) {
      std::lock_guard lock(mutex_);
      error_ = stop_pull_.stop_requested() ? makeError(ErrorCode::kCancelled, "stop requested")
                                           : errnoError(errno, "lock", path);
      stop_pull_.request_stop();
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return true;
}

bool ImagePublisher::inPlaceLayersPresent(
    const std::filesystem::path& bundle,
    const std::function<bool(const std::filesystem::path&)>& served_here) {
  auto text = readRegularFile(bundle / kRootfsMountsFile, size_t{1} << 20);
  if (!text)
    return true;  // a plain tree, or snapshots only
  const auto description = nlohmann::json::parse(*text, nullptr, false);
  if (!description.is_object() || !description.contains("layers") ||
      !description["layers"].is_array())
    return false;
  for (const auto& layer : description["layers"]) {
    // The file is the agent's own, but a damaged one must not throw (value() does on a type
    // it does not expect).
    const bool in_place = layer.is_object() && layer.contains("inPlace") &&
                          layer["inPlace"].is_boolean() && layer["inPlace"].get<bool>();
    if (!in_place)
      continue;
    // A layer read in place is a directory inside its FUSE mount: missing once the process
    // that served it is gone (a restart), and the bundle is published again. A mount whose
    // connection ended still answers stat from the kernel's cache of its attributes (they are
    // valid for good); statfs asks its server.
    const auto path = layer.contains("path") && layer["path"].is_string()
                          ? layer["path"].get<std::string>()
                          : std::string();
    if (!path.empty() && served_here && served_here(path))
      continue;
    struct stat info {};
    struct statfs served {};
    if (path.empty() || ::stat(path.c_str(), &info) != 0 || !S_ISDIR(info.st_mode) ||
        ::statfs(path.c_str(), &served) != 0) {
      spdlog::info("{}: its layer read in place at {} is not served: published again",
                   bundle.string(), path);
      return false;
    }
  }
  return true;
}

void ImagePublisher::onImageResolved(const PulledImage& image) {
  target_ = target_for_(image);
  if (!lockTarget())
    return;
  removeStaleStaging(target_);
  // Only a tree with its completion marker is a published image: a directory left by an
  // interrupted removal (or anything else at that name) is replaced, never reused.
  if (reuse_existing_ && std::filesystem::exists(target_ / kPublishedMarker) &&
      inPlaceLayersPresent(target_)) {
    reused_ = true;
    return;
  }
  // 0700 in every form: the tree holds the image's setuid-root binaries, which no local user
  // may reach through it (CVE-2021-41091); the runtime, as root, is not held back.
  auto staging = Staging::create(target_, 0700);
  std::lock_guard lock(mutex_);
  if (!staging) {
    error_ = staging.error();
    stop_pull_.request_stop();
    return;
  }
  staging_.emplace(std::move(staging.value()));
  worker_ = std::thread([this, image] { run(image); });
}

void ImagePublisher::onBlobDone(const Descriptor& blob, bool) {
  {
    std::lock_guard lock(mutex_);
    ready_.insert(blob.digest);
  }
  ready_changed_.notify_all();
}

void ImagePublisher::run(PulledImage image) {
  auto work = [&]() -> Status {
    if (snapshots_ == nullptr) {
      RETURN_IF_ERROR(unpackAll(image));
    } else {
      // This thread's overlay mounts are its own, and go with it whatever happens.
      RETURN_IF_ERROR(enterPrivateMountNamespace());
      RETURN_IF_ERROR(unpackSnapshots(image));
    }
    return form_ == PublishForm::kBundle ? completeBundle(image) : Status{};
  };
  Status status = work();
  if (!status) {
    std::lock_guard lock(mutex_);
    if (!error_ && status.error().code != ErrorCode::kCancelled)
      error_ = status.error();
    stop_pull_.request_stop();  // no point downloading the rest
  }
}

Status ImagePublisher::unpackAll(const PulledImage& image) {
  std::filesystem::path rootfs = staging_->dir();
  if (form_ == PublishForm::kBundle) {
    rootfs /= "rootfs";
    if (::mkdir(rootfs.c_str(), 0755) != 0)
      return errnoError(errno, "create", rootfs);
  }
  ASSIGN_OR_RETURN(auto root, ConfinedRoot::open(rootfs));
  for (size_t i = 0; i < image.layers.size(); ++i) {
    if (!waitForLayer(image, i))
      return makeError(ErrorCode::kCancelled, "pull abandoned");
    if (auto applied = unpackLayer(store_, image.layers[i], image.diff_ids[i], i, root, options_);
        !applied) {
      return applied.error();
    }
    RETURN_IF_ERROR(provenance_.recordDiffId(image.layers[i].digest, image.diff_ids[i]));
  }
  return {};
}

bool ImagePublisher::waitForLayer(const PulledImage& image, size_t index) {
  std::unique_lock lock(mutex_);
  ready_changed_.wait(lock, [&] {
    return abandoned_ || stop_unpacking_ || ready_.count(image.layers[index].digest) != 0;
  });
  return !abandoned_ && !stop_unpacking_;
}

void ImagePublisher::stopUnpacking() {
  {
    std::lock_guard lock(mutex_);
    stop_unpacking_ = true;
  }
  ready_changed_.notify_all();
}

Status ImagePublisher::unpackSnapshots(const PulledImage& image) {
  const auto chain = chainIds(image.diff_ids);
  const size_t count = image.layers.size();
  // Layers unpack side by side, each into its own snapshot the moment its blob is verified:
  // on their own (standalone), which most layers can be. A layer that needs the ones below it
  // (a parent directory or hardlink target it does not hold itself) is then made here, in
  // order, over an overlay of them.
  std::vector<std::optional<Result<LayerSnapshot>>> attempts(count);
  std::mutex attempts_mutex;
  std::condition_variable attempt_done;
  std::atomic<size_t> next{0};
  auto attempt = [&] {
    for (size_t i = next++; i < count; i = next++) {
      Result<LayerSnapshot> made = makeError(ErrorCode::kCancelled, "pull abandoned");
      if (image.in_place.count(image.layers[i].digest) != 0) {
        made = LayerSnapshot{};  // read in place: nothing to unpack
      } else if (waitForLayer(image, i)) {
        made = ensureLayerSnapshot(*snapshots_, store_, provenance_, chain, image.layers[i],
                                   image.diff_ids[i], i, options_, stop_pull_.get_token(),
                                   SnapshotMethod::kStandalone);
      }
      {
        std::lock_guard lock(attempts_mutex);
        attempts[i] = std::move(made);
      }
      attempt_done.notify_all();
    }
  };
  const size_t parallel =
      std::clamp<size_t>(std::thread::hardware_concurrency(), 1, kMaxParallelUnpacks);
  std::vector<std::jthread> workers;
  for (size_t w = 0; w < std::min(parallel, count); ++w)
    workers.emplace_back(attempt);
  // Whatever happens below, the workers stop taking layers and are joined before returning.
  struct StopWorkers {
    ImagePublisher* self;
    std::atomic<size_t>& next;
    size_t count;
    std::vector<std::jthread>& workers;
    ~StopWorkers() {
      next = count;
      self->stopUnpacking();
      workers.clear();
    }
  } stop_workers{this, next, count, workers};

  nlohmann::json layers = nlohmann::json::array();
  for (size_t i = 0; i < count; ++i) {
    Result<LayerSnapshot> made = makeError(ErrorCode::kInternal, "unset");
    {
      std::unique_lock lock(attempts_mutex);
      attempt_done.wait(lock, [&] { return attempts[i].has_value(); });
      made = std::move(*attempts[i]);
    }
    if (!made)
      return made.error();
    if (auto in_place = image.in_place.find(image.layers[i].digest);
        in_place != image.in_place.end()) {
      layers.push_back({{"diffId", image.diff_ids[i].str()},
                        {"chainId", chain[i].str()},
                        {"path", in_place->second},
                        {"inPlace", true}});
      continue;
    }
    if (made->applied.needs_lower_layers) {
      ASSIGN_OR_RETURN(made,
                       ensureLayerSnapshot(*snapshots_, store_, provenance_, chain, image.layers[i],
                                           image.diff_ids[i], i, options_, stop_pull_.get_token()));
      if (!made->reused)
        ++snapshots_over_lower_;
    }
    ++(made->reused ? snapshots_reused_ : snapshots_unpacked_);
    layers.push_back({{"diffId", image.diff_ids[i].str()},
                      {"chainId", chain[i].str()},
                      {"path", snapshots_->layerDir(chain[i]).string()}});
  }
  const auto lowers = lowerDirs(image);
  spdlog::info("{} layer snapshots reused, {} unpacked ({} of them over the layers below)",
               snapshots_reused_, snapshots_unpacked_, snapshots_over_lower_);
  const auto rootfs = staging_->dir() / "rootfs";
  if (::mkdir(rootfs.c_str(), 0755) != 0)
    return errnoError(errno, "create", rootfs);
  nlohmann::json mounts = nlohmann::json::array();
  if (!lowers.empty()) {
    ASSIGN_OR_RETURN(auto view, readOnlyView(lowers));
    mounts.push_back(view.toJson());
  }
  const nlohmann::json description = {{"layers", layers}, {"mounts", mounts}};
  return writeFileAtomic(staging_->dir() / kRootfsMountsFile, description.dump(2) + "\n");
}

std::vector<std::filesystem::path> ImagePublisher::lowerDirs(const PulledImage& image) const {
  const auto chain = chainIds(image.diff_ids);
  auto lowers = snapshots_->lowerDirs(chain, chain.size());  // top first
  for (size_t i = 0; i < image.layers.size() && i < lowers.size(); ++i) {
    if (auto in_place = image.in_place.find(image.layers[i].digest);
        in_place != image.in_place.end())
      lowers[lowers.size() - 1 - i] = in_place->second;
  }
  return lowers;
}

Status ImagePublisher::completeBundle(const PulledImage& image) {
  ASSIGN_OR_RETURN(auto config, store_.readBlob(image.config.digest, kMaxConfigSize));
  ASSIGN_OR_RETURN(auto manifest, store_.readBlob(image.manifest.digest, kMaxManifestSize));
  const auto rootfs = staging_->dir() / "rootfs";
  std::string spec;
  {
    // The runtime spec looks users up in the image's /etc/passwd: over snapshots, through a
    // read-only view mounted for the moment (in this thread's own mount namespace).
    std::optional<ScopedMount> view;
    if (snapshots_ != nullptr && !image.layers.empty()) {
      ASSIGN_OR_RETURN(auto mount, readOnlyView(lowerDirs(image)));
      RETURN_IF_ERROR(mountSpec(mount, rootfs));
      view.emplace(rootfs);
    }
    ASSIGN_OR_RETURN(auto root, ConfinedRoot::open(rootfs));
    ASSIGN_OR_RETURN(spec, makeRuntimeSpec(config, root, runtime_));
  }
  for (auto [name, content] :
       {std::pair{"config.json", &spec}, std::pair{kPublishedConfigFile, &config},
        std::pair{"manifest.json", &manifest}}) {
    RETURN_IF_ERROR(writeFileAtomic(staging_->dir() / name, *content));
  }
  return {};
}

Status ImagePublisher::finish(const PulledImage* image, const Status& pull_status) {
  if (!pull_status || image == nullptr) {
    std::lock_guard lock(mutex_);
    abandoned_ = true;
  }
  ready_changed_.notify_all();
  if (worker_.joinable())
    worker_.join();
  if (error_)
    return *error_;  // the unpack's own failure explains a pull it cancelled
  if (!pull_status)
    return pull_status;
  if (reused_)
    return {};
  if (!staging_)
    return makeError(ErrorCode::kInternal, "image was never resolved");

  if (reuse_existing_ || form_ == PublishForm::kBundle) {
    // Written last, inside the staging tree: the rename publishes tree and marker together.
    RETURN_IF_ERROR(writeFileAtomic(staging_->dir() / kPublishedMarker, "complete\n"));
  }
  return staging_->publish();
}

}  // namespace pullagent::puller
