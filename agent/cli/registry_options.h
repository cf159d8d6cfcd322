#pragma once

#include <memory>
#include <string>

#include "agent/common/args.h"
#include "base/error.h"
#include "base/host_resolver.h"
#include "puller/auth/authorizer.h"
#include "puller/http/curl_http_client.h"
#include "puller/trust/trust_policy.h"

namespace pullagent::agent {

// The options every command that talks to a registry reads alike (pull, verify).

// --NAME as a positive whole number, or `fallback` when absent.
Result<int> parsePositive(const ParsedArgs& args, const std::string& name, int fallback);

// --creds USER:PASS, or --username USER with --password-stdin.
Result<puller::RegistryCredentials> credentialsFrom(const ParsedArgs& args);

// The HTTP client's options: --ca, --connect-timeout S (default 15), --stall-timeout S (30),
// names resolved by `resolver` (which must outlive the client).
Result<puller::HttpClientOptions> httpOptionsFrom(const ParsedArgs& args, HostResolver& resolver);

// --signature-policy FILE (containers-policy.json), --notation-dir DIR (a Notation directory)
// and --verifier-dir DIR (containerd's image verifiers, 10 at most, 10 s each): null when none
// is given. Errors name the option.
Result<std::shared_ptr<const puller::TrustPolicy>> trustPolicyFrom(const ParsedArgs& args);

}  // namespace pullagent::agent
