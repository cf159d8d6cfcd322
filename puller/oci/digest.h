#pragma once

#include <string>
#include <string_view>

#include "base/error.h"

namespace pullagent::puller {

// A content digest, validated before it can ever become a path or a URL: "sha256:" followed by
// exactly 64 lowercase hex digits. Other registered algorithms are refused as unsupported.
class Digest {
 public:
  Digest() = default;  // empty until assigned from parse(); never used as a path while empty
  static Result<Digest> parse(std::string_view text);
  // From a raw 32-byte SHA-256 value, as hashing produces it.
  static Digest fromSha256Bytes(std::string_view raw);

  const std::string& hex() const { return hex_; }
  std::string str() const { return "sha256:" + hex_; }
  bool operator==(const Digest&) const = default;
  auto operator<=>(const Digest&) const = default;

 private:
  explicit Digest(std::string hex) : hex_(std::move(hex)) {}
  std::string hex_;
};

}  // namespace pullagent::puller
