#include "agent/site/identity_pool.h"

#include "puller/http/curl_http_client.h"

namespace pullagent::agent {

ManagedIdentityTokenSource& IdentityPool::identity(const std::string& client_id,
                                                   const std::string& resource_id) {
  std::lock_guard lock(mutex_);
  auto& source = sources_[{client_id, resource_id}];
  if (!source) {
    source = std::make_unique<ManagedIdentityTokenSource>(
        http_, clock_, random_, endpoint_, client_id, imdsRetryPolicy(), resource_id);
  }
  return *source;
}

puller::HttpClientOptions agentHttpOptions(const AgentConfig& agent, HostResolver& resolver) {
  puller::HttpClientOptions options;
  options.resolver = &resolver;
  options.extra_ca_file = agent.ca_bundle;
  options.connect_timeout = agent.connect_timeout;
  options.stall_timeout = agent.stall_timeout;
  options.min_rate = agent.min_transfer_rate;
  options.document_timeout = agent.document_timeout;
  return options;
}

Result<std::unique_ptr<puller::HttpClient>> createIdentityClient(const AgentConfig& agent,
                                                                 HostResolver& resolver) {
  ASSIGN_OR_RETURN(auto client, puller::CurlHttpClient::create(agentHttpOptions(agent, resolver)));
  return std::unique_ptr<puller::HttpClient>(std::move(client));
}

}  // namespace pullagent::agent
