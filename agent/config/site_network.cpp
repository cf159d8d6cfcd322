#include "agent/config/site_network.h"

#include <array>

#include "resolver/dns_servers.h"

namespace pullagent::agent {

using namespace site_json;  // NOLINT: this file is the site_json helpers' user

// Whether image pulls go over the VNet, and which setting said so. Each of these turns it on;
// the newest form is named when several do: publicNetworkAccess "SecuredByPerimeter" (every
// outbound call over the VNet), outboundVnetRouting.allTraffic, outboundVnetRouting
// .imagePullTraffic (the new name of vnetImagePullEnabled), vnetImagePullEnabled (on the site
// or in siteConfig), the app setting WEBSITE_PULL_IMAGE_OVER_VNET.
Result<std::pair<bool, std::string>> readRoute(const SiteSections& sections,
                                               const Settings& settings) {
  const std::array<std::pair<const json*, std::string>, 2> holders{
      std::pair<const json*, std::string>{&sections.site, sections.site_path},
      {&sections.config, sections.config_path}};
  for (const auto& [holder, holder_path] : holders) {
    ASSIGN_OR_RETURN(auto access,
                     optionalString(*holder, "publicNetworkAccess", sections.pathOf(holder_path)));
    if (access && upper(*access) == "SECUREDBYPERIMETER")
      return std::pair{true, joinPath(holder_path, "publicNetworkAccess") + " SecuredByPerimeter"};
  }
  for (const char* key : {"allTraffic", "imagePullTraffic"}) {
    for (const auto& [holder, holder_path] : holders) {
      if (!holder->contains("outboundVnetRouting") || (*holder)["outboundVnetRouting"].is_null())
        continue;
      const std::string routing_path = joinPath(holder_path, "outboundVnetRouting");
      const json& routing = (*holder)["outboundVnetRouting"];
      if (!routing.is_object())
        return typeError(routing_path, "an object", routing);
      ASSIGN_OR_RETURN(auto value, optionalBool(routing, key, routing_path));
      if (value.value_or(false))
        return std::pair{true, routing_path + "." + key};
    }
  }
  for (const auto& [holder, holder_path] : holders) {
    ASSIGN_OR_RETURN(auto value,
                     optionalBool(*holder, "vnetImagePullEnabled", sections.pathOf(holder_path)));
    if (value.value_or(false))
      return std::pair{true, joinPath(holder_path, "vnetImagePullEnabled")};
  }
  auto legacy = setting(settings, "WEBSITE_PULL_IMAGE_OVER_VNET");
  if (legacy && (upper(*legacy) == "TRUE" || *legacy == "1"))
    return std::pair{true, std::string("app setting WEBSITE_PULL_IMAGE_OVER_VNET")};
  return std::pair{false, std::string()};
}

// The site's DNS for VNet pulls: each dnsConfiguration field over its app setting. The ranges
// are App Service's: 1-5 attempts, 1-30 seconds each.
Result<SiteConfig::Dns> readDns(const SiteSections& sections, const Settings& settings) {
  SiteConfig::Dns dns;
  const json* config = nullptr;
  std::string config_path;
  for (const auto& [holder, holder_path] :
       {std::pair<const json*, std::string>{&sections.site, sections.site_path},
        {&sections.config, sections.config_path}}) {
    if (holder->contains("dnsConfiguration") && !(*holder)["dnsConfiguration"].is_null()) {
      config = &(*holder)["dnsConfiguration"];
      config_path = joinPath(holder_path, "dnsConfiguration");
      if (!config->is_object())
        return typeError(config_path, "an object", *config);
      break;
    }
  }
  const json empty = json::object();
  const json& fields = config != nullptr ? *config : empty;
  auto checkServer = [](const std::string& text, const std::string& where) -> Status {
    if (auto server = resolver::DnsServer::parse(text); !server)
      return makeError(ErrorCode::kInvalidArgument, where + ": " + server.error().message);
    return {};
  };
  if (fields.contains("dnsServers") && !fields["dnsServers"].is_null()) {
    const std::string path = config_path + ".dnsServers";
    if (!fields["dnsServers"].is_array())
      return typeError(path, "an array of DNS server addresses", fields["dnsServers"]);
    for (size_t i = 0; i < fields["dnsServers"].size(); ++i) {
      const std::string item_path = path + "[" + std::to_string(i) + "]";
      const json& item = fields["dnsServers"][i];
      if (!item.is_string())
        return typeError(item_path, "a DNS server address", item);
      RETURN_IF_ERROR(checkServer(item.get<std::string>(), item_path));
      dns.servers.push_back(item.get<std::string>());
    }
    if (!dns.servers.empty())
      dns.decided_by.push_back(path);
  }
  if (dns.servers.empty()) {
    if (auto server = setting(settings, "WEBSITE_DNS_SERVER")) {
      RETURN_IF_ERROR(checkServer(*server, settings.at("WEBSITE_DNS_SERVER").first));
      dns.servers.push_back(*server);
      dns.decided_by.push_back("app setting WEBSITE_DNS_SERVER");
    }
  }
  ASSIGN_OR_RETURN(auto alt, optionalString(fields, "dnsAltServer", config_path));
  if (alt && !alt->empty()) {
    RETURN_IF_ERROR(checkServer(*alt, config_path + ".dnsAltServer"));
    dns.alt_server = *alt;
    dns.decided_by.push_back(config_path + ".dnsAltServer");
  } else if (auto setting_alt = setting(settings, "WEBSITE_DNS_ALT_SERVER")) {
    RETURN_IF_ERROR(checkServer(*setting_alt, settings.at("WEBSITE_DNS_ALT_SERVER").first));
    dns.alt_server = *setting_alt;
    dns.decided_by.push_back("app setting WEBSITE_DNS_ALT_SERVER");
  }
  ASSIGN_OR_RETURN(dns.attempts, integerField(fields, "dnsRetryAttemptCount", config_path, 1, 5));
  if (dns.attempts) {
    dns.decided_by.push_back(config_path + ".dnsRetryAttemptCount");
  } else {
    ASSIGN_OR_RETURN(dns.attempts, integerSetting(settings, "WEBSITE_DNS_ATTEMPTS", 1, 5));
    if (dns.attempts)
      dns.decided_by.push_back("app setting WEBSITE_DNS_ATTEMPTS");
  }
  ASSIGN_OR_RETURN(dns.timeout_seconds,
                   integerField(fields, "dnsRetryAttemptTimeout", config_path, 1, 30));
  if (dns.timeout_seconds) {
    dns.decided_by.push_back(config_path + ".dnsRetryAttemptTimeout");
  } else {
    ASSIGN_OR_RETURN(dns.timeout_seconds, integerSetting(settings, "WEBSITE_DNS_TIMEOUT", 1, 30));
    if (dns.timeout_seconds)
      dns.decided_by.push_back("app setting WEBSITE_DNS_TIMEOUT");
  }
  return dns;
}

}  // namespace pullagent::agent
