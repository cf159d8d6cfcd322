#include "puller/http/redirects.h"

#include <spdlog/spdlog.h>

#include "base/redact.h"
#include "puller/http/url.h"

namespace pullagent::puller {
namespace {

bool isRedirect(int status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

}  // namespace

Result<HttpResponse> sendFollowingRedirects(HttpClient& client, HttpRequest request,
                                            const Context& ctx, std::string* final_url) {
  ASSIGN_OR_RETURN(auto origin, Url::parse(request.url));
  for (int hop = 0;; ++hop) {
    auto response = client.send(request, ctx);
    if (!response || !isRedirect(response->status)) {
      if (final_url != nullptr)
        *final_url = request.url;
      return response;
    }
    if (hop == kMaxRedirects) {
      return makeError(ErrorCode::kProtocol, "more than " + std::to_string(kMaxRedirects) +
                                                 " redirects from " + redactUrl(request.url));
    }
    auto location = response->header("Location");
    if (!location || location->empty()) {
      return makeError(ErrorCode::kProtocol, "redirect " + std::to_string(response->status) +
                                                 " without Location from " +
                                                 redactUrl(request.url));
    }
    auto current = Url::parse(request.url);
    auto next = Url::resolve(request.url, *location);
    if (!next)
      return next.error();
    if (current->scheme == "https" && next->scheme == "http") {
      return makeError(ErrorCode::kUntrusted,
                       "refusing redirect from https to plain http: " + redactUrl(request.url) +
                           " -> " + redactUrl(next->str()));
    }
    if ((request.authorization || !request.secret_headers.empty()) && !next->sameOrigin(origin)) {
      spdlog::debug("redirect to {} leaves {}: sending it without credentials",
                    redactUrl(next->str()), origin.origin());
      request.authorization.reset();
      request.secret_headers.clear();
    }
    if (response->status == 303) {
      request.method = "GET";
      request.body.clear();
    }
    request.url = next->str();
  }
}

}  // namespace pullagent::puller
