#pragma once

#include <functional>
#include <memory>
#include <string>

#include "agent/daemon/http_server.h"
#include "base/error.h"

namespace pullagent::agent {

// Serves GET /metrics (Prometheus text format 0.0.4) on a TCP address ("127.0.0.1:9464",
// "[::1]:9464") or a unix socket ("unix:/run/pullagent/metrics.sock") through HttpServer, so a
// slow or idle scraper never holds up another. Other paths get 404, other methods 405.
class MetricsServer {
 public:
  using Render = std::function<std::string()>;
  static Result<std::unique_ptr<MetricsServer>> start(const std::string& address, Render render,
                                                      HttpServerLimits limits = {});

  // The bound address ("127.0.0.1:41234" when port 0 was asked for; the socket path for unix).
  const std::string& address() const { return server_->address(); }

 private:
  explicit MetricsServer(std::unique_ptr<HttpServer> server) : server_(std::move(server)) {}
  std::unique_ptr<HttpServer> server_;
};

}  // namespace pullagent::agent
