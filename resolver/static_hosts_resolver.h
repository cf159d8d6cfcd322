#pragma once

#include <map>
#include <string>
#include <vector>

#include "base/host_resolver.h"

namespace pullagent::resolver {

// Fixed answers for some names (the agent config's hostOverrides, like curl --resolve), every
// other name from the resolver behind it.
class StaticHostsResolver final : public HostResolver {
 public:
  StaticHostsResolver(std::map<std::string, std::vector<std::string>> hosts, HostResolver& next)
      : hosts_(std::move(hosts)), next_(next) {}

  Result<std::vector<std::string>> resolve(const std::string& host, const Context& ctx) override {
    auto it = hosts_.find(host);
    if (it != hosts_.end())
      return it->second;
    return next_.resolve(host, ctx);
  }

 private:
  std::map<std::string, std::vector<std::string>> hosts_;
  HostResolver& next_;
};

}  // namespace pullagent::resolver
