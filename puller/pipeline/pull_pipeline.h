#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/random.h"
#include "puller/auth/authorizer.h"
#include "puller/http/curl_http_client.h"
#include "puller/http/registry_throttle.h"
#include "puller/lazy/lazy_host.h"
#include "puller/pipeline/blob_reuse.h"
#include "puller/pipeline/image_puller.h"
#include "puller/registry/blob_ranges.h"
#include "puller/registry/registry_source.h"
#include "puller/state/state_dir.h"
#include "puller/trust/trust_policy.h"
#include "puller/trust/verdict_cache.h"
#include "puller/unpack/image_publisher.h"

namespace pullagent::puller {

// What a pull is asked: the image and the credentials for it, where it comes from, where it
// goes and how. The command line, `--once --site` and the daemon's sites fill one in.
struct PullRequest {
  // The image.
  ImageRef ref;
  PullOptions options;  // platform, download concurrency
  RegistryCredentials credentials;
  // A refresh: when the tag still points at this digest (one HEAD request), nothing is pulled
  // or published and the outcome says `unchanged`. Ignored for a reference pinned by digest.
  std::optional<Digest> unless_tag_resolves_to;

  // Where it comes from. Mirrors and the origin's TLS, the way containerd reads them: a
  // config_path directory of <registry>/hosts.toml (/etc/containerd/certs.d). Unset: the origin
  // alone.
  std::optional<std::filesystem::path> hosts_dir;
  bool allow_skip_verify = false;
  // The options the pull's HTTP client was made with: hosts with TLS settings of their own get
  // clients made from them.
  std::optional<HttpClientOptions> http_options;
  bool insecure = false;
  // How a blob the host holds from another repository of the same registry is proven to be
  // this pull's too (blobs from another registry are always fetched again).
  SharedBlobProof shared_blob_proof = SharedBlobProof::kHead;
  // Read-only stores the host provides, consulted before the network for their registries.
  std::vector<AdditionalStore> additional_stores;
  // The host's signature policies: the image is refused before any blob is fetched unless
  // they accept it. Unset: every image is accepted.
  std::shared_ptr<const TrustPolicy> signature_policy;
  // Set to true when the policy refused the image (rather than the pull failing otherwise), and
  // to the check that decided ("unsigned", "integrity", …).
  bool* refused_by_signature_policy = nullptr;
  std::string* refusing_check = nullptr;
  // Only take the policies' verdict (`pullagent verify`): resolve the manifest, verify, and
  // fetch no config or layer, publish nothing; the outcome's `verdict` says what was decided.
  // Needs a layout (where signature payloads go) and a policy.
  bool verify_only = false;

  // Where it goes.
  StateDir state;  // StateDir::kDefaultRoot unless the caller names another
  std::optional<std::filesystem::path> layout;  // only pull, into this OCI layout
  std::optional<std::filesystem::path> target;  // publish here; else state/images/<digest>
  PublishForm form = PublishForm::kBundle;
  RuntimeOptions runtime;   // the bundle's config.json: the seccomp profile
  bool privileged = false;  // running as root: ownership, devices and capabilities applied
  // Bundles (in the state dir, or a fixed target) unpack each layer once into state/snapshots
  // and describe their root filesystem as an overlay of them (needs root and overlayfs); else
  // each image's rootfs is a plain tree of its own. A rootfs target, and anything pulled into
  // an OCI layout of the caller's (`layout`), is always a plain tree. A fixed bundle target
  // over snapshots is recorded as a gc root (BundleRoots) of the state dir.
  bool snapshots = false;

  // Lazy pulling (issue 28): with a host lent (the service's, whose process outlives the pull),
  // an image published in the state dir over snapshots whose layers are all eStargz is
  // published at once, its layers read in place through the host's FUSE mounts, then filled in
  // the background and promoted to ordinary snapshots. The host keeps a registry client made
  // from this request, which uses the HTTP client and the credentials' token source lent to the
  // pull, and the services' clock and random: `lazy_keep` must keep the first two usable for as
  // long as it holds it, the caller the others for the host's life. Null: every layer is
  // fetched before the image is published.
  LazyLayerHost* lazy = nullptr;
  std::shared_ptr<const void> lazy_keep = nullptr;

