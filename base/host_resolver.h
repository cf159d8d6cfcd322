#pragma once

#include <string>
#include <vector>

#include "base/context.h"
#include "base/error.h"

namespace pullagent {

// Turns a host name into numeric addresses. The puller asks this interface and pins the answer
// into libcurl (so TLS still checks the name); the agent decides which implementation a pull
// uses: the system resolver, or c-ares against the VNet's DNS servers.
class HostResolver {
 public:
  virtual ~HostResolver() = default;
  // Numeric IPv4 or IPv6 addresses (IPv6 without brackets), in the order they should be tried.
  virtual Result<std::vector<std::string>> resolve(const std::string& host, const Context& ctx) = 0;
};

}  // namespace pullagent
