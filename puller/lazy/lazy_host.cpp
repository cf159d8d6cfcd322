#include "puller/lazy/lazy_host.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <algorithm>

#include <nlohmann/json.hpp>

#include "base/atomic_file.h"
#include "base/bounded_read.h"
#include "base/unique_fd.h"
#include "puller/oci/sha256.h"
#include "puller/snapshot/chain_id.h"
#include "puller/snapshot/overlay_mount.h"
#include "puller/state/state_lock.h"
#include "puller/unpack/image_publisher.h"
#include "puller/unpack/layer_snapshot.h"

namespace pullagent::puller {
namespace fs = std::filesystem;
namespace {

// The FUSE mount's subdirectory that is the layer (LazyMount::Options::subdir).
constexpr const char* kLayerSubdir = "layer";
// Fills of a layer, and promotions of a bundle, tried at most this many times.
constexpr int kMaxTries = 5;
// Under lazy/: the bundles to promote (lazy_records.h). The other entries are sources.
constexpr const char* kBundlesDir = "bundles";

}  // namespace

// The route of a layer adopted from an earlier process: none until a pull of its source lends
// one. Its reads wait for it meanwhile (within their timeout); the fill does not start.
struct LazyLayerHost::PendingRoute {
  std::mutex mutex;
  std::condition_variable lent;
  estargz::RangeFetch fetch;

