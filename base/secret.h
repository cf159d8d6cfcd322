#pragma once

#include <fmt/format.h>

#include <ostream>
#include <string>
#include <utility>

namespace pullagent {

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
