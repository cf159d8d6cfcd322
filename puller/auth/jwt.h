#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "base/error.h"

namespace pullagent::puller {

// The claims a client reads from a token it holds (never to trust it: the issuer verifies its
// own tokens): `exp` for lifetimes, `tid` for the AAD tenant the ACR exchange wants.
struct JwtClaims {
  std::optional<std::chrono::system_clock::time_point> expires;
  std::string tenant;
};

Result<JwtClaims> readJwtClaims(std::string_view token);

}  // namespace pullagent::puller
