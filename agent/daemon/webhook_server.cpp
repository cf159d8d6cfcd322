#include "agent/daemon/webhook_server.h"

#include <nlohmann/json.hpp>

#include <optional>
#include <utility>

#include "agent/daemon/control_server.h"
#include "base/base64.h"

namespace pullagent::agent {
namespace {

bool sameSecret(const std::string& offered, const std::string& expected) {
  return !expected.empty() && constantTimeEquals(offered, expected);
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

// The Basic credentials of a request, if it carries any.
std::optional<std::pair<std::string, std::string>> basicCredentials(const ServerRequest& request) {
  auto header = request.headers.find("authorization");
  constexpr std::string_view kBasic = "Basic ";
  if (header == request.headers.end() || !header->second.starts_with(kBasic))
    return std::nullopt;
  auto decoded = decodeBase64(std::string_view(header->second).substr(kBasic.size()), 4096);
  if (!decoded)
    return std::nullopt;
  const auto colon = decoded->find(':');
  if (colon == std::string::npos)
    return std::nullopt;
  return std::pair{decoded->substr(0, colon), decoded->substr(colon + 1)};
}

ServerResponse siteWebhook(const ServerRequest& request, RefreshBroker& broker,
                           const SiteWebhookKeys& sites) {
  if (request.method != "POST")
    return {405, "application/json", R"({"error":"POST a registry's webhook payload"})"};
  auto credentials = basicCredentials(request);
  const auto matching = credentials ? sites.sitesFor(credentials->first, credentials->second)
                                    : std::vector<std::string>{};
  if (matching.empty()) {
    return {401, "application/json",
            R"({"error":"the site's publishing credentials are missing or wrong"})"};
  }
  auto accepted = nlohmann::json::array();
  for (const auto& site : matching) {
    auto id = broker.submitSiteWebhook(site);
    if (!id) {
      return {503, "application/json",
              R"({"error":"too many refreshes running; try again when some have finished"})"};
    }
    accepted.push_back({{"id", *id}, {"site", site}});
  }
  return {202, "application/json", nlohmann::json{{"refreshes", accepted}}.dump()};
}

}  // namespace

ServerResponse WebhookServer::handle(const ServerRequest& request, const Secret& secret,
                                     RefreshBroker& broker, const SiteWebhookKeys& sites) {
  if (request.path == kSiteWebhookPath)
    return siteWebhook(request, broker, sites);
  if (request.path != "/v1/webhooks/acr" && request.path != "/v1/webhooks/dockerhub")
    return {404, "application/json", R"({"error":"not found"})"};
  if (!authorised(request, secret))
    return {401, "application/json", R"({"error":"the webhook secret is missing or wrong"})"};
  return ControlServer::handle(request, broker);
}

Result<std::unique_ptr<WebhookServer>> WebhookServer::start(const std::string& address,
                                                            Secret secret, RefreshBroker& broker,
                                                            const SiteWebhookKeys& sites) {
  ASSIGN_OR_RETURN(auto server, HttpServer::start(address, "webhook address",
                                                  [secret = std::move(secret), &broker,
                                                   &sites](const ServerRequest& request) {
                                                    return handle(request, secret, broker, sites);
                                                  }));
  return std::unique_ptr<WebhookServer>(new WebhookServer(std::move(server)));
}

}  // namespace pullagent::agent