  static estargz::RangeFetch waitingFetch(std::shared_ptr<PendingRoute> pending) {
    return [pending](int64_t first, int64_t last, const Context& ctx) -> Result<std::string> {
      estargz::RangeFetch route;
      {
        std::unique_lock lock(pending->mutex);
        while (!pending->fetch) {
          if (Status alive = ctx.check(); !alive) {
            return makeError(ErrorCode::kUnavailable,
                             "served on from an earlier process, and no pull of its source has "
                             "lent a registry route yet (" +
                                 alive.error().message + ")");
          }
          pending->lent.wait_for(lock, std::chrono::milliseconds(50));
        }
        route = pending->fetch;
      }
      return route(first, last, ctx);
    };
  }
};

struct LazyLayerHost::Served {
  BlobSource source;
  Descriptor layer;
  std::shared_ptr<const void> keep;       // what `lazy`'s fetch needs: destroyed last
  std::shared_ptr<PendingRoute> pending;  // adopted: its route until a pull lends one
  std::unique_ptr<estargz::LazyLayer> lazy;
  std::unique_ptr<estargz::LazyMount> mount;  // destroyed first (members in reverse order)
  int pulls = 0;  // pulls that served it and have not finished (LazyBundle::served)
  bool stored = false;
  int failures = 0;  // fills that failed; kMaxTries of them end the tries
  bool retiring = false;
  bool routed = true;  // false: adopted, and no pull lent it a route yet (no fill)
  std::chrono::steady_clock::time_point next_try{};
};

// Ends a layer's turn in busy_ however the holder leaves.
struct LazyLayerHost::Busy {
  LazyLayerHost& host;
  Key key;
  ~Busy() {
    {
      std::lock_guard lock(host.mutex_);
      host.busy_.erase(key);
    }
    host.changed_.notify_all();
  }
};

LazyLayerHost::LazyLayerHost(StateDir state, ContentStore& store, ProvenanceStore& provenance,
                             const SnapshotStore& snapshots, Options options)
    : state_(std::move(state)),
      store_(store),
      provenance_(provenance),
      snapshots_(snapshots),
      options_(std::move(options)) {
  adoptLeftovers();
  worker_ = std::thread([this] { work(); });
}

std::string LazyLayerHost::keeperName(const BlobSource& source, const Digest& digest) {
  return "lazy-" + Sha256::of(source.str()).hex() + "-" + digest.hex();
}

fs::path LazyLayerHost::bundlesDir() const {
  return state_.lazy() / kBundlesDir;
}

void LazyLayerHost::adoptLeftovers() {
  // What a process that served layers before this one left (a restart, a kill): a mount whose
  // /dev/fuse file the keeper gave back is served on. Any other is dead (every access ENOTCONN)
  // and its cache serves no image any more (a bundle over it is not reused: it is published
  // again). A cache a live process holds (its lock) stays.
  std::error_code error;
  for (const auto& source : fs::directory_iterator(state_.lazy(), error)) {
    if (source.path().filename() == kBundlesDir)
      continue;
    std::error_code ignored;
    for (const auto& layer : fs::directory_iterator(source.path(), ignored)) {
      const fs::path dir = layer.path();
      const std::string name =
          "lazy-" + source.path().filename().string() + "-" + dir.filename().string();
      if (auto kept = options_.kept_fds.extract(name); !kept.empty()) {
        auto adopted = adopt(dir, std::move(kept.mapped()));
        if (adopted)
          continue;
        spdlog::warn("lazy layer {} left by an earlier process could not be served on: {}",
                     dir.string(), adopted.error().describe());
        if (options_.drop_fd)
          options_.drop_fd(name);
      }
      const UniqueFd lock(::open((dir / "cache/lock").c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC));
      if (lock.valid() && ::flock(lock.get(), LOCK_EX | LOCK_NB) != 0)
        continue;
      const fs::path mountpoint = dir / "mnt";
      (void)::umount2(mountpoint.c_str(), MNT_DETACH);
      // Never removed through a mount: only once the mountpoint is a directory of the state
      // dir's own filesystem again.
      struct stat at {};
      struct stat parent {};
      if (::lstat(mountpoint.c_str(), &at) == 0 &&
          (::lstat(dir.c_str(), &parent) != 0 || at.st_dev != parent.st_dev)) {
        spdlog::warn("{}: still mounted, left in place", mountpoint.string());
        continue;
      }
      spdlog::info("lazy layer {} left by an earlier process: removed", dir.string());
      fs::remove_all(dir, ignored);
    }
    fs::remove(source.path(), ignored);  // once empty
  }
  // Files the keeper holds for layers that are gone (their state removed).
  for (auto& [name, device] : options_.kept_fds) {
    spdlog::warn("a FUSE mount kept as {} has no layer in {}: let go", name,
                 state_.lazy().string());
    if (options_.drop_fd)
      options_.drop_fd(name);
  }
  options_.kept_fds.clear();
  // A bundle is promoted as before when every layer it was served was adopted. The others'
  // mounts are gone: the next pull of their image publishes it again (ImagePublisher checks
  // the layers read in place).
  for (auto& bundle : readBundleRecords(bundlesDir())) {
    const std::string name = bundle.dir.filename().string();
    if (bundle.dir.parent_path() != state_.images() || name.empty() || name == "." ||
        name == "..") {
      spdlog::warn("{}: a bundle record naming a directory outside {}: dropped",
                   bundle.dir.string(), state_.images().string());
      removeBundleRecord(bundlesDir(), bundle.dir);
      continue;
    }
    const bool adopted = std::all_of(bundle.served.begin(), bundle.served.end(), [&](auto& digest) {
      return served_.count(Key{bundle.source, digest}) != 0;
    });
    if (!adopted) {
      removeBundleRecord(bundlesDir(), bundle.dir);
      continue;
    }
    spdlog::info("{}: its promotion goes on from an earlier process", bundle.dir.string());
    bundles_.push_back(std::move(bundle));
  }
}

Status LazyLayerHost::adopt(const fs::path& dir, UniqueFd device) {
  ASSIGN_OR_RETURN(auto record, readLayerRecord(dir));
  if (layerDir(record.source, record.layer.digest) != dir)
    return makeError(ErrorCode::kInternal, "its record names another layer");
  if (record.format != LazyLayerRecord::kFormat ||
      record.libfuse != estargz::LazyMount::libfuseVersion()) {
    return makeError(ErrorCode::kUnsupported, "it was served by another version (record format " +
                                                  std::to_string(record.format) + ", libfuse " +
                                                  std::to_string(record.libfuse) +
                                                  "): its node ids may differ");
  }
  auto served = std::make_unique<Served>();
  served->source = record.source;
  served->layer = record.layer;
  served->pending = std::make_shared<PendingRoute>();
  served->routed = false;
  // The TOC comes from the cache (verified again); a cache without it cannot wait for a route.
  const Context ctx{&clock_, stop_.get_token(), clock_.now() + std::chrono::seconds(1)};
  ASSIGN_OR_RETURN(served->lazy, estargz::LazyLayer::open(
                                     record.layer, PendingRoute::waitingFetch(served->pending),
                                     dir / "cache", ctx));
  served->lazy->setReaderWindow(options_.reader_window_min, options_.reader_window_max);
  estargz::LazyMount::Options mount_options;
  mount_options.name = record.source.str() + " layer " + record.layer.digest.str();
  mount_options.read_timeout = options_.read_timeout;
  mount_options.subdir = kLayerSubdir;
  ASSIGN_OR_RETURN(served->mount,
                   estargz::LazyMount::adopt(*served->lazy, dir / "mnt", mount_options,
                                             {std::move(device), record.init, record.connection}));
  spdlog::info(
      "{}: served on from an earlier process ({} of {} bytes held; the rest once a pull of its "
      "source lends a route)",
      mount_options.name, served->lazy->bytesHeld(), record.layer.size);
  served_.emplace(Key{record.source, record.layer.digest}, std::move(served));
  return {};
}

bool LazyLayerHost::adoptedFrom(const BlobSource& source, bool unrouted_only) const {
  std::lock_guard lock(mutex_);
  return std::any_of(served_.begin(), served_.end(), [&](const auto& entry) {
    return entry.first.first == source && entry.second->pending != nullptr &&
           !(unrouted_only && entry.second->routed);
  });
}

bool LazyLayerHost::wantsRoute(const BlobSource& source) const {
  return adoptedFrom(source, false);
}

bool LazyLayerHost::awaitsRoute(const BlobSource& source) const {
  return adoptedFrom(source, true);
}

bool LazyLayerHost::serves(const BlobSource& source, const Digest& layer) const {
  std::lock_guard lock(mutex_);
  auto found = served_.find(Key{source, layer});
  return found != served_.end() && !found->second->retiring;
}

bool LazyLayerHost::serves(const fs::path& layer_root) const {
  std::lock_guard lock(mutex_);
  return std::any_of(served_.begin(), served_.end(), [&](const auto& entry) {
    return !entry.second->retiring && entry.second->mount->layerRoot() == layer_root;
  });
}

void LazyLayerHost::lend(const BlobSource& source, const FetchFor& fetch_for,
                         std::shared_ptr<const void> keep) {
  std::lock_guard lock(mutex_);
  bool lent = false;
  for (auto& [key, served] : served_) {
    if (key.first != source || served->pending == nullptr)
      continue;
    auto fetch = fetch_for(served->layer);
    served->lazy->setFetch(fetch);
    {
      std::lock_guard pending_lock(served->pending->mutex);
      served->pending->fetch = std::move(fetch);
    }
    served->pending->lent.notify_all();
    served->keep = keep;
    // A fill that failed through an earlier route is tried again at once through this one.
    served->failures = 0;
    served->next_try = {};
    if (!std::exchange(served->routed, true)) {
      spdlog::info("{} layer {}: a pull of its source lent it a registry route", source.str(),
                   key.second.str());
    }
    lent = true;
  }
  if (lent)
    changed_.notify_all();
}

LazyLayerHost::~LazyLayerHost() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  stop_.request_stop();
  changed_.notify_all();
  if (worker_.joinable())
    worker_.join();
  std::lock_guard lock(mutex_);
  if (options_.keep_fd) {
    // The keeper holds every mount's /dev/fuse file: the mounts stay for the next process,
    // and what arrives meanwhile waits for it. A stop for good ends them when the keeper lets
    // go (systemd empties the store when the unit stops).
    for (auto& [key, served] : served_)
      served->mount->beginRelease();
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    for (auto& [key, served] : served_)
      served->mount->release(give_up);
    served_.clear();
    return;
  }
  // Every mount begins to end at once, and what still holds one (a container's overlay) gets
  // two seconds in all, not two per layer: a service stop stays within its timeout.
  for (auto& [key, served] : served_)
    served->mount->beginUnmount();
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  for (auto& [key, served] : served_) {
    while (!served->mount->ended() && std::chrono::steady_clock::now() < give_up)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    served->mount->setUnmountWait(std::chrono::milliseconds(0));
  }
  served_.clear();  // unmounted, connections still held aborted
}

