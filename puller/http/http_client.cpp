#include "puller/http/http_client.h"

#include <strings.h>

namespace pullagent::puller {

std::optional<std::string> HttpResponseHead::header(std::string_view name) const {
  for (const auto& h : headers) {
    if (h.name.size() == name.size() &&
        ::strncasecmp(h.name.data(), name.data(), name.size()) == 0) {
      return h.value;
    }
  }
  return std::nullopt;
}

std::vector<std::string> HttpResponseHead::headerValues(std::string_view name) const {
  std::vector<std::string> values;
  for (const auto& h : headers) {
    if (h.name.size() == name.size() &&
        ::strncasecmp(h.name.data(), name.data(), name.size()) == 0) {
      values.push_back(h.value);
    }
  }
  return values;
}

}  // namespace pullagent::puller
