#include "agent/diagnose/dns_judgement.h"

#include <algorithm>
#include <cctype>

#include "resolver/ares_resolver.h"

namespace pullagent::agent {

DnsJudgement judgeDnsAnswer(const std::vector<std::string>& chain,
                            const std::vector<std::string>& addresses) {
  DnsJudgement judgement;
  for (const auto& name : chain) {
    std::string lower = name;
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    const auto at = lower.find("privatelink.");
    if (at != std::string::npos && (at == 0 || lower[at - 1] == '.')) {
      judgement.zone = lower.substr(at);
      if (judgement.zone.ends_with("."))
        judgement.zone.pop_back();
    }
  }
  judgement.zone_not_linked =
      !judgement.zone.empty() && !addresses.empty() &&
      std::all_of(addresses.begin(), addresses.end(), resolver::isPublicAddress);
  return judgement;
}

}  // namespace pullagent::agent
