#pragma once

#include <curl/curl.h>

#include <string_view>

#include "base/error.h"

namespace pullagent::puller {

// The one translation of curl's error codes into ours. `what` says which request and where,
// `detail` is curl's error buffer.
Error curlError(CURLcode code, std::string_view what, std::string_view detail);

// Turns a failed curl_easy_setopt into an Error (a bug or an old libcurl).
Status checkSetopt(CURLcode code, std::string_view option);

}  // namespace pullagent::puller
