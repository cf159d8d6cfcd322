#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/random.h"
#include "puller/auth/authorizer.h"
#include "puller/http/http_client.h"
#include "puller/http/registry_throttle.h"
#include "puller/http/retry.h"
#include "puller/oci/manifest.h"
#include "puller/oci/pull_observer.h"
#include "puller/registry/blob_ranges.h"
#include "puller/registry/registry_source.h"
#include "puller/store/content_store.h"

namespace pullagent::puller {

struct RegistryEndpoint {
  std::string scheme = "https";  // "http" only for a registry explicitly marked insecure
  std::string host;              // host[:port] of the registry API
  std::string repository;
};

struct FetchedManifest {
  std::string bytes;
  std::string media_type;  // Content-Type without parameters
  Digest digest;           // sha256 of the bytes as received
};

// The registry API (distribution spec v2 / OCI distribution) for one repository: manifests by
// tag or digest with verification, blobs streamed into the content store with retry, resume
// and redirects, every request authorised through its source's Authorizer.
//
// Content comes from the sources in order, the origin last. A mirror gets one try per request:
// any failure there (connect, TLS, an HTTP error, a body cut short, bytes that do not verify)
// falls through to the next source; only the origin's failures are retried, with backoff.
// Tags are resolved only at sources that may resolve; whatever is fetched by digest is
// verified wherever it came from.
//
// A mirror that times out is passed over for the rest of the pull (said once in the log; each
// request that skips it counts as a "passed_over" fallback).
class RegistryClient {
 public:
  // With `throttle`, every request waits for its host's turn there, and a 429 or 503 with
  // Retry-After pauses every pull to that host (not only this one's retries). A mirror that is
  // paused is passed over instead of waited for. `tally` (optional) counts what came from where.
  RegistryClient(Clock& clock, Random& random, RetryPolicy policy, std::string repository,
                 std::vector<RegistrySource> sources, RegistryThrottle* throttle = nullptr,
                 SourceTally* tally = nullptr);
  // The origin alone.
  RegistryClient(HttpClient& http, Authorizer& authorizer, Clock& clock, Random& random,
                 RetryPolicy policy, RegistryEndpoint endpoint,
                 RegistryThrottle* throttle = nullptr);

  // GET /v2/<repo>/manifests/<reference>. By digest the bytes must hash to it; by tag the
  // digest is computed from the bytes (and must agree with Docker-Content-Digest when sent).
  Result<FetchedManifest> fetchManifest(const std::string& reference,
                                        const std::optional<Digest>& expected, const Context& ctx);

  // GET /v2/<repo>/referrers/<subject>?artifactType=<type> (OCI distribution 1.1): the image
  // index pages listing the manifests that refer to `subject`, following Link rel="next" for at
  // most kMaxReferrerPages pages on the same host. nullopt when the registry has no referrers
  // API (404, 405, 501: Debian's docker-registry 2.8), so that the caller reads the tag schema's
  // "sha256-<hex>" index instead. Asked of the sources that may resolve tags (the list changes
  // as signatures are pushed), with the pull's credentials.
  static constexpr int kMaxReferrerPages = 4;
  Result<std::optional<std::vector<std::string>>> fetchReferrers(const Digest& subject,
                                                                 std::string_view artifact_type,
                                                                 const Context& ctx);

  // What a tag points at now, for the cheapest check that it moved: HEAD
  // /v2/<repo>/manifests/<tag> and its Docker-Content-Digest (one request); given a digest,
  // that the registry still serves it. A registry that
  // refuses HEAD (405, 501) or answers it without a valid digest gets the GET of
  // fetchManifest instead, and the digest is that of the bytes.
  Result<Digest> resolveTag(const std::string& tag, const Context& ctx);

  // Blobs of at least two parts are fetched in ranges over several connections (blob_ranges.h):
  // the parts side by side, each cut part asked again for its rest alone, one stream where the
  // server ignores Range. One stream for every blob unless set.
  void setRanges(const RangeSettings& ranges) { ranges_ = ranges; }

