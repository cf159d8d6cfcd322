#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

#include "base/error.h"
#include "base/unique_fd.h"

namespace pullagent::agent {

// A listening stream socket for one of the service's HTTP endpoints.
struct Listener {
  UniqueFd fd;
  std::string bound;      // "127.0.0.1:41234" (the real port when 0 was asked for), or the path
  std::string unix_path;  // set for a unix socket: removed again when the server stops
};

// Binds and listens on "host:port" (an IP address, "[v6]:port" for IPv6; never a name, which
// would make the endpoint depend on DNS) or "unix:/path". A socket left at the path by an
// earlier run is replaced; anything else there is refused. `unix_mode`, when set, is applied to
// the socket file before it accepts connections (0600: root only). `what` names the endpoint in
// errors ("metrics address").
Result<Listener> listenOn(const std::string& address, const std::string& what,
                          std::optional<mode_t> unix_mode = std::nullopt);

}  // namespace pullagent::agent
