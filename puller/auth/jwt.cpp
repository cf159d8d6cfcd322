#include "puller/auth/jwt.h"

#include "base/base64.h"
#include "base/clock.h"
#include "base/json_reader.h"

namespace pullagent::puller {

Result<JwtClaims> readJwtClaims(std::string_view token) {
  auto first = token.find('.');
  auto second = first == std::string_view::npos ? first : token.find('.', first + 1);
  if (second == std::string_view::npos) {
    return makeError(ErrorCode::kProtocol, "token is not a JWT (header.payload.signature)");
  }
  auto payload = decodeBase64(token.substr(first + 1, second - first - 1));
  if (!payload)
    return makeError(ErrorCode::kProtocol, "JWT payload is not base64url");
  ASSIGN_OR_RETURN(auto parsed, parseJson(*payload, "JWT payload"));
  const JsonReader claims(parsed, "JWT payload");
  if (!claims.isObject())
    return claims.typeError("an object");
  // Claims only help us cache; one of an odd type or value is ignored, never trusted.
  JwtClaims result;
  if (auto exp = claims["exp"].number())
    result.expires = fromUnixSeconds(exp.value());
  if (auto tid = claims["tid"].string())
    result.tenant = std::move(tid.value());
  if (auto access = claims["access"].elements()) {
    result.access.emplace();
    for (const auto& entry : access.value()) {
      auto type = entry["type"].string();
      auto name = entry["name"].string();
      auto actions = entry["actions"].optionalStrings();
      if (!type || !name || !actions)
        continue;
      std::string granted;
      for (const auto& action : actions.value())
        granted += (granted.empty() ? "" : ",") + action;
      result.access->push_back(type.value() + ":" + name.value() + ":" + granted);
    }
  }
  return result;
}

}  // namespace pullagent::puller
