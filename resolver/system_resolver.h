#pragma once

#include "base/host_resolver.h"

namespace pullagent::resolver {

// The host's own resolver (getaddrinfo: /etc/hosts, resolv.conf), used for the public route.
class SystemResolver final : public HostResolver {
 public:
  Result<std::vector<std::string>> resolve(const std::string& host, const Context& ctx) override;
};

}  // namespace pullagent::resolver
