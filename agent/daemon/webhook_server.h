#pragma once

#include <memory>
#include <string>

#include "agent/daemon/http_server.h"
#include "agent/daemon/refresh_broker.h"
#include "agent/daemon/site_webhook_keys.h"
#include "base/error.h"
#include "base/secret.h"

namespace pullagent::agent {

// Registry webhooks on a TCP address (the agent config's webhookAddress), for registries that
// cannot reach the control socket:
// - POST /v1/webhooks/acr and /v1/webhooks/dockerhub with the host-wide secret
//   ("Authorization: Bearer <secret>", or "?secret=<secret>" since Docker Hub cannot send
//   headers): the sites with continuous deployment on the pushed image, for the host's own
//   registries;
// - POST /api/registry/webhook (App Service's CI webhook, Kudu's path) with a site's
//   publishing credentials as Basic auth (`https://$site:<password>@host/api/registry/webhook`):
//   that site alone, whatever the body says.
// Anything else 401 / 404.
inline constexpr const char* kSiteWebhookPath = "/api/registry/webhook";

class WebhookServer {
 public:
  static Result<std::unique_ptr<WebhookServer>> start(const std::string& address, Secret secret,
                                                      RefreshBroker& broker,
                                                      const SiteWebhookKeys& sites);
  const std::string& address() const { return server_->address(); }

  // The request handling, without the server.
  static ServerResponse handle(const ServerRequest& request, const Secret& secret,
                               RefreshBroker& broker, const SiteWebhookKeys& sites);

 private:
  explicit WebhookServer(std::unique_ptr<HttpServer> server) : server_(std::move(server)) {}
  std::unique_ptr<HttpServer> server_;
};

}  // namespace pullagent::agent
