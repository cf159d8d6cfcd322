#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace pullagent::resolver {

// A DNS server as App Service settings write it: "10.0.0.4", "10.0.0.4:5353", "fd00::4",
// "[fd00::4]:5353". The port defaults to 53.
struct DnsServer {
  std::string address;  // numeric, IPv6 without brackets
  int port = 53;

  static Result<DnsServer> parse(std::string_view text);
  // "10.0.0.4:53", "[fd00::4]:53": c-ares' server CSV form, and how errors name it.
  std::string str() const;
};

}  // namespace pullagent::resolver
