#pragma once

#include <memory>
#include <string>

#include "agent/daemon/http_server.h"
#include "agent/daemon/refresh_broker.h"
#include "base/error.h"
#include "base/secret.h"

namespace pullagent::agent {

// Registry webhooks on a TCP address (the agent config's webhookAddress), for registries that
// cannot reach the control socket: only POST /v1/webhooks/acr and /v1/webhooks/dockerhub, and
// only with the shared secret ("Authorization: Bearer <secret>", or "?secret=<secret>" since
// Docker Hub cannot send headers); anything else 401 / 404.
class WebhookServer {
 public:
  static Result<std::unique_ptr<WebhookServer>> start(const std::string& address, Secret secret,
                                                      RefreshBroker& broker);
  const std::string& address() const { return server_->address(); }

  // The request handling, without the server.
  static ServerResponse handle(const ServerRequest& request, const Secret& secret,
                               RefreshBroker& broker);

 private:
  explicit WebhookServer(std::unique_ptr<HttpServer> server) : server_(std::move(server)) {}
  std::unique_ptr<HttpServer> server_;
};

}  // namespace pullagent::agent