fs::path LazyLayerHost::layerDir(const BlobSource& source, const Digest& digest) const {
  return state_.lazy() / Sha256::of(source.str()).hex() / digest.hex();
}

Result<fs::path> LazyLayerHost::serve(const BlobSource& source, const Descriptor& layer,
                                      estargz::RangeFetch fetch, std::shared_ptr<const void> keep,
                                      const Context& ctx) {
  const Key key{source, layer.digest};
  {
    // One serve (or removal) of a layer at a time: two would both open its cache. Other
    // layers' serves go on meanwhile, so a slow registry holds up its own layers only.
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return busy_.count(key) == 0; });
    if (auto found = served_.find(key); found != served_.end()) {
      if (found->second->retiring) {
        return makeError(ErrorCode::kUnavailable,
                         "eStargz layer " + layer.digest.str() + " is being retired");
      }
      // The newest pull's fetch serves from now on: its credentials and route are the
      // site's current ones (an older pull's may be revoked, or its site gone). A layer given
      // up on is tried again.
      Served& served = *found->second;
      served.lazy->setFetch(fetch);
      if (served.pending) {
        {
          std::lock_guard pending_lock(served.pending->mutex);
          served.pending->fetch = std::move(fetch);
        }
        served.pending->lent.notify_all();
      }
      served.routed = true;
      served.keep = std::move(keep);
      served.failures = 0;
      served.next_try = {};
      ++served.pulls;
      return served.mount->layerRoot();
    }
    busy_.insert(key);
  }
  const Busy busy{*this, key};
  auto served = std::make_unique<Served>();
  served->source = source;
  served->layer = layer;
  served->keep = std::move(keep);
  const fs::path dir = layerDir(source, layer.digest);
  ASSIGN_OR_RETURN(served->lazy,
                   estargz::LazyLayer::open(layer, std::move(fetch), dir / "cache", ctx));
  served->lazy->setReaderWindow(options_.reader_window_min, options_.reader_window_max);
  RETURN_IF_ERROR(served->lazy->prefetch(ctx));
  const fs::path mountpoint = dir / "mnt";
  // A mount a killed process left (its connection gone: every access ENOTCONN). The cache's
  // lock, taken by the open above, says no live process serves this layer.
  (void)::umount2(mountpoint.c_str(), MNT_DETACH);
  if (::mkdir(mountpoint.c_str(), 0700) != 0 && errno != EEXIST)
    return errnoError(errno, "create", mountpoint);
  estargz::LazyMount::Options mount_options;
  mount_options.name = source.str() + " layer " + layer.digest.str();
  mount_options.read_timeout = options_.read_timeout;
  mount_options.subdir = kLayerSubdir;
  ASSIGN_OR_RETURN(served->mount,
                   estargz::LazyMount::mount(*served->lazy, mountpoint, mount_options));
  served->pulls = 1;
  // What the next process needs to serve the mount on; then the keeper holds the mount.
  if (options_.keep_fd) {
    LazyLayerRecord record;
    record.libfuse = estargz::LazyMount::libfuseVersion();
    record.source = source;
    record.layer = layer;
    record.init = served->mount->initRequest();
    record.connection = served->mount->connection();
    RETURN_IF_ERROR(writeLayerRecord(dir, record));
    options_.keep_fd(keeperName(source, layer.digest), served->mount->deviceFd());
  }
  fs::path root = served->mount->layerRoot();
  spdlog::info("{}: served in place at {} ({} of {} bytes held)", mount_options.name, root.string(),
               served->lazy->bytesHeld(), layer.size);
  {
    std::lock_guard lock(mutex_);
    served_.emplace(key, std::move(served));
  }
  changed_.notify_all();
  return root;
}

