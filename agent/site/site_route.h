#pragma once

#include <memory>
#include <string>

#include "agent/config/agent_config.h"
#include "agent/config/site_config.h"
#include "base/clock.h"
#include "base/host_resolver.h"
#include "puller/http/curl_http_client.h"
#include "resolver/ares_resolver.h"
#include "resolver/static_hosts_resolver.h"

namespace pullagent::agent {

// What every container of a site pulls through: the route's resolver and HTTP client.
struct SiteRoute {
  std::unique_ptr<resolver::AresResolver> vnet;
  std::unique_ptr<resolver::StaticHostsResolver> resolver;
  puller::HttpClientOptions http_options;
  std::unique_ptr<puller::HttpClient> http;
  std::string said;  // in words, with the settings that decided
};

// The route of a site's pulls: the VNet's DNS (c-ares, never a fallback to public DNS) and the
// VNet's source address when the site pulls over the VNet, else `system_resolver`; the agent's
// hostOverrides above either. Identity endpoints never go through it.
Result<SiteRoute> siteRoute(const AgentConfig& agent, const Clock& clock,
                            HostResolver& system_resolver, const SiteConfig& site);

// The VNet's DNS for this site: its dnsConfiguration / WEBSITE_DNS_* servers, attempts and
// timeout, else the agent's defaults.
Result<resolver::AresOptions> vnetDns(const AgentConfig& agent, const SiteConfig& site);

}  // namespace pullagent::agent
