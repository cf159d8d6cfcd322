#include <algorithm>

#include "agent/diagnose/connection_probe.h"
#include "agent/diagnose/dns_judgement.h"
#include "agent/diagnose/walk.h"
#include "agent/site/site_state.h"
#include "base/redact.h"
#include "puller/auth/challenge.h"
#include "resolver/ares_resolver.h"

namespace pullagent::agent::walk {
namespace {

constexpr std::string_view kAzureRegistrySuffix = ".azurecr.io";

bool isAzureRegistry(const std::string& host) {
  return host.size() > kAzureRegistrySuffix.size() && host.ends_with(kAzureRegistrySuffix);
}

std::string notResolvedFix(const std::string& host, const Error& error) {
  if (error.code != ErrorCode::kNotFound) {
    return "the VNet's DNS servers do not answer: check dnsConfiguration.dnsServers / "
           "WEBSITE_DNS_SERVER (or the agent's vnetDnsServers) and that they are reachable from "
           "the host";
  }
  if (!isAzureRegistry(host))
    return "make the VNet's DNS servers resolve " + host;
  const std::string label = host.substr(0, host.size() - kAzureRegistrySuffix.size());
  return "link the private DNS zone privatelink.azurecr.io to the site's VNet, with a record "
         "for " +
         label + " (the registry's private endpoint; its data endpoints need records too)";
}

bool tlsStep(Walk& walk, int fd) {
  walk.log.begin();
  const std::string& host = walk.registry.host;
  TlsProbeOptions options;
  options.timeout = std::chrono::milliseconds(walk.agent.connect_timeout);
  std::vector<std::string> said;
  if (walk.agent.ca_bundle) {
    options.ca_files.push_back(*walk.agent.ca_bundle);
    said.push_back("caBundle " + *walk.agent.ca_bundle);
  }
  bool skip_verify = false;
  if (walk.origin_host != nullptr) {
    for (const auto& file : walk.origin_host->ca_files) {
      options.ca_files.push_back(file.string());
      said.push_back("ca " + file.string());
    }
    if (!walk.origin_host->client_pairs.empty()) {
      const auto& [certificate, key] = walk.origin_host->client_pairs.front();
      options.client_certificate.emplace(certificate.string(), key.string());
    }
    // PullSources refused it unless the agent config allows it.
    skip_verify = walk.origin_host->skip_verify.value_or(false) && walk.agent.allow_skip_verify;
  }
  options.trust_said = joined(said, " and ");
  auto facts = probeTls(fd, host, options, walk.ctx);
  if (!facts) {
    const ErrorCode code = facts.error().code;
    walk.log.failed("tls.registry", facts.error().context(walk.registry.hostPort()),
                    code == ErrorCode::kUntrusted
                        ? "the registry must speak TLS 1.2 or later on port " +
                              std::to_string(walk.registry.port)
                    : code == ErrorCode::kInvalidArgument
                        ? "correct the CA or client certificate files named above (caBundle, "
                          "or the registry's hosts.toml)"
                        : "the connection to " + walk.registry.hostPort() +
                              " broke during the TLS handshake: check the network path");
    return false;
  }
  const std::string until = formatUtc(facts->not_after);
  const std::string seen = facts->protocol + ", certificate " +
                           (facts->chain.empty() ? "?" : facts->chain.front()) + " by " +
                           facts->issuer + ", names " + joined(facts->names) + ", valid until " +
                           until + ", checked against " + facts->trust;
  if (skip_verify) {
    walk.log.ok("tls.registry", seen + "; not verified: skip_verify in " +
                                    walk.origin_host->config_file + " (allowSkipVerify)");
    return true;
  }
  auto untrusted = [&](const std::string& why, const std::string& fix) {
    walk.log.failed("tls.registry", makeError(ErrorCode::kUntrusted, seen + ": " + why), fix);
    return false;
  };
  if (facts->expired) {
    return facts->not_after <= walk.services.clock.wallNow()
               ? untrusted("the certificate has expired",
                           "renew the certificate of " + host + ": it expired at " + until)
               : untrusted("a certificate of its chain has expired",
                           "renew the expired intermediate or root certificate " + host +
                               " sends (its chain: " + joined(facts->chain, " < ") + ")");
  }
  if (!facts->name_matches) {
    return untrusted("the certificate does not name " + host,
                     "the certificate names " + joined(facts->names) + ", not " + host +
                         ": reissue it with " + host +
                         " among its names, or use a name it carries in the image reference");
  }
  if (!facts->verify_error.empty()) {
    return untrusted(facts->verify_error,
                     "trust the registry's CA: add it to caBundle in the agent config, or to the "
                     "registry's hosts.toml `ca` (now trusted: " +
                         facts->trust + ")");
  }
  walk.log.ok("tls.registry", seen);
  return true;
}

bool challengeStep(Walk& walk) {
  walk.log.begin();
  puller::HttpRequest request;
  request.url = walk.registry.str();
  if (walk.origin != nullptr)
    request.headers = walk.origin->headers;
  auto response = walk.http().send(request, walk.ctx);
  if (!response) {
    walk.log.failed("http.challenge", response.error(),
                    "the registry's API at " + walk.registry.hostPort() + " does not answer");
    return false;
  }
  walk.challenge = *response;
  const int status = response->status;
  if (status == 200) {
    walk.log.ok("http.challenge", "HTTP 200: the registry asks for no credentials");
    return true;
  }
  if (status == 401) {
    auto challenges = puller::parseChallenges(response->headerValues("WWW-Authenticate"));
    std::string said;
    for (const auto& challenge : challenges) {
      said += (said.empty() ? "" : "; ") + safeEscaped(challenge.scheme);
      if (auto realm = challenge.param("realm"))
        said += " realm " + safeEscaped(redactUrl(*realm), 200);
      if (auto service = challenge.param("service"))
        said += " service " + safeEscaped(*service);
    }
    walk.log.ok("http.challenge", "HTTP 401 with " + (said.empty() ? "no challenge" : said));
    return true;
  }
  const ErrorCode code = status == 403   ? ErrorCode::kPermissionDenied
                         : status >= 500 ? ErrorCode::kUnavailable
                                         : ErrorCode::kProtocol;
  Error error = makeError(code, walk.registry.hostPort() + " answered GET /v2/ with HTTP " +
                                    std::to_string(status) + ": " + safeQuoted(response->body));
  std::string fix = "the registry's API must answer GET /v2/ with 200 or 401";
  if (status == 403 && response->body.find("not allowed access") != std::string::npos) {
    fix = walk.site.pull_over_vnet
              ? "the registry refuses this host's VNet address: allow the VNet in the "
                "registry's networking rules, or reach it through its private endpoint"
              : "the registry allows only its private endpoint: enable vnetImagePullEnabled "
                "on the site (outboundVnetRouting.imagePullTraffic in newer API versions)";
  } else if (status >= 500) {
    fix = "the registry is failing (HTTP " + std::to_string(status) + "): try again later";
  }
  walk.log.failed("http.challenge", error, fix);
  return false;
}

}  // namespace

std::optional<std::vector<std::string>> dnsStep(Walk& walk, const std::string& id,
                                                const std::string& host) {
  walk.log.begin();
  if (auto it = walk.agent.host_overrides.find(host); it != walk.agent.host_overrides.end()) {
    walk.log.ok(id, host + " -> " + joined(it->second) + " (hostOverrides in the agent config)");
    return it->second;
  }
  if (!walk.route.vnet) {
    auto addresses = walk.route.resolver->resolve(host, walk.ctx);
    if (!addresses) {
      walk.log.failed(id, addresses.error(),
                      "the host's resolver cannot resolve " + host +
                          ": fix the host's DNS, or pull over the VNet if the name is only "
                          "resolvable there (vnetImagePullEnabled)");
      return std::nullopt;
    }
    walk.log.ok(id, host + " -> " + joined(*addresses) + " (the host's resolver, public route)");
    return addresses.value();
  }
  auto answer = walk.route.vnet->lookup(host, walk.ctx);
  if (!answer) {
    walk.log.failed(id, answer.error(), notResolvedFix(host, answer.error()));
    return std::nullopt;
  }
  std::string said = host;
  for (const auto& name : answer->chain)
    said += " -> " + safeEscaped(name);
  said +=
      " -> " + joined(answer->addresses) + " (VNet DNS, ttl " + std::to_string(answer->ttl) + " s)";
  const DnsJudgement judgement = judgeDnsAnswer(answer->chain, answer->addresses);
  if (judgement.zone_not_linked) {
    // A VNet pull is meant to reach the private endpoint: this one would leave the VNet (and
    // fail wherever the registry refuses public traffic), so nothing is sent there.
    walk.log.failed(id,
                    makeError(ErrorCode::kNotFound,
                              said + ": a private-link name answered with a public address"),
                    "link the private DNS zone " + judgement.zone +
                        " to the site's VNet (the VNet's DNS answers from public DNS)");
    return std::nullopt;
  }
  const bool all_public =
      std::all_of(answer->addresses.begin(), answer->addresses.end(), resolver::isPublicAddress);
  walk.log.ok(id, said + (all_public ? ", public addresses" : ", private addresses"));
  return std::move(answer->addresses);
}

bool networkSteps(Walk& walk) {
  auto addresses = dnsStep(walk, "dns.registry", walk.registry.host);
  if (!addresses) {
    skipRest(walk.log, {"tcp.registry", "tls.registry", "http.challenge"}, "dns.registry failed");
    return false;
  }
  walk.log.begin();
  const int port = walk.registry.port;
  auto connection =
      connectFirst(*addresses, port, std::chrono::milliseconds(walk.agent.connect_timeout),
                   walk.route.http_options.bind_to, walk.ctx);
  if (!connection) {
    walk.log.failed("tcp.registry", connection.error().context(walk.registry.hostPort()),
                    "open TCP port " + std::to_string(port) + " to " + walk.registry.host +
                        " from this host" + (walk.site.pull_over_vnet ? " through the VNet" : "") +
                        " (network security group, firewall), or check that the registry is up");
    skipRest(walk.log, {"tls.registry", "http.challenge"}, "tcp.registry failed");
    return false;
  }
  walk.log.ok("tcp.registry",
              "connected to " + connection->address + " port " + std::to_string(port) +
                  (connection->failed.empty()
                       ? ""
                       : " (after these failed: " + joined(connection->failed, "; ") + ")"));
  if (walk.registry.scheme != "https") {
    walk.log.begin();
    walk.log.skipped("tls.registry", "plain http: the registry is configured without TLS");
  } else if (!tlsStep(walk, connection->fd.get())) {
    skipRest(walk.log, {"http.challenge"}, "tls.registry failed");
    return false;
  }
  return challengeStep(walk);
}

}  // namespace pullagent::agent::walk
