#include "agent/daemon/webhook_server.h"

#include "agent/daemon/control_server.h"

namespace pullagent::agent {
namespace {

// Compares without an early exit, so that the time taken says nothing about the secret.
bool sameSecret(const std::string& offered, const std::string& expected) {
  if (expected.empty())
    return false;
  unsigned difference = offered.size() == expected.size() ? 0U : 1U;
  for (size_t i = 0; i < offered.size(); ++i) {
    const auto want = static_cast<unsigned char>(expected[i % expected.size()]);
    difference |= static_cast<unsigned>(static_cast<unsigned char>(offered[i]) ^ want);
  }
  return difference == 0U;
}

bool authorised(const ServerRequest& request, const Secret& secret) {
  const std::string& expected = secret.revealForWire();
  if (auto header = request.headers.find("authorization"); header != request.headers.end()) {
    constexpr std::string_view kBearer = "Bearer ";
    if (header->second.starts_with(kBearer) &&
        sameSecret(header->second.substr(kBearer.size()), expected)) {
      return true;
    }
  }
  auto query = request.query.find("secret");
  return query != request.query.end() && sameSecret(query->second, expected);
}

}  // namespace

ServerResponse WebhookServer::handle(const ServerRequest& request, const Secret& secret,
                                     RefreshBroker& broker) {
  if (request.path != "/v1/webhooks/acr" && request.path != "/v1/webhooks/dockerhub")
    return {404, "application/json", R"({"error":"not found"})"};
  if (!authorised(request, secret))
    return {401, "application/json", R"({"error":"the webhook secret is missing or wrong"})"};
  return ControlServer::handle(request, broker);
}

Result<std::unique_ptr<WebhookServer>> WebhookServer::start(const std::string& address,
                                                            Secret secret, RefreshBroker& broker) {
  ASSIGN_OR_RETURN(auto server, HttpServer::start(address, "webhook address",
                                                  [secret = std::move(secret),
                                                   &broker](const ServerRequest& request) {
                                                    return handle(request, secret, broker);
                                                  }));
  return std::unique_ptr<WebhookServer>(new WebhookServer(std::move(server)));
}

}  // namespace pullagent::agent
