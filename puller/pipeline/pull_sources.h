#pragma once

#include <memory>
#include <string>
#include <vector>

#include "base/clock.h"
#include "puller/auth/authorizer.h"
#include "puller/http/curl_http_client.h"
#include "puller/mirror/hosts_config.h"
#include "puller/registry/registry_source.h"

namespace pullagent::puller {

// Where one pull fetches from, made from a registry's hosts (hosts.toml: mirrors, then the
// origin): each host with TLS settings of its own gets an HTTP client of its own; each mirror
// an anonymous Authorizer of its own, so that the origin's credentials (tokens, ACR refresh
// tokens, Basic) can never be sent to a mirror. A mirror whose client cannot be made (its CA or
// client certificate unreadable) is left out with a warning; the origin's is the pull's error,
// and so is skip_verify where the agent config does not allow it. Owns them for the pull's
// length.
class PullSources {
 public:
  struct Inputs {
    std::vector<RegistryHost> hosts;  // the origin last
    std::string registry;             // as the reference names it: the mirrors' ?ns=
    HttpClient* origin_http = nullptr;
    // The pull's credentials: for the origin's Authorizer alone, whose token requests go
    // through the origin's client (its CA trusted for the token server too, as containerd does).
    RegistryCredentials origin_credentials;
    bool insecure_origin = false;  // the origin over plain http (--insecure)
    // The options the pull's own client was made with, for clients of hosts with TLS settings
    // of their own. Null: such hosts are an error (a caller that cannot make clients).
    const HttpClientOptions* http_options = nullptr;
    bool allow_skip_verify = false;  // the agent config's allowSkipVerify
  };

  static Result<std::unique_ptr<PullSources>> create(const Inputs& inputs, const Clock& clock);

  const std::vector<RegistrySource>& sources() const { return sources_; }
  // "mirror https://m:5000 (pull), origin https://r.io", for the log.
  std::string describe() const;

 private:
  PullSources() = default;
  Result<HttpClient*> clientFor(const RegistryHost& host, const Inputs& inputs);

  std::vector<RegistrySource> sources_;
  std::vector<std::unique_ptr<HttpClient>> clients_;
  std::vector<std::unique_ptr<TokenCache>> token_caches_;
  std::vector<std::unique_ptr<Authorizer>> authorizers_;
};

}  // namespace pullagent::puller
