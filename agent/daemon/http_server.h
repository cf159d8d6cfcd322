#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "base/error.h"

namespace pullagent::agent {

// One request as the handler sees it: the whole body has arrived (within the body limit).
struct ServerRequest {
  std::string method;                          // "GET", "POST", ...
  std::string path;                            // the URL path, without the query
  std::map<std::string, std::string> headers;  // names lower-cased
  std::map<std::string, std::string> query;    // the URL's query arguments, decoded
  std::string body;
};

struct ServerResponse {
  unsigned status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

// Bounds that keep one slow, idle or oversized client from costing the others anything.
struct HttpServerLimits {
  // Open connections at once; one beyond it waits in the kernel's listen backlog until a
  // connection closes (nothing is read from it, nothing allocated for it).
  unsigned connections = 512;
  // A connection that sends or accepts nothing for this long is closed (idle keep-alive
  // connections, half-sent requests, a client that stops reading the answer).
  std::chrono::seconds idle_timeout{10};
  // The request line and headers of one request, with the server's own bookkeeping; larger
  // ones get 431 / 414.
  size_t header_bytes = 16 * 1024;
  // The body of one request; a larger one gets 413 and the connection is closed.
  size_t body_bytes = 64 * 1024;
  // Event-loop threads (epoll each); no thread is ever held by one connection.
  unsigned threads = 2;
};

// An HTTP/1.1 server on libmicrohttpd for the service's endpoints (metrics now, the control
// endpoint next): event-driven, so hundreds of idle or trickling connections cost memory within
// the limits above and never a thread; the handler runs on one of the event threads and must be
// quick and thread-safe.
class HttpServer {
 public:
  using Handler = std::function<ServerResponse(const ServerRequest&)>;

  // `address` as listenOn takes it; `what` names the endpoint in errors and logs.
  static Result<std::unique_ptr<HttpServer>> start(const std::string& address,
                                                   const std::string& what, Handler handler,
                                                   HttpServerLimits limits = {},
                                                   std::optional<mode_t> unix_mode = {});
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // The bound address ("127.0.0.1:41234" when port 0 was asked for; the socket path for unix).
  const std::string& address() const;

  struct Impl;

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace pullagent::agent
