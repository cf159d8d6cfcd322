#include "puller/oci/digest.h"

#include <algorithm>

namespace pullagent::puller {
namespace {

bool isLowerHex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

// OCI descriptor grammar: algorithm ::= [a-z0-9]+ ([+._-] [a-z0-9]+)*
bool isValidAlgorithm(std::string_view algo) {
  if (algo.empty())
    return false;
  bool previous_separator = true;
  for (char c : algo) {
    bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    bool separator = c == '+' || c == '.' || c == '_' || c == '-';
    if (!alnum && !separator)
      return false;
    if (separator && previous_separator)
      return false;
    previous_separator = separator;
  }
  return !previous_separator;
}

}  // namespace

Result<Digest> Digest::parse(std::string_view text) {
  auto colon = text.find(':');
  if (colon == std::string_view::npos) {
    return makeError(ErrorCode::kInvalidArgument,
                     "digest \"" + std::string(text) + "\" has no algorithm (want sha256:<hex>)");
  }
  auto algo = text.substr(0, colon);
  auto encoded = text.substr(colon + 1);
  if (!isValidAlgorithm(algo)) {
    return makeError(ErrorCode::kInvalidArgument,
                     "digest \"" + std::string(text) + "\" has an invalid algorithm");
  }
  if (algo != "sha256") {
    return makeError(ErrorCode::kUnsupported, "digest algorithm \"" + std::string(algo) +
                                                  "\" is not supported (sha256 only)");
  }
  if (encoded.size() != 64) {
    return makeError(ErrorCode::kInvalidArgument, "digest \"" + std::string(text) +
                                                      "\": sha256 needs 64 hex digits, got " +
                                                      std::to_string(encoded.size()));
  }
  if (!std::all_of(encoded.begin(), encoded.end(), isLowerHex)) {
    return makeError(ErrorCode::kInvalidArgument,
                     "digest \"" + std::string(text) + "\": sha256 must be lowercase hex");
  }
  return Digest(std::string(encoded));
}

Digest Digest::fromSha256Bytes(std::string_view raw) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(raw.size() * 2);
  for (char c : raw) {
    auto byte = static_cast<unsigned char>(c);
    hex.push_back(kHex[byte >> 4]);
    hex.push_back(kHex[byte & 0x0f]);
  }
  return Digest(std::move(hex));
}

}  // namespace pullagent::puller
