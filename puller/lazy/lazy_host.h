#pragma once

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "base/context.h"
#include "base/unique_fd.h"
#include "puller/lazy/lazy_layer.h"
#include "puller/lazy/lazy_mount.h"
#include "puller/lazy/lazy_records.h"
#include "puller/oci/manifest.h"
#include "puller/snapshot/snapshot_store.h"
#include "puller/state/state_dir.h"
#include "puller/store/content_store.h"
#include "puller/store/provenance.h"
#include "puller/unpack/layer_applier.h"

namespace pullagent::puller {

// The eStargz layers a process serves in place (issue 28), and what becomes of them:
//
//  1. serve(): the layer's TOC is fetched and verified, its prefetch set fetched, and the layer
//     mounted with FUSE; a pull names the mount's layer directory as the image's lower layer.
//  2. The fill, one thread for the host, one layer and one request at a time (a lower priority
//     than any pull, through Options::fill_turn): the bytes no reader asked for. A complete copy
//     goes into the content store through an Ingest, which checks the blob's digest (no source is
//     recorded: the ranges may have come from a mirror). A copy that does not verify is dropped
//     and fetched again.
//  3. Promotion: once every layer of a tracked bundle is in the store, the layers are unpacked
//     into ordinary snapshots (each diff_id verified, as for any pull) and the bundle's
//     rootfs-mounts.json is rewritten atomically to name them. What is running keeps reading
//     through the FUSE layer; the container's next start mounts the snapshots.
//  4. Retirement: a layer no unpromoted bundle uses is detached (nothing new reaches it; an
//     overlay holding it reads on) and dropped once its connection ends, its cache with it.
//
// Who may use a layer: its cache lives under <root>/<sha256 of "registry/repository">/<digest
// hex>/ and serves only pulls of that source, since held bytes are served without asking the
// registry and a digest is a name, not a proof. Another repository naming the same digest gets
// a layer of its own, fetched from its own registry. Pulls of one source share its layer, read
// through the newest pull's fetch (its credentials and route).
//
// Restarts (docs/lazy.md, "Restarts"): with a keeper (Options::keep_fd: systemd's file
// descriptor store in the service), each mount's /dev/fuse file is kept outside the process and
// this host releases its mounts instead of unmounting them; the next host adopts the mounts
// whose files it is given back (Options::kept_fds), with what it recorded of each layer and
// bundle. Reads go on from the held bytes at once, and from the registry once a pull of the
// layer's source lends its route (lend()). Without a keeper the mounts end with this object.
class LazyLayerHost {
 public:
  struct Options {
    std::chrono::seconds read_timeout{30};
    uint64_t fill_piece = estargz::LazyLayer::kFillPieceBytes;
    // Asked before each fill request: returns once no foreground pull runs. Unset: never waits.
    std::function<Status(const Context&)> fill_turn;
    // The fill also waits until no reader of a layer served here from the same registry has
    // fetched for this long (a container reading what it starts with goes first), but no
    // longer than reader_quiet_most for each piece.
    std::chrono::milliseconds reader_quiet{250};
    std::chrono::milliseconds reader_quiet_most{10000};
    // How far a reader's request is widened (estargz::LazyLayer::setReaderWindow).
    uint64_t reader_window_min = estargz::LazyLayer::kReaderWindowMin;
    uint64_t reader_window_max = estargz::LazyLayer::kReaderWindowMax;
    // After a fill or promotion failed, the next try waits this long.
    std::chrono::milliseconds retry_after{30000};
    // The keeper of the mounts' /dev/fuse files across restarts: given each one under its
    // keeperName() once mounted, and told to let go of it once the layer is retired. Unset: the
    // mounts end with the host.
    std::function<void(const std::string& name, int fd)> keep_fd;
    std::function<void(const std::string& name)> drop_fd;
    // What the keeper gave back at start, by name: adopted, or let go of.
    std::map<std::string, UniqueFd> kept_fds;
  };

  // Layers live in the state dir's lazy/: what an earlier process left there is adopted when the
  // keeper gave its mount back, and removed otherwise;
  // the store, provenance and snapshots are the state dir's, and must outlive the host.
  LazyLayerHost(StateDir state, ContentStore& store, ProvenanceStore& provenance,
                const SnapshotStore& snapshots, Options options);
  ~LazyLayerHost();  // stops the fill; unmounts every layer, or releases it to the keeper
  LazyLayerHost(const LazyLayerHost&) = delete;
  LazyLayerHost& operator=(const LazyLayerHost&) = delete;

  // The directory of a source's layer: cache/ and mnt/ (whose layer/ is the lower layer).
  std::filesystem::path layerDir(const BlobSource& source, const Digest& digest) const;

  // Serves `layer` (with its TOC digest annotation) of `source` in place and returns the
  // directory overlayfs takes as its lower layer; mounted now unless this source's layer is
  // mounted already. `fetch` reads ranges of the blob from the source and must stay usable for as
  // long as the layer is served: `keep` holds what it needs (the pull's registry client).
  Result<std::filesystem::path> serve(const BlobSource& source, const Descriptor& layer,
                                      estargz::RangeFetch fetch, std::shared_ptr<const void> keep,
                                      const Context& ctx);

  // The name a layer's /dev/fuse file is kept under: "lazy-<source hash>-<digest hex>".
  static std::string keeperName(const BlobSource& source, const Digest& digest);

