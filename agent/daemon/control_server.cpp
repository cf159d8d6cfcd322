#include "agent/daemon/control_server.h"

#include <charconv>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "agent/site/site_state.h"
#include "base/json_reader.h"
#include "base/redact.h"

namespace pullagent::agent {
namespace {

constexpr std::string_view kRefreshPath = "/v1/refresh";
constexpr std::string_view kRollbackPath = "/v1/rollback";
constexpr std::string_view kDiagnosePath = "/v1/diagnose";
constexpr const char* kJson = "application/json";

ServerResponse json(unsigned status, const nlohmann::json& body) {
  return {status, kJson, body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)};
}

ServerResponse problem(unsigned status, const std::string& message) {
  return json(status, {{"error", message}});
}

// POST /v1/refresh: which sites (every site when none are named).
Result<std::vector<std::string>> requestedSites(const std::string& body) {
  if (body.empty())
    return std::vector<std::string>{};
  ASSIGN_OR_RETURN(auto doc, parseJson(body, "refresh request", ErrorCode::kInvalidArgument));
  JsonReader reader(doc, "refresh request", ErrorCode::kInvalidArgument);
  if (!reader.isObject())
    return reader.typeError("an object");
  ASSIGN_OR_RETURN(auto sites, reader["sites"].optionalStrings());
  for (const auto& site : sites) {
    // Site names are file names in the sites directory: nothing else can name a site.
    if (!isSiteFileName(site + ".json")) {
      return makeError(ErrorCode::kInvalidArgument,
                       "refresh request: sites: not a site name: " + safeQuoted(site));
    }
  }
  return sites;
}

ServerResponse submit(const ServerRequest& request, RefreshBroker& broker) {
  auto sites = requestedSites(request.body);
  if (!sites)
    return problem(400, sites.error().message);
  auto id = broker.submit(std::move(sites.value()));
  if (!id)
    return problem(503, "too many refreshes running; try again when some have finished");
  return json(202, {{"id", *id}});
}

// The one site a request names: {"site": NAME}, a name of the sites directory and nothing else.
Result<std::string> requestedSite(const std::string& body, const std::string& what) {
  ASSIGN_OR_RETURN(auto doc, parseJson(body, what, ErrorCode::kInvalidArgument));
  JsonReader reader(doc, what, ErrorCode::kInvalidArgument);
  if (!reader.isObject())
    return reader.typeError("an object");
  ASSIGN_OR_RETURN(auto site, reader["site"].string());
  if (!isSiteFileName(site + ".json")) {
    return makeError(ErrorCode::kInvalidArgument,
                     what + ": site: not a site name: " + safeQuoted(site));
  }
  return site;
}

// POST /v1/rollback {"site": NAME}: the site back to its previous image.
ServerResponse rollback(const ServerRequest& request, RefreshBroker& broker) {
  auto site = requestedSite(request.body, "rollback request");
  if (!site)
    return problem(400, site.error().message);
  auto id = broker.submitRollback(*site);
  if (!id)
    return problem(503, "too many requests running; try again when some have finished");
  return json(202, {{"id", *id}});
}

// POST /v1/webhooks/{acr,dockerhub}: a registry's push event; the registry does not wait.
ServerResponse pushed(const ServerRequest& request, RefreshBroker& broker) {
  const bool acr = request.path.ends_with("/acr");
  auto event = acr ? parseAcrWebhook(request.body) : parseDockerHubWebhook(request.body);
  if (!event)
    return problem(400, event.error().message);
  if (!event->has_value())
    return json(200, {{"ignored", "not a push of a tag"}});
  auto id = broker.submitPush(std::move(**event));
  if (!id)
    return problem(503, "too many refreshes running; try again when some have finished");
  return json(202, {{"id", *id}});
}

std::optional<uint64_t> requestId(std::string_view text) {
  uint64_t id = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), id);
  if (error != std::errc() || end != text.data() + text.size())
    return std::nullopt;
  return id;
}

