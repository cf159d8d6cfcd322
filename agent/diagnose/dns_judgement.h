#pragma once

#include <string>
#include <vector>

namespace pullagent::agent {

// A VNet DNS answer judged: a name whose CNAME chain passes through a private-link zone
// ("privatelink.azurecr.io") but ends at public addresses was answered from public DNS, which
// means the private DNS zone is not linked to the VNet (Azure's public DNS holds the same chain
// with the public address at its end).
struct DnsJudgement {
  bool zone_not_linked = false;
  std::string zone;  // "privatelink.azurecr.io", when the chain passes through one
};
DnsJudgement judgeDnsAnswer(const std::vector<std::string>& chain,
                            const std::vector<std::string>& addresses);

}  // namespace pullagent::agent
