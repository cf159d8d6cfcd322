#include "puller/pipeline/pull_sources.h"

#include <spdlog/spdlog.h>
#include <strings.h>

namespace pullagent::puller {
namespace {

bool isAuthorization(const std::string& name) {
  return ::strcasecmp(name.c_str(), "Authorization") == 0;
}

std::string hostDescription(const RegistryHost& host) {
  std::string text =
      (host.origin ? "the origin " : "the mirror ") + host.scheme + "://" + host.host;
  if (!host.config_file.empty())
    text += " (" + host.config_file + ")";
  return text;
}

bool skipsVerify(const RegistryHost& host) {
  return host.skip_verify.value_or(false) && host.scheme == "https";
}

Status checkPolicy(const RegistryHost& host, const PullSources::Inputs& inputs) {
  if (skipsVerify(host) && !inputs.allow_skip_verify) {
    return makeError(ErrorCode::kInvalidArgument,
                     hostDescription(host) +
                         " sets skip_verify = true, which pullagent refuses unless the agent "
                         "config allows it (\"allowSkipVerify\": true); better, give the host's "
                         "CA with `ca`");
  }
  return {};
}

}  // namespace

Result<HttpClient*> PullSources::clientFor(const RegistryHost& host, const Inputs& inputs) {
  const bool skip_verify = skipsVerify(host);
  if (host.ca_files.empty() && host.client_pairs.empty() && !skip_verify)
    return inputs.origin_http;
  if (inputs.http_options == nullptr) {
    return makeError(ErrorCode::kInvalidArgument,
                     hostDescription(host) +
                         " has TLS settings of its own (ca, client, "
                         "skip_verify), which this caller cannot apply");
  }
  HttpClientOptions options = *inputs.http_options;
  for (const auto& file : host.ca_files)
    options.more_ca_files.push_back(file.string());
  if (!host.client_pairs.empty()) {
    // curl presents one client certificate; containerd offers the list to the server's choice.
    const auto& [certificate, key] = host.client_pairs.front();
    options.client_certificate.emplace(certificate.string(), key.string());
  }
  options.skip_verify = skip_verify;
  auto client = CurlHttpClient::create(options);
  if (!client)
    return client.error().context(hostDescription(host));
  clients_.push_back(std::move(client.value()));
  return clients_.back().get();
}

Result<std::unique_ptr<PullSources>> PullSources::create(const Inputs& inputs, const Clock& clock) {
  std::unique_ptr<PullSources> made(new PullSources());
  for (const auto& host : inputs.hosts) {
    if (!host.origin && !host.can(kCapabilityPull) && !host.can(kCapabilityResolve))
      continue;  // push-only: nothing a puller asks of it
    RegistrySource source;
    source.scheme = host.origin && inputs.insecure_origin ? "http" : host.scheme;
    source.host = host.host;
    source.api_root = host.path;
    source.origin = host.origin;
    source.pull = host.can(kCapabilityPull);
    source.resolve = host.can(kCapabilityResolve);
    RETURN_IF_ERROR(checkPolicy(host, inputs));
    auto client = made->clientFor(host, inputs);
    if (!client && !host.origin) {
      // A mirror whose CA or client certificate cannot be read is a mirror that fails: the
      // origin serves the pull.
      spdlog::warn("{} is left out of this pull: {}", hostDescription(host),
                   client.error().describe());
      continue;
    }
    if (!client)
      return client.error();
    source.http = client.value();
    for (const auto& [name, value] : host.headers) {
      if (!isAuthorization(name)) {
        source.headers.push_back({name, value});
      } else if (!host.origin) {
        source.authorization = Secret(value);
      } else {
        // The origin is authorised by the pull's own credentials (site settings, identity).
        spdlog::warn(
            "{}: an Authorization header for the origin is ignored; the site's "
            "credentials are used",
            hostDescription(host));
      }
    }
    // Each source its own Authorizer and token cache: the origin's with the pull's
    // credentials, a mirror's with none (it may still answer a token challenge of its own).
    made->token_caches_.push_back(std::make_unique<TokenCache>(clock));
    made->authorizers_.push_back(std::make_unique<Authorizer>(
        *source.http, clock, *made->token_caches_.back(),
        host.origin ? inputs.origin_credentials : RegistryCredentials{},
        host.origin && inputs.insecure_origin));
    source.authorizer = made->authorizers_.back().get();
    if (!host.origin && host.host != inputs.registry)
      source.ns = inputs.registry;
    made->sources_.push_back(std::move(source));
  }
  if (made->sources_.empty() || !made->sources_.back().origin)
    return makeError(ErrorCode::kInternal, "the registry's hosts end without its origin");
  return made;
}

std::string PullSources::describe() const {
  std::string text;
  for (const auto& source : sources_) {
    if (!text.empty())
      text += ", ";
    text += source.describe();
    if (!source.origin && !source.resolve)
      text += " (pull)";
  }
  return text;
}

}  // namespace pullagent::puller
