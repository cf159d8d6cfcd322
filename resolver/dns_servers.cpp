#include "resolver/dns_servers.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <charconv>

namespace pullagent::resolver {
namespace {

bool isAddress(const std::string& text, int family) {
  std::array<unsigned char, 16> buffer{};
  return ::inet_pton(family, text.c_str(), buffer.data()) == 1;
}

}  // namespace

Result<DnsServer> DnsServer::parse(std::string_view text) {
  auto bad = [&](const std::string& why) {
    return makeError(ErrorCode::kInvalidArgument,
                     "DNS server \"" + std::string(text) + "\": " + why);
  };
  DnsServer server;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos)
      return bad("missing ']'");
    server.address = std::string(text.substr(1, close - 1));
    auto rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':')
        return bad("expected :port after ']'");
      port = rest.substr(1);
    }
    if (!isAddress(server.address, AF_INET6))
      return bad("not an IPv6 address");
  } else if (std::count(text.begin(), text.end(), ':') > 1) {
    server.address = std::string(text);  // bare IPv6, no port
    if (!isAddress(server.address, AF_INET6))
      return bad("not an IP address");
  } else {
    auto colon = text.find(':');
    server.address = std::string(text.substr(0, colon));
    if (colon != std::string_view::npos)
      port = text.substr(colon + 1);
    if (!isAddress(server.address, AF_INET))
      return bad("not an IP address (DNS servers are given by address)");
  }
  if (!port.empty()) {
    int value = 0;
    auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc() || ptr != port.data() + port.size() || value < 1 || value > 65535)
      return bad("bad port \"" + std::string(port) + "\"");
    server.port = value;
  }
  return server;
}

std::string DnsServer::str() const {
  return (address.find(':') != std::string::npos ? "[" + address + "]" : address) + ":" +
         std::to_string(port);
}

}  // namespace pullagent::resolver