void LazyLayerHost::finishPull(LazyBundle bundle, bool published) {
  {
    std::lock_guard lock(mutex_);
    for (const auto& digest : bundle.served) {
      if (auto found = served_.find(Key{bundle.source, digest}); found != served_.end())
        found->second->pulls = std::max(0, found->second->pulls - 1);
    }
    if (published) {
      if (options_.keep_fd) {
        if (Status kept = writeBundleRecord(bundlesDir(), bundle); !kept)
          spdlog::warn("{}: not recorded for a restart: {}", bundle.dir.string(),
                       kept.error().describe());
      }
      bundles_.push_back(std::move(bundle));
    }
  }
  changed_.notify_all();
}

std::vector<LazyLayerHost::LayerStatus> LazyLayerHost::layers() const {
  std::lock_guard lock(mutex_);
  std::vector<LayerStatus> out;
  for (const auto& [key, served] : served_) {
    LayerStatus status;
    status.source = key.first;
    status.digest = key.second;
    status.size = served->layer.size;
    status.held = served->lazy->bytesHeld();
    status.stored = served->stored;
    status.stats = served->lazy->stats();
    status.reads = served->mount->stats();
    out.push_back(std::move(status));
  }
  return out;
}

void LazyLayerHost::Totals::addReads(const estargz::LazyMount::Stats& mount) {
  reads += mount.reads;
  read_errors += mount.read_errors;
  for (size_t i = 0; i < read_seconds.size(); ++i)
    read_seconds[i] += mount.read_seconds[i];
  read_seconds_sum += mount.read_seconds_sum;
  files_pushed += mount.pushed.files;
}

