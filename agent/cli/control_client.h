#pragma once

#include <chrono>
#include <string>

#include "base/error.h"

namespace pullagent::agent {

struct ControlReply {
  long status = 0;
  std::string body;
};

// One request to the service's control socket (HTTP over a unix socket, through libcurl).
// A service that is not running is kUnavailable, naming the socket.
Result<ControlReply> controlRequest(const std::string& socket_path, const std::string& method,
                                    const std::string& path, const std::string& body,
                                    std::chrono::milliseconds timeout);

}  // namespace pullagent::agent