  // How.
  int retries = 6;
  // Large blobs over several connections in ranges (puller/registry/blob_ranges.h).
  RangeSettings ranges;
  std::optional<std::chrono::seconds> deadline;
  std::stop_token stop;  // SIGTERM, or the daemon dropping the site
  // See the pull too, in order (progress display, the daemon's site state).
  std::vector<PullObserver*> observers;

  // Only into an OCI layout of the caller's: nothing is unpacked or published, and the state
  // dir is not used at all.
  bool layoutOnly() const { return layout && !target; }
};

// What the pulls of one process share when they run side by side (the service's sites).
struct SharedPullParts {
  // The state dir's store, kept open: pulls of several sites wait for each other's blobs
  // in-process instead of through the ingest file's flock.
  ContentStore* store = nullptr;
  // One host's "slow down" holds every pull to it.
  RegistryThrottle* throttle = nullptr;
  // Where the pull's requests and bytes went, read by the caller even when the pull fails (the
  // service's metrics).
  SourceTally* tally = nullptr;
  // What the signature policy accepted already: a refresh whose tag did not move costs no
  // signature requests unless the policy changed. Null: a refresh under a policy pulls again
  // (its blobs local) to take the verdict.
  VerdictCache* verdicts = nullptr;
};

// What a caller lends a pull: the clients it talks through and, when it runs beside other pulls
// of the process, the parts they share. What is not lent, the pull keeps of its own: a
// command's pull is PullServices(http, clock, random).
class PullServices {
 public:
  PullServices(HttpClient& http, Clock& clock, Random& random, SharedPullParts shared = {});
  PullServices(const PullServices&) = delete;
  PullServices& operator=(const PullServices&) = delete;

  HttpClient& http() const { return http_; }
  Clock& clock() const { return clock_; }
  Random& random() const { return random_; }
  RegistryThrottle& throttle() {
    return shared_.throttle != nullptr ? *shared_.throttle : *own_throttle_;
  }
  SourceTally& tally() { return shared_.tally != nullptr ? *shared_.tally : own_tally_; }
  VerdictCache* verdicts() const { return shared_.verdicts; }
  // The store the request's blobs go to: the lent one for the state dir, else one of its own
  // (an OCI layout of the caller's always has its own), opened on first use and again for a
  // request with another root.
  Result<ContentStore*> storeFor(const PullRequest& request);

 private:
  HttpClient& http_;
  Clock& clock_;
  Random& random_;
  SharedPullParts shared_;
  std::optional<RegistryThrottle> own_throttle_;
  SourceTally own_tally_;
  std::unique_ptr<ContentStore> own_store_;
};

struct PullOutcome {
  bool unchanged = false;  // the refresh found the tag where it was: `image` is empty
  PulledImage image;
  std::string published;  // what and where, for people
  double seconds = 0;
  int64_t transferred = 0;       // bytes received, including those fetched again after a resume
  int snapshots_reused = 0;      // layer snapshots already there
  int snapshots_unpacked = 0;    // layer snapshots this pull made
  int snapshots_over_lower = 0;  // of those, made over the layers below (not side by side)
  int layers_in_place = 0;       // layers read in place (lazy pulling), not fetched yet
  // Requests and bytes from mirrors and the origin, fallbacks from mirrors, throttled time.
  SourceTally::Totals sources;
  // The signature policies' verdict, when they accepted the image (none for an unmoved tag).
  std::optional<SignatureVerdict> verdict;
};

// The pull pipeline: the registry client behind the authorizer, the image puller's download
// pool filling the content store, and (unless the request is layout-only) the image publisher
// unpacking each layer the moment it is verified while later ones still download, then
// publishing atomically. Holds the state dir's lock shared for the whole pull.
Result<PullOutcome> runPull(const PullRequest& request, PullServices& services);

}  // namespace pullagent::puller
