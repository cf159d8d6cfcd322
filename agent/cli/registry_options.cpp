#include "agent/cli/registry_options.h"

#include <charconv>
#include <filesystem>
#include <iostream>

namespace pullagent::agent {

Result<int> parsePositive(const ParsedArgs& args, const std::string& name, int fallback) {
  auto text = args.option(name);
  if (!text)
    return fallback;
  int value = 0;
  auto [ptr, ec] = std::from_chars(text->data(), text->data() + text->size(), value);
  if (ec != std::errc() || ptr != text->data() + text->size() || value <= 0) {
    return makeError(ErrorCode::kInvalidArgument,
                     "--" + name + " needs a positive whole number, got \"" + *text + "\"");
  }
  return value;
}

Result<puller::RegistryCredentials> credentialsFrom(const ParsedArgs& args) {
  puller::RegistryCredentials credentials;
  if (auto creds = args.option("creds")) {
    auto colon = creds->find(':');
    if (colon == std::string::npos || colon == 0) {
      return makeError(ErrorCode::kInvalidArgument, "--creds needs USER:PASS");
    }
    credentials.username = creds->substr(0, colon);
    credentials.password = Secret(creds->substr(colon + 1));
  }
  if (args.flag("password-stdin")) {
    auto user = args.option("username");
    if (!user)
      return makeError(ErrorCode::kInvalidArgument, "--password-stdin needs --username");
    std::string password;
    std::getline(std::cin, password);
    credentials.username = *user;
    credentials.password = Secret(password);
  }
  return credentials;
}

Result<puller::HttpClientOptions> httpOptionsFrom(const ParsedArgs& args, HostResolver& resolver) {
  ASSIGN_OR_RETURN(auto connect_timeout, parsePositive(args, "connect-timeout", 15));
  ASSIGN_OR_RETURN(auto stall_timeout, parsePositive(args, "stall-timeout", 30));
  puller::HttpClientOptions options;
  options.resolver = &resolver;
  options.extra_ca_file = args.option("ca");
  options.connect_timeout = std::chrono::seconds(connect_timeout);
  options.stall_timeout = std::chrono::seconds(stall_timeout);
  return options;
}

Result<std::shared_ptr<const puller::TrustPolicy>> trustPolicyFrom(const ParsedArgs& args) {
  std::shared_ptr<const puller::ContainersPolicy> containers_policy;
  if (auto path = args.option("signature-policy")) {
    auto policy = puller::ContainersPolicy::load(*path);
    if (!policy)
      return policy.error().context("--signature-policy");
    containers_policy = std::make_shared<const puller::ContainersPolicy>(std::move(policy).value());
  }
  std::shared_ptr<const puller::NotationPolicy> notation_policy;
  if (auto directory = args.option("notation-dir")) {
    auto policy = puller::NotationPolicy::load(*directory);
    if (!policy)
      return policy.error().context("--notation-dir");
    notation_policy = std::make_shared<const puller::NotationPolicy>(std::move(policy).value());
  }
  std::optional<puller::ExternalVerifierConfig> verifiers;
  if (auto directory = args.option("verifier-dir")) {
    // The service, as containerd, blocks nothing when its directory is missing; asked for by
    // hand, a missing one is a typo, not an approval.
    std::error_code error;
    if (!std::filesystem::is_directory(*directory, error))
      return makeError(ErrorCode::kInvalidArgument,
                       "--verifier-dir: " + *directory + " is not a directory");
    verifiers.emplace();
    verifiers->bin_dir = *directory;
  }
  if (!containers_policy && !notation_policy && !verifiers)
    return std::shared_ptr<const puller::TrustPolicy>();
  return std::make_shared<const puller::TrustPolicy>(
      std::move(containers_policy), std::move(notation_policy), std::move(verifiers));
}

}  // namespace pullagent::agent
