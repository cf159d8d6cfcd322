#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "base/clock.h"
#include "base/random.h"
#include "puller/auth/authorizer.h"
#include "puller/http/http_client.h"
#include "puller/http/registry_throttle.h"
#include "puller/http/retry.h"
#include "puller/oci/manifest.h"
#include "puller/oci/pull_observer.h"
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
// and redirects, every request authorised through the Authorizer.
class RegistryClient {
 public:
  // With `throttle`, every request waits for the registry host's turn there, and a 429 or 503
  // with Retry-After pauses every pull to that host (not only this one's retries).
  RegistryClient(HttpClient& http, Authorizer& authorizer, Clock& clock, Random& random,
                 RetryPolicy policy, RegistryEndpoint endpoint,
                 RegistryThrottle* throttle = nullptr);

  const RegistryEndpoint& endpoint() const { return endpoint_; }

  // GET /v2/<repo>/manifests/<reference>. By digest the bytes must hash to it; by tag the
  // digest is computed from the bytes (and must agree with Docker-Content-Digest when sent).
  Result<FetchedManifest> fetchManifest(const std::string& reference,
                                        const std::optional<Digest>& expected, const Context& ctx);

  // What a tag points at now, for the cheapest check that it moved: HEAD
  // /v2/<repo>/manifests/<tag> and its Docker-Content-Digest (one request). A registry that
  // refuses HEAD (405, 501) or answers it without a valid digest gets the GET of
  // fetchManifest instead, and the digest is that of the bytes.
  Result<Digest> resolveTag(const std::string& tag, const Context& ctx);

  // Downloads a blob into `store` unless it is already there. Resumes partial ingests with
  // Range, retries transient failures, verifies size and digest before the blob is visible.
  Status fetchBlob(const Descriptor& blob, ContentStore& store, BlobObserver* observer,
                   const Context& ctx);

 private:
  // One request with the Authorizer in the loop: on a 401 the challenge is learnt (or a refused
  // token dropped) and the request sent once more.
  Result<HttpResponse> sendAuthorized(HttpRequest request, const Context& ctx);
  // A 429 or 503 told the host to slow down: pause every pull to it (throttle_ set).
  void throttleHost(const HttpResponse& response);
  Status fetchBlobOnce(const Descriptor& blob, Ingest& ingest, BlobObserver* observer,
                       const Context& ctx);
  std::string url(const std::string& kind, const std::string& reference) const;

  HttpClient& http_;
  Authorizer& authorizer_;
  Clock& clock_;
  Random& random_;
  RetryPolicy policy_;
  RegistryEndpoint endpoint_;
  RegistryThrottle* throttle_;
};

}  // namespace pullagent::puller
