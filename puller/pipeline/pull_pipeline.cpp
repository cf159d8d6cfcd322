#include "puller/pipeline/pull_pipeline.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <functional>
#include <mutex>

#include "puller/pipeline/pull_sources.h"
#include "puller/snapshot/chain_id.h"
#include "puller/state/bundle_roots.h"
#include "puller/state/published_image.h"
#include "puller/state/state_lock.h"
#include "puller/store/image_sources.h"
#include "puller/store/oci_layout.h"
#include "puller/trust/trust_policy.h"

namespace pullagent::puller {
namespace {

constexpr std::chrono::seconds kTagCheckDeadline{120};

// Counts the bytes received, including those fetched again after a resume.
class TransferCounter final : public PullObserver {
 public:
  void onBlobBytes(const Descriptor& /*blob*/, int64_t bytes) override { bytes_ += bytes; }
  int64_t bytes() const { return bytes_.load(); }

 private:
  std::atomic<int64_t> bytes_{0};
};

// Publishes a bundle at a fixed target, keeping the state dir's record of the snapshots it uses
// (BundleRoots) true at every moment: before the publish the root keeps both the old bundle's
// snapshots and the new one's, after it the new one's only (none for a plain tree); a failed
// publish leaves the old bundle, and its root, as they were.
Status finishBundleOutside(ImagePublisher& publisher, const PullRequest& job,
                           const PulledImage* image, const Status& pull_status,
                           bool over_snapshots) {
  const BundleRoots roots(job.state);
  const auto bundle = std::filesystem::absolute(*job.target);
  const std::set<Digest> before = roots.chains(bundle);
  std::set<Digest> after;
  if (over_snapshots && image != nullptr && pull_status) {
    for (const auto& chain : chainIds(image->diff_ids))
      after.insert(chain);
    std::set<Digest> both = before;
    both.insert(after.begin(), after.end());
    RETURN_IF_ERROR(roots.record(bundle, both));
  }
  if (auto published = publisher.finish(image, pull_status); !published) {
    // Should this fail too, the root keeps both: more than needed, never too little.
    (void)roots.record(bundle, before);
    return published;
  }
  return roots.record(bundle, after);
}

// The mirrors of job.hosts_dir (none without it), then the origin.
Result<std::unique_ptr<PullSources>> pullSources(const PullRequest& job, HttpClient& http,
                                                 const Clock& clock) {
  PullSources::Inputs inputs;
  inputs.registry = job.ref.domain;
  inputs.origin_http = &http;
  inputs.origin_credentials = job.credentials;
  inputs.insecure_origin = job.insecure;
  inputs.http_options = job.http_options ? &*job.http_options : nullptr;
  inputs.allow_skip_verify = job.allow_skip_verify;
  if (job.hosts_dir) {
    ASSIGN_OR_RETURN(inputs.hosts, loadRegistryHosts(*job.hosts_dir, job.ref.domain));
  } else {
    RegistryHost origin;
    origin.host = job.ref.apiHost();
    origin.origin = true;
    inputs.hosts.push_back(origin);
  }
  return PullSources::create(inputs, clock);
}

// Lazy pulling: the layers served in place are read through a registry client of their own,
// which the host keeps for as long as it serves them.
// It outlives the pull, so it holds what it uses: the caller's keep (the HTTP client and the
// credentials' sources), and a throttle and tally of its own (the pull's may go with it).
struct LazyClient {
  std::shared_ptr<const void> keep;
  RegistryThrottle throttle;
  SourceTally tally;
  std::unique_ptr<PullSources> sources;
  std::unique_ptr<RegistryClient> client;  // declared last: destroyed first
  LazyClient(std::shared_ptr<const void> kept, const Clock& clock)
      : keep(std::move(kept)), throttle(clock) {}
};

Result<std::shared_ptr<LazyClient>> makeLazyClient(const PullRequest& job, PullServices& services,
                                                   const RetryPolicy& policy) {
  auto made = std::make_shared<LazyClient>(job.lazy_keep, services.clock());
  ASSIGN_OR_RETURN(made->sources, pullSources(job, services.http(), services.clock()));
  made->client = std::make_unique<RegistryClient>(services.clock(), services.random(), policy,
                                                  job.ref.repository, made->sources->sources(),
                                                  &made->throttle, &made->tally);
  return made;
}

// A layer's fetch through the client: it holds the client, so a copy in use stays usable after
// the host drops it.
estargz::RangeFetch lazyFetch(std::shared_ptr<LazyClient> client, const Descriptor& layer) {
  return [client, layer](int64_t first, int64_t last, const Context& ctx) {
    return client->client->fetchRange(layer, first, last, ctx);
  };
}

// Every pull of a repository lends its route to the layers of that repository the lazy host
// serves on from an earlier process: until one does, their reads have only the bytes held.
// Once per pull, when the registry answered for its manifest (LendRouteOnManifest).
void lendLazyRoute(const PullRequest& job, PullServices& services, const RetryPolicy& policy) {
  const BlobSource source{job.ref.domain, job.ref.repository};
  if (job.lazy == nullptr || !job.lazy->wantsRoute(source))
    return;
  auto client = makeLazyClient(job, services, policy);
  if (!client) {
    spdlog::warn("{}: no route lent to its layers served from an earlier process: {}", source.str(),
                 client.error().describe());
    return;
  }
  job.lazy->lend(
      source, [made = *client](const Descriptor& layer) { return lazyFetch(made, layer); },
      *client);
}

// Lends a pull's route once its registry answered for the manifest (or, for a tag that did not
// move, for the tag): a route that cannot fetch a manifest is lent to no layer.
class LendRouteOnManifest final : public PullObserver {
 public:
  explicit LendRouteOnManifest(std::function<void()> lend) : lend_(std::move(lend)) {}
  void onManifest(const Descriptor& /*manifest*/,
                  const std::vector<Descriptor>& /*layers*/) override {
    lend();
  }
  void lend() { std::call_once(once_, lend_); }

