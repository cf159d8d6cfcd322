#include "agent/daemon/metrics_server.h"

namespace pullagent::agent {

Result<std::unique_ptr<MetricsServer>> MetricsServer::start(const std::string& address,
                                                            Render render,
                                                            HttpServerLimits limits) {
  auto handler = [render = std::move(render)](const ServerRequest& request) -> ServerResponse {
    if (request.path != "/metrics")
      return {404, "text/plain; charset=utf-8", "metrics are at /metrics\n"};
    if (request.method != "GET" && request.method != "HEAD")
      return {405, "text/plain; charset=utf-8", "only GET\n"};
    return {200, "text/plain; version=0.0.4; charset=utf-8", render()};
  };
  ASSIGN_OR_RETURN(auto server,
                   HttpServer::start(address, "metrics address", std::move(handler), limits));
  return std::unique_ptr<MetricsServer>(new MetricsServer(std::move(server)));
}

}  // namespace pullagent::agent