LazyLayerHost::Totals LazyLayerHost::totals() const {
  std::lock_guard lock(mutex_);
  Totals totals = retired_;
  for (const auto& [key, served] : served_) {
    const auto stats = served->lazy->stats();
    const auto reads = served->mount->stats();
    ++totals.layers;
    totals.bytes += served->layer.size;
    totals.bytes_held += served->lazy->bytesHeld();
    totals.bytes_on_demand += stats.bytes_fetched - stats.bytes_filled;
    totals.bytes_filled += stats.bytes_filled;
    totals.addReads(reads);
  }
  return totals;
}

size_t LazyLayerHost::pendingBundles() const {
  std::lock_guard lock(mutex_);
  return bundles_.size() + promoting_;
}

Status LazyLayerHost::settle(const Context& ctx) {
  while (pendingBundles() > 0) {
    RETURN_IF_ERROR(ctx.check());
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return {};
}

void LazyLayerHost::work() {
  // This thread stays in the host's mount namespace: retiring a layer unmounts it there.
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    lock.unlock();
    const bool busy = round();
    lock.lock();
    if (!busy)
      changed_.wait_for(lock, std::chrono::milliseconds(500));
  }
}

bool LazyLayerHost::fillableLocked(const Served& served,
                                   std::chrono::steady_clock::time_point now) const {
  return !served.stored && !served.retiring && served.routed && served.failures < kMaxTries &&
         served.next_try <= now && usedLocked(served);
}

bool LazyLayerHost::readsQuietLocked(std::chrono::steady_clock::time_point now) const {
  auto latest = std::chrono::steady_clock::time_point{};
  for (const auto& [key, served] : served_)
    latest = std::max(latest, served->lazy->lastRead());
  return latest + options_.reader_quiet <= now;
}

bool LazyLayerHost::round() {
  const auto now = std::chrono::steady_clock::now();
  // While a container reads, the first layer whose copy is not complete is filled, and a
  // complete copy is stored only once every copy is: storing waits for reads to be quiet, and
  // the layers after it would wait with it instead of being fetched before a reader needs them.
  // When reads are quiet, complete copies are stored first (no wait, and their bundles promoted
  // without waiting for the fill of other images' layers).
  Served* next = nullptr;
  bool to_store = false;
  {
    std::lock_guard lock(mutex_);
    const bool store_first = readsQuietLocked(now);
    for (auto& [key, served] : served_) {
      if (!served->stored && store_.contains(served->layer.digest, served->layer.size))
        served->stored = true;  // a whole pull stored it meanwhile: no fill needed
      if (!fillableLocked(*served, now))
        continue;
      const bool complete = served->lazy->complete();
      if (next == nullptr || (to_store != store_first && complete == store_first)) {
        next = served.get();
        to_store = complete;
      }
      if (complete == store_first)
        break;
    }
  }
  bool busy = false;
  if (next != nullptr) {
    // Only this thread removes a layer: `next` stays valid.
    busy = true;
    auto status = to_store ? store(*next) : fill(*next);
    std::lock_guard lock(mutex_);
    if (status) {
      next->stored = to_store;
    } else if (status.error().code != ErrorCode::kCancelled && ++next->failures >= kMaxTries) {
      spdlog::error(
          "{} layer {}: the background fill failed {} times, given up (the layer stays "
          "read in place): {}",
          next->source.str(), next->layer.digest.str(), next->failures, status.error().describe());
    } else if (status.error().code != ErrorCode::kCancelled) {
      spdlog::warn("{} layer {}: the background fill failed, tried again in {} s: {}",
                   next->source.str(), next->layer.digest.str(),
                   std::chrono::duration_cast<std::chrono::seconds>(options_.retry_after).count(),
                   status.error().describe());
      next->next_try = now + options_.retry_after;
    }
  }

  // Bundles whose lazy layers are all in the store.
  std::vector<LazyBundle> ready;
  {
    std::lock_guard lock(mutex_);
    for (auto it = bundles_.begin(); it != bundles_.end();) {
      bool all = true;
      for (const auto& digest : it->served) {
        auto found = served_.find(Key{it->source, digest});
        all = all && (found == served_.end() || found->second->stored);
      }
      if (all && it->next_try <= now) {
        ready.push_back(std::move(*it));
        it = bundles_.erase(it);
        ++promoting_;  // still pending until promoted (settle)
      } else {
        ++it;
      }
    }
  }
  if (!ready.empty()) {
    // A promotion unpacks every layer: not while a container reads a layer served here (its
    // reads take the same cores, and it reads through FUSE until its next start anyway). The
    // wait is bounded as the fill's is; an error (the host stopping) leaves it to the promotion.
    const Context ctx{&clock_, stop_.get_token(), std::nullopt};
    (void)readersQuiet(std::string(), Quiet::kReads, ctx);
  }
  for (auto& bundle : ready) {
    busy = true;
    auto promoted_now = promote(bundle);
    struct Promoted {
      LazyLayerHost& host;
      ~Promoted() {
        std::lock_guard lock(host.mutex_);
        --host.promoting_;
      }
    } promoted{*this};
    if (promoted_now)
      removeBundleRecord(bundlesDir(), bundle.dir);
    if (promoted_now && *promoted_now) {
      {
        std::lock_guard lock(mutex_);
        ++retired_.promotions;
      }
      spdlog::info(
          "{}: promoted to ordinary layer snapshots (the next start of its container "
          "mounts them)",
          bundle.dir.string());
      continue;
    }
    if (promoted_now) {
      spdlog::info("{}: gone before its promotion", bundle.dir.string());
      continue;
    }
    if (++bundle.failures >= kMaxTries) {
      spdlog::error("{}: promotion failed {} times, given up (its layers stay read in place): {}",
                    bundle.dir.string(), bundle.failures, promoted_now.error().describe());
      std::lock_guard lock(mutex_);
      given_up_.push_back(std::move(bundle));
      continue;
    }
    spdlog::warn("{}: promotion failed, tried again in {} s: {}", bundle.dir.string(),
                 std::chrono::duration_cast<std::chrono::seconds>(options_.retry_after).count(),
                 promoted_now.error().describe());
    bundle.next_try = now + options_.retry_after;
    std::lock_guard lock(mutex_);
    bundles_.push_back(std::move(bundle));
  }
  retireUnused();
  return busy;
}