  // A pull of `source` lends its route to the layers of `source` adopted from an earlier
  // process, retiring ones included (a container may still read them): the newest pull's route
  // serves, as with serve(). `fetch_for` makes a layer's fetch, `keep` holds what it needs.
  // Only layers of `source` take it: a route is never lent across repositories.
  using FetchFor = std::function<estargz::RangeFetch(const Descriptor& layer)>;
  bool wantsRoute(const BlobSource& source) const;
  // Whether one of them has had no route lent yet in this process: until a pull of `source`
  // gets as far as its manifest, their reads have only the bytes held.
  bool awaitsRoute(const BlobSource& source) const;
  // Whether `layer` of `source` is served (not being retired), or a mount at `layer_root` is.
  bool serves(const BlobSource& source, const Digest& layer) const;
  bool serves(const std::filesystem::path& layer_root) const;
  void lend(const BlobSource& source, const FetchFor& fetch_for, std::shared_ptr<const void> keep);

  // A pull that served layers here ended: the layers it served (bundle.served) are no longer
  // held by it, and a `published` bundle is promoted once they are all in the store.
  void finishPull(LazyBundle bundle, bool published);

  struct LayerStatus {
    BlobSource source;
    Digest digest;
    int64_t size = 0;
    int64_t held = 0;  // bytes of the blob fetched (on demand, prefetched or filled)
    bool stored = false;
    estargz::LazyLayer::Stats stats;
    estargz::LazyMount::Stats reads;
  };
  std::vector<LayerStatus> layers() const;
  // Bundles tracked and not promoted yet.
  size_t pendingBundles() const;

  // Since the host started, retired layers included (the service's metrics and status).
  struct Totals {
    int layers = 0;               // served now
    int64_t bytes = 0;            // their blobs' size
    int64_t bytes_held = 0;       // of which fetched
    int64_t bytes_on_demand = 0;  // fetched for readers (and prefetch)
    int64_t bytes_filled = 0;     // fetched by the background fill
    int64_t reads = 0;            // reads through the mounts
    int64_t read_errors = 0;      // of which failed (EIO)
    int64_t files_pushed = 0;     // put in the page cache before they were read
    int64_t promotions = 0;       // bundles switched to snapshots
    // How long those reads took: reads per bucket of estargz::LazyMount::kReadSecondsBounds.
    estargz::LazyMount::ReadSecondsBuckets read_seconds{};
    double read_seconds_sum = 0;
    void addReads(const estargz::LazyMount::Stats& reads);
  };
  Totals totals() const;

  // Waits until every tracked bundle is promoted, or `ctx` ends (tests; a command's pull).
  Status settle(const Context& ctx);

 private:
  struct Served;
  struct PendingRoute;
  using Key = std::pair<BlobSource, Digest>;

  // The layers and bundles an earlier process left: adopted when the keeper gave the layer's
  // mount back, else removed (their mounts dead, their caches unused).
  void adoptLeftovers();
  Status adopt(const std::filesystem::path& dir, UniqueFd device);
  // Whether a layer of `source` adopted from an earlier process is served (with
  // `unrouted_only`: one no pull has lent a route yet).
  bool adoptedFrom(const BlobSource& source, bool unrouted_only) const;
  std::filesystem::path bundlesDir() const;
  void work();  // the fill, promotion and retirement thread
  // One round: the first layer whose copy is not complete is filled, or, once every copy is,
  // the first not stored yet is stored (while reads are quiet, stores come first); bundles
  // whose layers are all stored are promoted; layers no bundle waits for are retired. False
  // when nothing was to do.
  bool round();
  Status fill(Served& layer);   // until its copy is complete
  Status store(Served& layer);  // its complete copy into the content store, verified
  // Returns once no reader of a layer served here from `registry` has fetched (kFetches), or no
  // reader of any layer served here has read (kReads), for Options::reader_quiet, or after
  // Options::reader_quiet_most; meanwhile it follows readers.
  enum class Quiet { kFetches, kReads };
  // `give_way`, asked while it waits: true ends the wait with kCancelled.
  Status readersQuiet(const std::string& registry, Quiet what, const Context& ctx,
                      const std::function<bool()>& give_way = {});
  // One piece of read-ahead for the layer a reader went through in order most recently
  // (estargz::LazyLayer::fetchAhead); false when no reader needs one.
  Result<bool> followReaders(const Context& ctx);
  static constexpr std::chrono::seconds kReadAheadPause{1};  // a layer's, after one failed
  // False when the bundle is gone (not published, or removed since).
  Result<bool> promote(const LazyBundle& bundle);
  // Held by a pull, or by a bundle waiting for promotion (or given up on).
  bool usedLocked(const Served& served) const;
  // Its fill or store is due: in use, routed, not stored, not retiring, not given up on and not
  // waiting for its next try.
  bool fillableLocked(const Served& served, std::chrono::steady_clock::time_point now) const;
  // No reader of a layer served here has read for Options::reader_quiet.
  bool readsQuietLocked(std::chrono::steady_clock::time_point now) const;
  void retireUnused();

  StateDir state_;
  ContentStore& store_;
  ProvenanceStore& provenance_;
  const SnapshotStore& snapshots_;
  Options options_;
  SystemClock clock_;

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  bool stopping_ = false;
  std::map<Key, std::unique_ptr<Served>> served_;
  std::set<Key> busy_;  // layers being served or removed: one at a time each
  // Layers whose read-ahead failed, until when none is tried for them (the work thread's alone).
  std::map<const estargz::LazyLayer*, std::chrono::steady_clock::time_point> read_ahead_paused_;
  struct Busy;
  std::vector<LazyBundle> bundles_;
  std::vector<LazyBundle> given_up_;  // promotion failed for good: their layers stay served
  size_t promoting_ = 0;              // bundles taken from bundles_ and being promoted
  Totals retired_;                    // what retired layers counted, and promotions
  std::stop_source stop_;
  std::thread worker_;
};

}  // namespace pullagent::puller
