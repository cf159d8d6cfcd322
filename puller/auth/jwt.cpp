#include "puller/auth/jwt.h"

#include "base/clock.h"
#include "base/json_reader.h"

namespace pullagent::puller {
namespace {

std::optional<std::string> base64UrlDecode(std::string_view text) {
  std::string out;
  unsigned buffer = 0;
  int bits = 0;
  for (char c : text) {
    int value = -1;
    if (c >= 'A' && c <= 'Z')
      value = c - 'A';
    else if (c >= 'a' && c <= 'z')
      value = c - 'a' + 26;
    else if (c >= '0' && c <= '9')
      value = c - '0' + 52;
    else if (c == '-' || c == '+')
      value = 62;
    else if (c == '_' || c == '/')
      value = 63;
    else if (c == '=')
      break;
    else
      return std::nullopt;
    buffer = (buffer << 6) | static_cast<unsigned>(value);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buffer >> bits) & 0xff));
    }
  }
  return out;
}

}  // namespace

Result<JwtClaims> readJwtClaims(std::string_view token) {
  auto first = token.find('.');
  auto second = first == std::string_view::npos ? first : token.find('.', first + 1);
  if (second == std::string_view::npos) {
    return makeError(ErrorCode::kProtocol, "token is not a JWT (header.payload.signature)");
  }
  auto payload = base64UrlDecode(token.substr(first + 1, second - first - 1));
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
  return result;
}

}  // namespace pullagent::puller
