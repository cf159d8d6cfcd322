// WWW-Authenticate values as any registry or token server may send them; one value per line.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "puller/auth/challenge.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> values;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t end = text.find('\n', start);
    values.push_back(
        text.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (end == std::string::npos)
      break;
    start = end + 1;
  }
  for (const auto& challenge : pullagent::puller::parseChallenges(values))
    (void)challenge.param("realm");
  return 0;
}
