#include "resolver/system_resolver.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>

namespace pullagent::resolver {

Result<std::vector<std::string>> SystemResolver::resolve(const std::string& host,
                                                         const Context& ctx) {
  RETURN_IF_ERROR(ctx.check());
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_ADDRCONFIG;
  addrinfo* list = nullptr;
  int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &list);
  if (rc != 0) {
    ErrorCode code = (rc == EAI_AGAIN) ? ErrorCode::kUnavailable : ErrorCode::kNotFound;
    return makeError(code, "resolve " + host + " with the system resolver: " + ::gai_strerror(rc),
                     rc);
  }
  std::vector<std::string> addresses;
  for (addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
    std::array<char, INET6_ADDRSTRLEN> text{};
    const void* raw = nullptr;
    if (ai->ai_family == AF_INET) {
      raw = &reinterpret_cast<const sockaddr_in*>(ai->ai_addr)->sin_addr;
    } else if (ai->ai_family == AF_INET6) {
      raw = &reinterpret_cast<const sockaddr_in6*>(ai->ai_addr)->sin6_addr;
    } else {
      continue;
    }
    if (::inet_ntop(ai->ai_family, raw, text.data(), text.size()) == nullptr)
      continue;
    std::string address(text.data());
    if (std::find(addresses.begin(), addresses.end(), address) == addresses.end()) {
      addresses.push_back(std::move(address));
    }
  }
  ::freeaddrinfo(list);
  if (addresses.empty()) {
    return makeError(ErrorCode::kNotFound, "resolve " + host + ": no IPv4 or IPv6 address");
  }
  return addresses;
}

}  // namespace pullagent::resolver