Result<bool> LazyLayerHost::followReaders(const Context& ctx) {
  const auto now = std::chrono::steady_clock::now();
  std::erase_if(read_ahead_paused_, [&](const auto& paused) { return paused.second <= now; });
  // Only this thread removes a layer: the pointers stay valid after the lock.
  std::vector<std::pair<std::chrono::steady_clock::time_point, estargz::LazyLayer*>> streams;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [key, served] : served_) {
      // As for its fill: a layer in use, with a route, not stored, not given up on or waiting
      // for its next try, and not paused after a read-ahead failed (a registry gone: the poll
      // would otherwise ask it every few milliseconds while its readers retry).
      if (!fillableLocked(*served, now) || read_ahead_paused_.count(served->lazy.get()) > 0)
        continue;
      const auto seen = served->lazy->streamTime();
      if (now - seen <= options_.reader_quiet)
        streams.emplace_back(seen, served->lazy.get());
    }
  }
  // The reader seen last first: the one a container is waiting on now.
  std::sort(streams.begin(), streams.end(),
            [](const auto& a, const auto& b) { return a.first > b.first; });
  // The fill's turn after foreground pulls, once, and only when a request is to be made.
  bool turned = false;
  auto turn = [&]() -> Status {
    if (turned || !options_.fill_turn)
      return {};
    turned = true;
    return options_.fill_turn(ctx);
  };
  for (const auto& [seen, lazy] : streams) {
    auto fetched = lazy->fetchAhead(ctx, options_.fill_piece, options_.reader_quiet, turn);
    if (!fetched) {
      // Its readers meet the error themselves; the others' read-ahead goes on.
      read_ahead_paused_[lazy] = std::chrono::steady_clock::now() + kReadAheadPause;
      RETURN_IF_ERROR(ctx.check());
      continue;
    }
    if (*fetched)
      return true;
  }
  return false;
}

