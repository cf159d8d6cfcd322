// Image references: from site files and registries' redirects, never trusted.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "puller/reference/reference.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto ref = pullagent::puller::ImageRef::parse(text)) {
    // What parses must print and parse back to the same reference.
    auto again = pullagent::puller::ImageRef::parse(ref->str());
    if (!again || again->str() != ref->str())
      __builtin_trap();
  }
  return 0;
}
