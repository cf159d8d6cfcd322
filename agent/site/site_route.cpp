#include "agent/site/site_route.h"

#include "agent/site/identity_pool.h"
#include "puller/http/curl_http_client.h"

namespace pullagent::agent {

Result<resolver::AresOptions> vnetDns(const AgentConfig& agent, const SiteConfig& site) {
  std::vector<std::string> names = agent.vnet_dns_servers;
  if (!site.dns.servers.empty())
    names = site.dns.servers;
  if (site.dns.alt_server)
    names.push_back(*site.dns.alt_server);
  resolver::AresOptions dns;
  dns.timeout = site.dns.timeout_seconds
                    ? std::chrono::milliseconds(std::chrono::seconds(*site.dns.timeout_seconds))
                    : agent.dns_timeout;
  dns.tries = site.dns.attempts.value_or(agent.dns_tries);
  for (const auto& name : names) {
    ASSIGN_OR_RETURN(auto server, resolver::DnsServer::parse(name));
    dns.servers.push_back(server);
  }
  return dns;
}

Result<SiteRoute> siteRoute(const AgentConfig& agent, const Clock& clock,
                            HostResolver& system_resolver, const SiteConfig& site) {
  SiteRoute route;
  // Identity endpoints are local to the host: always the system resolver. Everything the pull
  // itself reaches (registry, token realm, data endpoint, Key Vault) goes through the VNet's DNS
  // when the site pulls over the VNet - with no fallback to public DNS.
  std::string said = "system resolver (public route: no setting routes image pulls over the VNet)";
  if (site.pull_over_vnet) {
    ASSIGN_OR_RETURN(auto dns, vnetDns(agent, site));
    ASSIGN_OR_RETURN(route.vnet, resolver::AresResolver::create(dns, clock));
    said = "VNet DNS";
    for (const auto& server : dns.servers)
      said += " " + server.str();
    said += ", " + std::to_string(dns.tries) + " tries of " + std::to_string(dns.timeout.count()) +
            " ms (image pulls over the VNet: " + site.route_decided_by;
    for (const auto& source : site.dns.decided_by)
      said += "; " + source;
    said += ")";
  }
  HostResolver& base = route.vnet ? static_cast<HostResolver&>(*route.vnet)
                                  : static_cast<HostResolver&>(system_resolver);
  route.resolver = std::make_unique<resolver::StaticHostsResolver>(agent.host_overrides, base);
  route.http_options = agentHttpOptions(agent, *route.resolver);
  if (site.pull_over_vnet)
    route.http_options.bind_to = agent.vnet_bind;
  ASSIGN_OR_RETURN(route.http, puller::CurlHttpClient::create(route.http_options));
  route.said = std::move(said);
  return route;
}

}  // namespace pullagent::agent
