#include "agent/daemon/site_runner.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>
#include <map>
#include <thread>

#include "agent/config/config_files.h"
#include "agent/daemon/fd_store.h"
#include "agent/daemon/rollback_config.h"
#include "agent/site/site_pull.h"
#include "puller/oci/sha256.h"
#include "puller/reference/reference.h"
#include "puller/state/state_lock.h"
#include "puller/unpack/image_publisher.h"

namespace pullagent::agent {
namespace {

// Feeds a pull's events to the site's activity: layers and bytes done of the total (of the
// site, or of one container of a site with several).
class ProgressObserver final : public puller::PullObserver {
 public:
  ProgressObserver(SiteActivity& activity, std::optional<size_t> container)
      : activity_(activity), container_(container) {}

  void onManifest(const puller::Descriptor&,
                  const std::vector<puller::Descriptor>& layers) override {
    std::lock_guard lock(mutex_);
    progress_ = {};
    done_.clear();
    for (const auto& layer : layers) {
      done_[layer.digest.str()] = 0;
      progress_.bytes_total += layer.size;
    }
    progress_.layers_total = static_cast<int>(layers.size());
    publish();
  }
  // A (re)start from `offset`: what is on disk counts as done, whatever was counted before.
  void onBlobStart(const puller::Descriptor& blob, int64_t offset) override {
    std::lock_guard lock(mutex_);
    set(blob, offset);
  }
  void onBlobBytes(const puller::Descriptor& blob, int64_t bytes) override {
    std::lock_guard lock(mutex_);
    auto it = done_.find(blob.digest.str());
    if (it != done_.end())
      set(blob, it->second + bytes);
  }
  void onBlobDone(const puller::Descriptor& blob, bool) override {
    std::lock_guard lock(mutex_);
    if (done_.count(blob.digest.str()) == 0)
      return;
    ++progress_.layers_done;
    set(blob, blob.size);
  }

 private:
  // Layers only (not the config); the caller holds mutex_.
  void set(const puller::Descriptor& blob, int64_t done) {
    auto it = done_.find(blob.digest.str());
    if (it == done_.end())
      return;
    done = std::clamp<int64_t>(done, 0, blob.size);
    progress_.bytes_done += done - it->second;
    it->second = done;
    publish();
  }
  void publish() {
    if (container_)
      activity_.updateContainer(*container_, progress_);
    else
      activity_.update(progress_);
  }

  SiteActivity& activity_;
  const std::optional<size_t> container_;
  std::mutex mutex_;
  std::map<std::string, int64_t> done_;  // bytes done per layer
  SiteProgress progress_;
};

// Phase times into the metrics and the journal; remembers which phase failed; gives each
// container's pull an observer of its progress.
class PhaseRecorder final : public SitePullEvents {
 public:
  PhaseRecorder(Metrics& metrics, std::string site, SiteActivity& activity,
                const SiteConfig& config)
      : metrics_(metrics), site_(std::move(site)), activity_(activity), config_(config) {}
  void phaseDone(const std::string& phase, std::chrono::milliseconds took,
                 const std::string& what) override {
    metrics_.phaseDuration(phase, std::chrono::duration<double>(took).count());
    spdlog::info("site {}: {} done in {} ms: {}", site_, phase, took.count(), what);
  }
  void routeChosen(const std::string& route) override {
    spdlog::info("site {}: the pull's hosts are resolved by the {}", site_, route);
  }
  void phaseFailed(const std::string& phase, const Error&) override {
    if (failed_phase_.empty())
      failed_phase_ = phase;
  }
  puller::PullObserver* observerFor(const SiteContainer& container) override {
    std::optional<size_t> index;
    if (config_.containers.size() > 1) {
      index = indexOf(container);
      activity_.setContainerPhase(*index, "pulling");
    }
    observers_.push_back(std::make_unique<ProgressObserver>(activity_, index));
    return observers_.back().get();
  }
  void containerDone(const SiteContainer& container,
                     const Result<puller::PullOutcome>& outcome) override {
    const char* phase = !outcome ? "failed" : outcome->unchanged ? "unchanged" : "ready";
    metrics_.containerPulled(container.is_main ? "main" : "sidecar", phase);
    if (config_.containers.size() > 1)
      activity_.setContainerPhase(indexOf(container), phase);
  }
  std::string failedPhase() const { return failed_phase_.empty() ? "pull" : failed_phase_; }

 private:
  size_t indexOf(const SiteContainer& container) const {
    return static_cast<size_t>(&container - config_.containers.data());
  }

