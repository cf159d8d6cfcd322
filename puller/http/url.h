#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace pullagent::puller {

// An absolute http(s) URL split into what redirect and credential rules compare.
struct Url {
  std::string scheme;  // "https" or "http", lowercase
  std::string host;    // lowercase; IPv6 without brackets
  int port = 0;        // explicit or the scheme's default
  std::string target;  // path and query, "/v2/..."

  static Result<Url> parse(std::string_view text);
  // Resolves `reference` (absolute, or relative like a Location header) against `base`.
  static Result<Url> resolve(std::string_view base, std::string_view reference);

  // "https://host:port": credentials may only be sent within one origin.
  std::string origin() const;
  // "host:port" with IPv6 in brackets, as CURLOPT_RESOLVE and logs want it.
  std::string hostPort() const;
  std::string str() const;
  bool sameOrigin(const Url& other) const {
    return scheme == other.scheme && host == other.host && port == other.port;
  }
};

// A CURLOPT_RESOLVE entry pinning `host`:`port` to addresses, tried in order:
// "myreg.azurecr.io:443:10.0.0.7,[fd00::7]" (IPv6 in brackets).
std::string resolvePinEntry(const std::string& host, int port,
                            const std::vector<std::string>& addresses);

// Percent-encodes a query value (RFC 3986 unreserved characters pass through).
std::string urlEncode(std::string_view value);

}  // namespace pullagent::puller