Status LazyLayerHost::readersQuiet(const std::string& registry, Quiet what, const Context& ctx,
                                   const std::function<bool()>& give_way) {
  // Bounded: a container that keeps reading (or a registry whose chunks keep failing) slows the
  // fill to a piece a while, never stops it, nor the promotions behind it. The read-ahead below
  // counts against the same bound.
  const auto give_up = std::chrono::steady_clock::now() + options_.reader_quiet_most;
  while (true) {
    // Meanwhile the fill reads ahead of a reader going through a layer in order: what it will
    // ask for next, fetched before it asks.
    auto followed = followReaders(ctx);
    RETURN_IF_ERROR(ctx.check());
    auto latest = std::chrono::steady_clock::time_point{};
    {
      std::lock_guard lock(mutex_);
      for (const auto& [key, served] : served_) {
        if (served->lazy && what == Quiet::kReads)
          latest = std::max(latest, served->lazy->lastRead());
        else if (served->lazy && key.first.registry == registry)
          latest = std::max(latest, served->lazy->lastReaderFetch());
      }
    }
    const auto quiet_at = latest + options_.reader_quiet;
    const auto now = std::chrono::steady_clock::now();
    if (quiet_at <= now || now >= give_up)
      return {};
    if (give_way && give_way())
      return makeError(ErrorCode::kCancelled, "giving way");
    // Short: a reader going through a layer in order needs the next piece soon.
    if (!followed || !*followed) {
      std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
          quiet_at - now, std::chrono::milliseconds(5)));
    }
  }
}

Status LazyLayerHost::fill(Served& served) {
  const Context ctx{&clock_, stop_.get_token(), std::nullopt};
  return served.lazy->fill(ctx, options_.fill_piece, [&]() -> Status {
    {
      // A layer no pull or bundle wants any more is retired, not filled.
      std::lock_guard lock(mutex_);
      if (!usedLocked(served))
        return makeError(ErrorCode::kCancelled, "no longer used");
    }
    if (Status quiet = readersQuiet(served.source.registry, Quiet::kFetches, ctx); !quiet)
      return quiet;
    return options_.fill_turn ? options_.fill_turn(ctx) : Status{};
  });
}

Status LazyLayerHost::store(Served& served) {
  const Context ctx{&clock_, stop_.get_token(), std::nullopt};
  // Storing the copy writes and hashes every byte once more: not while a container reads a
  // layer served here (its reads take the same cores). The read-ahead goes on meanwhile, and a
  // layer to fill that turns up (a new pull's, one whose retry is due) ends the wait: the store
  // comes after it (kCancelled: not a failure).
  RETURN_IF_ERROR(readersQuiet(served.source.registry, Quiet::kReads, ctx, [&] {
    const auto now = std::chrono::steady_clock::now();
    std::lock_guard lock(mutex_);
    return std::any_of(served_.begin(), served_.end(), [&](const auto& other) {
      return fillableLocked(*other.second, now) && !other.second->lazy->complete();
    });
  }));
  const Descriptor& layer = served.layer;
  // Verified as a download is: the ingest hashes every byte. No source is recorded: the
  // ranges may have come from a mirror, which may serve any blob it cached for anyone by its
  // digest alone; the repository's next pulls prove the blob theirs as for any stored blob.
  ASSIGN_OR_RETURN(auto ingest,
                   store_.beginIngest(layer.digest, layer.size, served.source.str(), ctx));
  if (!ingest)
    return {};
  if (ingest->offset() > 0)
    RETURN_IF_ERROR(ingest->restart());
  RETURN_IF_ERROR(
      served.lazy->readBlob([&](std::string_view bytes) { return ingest->write(bytes); }));
  auto committed = ingest->commit();
  if (!committed && committed.error().code == ErrorCode::kDigestMismatch) {
    // Some bytes the registry sent were wrong (chunks readers used were each verified; the
    // fill's were not): the copy starts over.
    served.lazy->discard();
  }
  if (committed) {
    spdlog::info(
        "{} layer {}: fetched whole in the background and verified ({} bytes on "
        "demand, {} filled)",
        served.source.str(), layer.digest.str(),
        served.lazy->stats().bytes_fetched - served.lazy->stats().bytes_filled,
        served.lazy->stats().bytes_filled);
  }
  return committed;
}