  Metrics& metrics_;
  std::string site_;
  SiteActivity& activity_;
  const SiteConfig& config_;
  std::string failed_phase_;
  std::vector<std::unique_ptr<ProgressObserver>> observers_;
};

}  // namespace

Result<std::shared_ptr<DaemonServices>> DaemonServices::create(AgentConfig agent, Clock& clock,
                                                               Random& random) {
  auto services = std::make_shared<DaemonServices>();
  services->agent = std::move(agent);
  services->identity_resolver = std::make_unique<resolver::StaticHostsResolver>(
      services->agent.host_overrides, services->system_resolver);
  ASSIGN_OR_RETURN(auto http, createIdentityClient(services->agent, *services->identity_resolver));
  services->identity_http = std::move(http);
  services->identities = std::make_unique<IdentityPool>(*services->identity_http, clock, random,
                                                        services->agent.identity);
  ASSIGN_OR_RETURN(auto store, puller::ContentStore::open(services->agent.state_dir.content()));
  services->store = std::move(store);
  return services;
}

struct SitePullRunner::Lazy {
  puller::StateDir state;
  std::unique_ptr<puller::ContentStore> store;
  std::unique_ptr<puller::ProvenanceStore> provenance;
  std::unique_ptr<puller::SnapshotStore> snapshots;
  std::unique_ptr<puller::LazyLayerHost> host;  // last: goes first
};

SitePullRunner::SitePullRunner(Clock& clock, Random& random, Metrics& metrics, bool privileged)
    : clock_(clock), random_(random), metrics_(metrics), privileged_(privileged), throttle_(clock) {
  for (auto& [name, fd] : FdStore::takeGiven()) {
    if (name.starts_with("lazy-")) {
      kept_fuse_.emplace(name, std::move(fd));
      continue;
    }
    spdlog::warn("systemd passed a file named {} that nothing here uses: let go", name);
    (void)FdStore::drop(name);
  }
}

SitePullRunner::~SitePullRunner() = default;

const puller::LazyLayerHost* SitePullRunner::lazyHost() const {
  return lazy_host_.load();
}

bool SitePullRunner::needsCheckAtStart(const SiteState& published) const {
  const puller::LazyLayerHost* host = lazy_host_.load();
  for (const auto& image : publishedUnit(published)) {
    auto ref = puller::ImageRef::parse(image.image);
    if (host != nullptr && ref && host->wantsRoute({ref->domain, ref->repository}))
      return true;
    if (!puller::ImagePublisher::inPlaceLayersPresent(image.path, servedHere()))
      return true;
  }
  return false;
}

std::function<bool(const std::filesystem::path&)> SitePullRunner::servedHere() const {
  return [host = lazy_host_.load()](const std::filesystem::path& layer_root) {
    return host != nullptr && host->serves(layer_root);
  };
}

namespace {

// Whether this process shares the host's mount namespace (PID 1's), where the container runtime
// mounts each image's overlay: FUSE mounts made in a namespace of the service's own (the unit
// without its lazy-pulling drop-in) would never reach it. Unknown (PID 1's cannot be read):
// assumed shared.
bool inHostMountNamespace() {
  struct stat own {};
  struct stat host {};
  if (::stat("/proc/self/ns/mnt", &own) != 0 || ::stat("/proc/1/ns/mnt", &host) != 0)
    return true;
  return own.st_ino == host.st_ino && own.st_dev == host.st_dev;
}

}  // namespace

puller::LazyLayerHost* SitePullRunner::lazyFor(const DaemonServices& services) {
  if (services.agent.lazy_pulling != "estargz") {
    dropKeptFuse("lazyPulling is off");
    return nullptr;
  }
  if (!services.snapshots || !privileged_) {
    dropKeptFuse("images are not published over snapshots as root");
    static std::once_flag said;
    std::call_once(said, [] {
      spdlog::warn(
          "lazyPulling is \"estargz\" but images are not published over overlay snapshots as "
          "root here: every image is pulled whole");
    });
    return nullptr;
  }
  static const bool host_namespace = inHostMountNamespace();
  if (!host_namespace) {
    dropKeptFuse("the service runs in a mount namespace of its own");
    static std::once_flag said;
    std::call_once(said, [] {
      spdlog::warn(
          "lazyPulling is \"estargz\" but the service runs in a mount namespace of its own: "
          "its FUSE mounts would not reach the container runtime. Every image is pulled whole; "
          "install the unit's lazy-pulling drop-in (docs/lazy.md)");
    });
    return nullptr;
  }
  std::lock_guard lock(mutex_);
  if (lazy_) {
    if (lazy_->state == services.agent.state_dir)
      return lazy_->host.get();
    spdlog::warn("lazy pulling serves the state dir {} only (until the service restarts)",
                 lazy_->state.root().string());
    return nullptr;
  }
  auto made = std::make_unique<Lazy>();
  made->state = services.agent.state_dir;
  auto store = puller::ContentStore::open(made->state.content());
  if (!store) {
    spdlog::warn("lazy pulling is off: {}", store.error().describe());
    dropKeptFuseLocked("lazy pulling is off");
    return nullptr;
  }
  made->store = std::move(store.value());
  made->provenance = std::make_unique<puller::ProvenanceStore>(made->state.provenance());
  made->snapshots = std::make_unique<puller::SnapshotStore>(made->state.snapshots());
  puller::LazyLayerHost::Options options;
  // The fill runs below every site's pull: it waits while any attempt runs, for half a minute
  // at most per piece, so that a site whose attempts never end (a registry that hangs it to
  // its deadline, then again) slows the fill down without stopping it.
  options.fill_turn = [this](const Context& ctx) -> Status {
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (running_.load() > 0 && std::chrono::steady_clock::now() < give_up) {
      RETURN_IF_ERROR(ctx.check());
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    return ctx.check();
  };
  // Under systemd, the mounts outlive a restart of the service: their /dev/fuse files go to its
  // file descriptor store, and those it gave back are served on.
  if (FdStore::available()) {
    options.keep_fd = [](const std::string& name, int fd) {
      if (Status kept = FdStore::keep(name, fd); !kept)
        spdlog::warn("{} (its mount ends with this process)", kept.error().describe());
    };
    options.drop_fd = [](const std::string& name) {
      if (Status dropped = FdStore::drop(name); !dropped)
        spdlog::warn("{}", dropped.error().describe());
    };
  }
  options.kept_fds = std::exchange(kept_fuse_, {});
  made->host = std::make_unique<puller::LazyLayerHost>(made->state, *made->store, *made->provenance,
                                                       *made->snapshots, std::move(options));
  lazy_ = std::move(made);
  lazy_host_ = lazy_->host.get();
  return lazy_->host.get();
}

void SitePullRunner::setServices(std::shared_ptr<DaemonServices> services) {
  bool serve_kept = false;
  {
    std::lock_guard lock(mutex_);
    if (services)
      throttle_.setDefaultLimit(services->agent.max_requests_per_registry);
    services_ = services;
    serve_kept = !kept_fuse_.empty() && !lazy_;
  }
  // Containers read through the mounts systemd kept: served on now, not at the first pull.
  if (serve_kept && services)
    (void)lazyFor(*services);
}

void SitePullRunner::dropKeptFuse(const char* why) {
  std::lock_guard lock(mutex_);
  dropKeptFuseLocked(why);
}

void SitePullRunner::dropKeptFuseLocked(const char* why) {
  for (auto& [name, fd] : kept_fuse_) {
    spdlog::warn("the FUSE mount kept as {} is let go ({}): what reads through it fails", name,
                 why);
    (void)FdStore::drop(name);
  }
  kept_fuse_.clear();
}

SiteAttemptResult SitePullRunner::run(const std::string& site_name,
                                      const std::filesystem::path& config, SiteActivity& activity,
                                      std::stop_token stop, const AttemptPlan& plan) {
  std::shared_ptr<DaemonServices> services;
  {
    std::lock_guard lock(mutex_);
    services = services_;
  }
  SiteAttemptResult result;
  ++running_;
  struct Running {
    std::atomic<int>& count;
    ~Running() { --count; }
  } running{running_};
  if (auto lock =
          puller::StateLock::acquire(services->agent.state_dir, puller::StateLock::Mode::kShared)) {
    result.hold_until_recorded = std::make_shared<puller::StateLock>(std::move(lock.value()));
  }  // else the pull's own acquire reports the problem
  auto failed = [&](const std::string& phase, const Error& error) {
    result.kind = stop.stop_requested() || error.code == ErrorCode::kCancelled
                      ? SiteAttemptResult::Kind::kCancelled
                      : SiteAttemptResult::Kind::kFailed;
    result.error = SiteError{phase, error.describe(), clock_.wallNow()};
    return result;
  };
  // Read afresh on every attempt: a fixed config is picked up by the next retry.
  auto text = readConfigText(config);
  if (!text)
    return failed("config", text.error());
  result.config_sha256 = puller::Sha256::of(text.value()).hex();
  auto site = parseSiteConfig(text.value());
  if (!site)
    return failed("config", site.error().context(config.string()));
  result.image = site->images();
  result.continuous_deployment = site->continuous_deployment;
  if (site->publishing) {
    result.webhook_key =
        SiteWebhookKeys::keyOf(site->publishing->user, site->publishing->password.revealForWire());
  }
  activity.setImage(result.image);
  if (site->containers.size() > 1) {
    std::vector<ContainerActivity> containers;
    for (const auto& container : site->containers)
      containers.push_back({container.label(), container.image.str(), "pending", {}});
    activity.setContainers(std::move(containers));
  }
  for (const auto& container : site->containers) {
    spdlog::info("site {}: pulling {}{} with {}{}", site_name,
                 container.name.empty() ? "" : container.name + " ", container.image.str(),
                 describeAuth(container), site->pull_over_vnet ? ", over the VNet" : "");
  }

  PhaseRecorder phases(metrics_, site_name, activity, site.value());
  ProcessEnvironment env;
  env.stop = stop;
  env.privileged = privileged_;
  env.snapshots = services->snapshots;
  puller::SourceTally tally;
  SitePullServices pull_services{services->agent,
                                 clock_,
                                 random_,
                                 *services->identities,
                                 services->system_resolver,
                                 services->store.get(),
                                 services->agent.share_registry_throttle ? &throttle_ : nullptr,
                                 &tally,
                                 services->admission.get(),
                                 false,
                                 &verdicts_,
                                 lazyFor(*services),
                                 services};
  // A refresh pins each container to what its tag resolved to (a hand-edited state file's bad
  // digest pins nothing: a full pull decides). An image read in place from mounts that are gone
  // (an earlier process served them) is not unchanged whatever its tag says: published again.
  TagPins pins;
  std::map<std::string, PublishedImage> previous;
  for (const auto& image : plan.refresh_of) {
    const std::string label = image.container.empty() ? "main" : image.container;
    auto digest = puller::Digest::parse(image.resolved_digest);
    if (digest && puller::ImagePublisher::inPlaceLayersPresent(image.path, servedHere()))
      pins.emplace(label, digest.value());
    previous.emplace(label, image);
  }
  if (!plan.rollback_to.empty()) {
    auto unit = rollbackConfig(site.value(), plan.rollback_to);
    if (!unit)
      return failed("config", unit.error());
    site = std::move(unit);
  } else if (plan.hold) {
    // A check at start: each container at the digest it was published at, under its own name
    // and the config's credentials, as a rollback takes a unit.
    auto held = rollbackConfig(site.value(), plan.refresh_of);
    if (!held)
      return failed("config", held.error());
    site = std::move(held);
  }
  auto outcome = pullSite(pull_services, site.value(), env, phases, pins);
  metrics_.sources(tally.totals());
  for (const auto& [labels, count] : verdicts_.takeCounts())
    metrics_.signatureVerifications(labels.first, labels.second, count);
  if (!outcome)
    return failed(phases.failedPhase(), outcome.error());
  if (outcome->unchanged()) {
    result.kind = SiteAttemptResult::Kind::kUnchanged;
    return result;
  }
  // The unit: every container's image, the new ones and those whose tag had not moved.
  for (size_t i = 0; i < outcome->containers.size(); ++i) {
    const auto& [container, pulled] = outcome->containers[i];
    PublishedImage published;
    if (pulled.unchanged) {
      published = previous.at(container.label());
    } else {
      const auto& image = pulled.image;
      metrics_.bytesDownloaded(image.bytes_downloaded);
      metrics_.blobs(image.blobs_downloaded, image.blobs_present, image.blobs_not_needed);
      metrics_.snapshots(pulled.snapshots_reused, pulled.snapshots_unpacked);
      published = PublishedImage{container.image.str(),
                                 image.manifest.digest.str(),
                                 services->agent.state_dir.image(image.manifest.digest).string(),
                                 result.config_sha256,
                                 clock_.wallNow(),
                                 (image.index ? image.index->digest : image.manifest.digest).str(),
                                 container.name,
                                 pulled.verdict ? pulled.verdict->summary : ""};
      spdlog::info("site {}: {}{} ready ({}): {}", site_name,
                   container.name.empty() ? "" : container.name + " ", published.image,
                   published.digest, pulled.published);
    }
    published.config_sha256 = result.config_sha256;
    if (i == 0)
      result.published = std::move(published);
    else
      result.sidecars.push_back(std::move(published));
  }
  result.kind = SiteAttemptResult::Kind::kPublished;
  spdlog::info("site {}: published {}", site_name, result.image);
  return result;
}

}  // namespace pullagent::agent
