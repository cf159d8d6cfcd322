#include "puller/registry/registry_client.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <optional>
#include <stdexcept>

#include "base/redact.h"
#include "puller/http/redirects.h"
#include "puller/http/registry_errors.h"
#include "puller/oci/sha256.h"
#include "puller/registry/blob_ranges.h"

namespace pullagent::puller {
namespace {

// "bytes <start>-<end>/<total|*>": the start must be where we resume and the total (when
// given) the blob's size; anything else would splice wrong bytes into the blob.
Status checkContentRange(const std::optional<std::string>& header, int64_t offset, int64_t size) {
  auto checked = checkPartRange(header, offset, size - 1, size);
  if (!checked)
    return checked.error();
  return {};
}

RegistrySource originSource(HttpClient& http, Authorizer& authorizer,
                            const RegistryEndpoint& endpoint) {
  RegistrySource source;
  source.scheme = endpoint.scheme;
  source.host = endpoint.host;
  source.http = &http;
  source.authorizer = &authorizer;
  source.origin = true;
  return source;
}

// How long a 429 without Retry-After quiets its host for every pull.
constexpr std::chrono::milliseconds kThrottlePauseWithoutRetryAfter{1000};

}  // namespace

RegistryClient::RegistryClient(Clock& clock, Random& random, RetryPolicy policy,
                               std::string repository, std::vector<RegistrySource> sources,
                               RegistryThrottle* throttle, SourceTally* tally)
    : clock_(clock),
      random_(random),
      policy_(policy),
      repository_(std::move(repository)),
      sources_(std::move(sources)),
      throttle_(throttle),
      tally_(tally) {
  // The origin is always there, and always last: whatever the mirrors do, it can serve.
  if (sources_.empty() || !sources_.back().origin)
    throw std::invalid_argument("RegistryClient: the last source must be the origin");
}

RegistryClient::RegistryClient(HttpClient& http, Authorizer& authorizer, Clock& clock,
                               Random& random, RetryPolicy policy, RegistryEndpoint endpoint,
                               RegistryThrottle* throttle)
    : RegistryClient(clock, random, policy, endpoint.repository,
                     {originSource(http, authorizer, endpoint)}, throttle) {}

std::string RegistryClient::url(const RegistrySource& source, const std::string& kind,
                                const std::string& reference) const {
  std::string text = source.scheme + "://" + source.host + source.api_root + "/" + repository_ +
                     "/" + kind + "/" + reference;
  if (!source.ns.empty())
    text += "?ns=" + source.ns;
  return text;
}

Result<HttpResponse> RegistryClient::sendAuthorized(const RegistrySource& source,
                                                    HttpRequest request, const Context& ctx) {
  ASSIGN_OR_RETURN(auto target, Url::parse(request.url));
  const std::string scope = "repository:" + repository_ + ":pull";
  request.headers.insert(request.headers.end(), source.headers.begin(), source.headers.end());
  for (int round = 0; round < 2; ++round) {
    if (source.authorization) {
      request.authorization = source.authorization;
    } else if (source.authorizer != nullptr) {
      ASSIGN_OR_RETURN(auto authorization, source.authorizer->authorize(target, scope, ctx));
      request.authorization = authorization;
    }
    // The host's turn is held for the whole request, a blob's body included.
    std::optional<RegistryThrottle::Permit> turn;
    if (throttle_ != nullptr) {
      const auto asked = clock_.now();
      ASSIGN_OR_RETURN(auto admitted, throttle_->admit(source.host, ctx));
      turn.emplace(std::move(admitted));
      if (tally_ != nullptr) {
        tally_->throttled(
            std::chrono::duration_cast<std::chrono::milliseconds>(clock_.now() - asked));
      }
    }
    if (tally_ != nullptr)
      tally_->request(source.origin);
    auto response = sendFollowingRedirects(*source.http, request, ctx);
    if (response && throttle_ != nullptr && (response->status == 429 || response->status == 503))
      throttleHost(source, response.value());
    if (!response || response->status != 401 || source.authorization ||
        source.authorizer == nullptr) {
      return response;
    }
    // The Authorizer knows best what went wrong (Basic credentials refused, no challenge).
    if (auto status = source.authorizer->onUnauthorized(target, response.value(), scope,
                                                        request.authorization);
        !status) {
      return status.error();
    }
    if (round == 1) {
      auto error =
          registryError(response.value(), "GET " + redactUrl(request.url), clock_.wallNow());
      error.message +=
          "; the registry refused the token it issued: check that the user or "
          "identity may pull " +
          repository_;
      return error;
    }
  }
  return makeError(ErrorCode::kInternal, "unreachable");
}

void RegistryClient::throttleHost(const RegistrySource& source, const HttpResponse& response) {
  auto header = response.header("Retry-After");
  auto delay = header ? parseRetryAfter(*header, clock_.wallNow()) : std::nullopt;
  // A 503 without Retry-After may be one overloaded replica; a 429 always means the registry.
  if (!delay && response.status != 429)
    return;
  const auto pause =
      std::min(delay.value_or(kThrottlePauseWithoutRetryAfter), policy_.max_retry_after);
  spdlog::warn("{} asked to slow down (HTTP {}): every pull to it waits {} ms", source.describe(),
               response.status, pause.count());
  throttle_->pause(source.host, pause);
}

Status RegistryClient::trySources(
    const std::string& what, const std::function<bool(size_t)>& eligible, const Context& ctx,
    const std::function<AttemptOutcome(const RegistrySource&)>& attempt,
    const std::function<void(const Error&)>& after_mirror_failure) {
  for (size_t index = 0; index < sources_.size(); ++index) {
    const RegistrySource& source = sources_[index];
    if (source.origin) {
      return retryLoop(policy_, clock_, random_, ctx, what + " from " + source.host,
                       [&](int) { return attempt(source); });
    }
    if (!eligible(index))
      continue;
    std::string_view reason;
    Error failure;
    if (passedOver(index)) {
      if (tally_ != nullptr)
        tally_->fallback("passed_over");
      spdlog::debug("{}: passed over (it stalled earlier in this pull)", source.describe());
      continue;
    }
    if (throttle_ != nullptr && throttle_->paused(source.host)) {
      reason = "throttled";  // a mirror that asked for quiet is passed over, not waited for
      failure = makeError(ErrorCode::kUnavailable, what + ": still paused (it asked to slow down)");
    } else {
      auto outcome = attempt(source);
      if (outcome.status)
        return {};
      RETURN_IF_ERROR(ctx.check());  // a stop or the deadline: no mirror's fault
      failure = outcome.status.error();
      reason = fallbackReason(failure);
      if (after_mirror_failure)
        after_mirror_failure(failure);
      if (failure.code == ErrorCode::kTimeout)
        passOver(index, failure);
    }
    if (tally_ != nullptr)
      tally_->fallback(reason);
    // A 404 is how a peer-to-peer mirror says "not here": routine, not a warning.
    const auto level = reason == "not_found" ? spdlog::level::info : spdlog::level::warn;
    spdlog::log(level, "{} ({}): {}; trying the next source", source.describe(), reason,
                failure.message);
  }
  return makeError(ErrorCode::kInternal, "no origin among the registry sources");
}

bool RegistryClient::passedOver(size_t index) const {
  std::lock_guard lock(passed_over_mutex_);
  return passed_over_.count(index) != 0;
}

void RegistryClient::passOver(size_t index, const Error& why) {
  {
    std::lock_guard lock(passed_over_mutex_);
    if (!passed_over_.insert(index).second)
      return;
  }
  spdlog::warn("{} timed out ({}): passed over for the rest of this pull",
               sources_[index].describe(), why.message);
}

AttemptOutcome RegistryClient::manifestAttempt(const RegistrySource& source,
                                               const std::string& reference,
                                               const std::optional<Digest>& expected,
                                               FetchedManifest& fetched, const Context& ctx) {
  const std::string what = "manifest " + source.host + "/" + repository_ + ":" + reference;
  HttpRequest request;
  request.url = url(source, "manifests", reference);
  request.headers.push_back({"Accept", std::string(media_type::kManifestAccept)});
  request.max_body = static_cast<size_t>(kMaxManifestSize);
  auto response = sendAuthorized(source, request, ctx);
  if (!response)
    return response.error().context(what);
  if (response->status != 200)
    return registryError(response.value(), what, clock_.wallNow());
  if (tally_ != nullptr)
    tally_->bytes(source.origin, static_cast<int64_t>(response->body.size()));
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
}

Result<FetchedManifest> RegistryClient::fetchManifest(const std::string& reference,
                                                      const std::optional<Digest>& expected,
                                                      const Context& ctx) {
  FetchedManifest fetched;
  const std::string what = "manifest " + repository_ + ":" + reference;
  // By digest the bytes prove themselves wherever they come from; what a tag means is asked
  // only of sources trusted to resolve.
  auto eligible = [&](size_t index) {
    return expected ? sources_[index].pull : sources_[index].resolve;
  };
  RETURN_IF_ERROR(trySources(what, eligible, ctx, [&](const RegistrySource& source) {
    return manifestAttempt(source, reference, expected, fetched, ctx);
  }));
  return fetched;
}

namespace {

// The target of a Link header's rel="next" (RFC 8288: link-values separated by commas, each
// "<target>; param=value…", rel quoted or not), as a path, when it stays on `origin`
// ("https://host:port"): a registry does not send the agent elsewhere with its credentials.
std::optional<std::string> nextPage(const HttpResponse& response, const std::string& origin) {
  auto header = response.header("Link");
  if (!header)
    return std::nullopt;
  std::string_view rest = *header;
  while (!rest.empty()) {
    const auto open = rest.find('<');
    const auto close = rest.find('>', open == std::string_view::npos ? 0 : open);
    if (open == std::string_view::npos || close == std::string_view::npos)
      return std::nullopt;
    std::string target(rest.substr(open + 1, close - open - 1));
    const auto end = rest.find(',', close);
    const std::string_view params = rest.substr(
        close + 1, end == std::string_view::npos ? std::string_view::npos : end - close - 1);
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
    if (params.find("rel=\"next\"") == std::string_view::npos &&
        params.find("rel=next") == std::string_view::npos)
      continue;
    if (target.starts_with(origin + "/"))
      target = target.substr(origin.size());
    if (!target.starts_with("/v2/") || target.find_first_of(" \r\n") != std::string::npos)
      return std::nullopt;
    return target;
  }
  return std::nullopt;
}

}  // namespace

Result<std::optional<std::vector<std::string>>> RegistryClient::fetchReferrers(
    const Digest& subject, std::string_view artifact_type, const Context& ctx) {
  const std::string what = "referrers of " + repository_ + "@" + subject.str();
  std::optional<std::vector<std::string>> pages;
  auto attempt = [&](const RegistrySource& source) -> AttemptOutcome {
    const std::string where = "referrers " + source.host + "/" + repository_ + "@" + subject.str();
    std::vector<std::string> read;
    std::string next = url(source, "referrers", subject.str());
    next += std::string(next.find('?') == std::string::npos ? "?" : "&") +
            "artifactType=" + std::string(artifact_type);
    for (int page = 0; page < kMaxReferrerPages; ++page) {
      HttpRequest request;
      request.url = next;
      request.headers.push_back({"Accept", std::string(media_type::kOciIndex)});
      request.max_body = static_cast<size_t>(kMaxManifestSize);
      auto response = sendAuthorized(source, request, ctx);
      if (!response)
        return response.error().context(where);
      if (page == 0 &&
          (response->status == 404 || response->status == 405 || response->status == 501)) {
        pages.reset();
        return {};
      }
      if (response->status != 200)
        return registryError(response.value(), where, clock_.wallNow());
      if (tally_ != nullptr)
        tally_->bytes(source.origin, static_cast<int64_t>(response->body.size()));
      read.push_back(std::move(response->body));
      auto link = nextPage(response.value(), source.scheme + "://" + source.host);
      if (!link)
        break;
      next = source.scheme + "://" + source.host + *link;
    }
    pages = std::move(read);
    return {};
  };
  RETURN_IF_ERROR(trySources(
      what, [&](size_t index) { return sources_[index].resolve; }, ctx, attempt));
  return pages;
}

Result<Digest> RegistryClient::resolveTag(const std::string& tag, const Context& ctx) {
  const std::string what = "manifest " + repository_ + ":" + tag;
  std::optional<Digest> resolved;
  auto attempt = [&](const RegistrySource& source) -> AttemptOutcome {
    const std::string where = "manifest " + source.host + "/" + repository_ + ":" + tag;
    HttpRequest request;
    request.method = "HEAD";
    request.url = url(source, "manifests", tag);
    request.headers.push_back({"Accept", std::string(media_type::kManifestAccept)});
    auto response = sendAuthorized(source, request, ctx);
    if (!response)
      return response.error().context(where);
    const bool head_refused = response->status == 405 || response->status == 501;
    if (!head_refused && response->status != 200)
      return registryError(response.value(), where, clock_.wallNow());
    if (auto header = response->header("Docker-Content-Digest"); header && !head_refused) {
      if (auto digest = Digest::parse(*header)) {
        resolved = digest.value();
        return {};
      }
    }
    // No usable HEAD here: the manifest itself, and the digest of its bytes.
    FetchedManifest fetched;
    auto outcome = manifestAttempt(source, tag, std::nullopt, fetched, ctx);
    if (outcome.status)
      resolved = fetched.digest;
    return outcome;
  };
  RETURN_IF_ERROR(trySources(
      what, [&](size_t index) { return sources_[index].resolve; }, ctx, attempt));
  return *resolved;
}

Status RegistryClient::fetchBlobOnce(const RegistrySource& source, const Descriptor& blob,
                                     Ingest& ingest, BlobObserver* observer, const Context& ctx) {
  const int64_t offset = ingest.offset();
  const std::string what = "blob " + blob.digest.str() + " from " + source.host;
  HttpRequest request;
  request.url = url(source, "blobs", blob.digest.str());
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
    if (tally_ != nullptr)
      tally_->bytes(source.origin, static_cast<int64_t>(chunk.size()));
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

  auto response = sendAuthorized(source, request, ctx);
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
                                 BlobObserver* observer, const Context& ctx,
                                 const BlobFetchOptions& options) {
  const bool even_if_stored = options.even_if_stored;
  bool* fetched_here = options.fetched_here;
  if (fetched_here != nullptr)
    *fetched_here = false;
  const std::string what = "blob " + blob.digest.str();
  // Partial bytes are bound to the origin's name whichever source delivered them: the mirrors
  // serve that registry's content, and the whole is verified against the digest at the end.
  const std::string ingest_source = origin().host + "/" + repository_;
  // Mirrors whose bytes were part of a blob that did not verify are not asked again.
  std::vector<bool> distrusted(sources_.size(), false);
  while (true) {
    if (!even_if_stored && store.contains(blob.digest, blob.size))
      return {};
    ASSIGN_OR_RETURN(auto ingest,
                     store.beginIngest(blob.digest, blob.size, ingest_source, ctx, even_if_stored));
    if (!ingest)
      return {};  // another caller finished the blob while we waited for the ingest
    if (options.proven_meanwhile && options.proven_meanwhile())
      return {};
    // A partial download from an earlier attempt is resumed; if the result does not verify,
    // those earlier bytes may be what was wrong (a server that changed them, a corrupt disk).
    bool earlier_bytes = ingest->offset() > 0;
    std::vector<size_t> contributors;
    size_t current = 0;
    // The ranges of this ingest and what each received: kept from one attempt (and source) to
    // the next, so that each asks only for what is missing.
    std::optional<BlobParts> parts;
    auto attempt = [&](const RegistrySource& source) -> AttemptOutcome {
      current = static_cast<size_t>(&source - sources_.data());
      const int64_t before = ingest->offset();
      if (before == blob.size)
        return Status{};
      if (!parts && ranges_.connections > 1)
        parts.emplace(before, blob.size, ranges_);
      Status fetched;
      bool progress = false;
      if (parts && parts->ranged()) {
        const int64_t written = parts->written();
        fetched = fetchBlobRanges(source, blob, *ingest, *parts, observer, ctx);
        progress = parts->written() > written;
      } else {
        fetched = fetchBlobOnce(source, blob, *ingest, observer, ctx);
        progress = ingest->offset() > before;
      }
      if (progress &&
          std::find(contributors.begin(), contributors.end(), current) == contributors.end()) {
        contributors.push_back(current);
      }
      return {std::move(fetched), progress};
    };
    // Bytes that broke the protocol or overran the size are not resumed by the next source;
    // a connection that merely ended leaves bytes the digest will judge at the end.
    auto after_mirror_failure = [&](const Error& error) {
      if (error.code == ErrorCode::kDigestMismatch || error.code == ErrorCode::kProtocol) {
        parts.reset();
        if (ingest->restart()) {
          std::erase(contributors, current);
          earlier_bytes = false;
        }
      }
    };
    auto status = trySources(
        what,
        [&](size_t index) {
          return sources_[index].pull && !distrusted[index] && !options.origin_only;
        },
        ctx, attempt, after_mirror_failure);
    if (!status)
      return status;
    // The source is recorded before the blob is visible and before the ingest file, which
    // other pulls of this repository wait on, is gone: a pull that then finds the blob, or
    // takes the ingest next, finds the record too and does not fetch it again.
    status = ingest->commit(options.on_verified);
    if (status && fetched_here != nullptr)
      *fetched_here = true;
    if (status || status.error().code != ErrorCode::kDigestMismatch)
      return status;
    bool excluded_any = false;
    for (size_t index : contributors) {
      if (!sources_[index].origin && !distrusted[index]) {
        distrusted[index] = true;
        excluded_any = true;
        if (tally_ != nullptr)
          tally_->fallback("digest");
        spdlog::warn("{}: bytes from {} did not verify ({}); fetching it again without it", what,
                     sources_[index].describe(), status.error().message);
      }
    }
    if (!excluded_any && !earlier_bytes)
      return status;
    if (!excluded_any) {
      spdlog::warn("{}: resumed bytes did not verify ({}); downloading it again from the start",
                   what, status.error().message);
    }
  }
}

Status RegistryClient::headBlob(const Descriptor& blob, const Context& ctx) {
  const RegistrySource& source = origin();
  const std::string what =
      "HEAD blob " + blob.digest.str() + " in " + source.host + "/" + repository_;
  return retryLoop(policy_, clock_, random_, ctx, what, [&](int) -> AttemptOutcome {
    HttpRequest request;
    request.method = "HEAD";
    request.url = url(source, "blobs", blob.digest.str());
    auto response = sendAuthorized(source, request, ctx);
    if (!response)
      return response.error().context(what);
    if (response->status != 200)
      return registryError(response.value(), what, clock_.wallNow());
    int64_t announced = -1;
    if (auto length = response->header("Content-Length")) {
      auto [end, error] =
          std::from_chars(length->data(), length->data() + length->size(), announced);
      if (error != std::errc() || end != length->data() + length->size())
        announced = -1;
    }
    if (auto header = response->header("Docker-Content-Digest")) {
      auto announced_digest = Digest::parse(*header);
      if (!announced_digest || announced_digest.value() != blob.digest) {
        return makeError(
            ErrorCode::kDigestMismatch,
            what + ": the registry answers for another digest (" + safeQuoted(*header, 100) + ")");
      }
    }
    if (announced != blob.size) {
      return makeError(ErrorCode::kDigestMismatch,
                       what + ": the registry announces " + std::to_string(announced) +
                           " bytes, the descriptor " + std::to_string(blob.size));
    }
    return Status{};
  });
}

}  // namespace pullagent::puller
