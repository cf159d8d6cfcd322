#pragma once

#include "puller/http/http_client.h"

namespace pullagent::puller {

inline constexpr int kMaxRedirects = 10;

// Sends `request` and follows redirects itself (curl is told not to), at most kMaxRedirects.
// Credentials never cross an origin: the Authorization header is sent only to the scheme, host
// and port of the original URL; a redirect from https to http is refused outright. The final
// response's URL is reported through `final_url` when given.
Result<HttpResponse> sendFollowingRedirects(HttpClient& client, HttpRequest request,
                                            const Context& ctx, std::string* final_url = nullptr);

}  // namespace pullagent::puller