  // Downloads a blob into `store` unless it is already there. Resumes partial ingests with
  // Range, retries transient failures, verifies size and digest before the blob is visible.
  // Bytes a mirror delivered before it failed are kept and the next source asked for the
  // rest; should the whole then not verify, the blob is fetched again from byte 0 from the
  // sources that did not take part (the origin at last).
  struct BlobFetchOptions {
    // Download and verify the blob although the store holds it (the stored copy came from
    // another registry and proves nothing for this one).
    bool even_if_stored = false;
    // From the origin alone, never a mirror.
    bool origin_only = false;
    // Asked once this call holds the blob's ingest (another pull of the same source may have
    // proven the blob while it waited): true ends the call without downloading.
    std::function<bool()> proven_meanwhile;
    // Set to whether this call verified bytes it downloaded itself, rather than finding the
    // blob stored (or proven) by another pull while it waited.
    bool* fetched_here = nullptr;
    // Called once the downloaded bytes verified, before the blob is visible in the store and
    // while the ingest file is still in place and held: what a pull that then finds the blob,
    // or waits for the ingest (proven_meanwhile), sees.
    std::function<void()> on_verified;
  };
  Status fetchBlob(const Descriptor& blob, ContentStore& store, BlobObserver* observer,
                   const Context& ctx, const BlobFetchOptions& options);
  Status fetchBlob(const Descriptor& blob, ContentStore& store, BlobObserver* observer,
                   const Context& ctx) {
    return fetchBlob(blob, store, observer, ctx, BlobFetchOptions{});
  }

  // Bytes [first, last] of a blob, with one Range request at a source that may serve it
  // (mirrors first, as fetchBlob), every byte of the answer checked against the range asked
  // for: a 206 with exactly that Content-Range and length. A server that ignores Range
  // (answers 200) is kUnsupported: reading a blob in place needs Range. The bytes are not
  // verified here: the caller checks them against what the digest-verified manifest names.
  static constexpr int64_t kMaxRangeBytes = int64_t{64} << 20;
  Result<std::string> fetchRange(const Descriptor& blob, int64_t first, int64_t last,
                                 const Context& ctx);

  // HEAD /v2/<repo>/blobs/<digest> at the origin with the pull's credentials: succeeds when the
  // registry answers 200 with the blob's size, i.e. it links the blob into this repository for
  // these credentials. Mirrors are not asked: whether they check access is not known.
  Status headBlob(const Descriptor& blob, const Context& ctx);

 private:
  // One request with the source's Authorizer in the loop: on a 401 the challenge is learnt (or
  // a refused token dropped) and the request sent once more.
  Result<HttpResponse> sendAuthorized(const RegistrySource& source, HttpRequest request,
                                      const Context& ctx);
  // A 429 or 503 told the host to slow down: pause every pull to it (throttle_ set).
  void throttleHost(const RegistrySource& source, const HttpResponse& response);
  // Tries `attempt` at each mirror that `eligible` admits (by index), in order, until one
  // succeeds, and at last at the origin: one try at a mirror, the retry loop at the origin.
  // `after_mirror_failure` sees each mirror's failure before the next source is tried.
  Status trySources(const std::string& what, const std::function<bool(size_t)>& eligible,
                    const Context& ctx,
                    const std::function<AttemptOutcome(const RegistrySource&)>& attempt,
                    const std::function<void(const Error&)>& after_mirror_failure = {});
  AttemptOutcome manifestAttempt(const RegistrySource& source, const std::string& reference,
                                 const std::optional<Digest>& expected, FetchedManifest& fetched,
                                 const Context& ctx);
  Status fetchBlobOnce(const RegistrySource& source, const Descriptor& blob, Ingest& ingest,
                       BlobObserver* observer, const Context& ctx);
  // The missing bytes of `parts` over one connection per part (registry_client_ranges.cpp);
  // what arrived without a gap from the start joins the ingest's verified prefix.
  Status fetchBlobRanges(const RegistrySource& source, const Descriptor& blob, Ingest& ingest,
                         BlobParts& parts, BlobObserver* observer, const Context& ctx);
  std::string url(const RegistrySource& source, const std::string& kind,
                  const std::string& reference) const;
  const RegistrySource& origin() const { return sources_.back(); }

  // A mirror that timed out (stalled, or never answered) is passed over for the rest of the
  // pull: each later request would wait the whole stall timeout for it again.
  bool passedOver(size_t index) const;
  void passOver(size_t index, const Error& why);

  Clock& clock_;
  Random& random_;
  RetryPolicy policy_;
  std::string repository_;
  std::vector<RegistrySource> sources_;
  RegistryThrottle* throttle_;
  SourceTally* tally_;
  RangeSettings ranges_{1, RangeSettings{}.min_part};
  mutable std::mutex passed_over_mutex_;
  std::set<size_t> passed_over_;
};

}  // namespace pullagent::puller