// POST /v1/diagnose {"site": NAME}: `pullagent diagnose SITE` in the service.
ServerResponse diagnose(const ServerRequest& request, DiagnosisRunner& diagnoses) {
  auto site = requestedSite(request.body, "diagnose request");
  if (!site)
    return problem(400, site.error().message);
  auto started = diagnoses.start(*site);
  if (const auto* refusal = std::get_if<DiagnosisRunner::Refusal>(&started)) {
    return problem(503, *refusal == DiagnosisRunner::Refusal::kStarting
                            ? "the service is still starting; try again in a moment"
                            : "too many diagnoses running; try again when some have finished");
  }
  return json(202, {{"id", std::get<uint64_t>(started)}});
}

ServerResponse diagnosisReport(std::string_view id_text, DiagnosisRunner& diagnoses) {
  auto id = requestId(id_text);
  auto result = id ? diagnoses.result(*id) : std::nullopt;
  if (!result)
    return problem(404, "no such diagnosis (or finished long ago)");
  return json(200, *result);
}

ServerResponse report(std::string_view id_text, RefreshBroker& broker) {
  auto parsed = requestId(id_text);
  if (!parsed)
    return problem(404, "no such refresh");
  const uint64_t id = *parsed;
  auto status = broker.status(id);
  if (!status)
    return problem(404, "no such refresh (or finished long ago)");
  auto sites = nlohmann::json::array();
  for (const auto& site : status->sites) {
    sites.push_back({{"site", site.site},
                     {"outcome", toString(site.outcome)},
                     {"from", site.from},
                     {"to", site.to},
                     {"error", site.error}});
  }
  return json(200, {{"id", id}, {"done", status->done}, {"sites", sites}});
}

}  // namespace

ServerResponse ControlServer::handle(const ServerRequest& request, RefreshBroker& broker,
                                     DiagnosisRunner* diagnoses) {
  if (diagnoses != nullptr && request.path == kDiagnosePath) {
    if (request.method != "POST")
      return problem(405, "POST to start a diagnosis");
    return diagnose(request, *diagnoses);
  }
  if (diagnoses != nullptr && request.path.starts_with(std::string(kDiagnosePath) + "/")) {
    if (request.method != "GET")
      return problem(405, "GET to read a diagnosis");
    return diagnosisReport(std::string_view(request.path).substr(kDiagnosePath.size() + 1),
                           *diagnoses);
  }
  if (request.path == kRefreshPath) {
    if (request.method != "POST")
      return problem(405, "POST to start a refresh");
    return submit(request, broker);
  }
  if (request.path == kRollbackPath) {
    if (request.method != "POST")
      return problem(405, "POST to roll a site back");
    return rollback(request, broker);
  }
  if (request.path == "/v1/webhooks/acr" || request.path == "/v1/webhooks/dockerhub") {
    if (request.method != "POST")
      return problem(405, "POST a registry's webhook payload");
    return pushed(request, broker);
  }
  const std::string prefix = std::string(kRefreshPath) + "/";
  if (request.path.starts_with(prefix)) {
    if (request.method != "GET")
      return problem(405, "GET to read a refresh");
    return report(std::string_view(request.path).substr(prefix.size()), broker);
  }
  return problem(404, "not found");
}

Result<std::unique_ptr<ControlServer>> ControlServer::start(const std::string& socket_path,
                                                            RefreshBroker& broker,
                                                            DiagnosisRunner& diagnoses) {
  // systemd makes /run/pullagent (RuntimeDirectory=); started any other way, we do.
  const std::filesystem::path parent = std::filesystem::path(socket_path).parent_path();
  std::error_code ignored;
  std::filesystem::create_directories(parent, ignored);  // binding names what went wrong
  ASSIGN_OR_RETURN(auto server, HttpServer::start(
                                    "unix:" + socket_path, "control socket",
                                    [&broker, &diagnoses](const ServerRequest& request) {
                                      return handle(request, broker, &diagnoses);
                                    },
                                    HttpServerLimits{}, 0600));
  return std::unique_ptr<ControlServer>(new ControlServer(std::move(server)));
}

}  // namespace pullagent::agent
