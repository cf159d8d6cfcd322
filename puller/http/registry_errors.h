#pragma once

#include <chrono>
#include <string_view>

#include "base/error.h"
#include "puller/http/http_client.h"

namespace pullagent::puller {

// The Error for a non-2xx registry answer: the status mapped to our codes (401
// unauthenticated, 403 denied, 404 not found, 408/429/5xx transient with Retry-After), and the
// registry's own `{"errors":[{"code","message"}]}` text quoted so users see e.g.
// "MANIFEST_UNKNOWN: manifest unknown".
Error registryError(const HttpResponse& response, std::string_view what,
                    std::chrono::system_clock::time_point now);

}  // namespace pullagent::puller
