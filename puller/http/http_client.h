#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/context.h"
#include "base/error.h"
#include "base/secret.h"

namespace pullagent::puller {

struct HttpHeader {
  std::string name;
  std::string value;
};

// Bodies of non-2xx answers are kept for their error text, but never more than this.
inline constexpr size_t kMaxErrorBody = 64 * 1024;

struct HttpResponseHead {
  int status = 0;
  std::vector<HttpHeader> headers;

  // First value of a header, case-insensitive name.
  std::optional<std::string> header(std::string_view name) const;
  // Every value of a header (several fields with the same name).
  std::vector<std::string> headerValues(std::string_view name) const;
};

struct HttpResponse : HttpResponseHead {
  std::string body;  // empty when the body was streamed to on_body
};

struct HttpRequest {
  std::string method = "GET";
  std::string url;
  std::vector<HttpHeader> headers;      // never credentials: those go in `authorization`
  std::optional<Secret> authorization;  // the whole header value: "Bearer ...", "Basic ..."
  // Other headers whose values are credentials (X-IDENTITY-HEADER): sent like headers, logged
  // never, and dropped on redirects to another origin like Authorization.
  std::vector<std::pair<std::string, Secret>> secret_headers;
  std::string body;                   // sent when non-empty (POST forms)
  size_t max_body = 4 * 1024 * 1024;  // cap for a buffered 2xx body; over it: kResourceExhausted

  // Streaming of 2xx answers (blobs): on_head once the status and headers are known, then the
  // body in chunks. Either may return an error, which aborts the transfer with that error.
  std::function<Status(const HttpResponseHead&)> on_head;
  std::function<Status(std::string_view)> on_body;
};

// One HTTP exchange, no redirects followed (see redirects.h). Safe to call from many threads.
class HttpClient {
 public:
  virtual ~HttpClient() = default;
  virtual Result<HttpResponse> send(const HttpRequest& request, const Context& ctx) = 0;
};

}  // namespace pullagent::puller