Result<bool> LazyLayerHost::promote(const LazyBundle& bundle) {
  // gc never runs meanwhile: what is unpacked here is named by the bundle before it could look.
  ASSIGN_OR_RETURN(auto state_lock, StateLock::acquire(state_, StateLock::Mode::kShared));
  // The publishers' lock of the bundle (ImagePublisher): no publish of it runs meanwhile.
  const fs::path lock_path = ImagePublisher::lockPath(bundle.dir);
  const UniqueFd bundle_lock(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!bundle_lock.valid())
    return errnoError(errno, "open", lock_path);
  while (::flock(bundle_lock.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK && errno != EINTR)
      return errnoError(errno, "lock", lock_path);
    if (stop_.stop_requested())
      return makeError(ErrorCode::kCancelled, "stopping");
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  struct stat info {};
  if (::lstat((bundle.dir / kPublishedMarker).c_str(), &info) != 0)
    return false;
  const auto chain = chainIds(bundle.diff_ids);
  if (chain.size() != bundle.layers.size())
    return makeError(ErrorCode::kInternal, "layers and diff_ids differ in number");
  // A layer is unpacked over an overlay of the ones below it: in a thread of its own, in a
  // mount namespace of its own, seen by no one else and gone with the thread.
  Status unpacked;
  std::thread unpack([&] {
    unpacked = [&]() -> Status {
      RETURN_IF_ERROR(enterPrivateMountNamespace());
      // Every layer through ensureLayerSnapshot, present or not: a snapshot that exists is
      // this layer's only once the agent proved the blob decompresses to the config's diff_id
      // (a config may claim another tenant's diff_ids over layers of its own).
      for (size_t i = 0; i < chain.size(); ++i) {
        ASSIGN_OR_RETURN(
            auto made, ensureLayerSnapshot(snapshots_, store_, provenance_, chain, bundle.layers[i],
                                           bundle.diff_ids[i], i, bundle.apply, stop_.get_token()));
        (void)made;
      }
      return {};
    }();
  });
  unpack.join();
  RETURN_IF_ERROR(unpacked);
  nlohmann::json layers = nlohmann::json::array();
  for (size_t i = 0; i < chain.size(); ++i) {
    layers.push_back({{"diffId", bundle.diff_ids[i].str()},
                      {"chainId", chain[i].str()},
                      {"path", snapshots_.layerDir(chain[i]).string()}});
  }
  nlohmann::json mounts = nlohmann::json::array();
  if (!chain.empty()) {
    ASSIGN_OR_RETURN(auto view, readOnlyView(snapshots_.lowerDirs(chain, chain.size())));
    mounts.push_back(view.toJson());
  }
  // The runtime reads the file whole at each start: it sees the lazy layers or the snapshots,
  // never a mix.
  const nlohmann::json description = {{"layers", layers}, {"mounts", mounts}};
  RETURN_IF_ERROR(writeFileAtomic(bundle.dir / kRootfsMountsFile, description.dump(2) + "\n"));
  return true;
}

bool LazyLayerHost::usedLocked(const Served& served) const {
  if (served.pulls > 0)
    return true;
  for (const auto* list : {&bundles_, &given_up_}) {
    for (const auto& bundle : *list) {
      if (bundle.source == served.source && std::find(bundle.served.begin(), bundle.served.end(),
                                                      served.layer.digest) != bundle.served.end())
        return true;
    }
  }
  return false;
}

void LazyLayerHost::retireUnused() {
  std::vector<std::unique_ptr<Served>> ended;
  {
    std::lock_guard lock(mutex_);
    for (auto it = served_.begin(); it != served_.end();) {
      Served& served = *it->second;
      // Unused: promoted, or served by a pull that failed or was pulled whole after all.
      if (!served.retiring && !usedLocked(served)) {
        served.mount->detach();
        served.retiring = true;
        spdlog::info("{} layer {}: detached; its mount ends when nothing reads it",
                     served.source.str(), served.layer.digest.str());
      }
      if (served.retiring && served.mount->ended()) {
        const auto stats = served.lazy->stats();
        const auto reads = served.mount->stats();
        retired_.bytes_on_demand += stats.bytes_fetched - stats.bytes_filled;
        retired_.bytes_filled += stats.bytes_filled;
        retired_.addReads(reads);
        // No serve() of this layer until its cache is removed (it would open a cache of its
        // own there, and lose it).
        busy_.insert(it->first);
        ended.push_back(std::move(it->second));
        it = served_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& served : ended) {
    const Busy busy{*this, Key{served->source, served->layer.digest}};
    const fs::path dir = layerDir(served->source, served->layer.digest);
    if (options_.drop_fd)
      options_.drop_fd(keeperName(served->source, served->layer.digest));
    served.reset();  // unmounted, the cache closed
    std::error_code error;
    fs::remove_all(dir, error);
    if (error)
      spdlog::warn("{}: could not be removed: {}", dir.string(), error.message());
  }
}

}  // namespace pullagent::puller
