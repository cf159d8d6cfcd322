// Tokens from token servers, ACR and identity endpoints: the claims we read to cache them.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "puller/auth/jwt.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)pullagent::puller::readJwtClaims(
      std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
