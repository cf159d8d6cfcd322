#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "agent/config/agent_config.h"
#include "agent/identity/managed_identity.h"
#include "base/clock.h"
#include "base/host_resolver.h"
#include "base/random.h"
#include "puller/http/curl_http_client.h"
#include "puller/http/http_client.h"

namespace pullagent::agent {

// The host's managed-identity token sources, one per identity, kept for the life of the agent so
// that tokens are cached across pulls and sites: the daemon asks IMDS once per identity and
// resource until the token nears expiry, however many sites use it.
class IdentityPool {
 public:
  // `http` reaches the identity endpoint (host resolver, never the VNet's).
  IdentityPool(puller::HttpClient& http, Clock& clock, Random& random, IdentityEndpoint endpoint)
      : http_(http), clock_(clock), random_(random), endpoint_(std::move(endpoint)) {}

  // By client id (acrUserManagedIdentityID), by ARM resource id (keyVaultReferenceIdentity), or
  // neither for the system-assigned identity. The reference stays valid for the pool's life.
  ManagedIdentityTokenSource& identity(const std::string& client_id,
                                       const std::string& resource_id = "");

 private:
  puller::HttpClient& http_;
  Clock& clock_;
  Random& random_;
  IdentityEndpoint endpoint_;
  std::mutex mutex_;
  std::map<std::pair<std::string, std::string>, std::unique_ptr<ManagedIdentityTokenSource>>
      sources_;
};

// HTTP options every client of the agent shares: the agent's CA bundle and timeouts, `resolver`.
puller::HttpClientOptions agentHttpOptions(const AgentConfig& agent, HostResolver& resolver);

// The HTTP client for the identity endpoint: the agent's CA bundle and timeouts, `resolver` (the
// host's, with the agent's host overrides).
Result<std::unique_ptr<puller::HttpClient>> createIdentityClient(const AgentConfig& agent,
                                                                 HostResolver& resolver);

}  // namespace pullagent::agent
