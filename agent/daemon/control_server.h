#pragma once

#include <memory>
#include <string>

#include "agent/daemon/diagnosis_runner.h"
#include "agent/daemon/http_server.h"
#include "agent/daemon/refresh_broker.h"
#include "base/error.h"

namespace pullagent::agent {

// The service's control endpoint, on a unix socket only root can open (0600 in the runtime
// directory): what `pullagent refresh` talks to.
//   POST /v1/refresh          {"sites": ["web", ...]} (absent or empty: every site)
//                             → 202 {"id": N}; 503 while 64 requests are still running
//   GET  /v1/refresh/<id>     → 200 {"done": bool, "sites": [{"site", "outcome", "from", "to",
//                             "error"}]}; 404 for an id it does not know (or forgot)
//   POST /v1/diagnose         {"site": "web"} → 202 {"id": N}: `pullagent diagnose web` run in
//                             the service (DiagnosisRunner); 503 while 4 are running
//   GET  /v1/diagnose/<id>    → 200 {"done": bool, "report": {...}}; 404 for an unknown id
//   POST /v1/webhooks/acr     an ACR webhook payload; /v1/webhooks/dockerhub a Docker Hub one:
//                             the sites with continuous deployment on that image and tag
//                             refresh → 202 {"id": N}; 200 {"ignored"} for other events
// Handlers only queue and read (RefreshBroker): the daemon's loop does the work.
class ControlServer {
 public:
  static Result<std::unique_ptr<ControlServer>> start(const std::string& socket_path,
                                                      RefreshBroker& broker,
                                                      DiagnosisRunner& diagnoses);
  const std::string& address() const { return server_->address(); }

  // The request handling, without the server (tests drive it directly too).
  // Without `diagnoses`, /v1/diagnose is not served.
  static ServerResponse handle(const ServerRequest& request, RefreshBroker& broker,
                               DiagnosisRunner* diagnoses = nullptr);

 private:
  explicit ControlServer(std::unique_ptr<HttpServer> server) : server_(std::move(server)) {}
  std::unique_ptr<HttpServer> server_;
};

}  // namespace pullagent::agent
