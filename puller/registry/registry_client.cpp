#include "puller/registry/registry_client.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <optional>

#include "base/redact.h"
#include "puller/http/redirects.h"
#include "puller/http/registry_errors.h"
#include "puller/oci/sha256.h"

namespace pullagent::puller {
namespace {

// "bytes <start>-<end>/<total|*>": the start must be where we resume and the total (when
// given) the blob's size; anything else would splice wrong bytes into the blob.
Status checkContentRange(const std::optional<std::string>& header, int64_t offset, int64_t size) {
  if (!header) {
    return makeError(ErrorCode::kProtocol, "206 answer without Content-Range");
  }
  std::string_view value = *header;
  if (!value.starts_with("bytes ")) {
    return makeError(ErrorCode::kProtocol, "unexpected Content-Range \"" + *header + "\"");
  }
  value.remove_prefix(6);
  int64_t start = -1;
  int64_t end = -1;
  auto dash = value.find('-');
  auto slash = value.find('/');
  if (dash == std::string_view::npos || slash == std::string_view::npos || slash < dash) {
    return makeError(ErrorCode::kProtocol, "malformed Content-Range \"" + *header + "\"");
  }
  auto number = [](std::string_view text, int64_t& out) {
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    return ec == std::errc() && ptr == text.data() + text.size();
  };
  auto total = value.substr(slash + 1);
  int64_t total_value = -1;
  if (!number(value.substr(0, dash), start) ||
      !number(value.substr(dash + 1, slash - dash - 1), end) ||
      (total != "*" && !number(total, total_value))) {
    return makeError(ErrorCode::kProtocol, "malformed Content-Range \"" + *header + "\"");
  }
  if (start != offset || end < start || end >= size || (total_value >= 0 && total_value != size)) {
    return makeError(ErrorCode::kProtocol, "Content-Range \"" + *header + "\" does not match the " +
                                               "request for bytes " + std::to_string(offset) +
                                               "- of a " + std::to_string(size) + "-byte blob");
  }
  return {};
}

// How long a 429 without Retry-After quiets its host for every pull.
constexpr std::chrono::milliseconds kThrottlePauseWithoutRetryAfter{1000};

}  // namespace

RegistryClient::RegistryClient(HttpClient& http, Authorizer& authorizer, Clock& clock,
                               Random& random, RetryPolicy policy, RegistryEndpoint endpoint,
                               RegistryThrottle* throttle)
    : http_(http),
      authorizer_(authorizer),
      clock_(clock),
      random_(random),
      policy_(policy),
      endpoint_(std::move(endpoint)),
      throttle_(throttle) {}

std::string RegistryClient::url(const std::string& kind, const std::string& reference) const {
  return endpoint_.scheme + "://" + endpoint_.host + "/v2/" + endpoint_.repository + "/" + kind +
         "/" + reference;
}

Result<HttpResponse> RegistryClient::sendAuthorized(HttpRequest request, const Context& ctx) {
  ASSIGN_OR_RETURN(auto target, Url::parse(request.url));
  const std::string scope = "repository:" + endpoint_.repository + ":pull";
  for (int round = 0; round < 2; ++round) {
    ASSIGN_OR_RETURN(auto authorization, authorizer_.authorize(target, scope, ctx));
    request.authorization = authorization;
    // The host's turn is held for the whole request, a blob's body included.
    std::optional<RegistryThrottle::Permit> turn;
    if (throttle_ != nullptr) {
      ASSIGN_OR_RETURN(auto admitted, throttle_->admit(endpoint_.host, ctx));
      turn.emplace(std::move(admitted));
    }
    auto response = sendFollowingRedirects(http_, request, ctx);
    if (response && throttle_ != nullptr && (response->status == 429 || response->status == 503))
      throttleHost(response.value());
    if (!response || response->status != 401)
      return response;
    // The Authorizer knows best what went wrong (Basic credentials refused, no challenge).
    if (auto status =
            authorizer_.onUnauthorized(target, response.value(), scope, request.authorization);
        !status) {
      return status.error();
    }
    if (round == 1) {
      auto error =
          registryError(response.value(), "GET " + redactUrl(request.url), clock_.wallNow());
      error.message +=
          "; the registry refused the token it issued: check that the user or "
          "identity may pull " +
          endpoint_.repository;
      return error;
    }
  }
  return makeError(ErrorCode::kInternal, "unreachable");
}

void RegistryClient::throttleHost(const HttpResponse& response) {
  auto header = response.header("Retry-After");
  auto delay = header ? parseRetryAfter(*header, clock_.wallNow()) : std::nullopt;
  // A 503 without Retry-After may be one overloaded replica; a 429 always means the registry.
  if (!delay && response.status != 429)
    return;
  const auto pause =
      std::min(delay.value_or(kThrottlePauseWithoutRetryAfter), policy_.max_retry_after);
  spdlog::warn("{} asked to slow down (HTTP {}): every pull to it waits {} ms", endpoint_.host,
               response.status, pause.count());
  throttle_->pause(endpoint_.host, pause);
}

Result<FetchedManifest> RegistryClient::fetchManifest(const std::string& reference,
                                                      const std::optional<Digest>& expected,
                                                      const Context& ctx) {
  FetchedManifest fetched;
  const std::string what =
      "manifest " + endpoint_.host + "/" + endpoint_.repository + ":" + reference;
  auto status = retryLoop(policy_, clock_, random_, ctx, what, [&](int) -> AttemptOutcome {
    HttpRequest request;
    request.url = url("manifests", reference);
    request.headers.push_back({"Accept", std::string(media_type::kManifestAccept)});
    request.max_body = static_cast<size_t>(kMaxManifestSize);
    auto response = sendAuthorized(request, ctx);
    if (!response)
      return response.error().context(what);
    if (response->status != 200)
      return registryError(response.value(), what, clock_.wallNow());
    fetched.bytes = std::move(response->body);
    auto content_type = response->header("Content-Type").value_or("");
    fetched.media_type = content_type.substr(0, content_type.find(';'));
    fetched.digest = Sha256::of(fetched.bytes);
    if (expected && fetched.digest != *expected) {
      return makeError(
          ErrorCode::kDigestMismatch,
          what + ": content hashes to " + fetched.digest.str() + ", not the " + "requested digest");
    }
    if (auto header = response->header("Docker-Content-Digest")) {
      auto announced = Digest::parse(*header);
      if (announced && announced.value() != fetched.digest) {
        return makeError(ErrorCode::kDigestMismatch,
                         what + ": Docker-Content-Digest " + announced->str() +
                             " does not match the content's " + fetched.digest.str());
      }
    }
    return {};
  });
  if (!status)
    return status.error();
  return fetched;
}

Result<Digest> RegistryClient::resolveTag(const std::string& tag, const Context& ctx) {
  const std::string what = "manifest " + endpoint_.host + "/" + endpoint_.repository + ":" + tag;
  std::optional<Digest> announced;
  bool head_refused = false;
  auto status = retryLoop(policy_, clock_, random_, ctx, what, [&](int) -> AttemptOutcome {
    HttpRequest request;
    request.method = "HEAD";
    request.url = url("manifests", tag);
    request.headers.push_back({"Accept", std::string(media_type::kManifestAccept)});
    auto response = sendAuthorized(request, ctx);
    if (!response)
      return response.error().context(what);
    if (response->status == 405 || response->status == 501) {
      head_refused = true;
      return {};
    }
    if (response->status != 200)
      return registryError(response.value(), what, clock_.wallNow());
    if (auto header = response->header("Docker-Content-Digest")) {
      if (auto digest = Digest::parse(*header))
        announced = digest.value();
    }
    return {};
  });
  RETURN_IF_ERROR(status);
  if (announced && !head_refused)
    return *announced;
  ASSIGN_OR_RETURN(auto fetched, fetchManifest(tag, std::nullopt, ctx));
  return fetched.digest;
}

Status RegistryClient::fetchBlobOnce(const Descriptor& blob, Ingest& ingest, BlobObserver* observer,
                                     const Context& ctx) {
  const int64_t offset = ingest.offset();
  const std::string what = "blob " + blob.digest.str();
  HttpRequest request;
  request.url = url("blobs", blob.digest.str());
  if (offset > 0)
    request.headers.push_back({"Range", "bytes=" + std::to_string(offset) + "-"});
  int64_t skip = 0;
  request.on_head = [&](const HttpResponseHead& head) -> Status {
    if (head.status == 206) {
      if (offset == 0)
        return makeError(ErrorCode::kProtocol, "206 answer to a request without Range");
      return checkContentRange(head.header("Content-Range"), offset, blob.size);
    }
    if (head.status != 200) {
      return makeError(ErrorCode::kProtocol, "unexpected HTTP " + std::to_string(head.status));
    }
    if (offset > 0) {
      // The server ignored Range and sends the whole blob: drop what we already have.
      spdlog::info("{}: server ignored Range, skipping {} bytes already stored", what, offset);
      skip = offset;
    }
    if (auto length = head.header("Content-Length")) {
      int64_t announced = -1;
      std::from_chars(length->data(), length->data() + length->size(), announced);
      if (announced >= 0 && announced != blob.size) {
        return makeError(ErrorCode::kDigestMismatch,
                         "server announces " + std::to_string(announced) + " bytes, descriptor " +
                             std::to_string(blob.size));
      }
    }
    return {};
  };
  request.on_body = [&](std::string_view chunk) -> Status {
    if (skip > 0) {
      auto dropped = std::min<int64_t>(skip, static_cast<int64_t>(chunk.size()));
      chunk.remove_prefix(static_cast<size_t>(dropped));
      skip -= dropped;
    }
    if (chunk.empty())
      return {};
    RETURN_IF_ERROR(ingest.write(chunk));
    if (observer != nullptr)
      observer->onBlobBytes(blob, static_cast<int64_t>(chunk.size()));
    return {};
  };
  if (observer != nullptr)
    observer->onBlobStart(blob, offset);

  auto response = sendAuthorized(request, ctx);
  if (!response)
    return response.error().context(what);
  if (response->status == 416 && offset > 0) {
    // Our partial file claims more than the server has: it cannot be trusted. Start over.
    spdlog::warn("{}: server rejected resuming at byte {}; starting over", what, offset);
    RETURN_IF_ERROR(ingest.restart());
    return makeError(ErrorCode::kUnavailable, "range not satisfiable, restarting");
  }
  if (response->status < 200 || response->status >= 300) {
    return registryError(response.value(), what, clock_.wallNow());
  }
  if (ingest.offset() < blob.size) {
    return makeError(ErrorCode::kUnavailable, what + ": transfer ended after " +
                                                  std::to_string(ingest.offset()) + " of " +
                                                  std::to_string(blob.size) + " bytes");
  }
  return {};
}

Status RegistryClient::fetchBlob(const Descriptor& blob, ContentStore& store,
                                 BlobObserver* observer, const Context& ctx) {
  const std::string what = "blob " + blob.digest.str();
  const std::string source = endpoint_.host + "/" + endpoint_.repository;
  // A partial download from an earlier attempt at this source is resumed; if the result does
  // not verify, those earlier bytes may be what was wrong (a server that changed them, a
  // corrupt disk): the blob is fetched once more from byte 0 before the pull fails.
  for (bool resumed = true; resumed;) {
    if (store.contains(blob.digest, blob.size))
      return {};
    ASSIGN_OR_RETURN(auto ingest, store.beginIngest(blob.digest, blob.size, source, ctx));
    if (!ingest)
      return {};  // another caller finished the blob while we waited for the ingest
    resumed = ingest->offset() > 0;
    auto status = retryLoop(policy_, clock_, random_, ctx, what, [&](int) -> AttemptOutcome {
      const int64_t before = ingest->offset();
      if (before == blob.size)
        return Status{};
      Status fetched = fetchBlobOnce(blob, *ingest, observer, ctx);
      return {std::move(fetched), ingest->offset() > before};
    });
    if (!status)
      return status;
    status = ingest->commit();
    if (status || status.error().code != ErrorCode::kDigestMismatch || !resumed)
      return status;
    spdlog::warn("{}: resumed bytes did not verify ({}); downloading it again from the start", what,
                 status.error().message);
  }
  return makeError(ErrorCode::kInternal, "unreachable");
}

}  // namespace pullagent::puller