 private:
  std::function<void()> lend_;
  std::once_flag once_;
};

}  // namespace

PullServices::PullServices(HttpClient& http, Clock& clock, Random& random, SharedPullParts shared)
    : http_(http), clock_(clock), random_(random), shared_(shared) {
  if (shared_.throttle == nullptr)
    own_throttle_.emplace(clock);  // one pull's blob threads share one at least
}

Result<ContentStore*> PullServices::storeFor(const PullRequest& request) {
  if (shared_.store != nullptr && !request.layout)
    return shared_.store;
  if (!own_store_) {
    ASSIGN_OR_RETURN(
        own_store_, ContentStore::open(request.layout ? *request.layout : request.state.content()));
  }
  return own_store_.get();
}

Result<PullOutcome> runPull(const PullRequest& job, PullServices& services) {
  Clock& clock = services.clock();
  const bool layout_only = job.layoutOnly();
  // Checked before anything is opened: a verification writes nowhere but its layout.
  if (job.verify_only && (!job.signature_policy || !layout_only || job.unless_tag_resolves_to))
    return makeError(ErrorCode::kInvalidArgument,
                     "a verification needs a signature policy and a layout for its payloads, "
                     "and takes its verdict whether or not the tag moved");
  // Pulls into the state dir hold its lock shared: gc never collects what they fetch.
  std::optional<StateLock> state_lock;
  if (!layout_only) {
    ASSIGN_OR_RETURN(auto lock, StateLock::acquire(job.state, StateLock::Mode::kShared));
    state_lock.emplace(std::move(lock));
  }
  ASSIGN_OR_RETURN(ContentStore * store, services.storeFor(job));
  // Who served each blob, and what each layer decompresses to: kept beside the store the blobs
  // are in (an OCI layout of the caller's has its own; it never takes part in layer snapshots).
  ProvenanceStore provenance(job.layout ? *job.layout / ".pullagent-provenance"
                                        : job.state.provenance());
  RETURN_IF_ERROR(provenance.prepare());

  RetryPolicy policy;
  policy.max_attempts = job.retries;
  SourceTally& tally = services.tally();
  ASSIGN_OR_RETURN(auto sources, pullSources(job, services.http(), clock));
  if (sources->sources().size() > 1)
    spdlog::info("{} is fetched from {}", job.ref.domain, sources->describe());
  RegistryClient registry(clock, services.random(), policy, job.ref.repository, sources->sources(),
                          &services.throttle(), &tally);
  registry.setRanges(job.ranges);
  // Lazy layers an earlier process served, which running containers may read, take the newest
  // route of their repository that proved itself: this pull's, once the registry answered for
  // its tag or manifest (whatever it pulls: the tag may have moved). A pull whose credentials
  // or route fail lends nothing.
  const bool lends_route = job.lazy != nullptr && !layout_only && !job.verify_only;
  LendRouteOnManifest lend_route([&] { lendLazyRoute(job, services, policy); });
  TransferCounter counter;

  // A reference pinned by digest, or held at the digest its tag resolved to (a check at start),
  // is checked the same way: its registry still serves it. That lends a route to its layers
  // read in place (a restart, LazyLayerHost).
  if (job.unless_tag_resolves_to && (job.ref.tag || job.ref.digest)) {
    // Bounded on its own: a registry that hangs the check holds the site's refresh (and its
    // share of the refresh requests) for two document timeouts at most, not the attempt's.
    Context check{&clock, job.stop, clock.now() + kTagCheckDeadline};
    if (job.deadline)
      check.deadline = std::min(*check.deadline, clock.now() + *job.deadline);
    const std::string reference =
        job.options.resolve_at ? job.options.resolve_at->str() : job.ref.manifestReference();
    ASSIGN_OR_RETURN(auto now_at, registry.resolveTag(reference, check));
    const BlobSource source{job.ref.domain, job.ref.repository};
    const bool same = now_at == *job.unless_tag_resolves_to;
    // Under a signature policy, unchanged only when the policy of now accepted it already.
    const bool trusted = !job.signature_policy ||
                         (services.verdicts() != nullptr &&
                          services.verdicts()->accepted(
                              *job.signature_policy, job.ref, now_at, job.options.platform.str(),
                              std::chrono::system_clock::to_time_t(clock.wallNow())));
    if (same && trusted &&
        imageSources(store->root(), provenance, now_at, &job.options.platform).count(source) != 0) {
      spdlog::info("{} still points at {}: nothing to pull", job.ref.str(), now_at.str());
      PullOutcome outcome;
      outcome.sources = tally.totals();
      outcome.unchanged = true;
      outcome.published = "unchanged (" + now_at.str() + ")";
      if (lends_route)
        lend_route.lend();
      return outcome;
    }
    if (same && !trusted) {
      spdlog::info(
          "{} still points at {}; the signature policy has no verdict on it that still holds: "
          "pulled again to check",
          job.ref.str(), now_at.str());
    } else if (same) {
      // Published before sources were recorded (or its records were lost): what the site runs
      // is proven to be its registry's before it counts as unchanged.
      spdlog::info(
          "{} still points at {}, which has no record of coming from {}: pulled again "
          "to prove it",
          job.ref.str(), now_at.str(), source.str());
    } else {
      spdlog::info("{} moved to {}", job.ref.str(), now_at.str());
    }
  }

  // The pull stops on SIGTERM/SIGINT, or when the unpack running beside it fails.
  std::stop_source pull_stop;
  std::stop_callback forward_signal(job.stop, [&] { pull_stop.request_stop(); });
  std::optional<ImagePublisher> publisher;
  std::optional<SnapshotStore> snapshots;
  if (job.snapshots && job.form == PublishForm::kBundle && !job.layout) {
    snapshots.emplace(job.state.snapshots());
    RETURN_IF_ERROR(snapshots->prepare());
  }
  if (!layout_only) {
    ApplyOptions apply;
    apply.privileged = job.privileged;
    publisher.emplace(
        *store, provenance,
        [&job](const PulledImage& image) {
          return job.target ? *job.target : job.state.image(image.manifest.digest);
        },
        job.form, apply, pull_stop, /*reuse_existing=*/!job.target, job.runtime,
        snapshots ? &*snapshots : nullptr);
  }
  std::vector<PullObserver*> watching{&counter};
  if (publisher)
    watching.push_back(&*publisher);
  if (lends_route)
    watching.push_back(&lend_route);
  watching.insert(watching.end(), job.observers.begin(), job.observers.end());
  ObserverList observers(std::move(watching));
  BlobSharing sharing;
  sharing.provenance = &provenance;
  sharing.proof = job.shared_blob_proof;
  sharing.snapshots = snapshots ? &*snapshots : nullptr;
  sharing.stores = &job.additional_stores;
  std::shared_ptr<LazyClient> lazy_client;
  const BlobSource lazy_source{job.ref.domain, job.ref.repository};
  std::vector<Digest> served_in_place;
  std::mutex lazy_mutex;  // the image's layers are served on several threads at once
  // Whatever happens, the host learns that this pull no longer holds what it served.
  struct ReleaseServed {
    LazyLayerHost* host;
    const BlobSource& source;
    std::vector<Digest>& served;
    ~ReleaseServed() {
      if (host != nullptr && !served.empty()) {
        LazyBundle released;
        released.source = source;
        released.served = served;
        host->finishPull(std::move(released), false);
      }
    }
  } release_served{job.lazy, lazy_source, served_in_place};
  if (job.lazy != nullptr && snapshots && !job.target && !job.verify_only) {
    sharing.already_served = [&](const Descriptor& layer) {
      return job.lazy->serves(lazy_source, layer.digest);
    };
    sharing.serve_in_place = [&](const PulledImage& image, const Descriptor& layer,
                                 const Context& serve_ctx) -> Result<std::string> {
      // An image published already is reused as it is, and this pull must prove its layers
      // are its repository's as for any stored blob (ImagePuller::obtain): pulled as today.
      // Unless the host serves the layer for this very repository already (a pull of it
      // served it, in this process or the one before): this pull holds it as it is.
      if (isPublished(job.state, image.manifest.digest) &&
          !job.lazy->serves(lazy_source, layer.digest)) {
        return makeError(ErrorCode::kUnsupported,
                         "published already; its layers are proven as for any pull");
      }
      std::shared_ptr<LazyClient> client;
      {
        std::lock_guard lock(lazy_mutex);
        if (!lazy_client) {
          ASSIGN_OR_RETURN(lazy_client, makeLazyClient(job, services, policy));
        }
        client = lazy_client;
      }
      ASSIGN_OR_RETURN(auto root, job.lazy->serve(lazy_source, layer, lazyFetch(client, layer),
                                                  client, serve_ctx));
      std::lock_guard lock(lazy_mutex);
      served_in_place.push_back(layer.digest);
      return root.string();
    };
  }
  ImagePuller image_puller(registry, *store, &observers, sharing);

  Context ctx{&clock, pull_stop.get_token(), std::nullopt};
  if (job.deadline)
    ctx.deadline = clock.now() + *job.deadline;
  PullOptions options = job.options;
  std::optional<SignatureVerdict> accepted;
  if (job.verify_only)
    options.stop_after_verify = true;
  if (job.signature_policy) {
    options.verify = [&](const std::optional<Descriptor>& index, const Descriptor& manifest,
                         const Context& verify_ctx) -> Status {
      TrustPolicy::Report report;
      auto verdict =
          job.signature_policy->verify(registry, *store, job.ref, SignedSubjects{index, manifest},
                                       verify_ctx, &report, &services.http());
      VerdictCache* verdicts = services.verdicts();
      if (!verdict) {
        if (job.refused_by_signature_policy != nullptr)
          *job.refused_by_signature_policy = report.refused;
        if (job.refusing_check != nullptr)
          *job.refusing_check = report.check;
        const bool stopped = verdict.error().code == ErrorCode::kCancelled;
        if (verdicts != nullptr && !stopped)
          verdicts->count(report.refused ? "refused" : "error",
                          report.check.empty() ? "registry" : report.check);
        return verdict.error();
      }
      if (verdicts != nullptr) {
        verdicts->remember(*job.signature_policy, job.ref, index ? index->digest : manifest.digest,
                           job.options.platform.str(), verdict->holds_until);
        verdicts->count("accepted", "none");
        for (const auto& check : verdict->logged_checks)
          verdicts->count("logged", check);
      }
      accepted = std::move(verdict).value();
      return {};
    };
  }
  spdlog::info("Pulling image {}", job.ref.str());
  const auto started = clock.now();
  auto image = image_puller.pull(job.ref, options, ctx);
  observers.onPullDone();
  if (publisher) {
    Status pull_status = image ? Status{} : Status{image.error()};
    if (job.target && job.form == PublishForm::kBundle) {
      RETURN_IF_ERROR(finishBundleOutside(*publisher, job, image ? &image.value() : nullptr,
                                          pull_status, snapshots.has_value()));
    } else {
      RETURN_IF_ERROR(publisher->finish(image ? &image.value() : nullptr, pull_status));
    }
  } else if (!image) {
    return image.error();
  }
  if (job.verify_only) {
    PullOutcome outcome;
    outcome.published = "nothing (verified only)";
    outcome.seconds = std::chrono::duration<double>(clock.now() - started).count();
    outcome.sources = tally.totals();
    outcome.image = std::move(image.value());
    outcome.verdict = std::move(accepted);
    return outcome;
  }

  const std::string ref_name = job.ref.tag ? *job.ref.tag : image->manifest.digest.str();
  if (auto status = recordInOciLayout(store->root(), image->manifest, ref_name, job.ref.str());
      !status) {
    return status.error();
  }
  PullOutcome outcome;
  outcome.published = "OCI layout " + store->root().string() + " (ref name " + ref_name + ")";
  if (publisher) {
    outcome.published = (job.form == PublishForm::kRootfs ? "rootfs " : "bundle ") +
                        publisher->target().string() +
                        (publisher->reused() ? " (already published)" : "");
  }
  outcome.seconds = std::chrono::duration<double>(clock.now() - started).count();
  outcome.transferred = counter.bytes();
  outcome.layers_in_place = static_cast<int>(image->in_place.size());
  if (job.lazy != nullptr && !served_in_place.empty()) {
    // Published over the layers served in place: promoted once they are filled. A bundle
    // another pull published (reused) is that pull's to promote.
    LazyBundle bundle;
    bundle.dir = job.state.image(image->manifest.digest);
    bundle.source = lazy_source;
    bundle.layers = image->layers;
    bundle.diff_ids = image->diff_ids;
    bundle.apply.privileged = job.privileged;
    bundle.served = std::exchange(served_in_place, {});
    const bool tracked = publisher && !publisher->reused() && !image->in_place.empty();
    job.lazy->finishPull(std::move(bundle), tracked);
    if (tracked)
      outcome.published += " (" + std::to_string(outcome.layers_in_place) +
                           " layers read in place until they are fetched)";
  }
  if (publisher) {
    outcome.snapshots_reused = publisher->snapshotsReused();
    outcome.snapshots_unpacked = publisher->snapshotsUnpacked();
    outcome.snapshots_over_lower = publisher->snapshotsOverLower();
  }
  outcome.sources = tally.totals();
  outcome.image = std::move(image.value());
  outcome.verdict = std::move(accepted);
  spdlog::info("Pull image successful, time taken {:.2f} s", outcome.seconds);
  return outcome;
}

}  // namespace pullagent::puller
