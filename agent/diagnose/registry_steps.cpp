#include <filesystem>
#include <limits>

#include "agent/diagnose/walk.h"
#include "base/redact.h"
#include "puller/http/redirects.h"
#include "puller/oci/manifest.h"
#include "puller/pipeline/image_puller.h"
#include "puller/registry/registry_client.h"
#include "puller/store/content_store.h"

namespace pullagent::agent::walk {
namespace {

const std::vector<std::string_view> kBlobSteps = {"registry.blob", "dns.data-endpoint",
                                                  "http.data-endpoint"};

int64_t saturatingAdd(int64_t a, int64_t b) {
  return b > std::numeric_limits<int64_t>::max() - a ? std::numeric_limits<int64_t>::max() : a + b;
}

// Whether the state dir's store holds `blob` already (read-only: a stat of its committed file).
bool stored(const Walk& walk, const puller::Descriptor& blob) {
  std::error_code error;
  const auto path =
      puller::ContentStore::blobsDir(walk.agent.state_dir.content()) / blob.digest.hex();
  const auto size = std::filesystem::file_size(path, error);
  return !error && static_cast<int64_t>(size) == blob.size;
}

std::optional<puller::ImageManifest> manifestStep(Walk& walk, puller::RegistryClient& client) {
  walk.log.begin();
  const puller::ImageRef& image = walk.container.image;
  const std::string reference = image.manifestReference();
  auto fetched = client.fetchManifest(reference, image.digest, walk.ctx);
  if (!fetched) {
    std::string fix;
    if (fetched.error().code == ErrorCode::kNotFound) {
      fix = image.tag && !image.digest
                ? "push " + image.str() + ", or point the site at a tag that " + image.repository +
                      " has"
                : "push the image, or point the site at a digest the "
                  "repository has";
    } else if (fetched.error().code == ErrorCode::kUnauthenticated ||
               fetched.error().code == ErrorCode::kPermissionDenied) {
      fix = credentialsFix(walk, fetched.error());
    } else {
      fix = "the registry fails to serve the manifest: try again later";
    }
    walk.log.failed("registry.manifest", fetched.error(), fix);
    return std::nullopt;
  }
  auto document = puller::parseManifest(fetched->bytes, fetched->media_type);
  if (!document) {
    walk.log.failed("registry.manifest", document.error(),
                    "push the image again with a current Docker or OCI client");
    return std::nullopt;
  }
  std::string said = safeEscaped(reference) + " -> " + fetched->digest.str() + " (" +
                     safeEscaped(fetched->media_type) + ")";
  walk.findings.manifest_digest = fetched->digest.str();
  if (auto* index = std::get_if<puller::ImageIndex>(&document.value())) {
    const puller::Platform want = puller::PullOptions{}.platform;
    std::vector<std::string> platforms;
    for (const auto& entry : index->manifests) {
      if (entry.platform)
        platforms.push_back(safeEscaped(entry.platform->str()));
      if (platforms.size() == 16)
        break;
    }
    said += ", platforms " + joined(platforms);
    auto chosen = puller::selectPlatform(*index, want);
    if (!chosen) {
      walk.log.failed("registry.manifest",
                      makeError(ErrorCode::kNotFound, said + ": none is " + want.str()),
                      "build and push the image for " + want.str() +
                          " (docker buildx build --platform " + want.str() + ")");
      return std::nullopt;
    }
    auto platform = client.fetchManifest(chosen->digest.str(), chosen->digest, walk.ctx);
    if (!platform) {
      walk.log.failed("registry.manifest", platform.error(),
                      platform.error().code == ErrorCode::kNotFound
                          ? "the index lists a manifest the registry does not serve: push the "
                            "image again"
                          : "the registry fails to serve the platform's manifest: try again "
                            "later");
      return std::nullopt;
    }
    document = puller::parseManifest(platform->bytes, platform->media_type);
    if (!document || !std::holds_alternative<puller::ImageManifest>(document.value())) {
      walk.log.failed("registry.manifest",
                      document ? makeError(ErrorCode::kUnsupported, "an index inside an index")
                               : document.error(),
                      "push the image again with a current Docker or OCI client");
      return std::nullopt;
    }
    said += "; " + want.str() + " -> " + chosen->digest.str();
    walk.findings.manifest_digest = chosen->digest.str();
  }
  auto manifest = std::get<puller::ImageManifest>(std::move(document.value()));
  int64_t bytes = manifest.config.size;
  for (const auto& layer : manifest.layers)
    bytes = saturatingAdd(bytes, layer.size);
  said += ", " + std::to_string(manifest.layers.size()) + " layers, " + std::to_string(bytes) +
          " bytes compressed";
  walk.log.ok("registry.manifest", said);
  return manifest;
}

// GETs `url` and stops at the headers: a 2xx answer's body is never read (the transfer is
// ended at its first bytes); a redirect's or an error's is, up to kMaxErrorBody.
Result<puller::HttpResponseHead> headOnly(Walk& walk, const std::string& url,
                                          std::optional<Secret> authorization,
                                          const std::vector<puller::HttpHeader>& headers) {
  puller::HttpRequest request;
  request.url = url;
  request.authorization = std::move(authorization);
  request.headers = headers;
  request.headers.push_back({"Range", "bytes=0-0"});
  std::optional<puller::HttpResponseHead> head;
  request.on_head = [&](const puller::HttpResponseHead& seen) -> Status {
    head = seen;
    return makeError(ErrorCode::kCancelled, "the headers are all a diagnosis needs");
  };
  request.on_body = [](std::string_view) -> Status { return {}; };
  auto response = walk.http().send(request, walk.ctx);
  if (head)
    return *head;
  if (!response)
    return response.error();
  return static_cast<puller::HttpResponseHead>(*response);
}

void dataEndpointSteps(Walk& walk, const puller::Url& target) {
  if (!dnsStep(walk, "dns.data-endpoint", target.host)) {
    skipRest(walk.log, {"http.data-endpoint"}, "dns.data-endpoint failed");
    return;
  }
  walk.log.begin();
  auto answer = headOnly(walk, target.str(), std::nullopt, {});
  if (!answer) {
    walk.log.failed(
        "http.data-endpoint", answer.error().context(target.hostPort()),
        "make " + target.host + " reachable from this host" +
            (walk.site.pull_over_vnet ? " through the VNet (the data endpoint's private endpoint)"
                                      : "") +
            ": allow it in the firewall");
    return;
  }
  const int status = answer->status;
  if (status != 200 && status != 206) {
    walk.log.failed(
        "http.data-endpoint",
        makeError(status == 403 ? ErrorCode::kPermissionDenied : ErrorCode::kUnavailable,
                  target.hostPort() + " answered HTTP " + std::to_string(status)),
        status == 403 ? "the data endpoint " + target.host +
                            " refuses this host: allow the route's address in the registry's "
                            "networking rules"
                      : "the data endpoint " + target.host + " is failing: try again later");
    return;
  }
  walk.log.ok("http.data-endpoint", target.hostPort() + " answered HTTP " + std::to_string(status));
}

void blobSteps(Walk& walk, const puller::Descriptor& layer) {
  walk.log.begin();
  const std::string url = walk.origin->scheme + "://" + walk.origin->host + walk.origin->api_root +
                          "/" + walk.container.image.repository + "/blobs/" + layer.digest.str();
  std::optional<Secret> authorization;
  if (auto parsed = puller::Url::parse(url)) {
    auto header =
        walk.origin->authorizer->authorize(*parsed, walk.container.image.pullScope(), walk.ctx);
    if (header && *header)
      authorization = **header;
  }
  auto head = headOnly(walk, url, authorization, walk.origin->headers);
  const std::vector<std::string_view> after = {"dns.data-endpoint", "http.data-endpoint"};
  if (!head) {
    walk.log.failed("registry.blob", head.error().context(layer.digest.str()),
                    "the registry fails to serve its blobs: try again later");
    skipRest(walk.log, after, "registry.blob failed");
    return;
  }
  const int status = head->status;
  if (status == 200 || status == 206) {
    walk.log.ok("registry.blob", layer.digest.str() + ": served by the registry itself (HTTP " +
                                     std::to_string(status) + ")");
    skipRest(walk.log, after, "no redirect");
    return;
  }
  auto location = head->header("Location");
  if (status < 300 || status >= 400 || !location) {
    const bool refused = status == 401 || status == 403;
    Error error = makeError(refused         ? ErrorCode::kPermissionDenied
                            : status == 404 ? ErrorCode::kNotFound
                                            : ErrorCode::kUnavailable,
                            layer.digest.str() + ": HTTP " + std::to_string(status));
    walk.log.failed("registry.blob", error,
                    refused         ? credentialsFix(walk, error)
                    : status == 404 ? "the registry lists a layer it does not have: push the "
                                      "image again"
                                    : "the registry fails to serve its blobs: try again later");
    skipRest(walk.log, after, "registry.blob failed");
    return;
  }
  auto target = puller::Url::resolve(url, *location);
  if (!target) {
    walk.log.failed("registry.blob", target.error(), "the registry redirects to a malformed URL");
    skipRest(walk.log, after, "registry.blob failed");
    return;
  }
  // As a pull: never from https down to plain http (the URL's SAS would travel in clear).
  if (walk.origin->scheme == "https" && target->scheme != "https") {
    walk.log.failed(
        "registry.blob",
        makeError(ErrorCode::kUntrusted, layer.digest.str() + ": redirected to plain http " +
                                             safeEscaped(redactUrl(target->str()), 200)),
        "the registry redirects its blobs to plain http: serve them over https");
    skipRest(walk.log, after, "registry.blob failed");
    return;
  }
  walk.log.ok("registry.blob", layer.digest.str() + ": HTTP " + std::to_string(status) + " to " +
                                   safeEscaped(redactUrl(target->str()), 200));
  if (target->sameOrigin(walk.registry)) {
    skipRest(walk.log, after, "redirected to the registry itself");
    return;
  }
  dataEndpointSteps(walk, target.value());
}

}  // namespace

void registrySteps(Walk& walk) {
  puller::RetryPolicy policy;
  policy.max_attempts = 2;
  puller::RegistryClient client(walk.services.clock, walk.services.random, policy,
                                walk.container.image.repository, {*walk.origin});
  auto manifest = manifestStep(walk, client);
  if (!manifest) {
    skipRest(walk.log,
             {"registry.config", "registry.blob", "dns.data-endpoint", "http.data-endpoint"},
             "registry.manifest failed");
    return;
  }
  walk.findings.manifest_read = true;
  if (!stored(walk, manifest->config))
    walk.findings.missing_bytes = saturatingAdd(walk.findings.missing_bytes, manifest->config.size);
  for (const auto& layer : manifest->layers) {
    if (!stored(walk, layer))
      walk.findings.missing_bytes = saturatingAdd(walk.findings.missing_bytes, layer.size);
  }

  walk.log.begin();
  if (auto head = client.headBlob(manifest->config, walk.ctx); !head) {
    const ErrorCode code = head.error().code;
    walk.log.failed("registry.config", head.error(),
                    code == ErrorCode::kNotFound
                        ? "the registry lists the image but not its config blob " +
                              manifest->config.digest.str() + ": push the image again"
                    : code == ErrorCode::kUnauthenticated || code == ErrorCode::kPermissionDenied
                        ? credentialsFix(walk, head.error())
                        : "the registry fails to serve its blobs: try again later");
  } else {
    walk.log.ok("registry.config", manifest->config.digest.str() + ", " +
                                       std::to_string(manifest->config.size) + " bytes");
  }
  if (manifest->layers.empty()) {
    skipRest(walk.log, kBlobSteps, "the image has no layers");
    return;
  }
  blobSteps(walk, manifest->layers.front());
}

}  // namespace pullagent::agent::walk
