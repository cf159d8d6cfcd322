#pragma once

#include <fmt/format.h>

#include <ostream>
#include <string>
#include <string_view>
#include <utility>

namespace pullagent {

// Compares a credential offered by a peer with the expected one (or their digests) without an
// early exit, so that the time taken says nothing about where they differ.
inline bool constantTimeEquals(std::string_view offered, std::string_view expected) {
  unsigned difference = offered.size() == expected.size() ? 0U : 1U;
  for (size_t i = 0; i < offered.size(); ++i) {
    const auto want =
        expected.empty() ? 0U : static_cast<unsigned char>(expected[i % expected.size()]);
    difference |= static_cast<unsigned>(static_cast<unsigned char>(offered[i])) ^ want;
  }
  return difference == 0U;
}

// A credential. Printing it in any way yields "<redacted>"; the raw value comes out only through
// revealForWire(), called where it goes on the wire, so every such place is one grep away.
class Secret {
 public:
  Secret() = default;
  explicit Secret(std::string value) : value_(std::move(value)) {}

  const std::string& revealForWire() const { return value_; }
  bool empty() const { return value_.empty(); }
  bool operator==(const Secret& other) const = default;

  friend std::ostream& operator<<(std::ostream& out, const Secret&) { return out << "<redacted>"; }

 private:
  std::string value_;
};

}  // namespace pullagent

template <>
struct fmt::formatter<pullagent::Secret> : fmt::formatter<std::string_view> {
  template <typename FormatContext>
  auto format(const pullagent::Secret&, FormatContext& ctx) const {
    return fmt::formatter<std::string_view>::format("<redacted>", ctx);
  }
};
