#include "agent/config/agent_config.h"

#include <nlohmann/json.hpp>

namespace pullagent::agent {
namespace {

using nlohmann::json;

Error typeError(const std::string& path, const char* want, const json& value) {
  std::string shown = value.dump();
  if (shown.size() > 80)
    shown = shown.substr(0, 77) + "...";
  return makeError(ErrorCode::kInvalidArgument, path + ": expected " + want + ", got " + shown);
}

Status readString(const json& doc, const char* key, const std::string& path, std::string& out) {
  if (!doc.contains(key))
    return {};
  if (!doc[key].is_string())
    return typeError(path + key, "a string", doc[key]);
  out = doc[key].get<std::string>();
  return {};
}

Status readPositive(const json& doc, const char* key, int& out) {
  if (!doc.contains(key))
    return {};
  if (!doc[key].is_number_integer() || doc[key].get<long>() <= 0 || doc[key].get<long>() > 86400)
    return typeError(key, "a positive whole number", doc[key]);
  out = doc[key].get<int>();
  return {};
}

}  // namespace

Result<AgentConfig> parseAgentConfig(std::string_view json_text,
                                     const std::map<std::string, std::string>& environment) {
  auto doc = json::parse(json_text, nullptr, false);
  if (doc.is_discarded())
    return makeError(ErrorCode::kInvalidArgument, "agent config is not valid JSON");
  if (!doc.is_object())
    return typeError("$", "an object", doc);
  AgentConfig config;

  std::string state = config.state_dir.string();
  if (auto status = readString(doc, "stateDir", "", state); !status)
    return status.error();
  config.state_dir = state;
  if (auto status = readString(doc, "acrAudience", "", config.acr_audience); !status)
    return status.error();
  std::string ca;
  if (auto status = readString(doc, "caBundle", "", ca); !status)
    return status.error();
  if (!ca.empty())
    config.ca_bundle = ca;

  if (doc.contains("vnetDnsServers")) {
    const json& servers = doc["vnetDnsServers"];
    if (!servers.is_array() || servers.empty())
      return typeError("vnetDnsServers", "a non-empty array of addresses", servers);
    config.vnet_dns_servers.clear();
    for (const auto& server : servers) {
      if (!server.is_string())
        return typeError("vnetDnsServers", "addresses as strings", server);
      config.vnet_dns_servers.push_back(server.get<std::string>());
    }
  }
  std::string bind;
  if (auto status = readString(doc, "vnetBindTo", "", bind); !status)
    return status.error();
  if (!bind.empty()) {
    if (!bind.starts_with("host!") && !bind.starts_with("if!"))
      return typeError("vnetBindTo", "\"host!<address>\" or \"if!<interface>\"", doc["vnetBindTo"]);
    config.vnet_bind = bind;
  }
  int dns_timeout_ms = 2000;
  if (auto status = readPositive(doc, "dnsTimeoutMs", dns_timeout_ms); !status)
    return status.error();
  config.dns_timeout = std::chrono::milliseconds(dns_timeout_ms);
  if (auto status = readPositive(doc, "dnsTries", config.dns_tries); !status)
    return status.error();

  std::string sites = config.sites_dir.string();
  if (auto status = readString(doc, "sitesDir", "", sites); !status)
    return status.error();
  config.sites_dir = sites;
  std::string metrics;
  if (auto status = readString(doc, "metricsAddress", "", metrics); !status)
    return status.error();
  if (!metrics.empty())
    config.metrics_address = metrics;
  int rescan = 60, backoff = 10, max_backoff = 300;
  for (auto [key, target] : {std::pair{"maxConcurrentPulls", &config.max_concurrent_pulls},
                             std::pair{"rescanIntervalSeconds", &rescan},
                             std::pair{"retryInitialBackoffSeconds", &backoff},
                             std::pair{"retryMaxBackoffSeconds", &max_backoff}}) {
    if (auto status = readPositive(doc, key, *target); !status)
      return status.error();
  }
  if (max_backoff < backoff) {
    return typeError("retryMaxBackoffSeconds", "at least retryInitialBackoffSeconds",
                     doc["retryMaxBackoffSeconds"]);
  }
  config.rescan_interval = std::chrono::seconds(rescan);
  config.retry_initial_backoff = std::chrono::seconds(backoff);
  config.retry_max_backoff = std::chrono::seconds(max_backoff);

  int connect = 15, stall = 30;
  for (auto [key, target] :
       {std::pair{"connectTimeoutSeconds", &connect}, std::pair{"stallTimeoutSeconds", &stall},
        std::pair{"concurrency", &config.concurrency}, std::pair{"retries", &config.retries}}) {
    if (auto status = readPositive(doc, key, *target); !status)
      return status.error();
  }
  config.connect_timeout = std::chrono::seconds(connect);
  config.stall_timeout = std::chrono::seconds(stall);

  if (doc.contains("identity")) {
    const json& identity = doc["identity"];
    if (!identity.is_object())
      return typeError("identity", "an object", identity);
    std::string kind = "imds";
    if (auto status = readString(identity, "kind", "identity.", kind); !status)
      return status.error();
    if (kind == "appService") {
      config.identity.kind = IdentityEndpoint::Kind::kAppService;
    } else if (kind != "imds") {
      return typeError("identity.kind", "\"imds\" or \"appService\"", identity["kind"]);
    }
    if (auto status = readString(identity, "endpoint", "identity.", config.identity.url); !status)
      return status.error();
  } else if (auto endpoint = environment.find("IDENTITY_ENDPOINT"); endpoint != environment.end()) {
    config.identity.kind = IdentityEndpoint::Kind::kAppService;
    config.identity.url = endpoint->second;
  }
  if (config.identity.kind == IdentityEndpoint::Kind::kAppService) {
    auto header = environment.find("IDENTITY_HEADER");
    if (header == environment.end()) {
      return makeError(
          ErrorCode::kInvalidArgument,
          "the App Service identity endpoint needs IDENTITY_HEADER in the environment");
    }
    config.identity.header = Secret(header->second);
  }

  if (doc.contains("hostOverrides")) {
    const json& hosts = doc["hostOverrides"];
    if (!hosts.is_object())
      return typeError("hostOverrides", "an object of host: [addresses]", hosts);
    for (const auto& [host, addresses] : hosts.items()) {
      if (!addresses.is_array() || addresses.empty())
        return typeError("hostOverrides." + host, "a non-empty array of addresses", addresses);
      for (const auto& address : addresses) {
        if (!address.is_string())
          return typeError("hostOverrides." + host, "addresses as strings", address);
        config.host_overrides[host].push_back(address.get<std::string>());
      }
    }
  }
  return config;
}

}  // namespace pullagent::agent
