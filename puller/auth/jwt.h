#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace pullagent::puller {

// The claims a client reads from a token it holds (never to trust it: the issuer verifies its
// own tokens): `exp` for lifetimes, `tid` for the AAD tenant the ACR exchange wants, and a
// registry token's `access` (distribution's token spec) for `pullagent diagnose` to say what
// was granted.
struct JwtClaims {
  std::optional<std::chrono::system_clock::time_point> expires;
  std::string tenant;
  // "repository:privatewebsite:pull", one entry per granted resource; nullopt when the token
  // carries no `access` claim (an opaque or non-registry token).
  std::optional<std::vector<std::string>> access;
};

Result<JwtClaims> readJwtClaims(std::string_view token);

}  // namespace pullagent::puller
