#pragma once

#include <cstddef>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

namespace pullagent {

// RFC 4648 base64, standard alphabet, padded.
std::string encodeBase64(std::string_view bytes);

// RFC 4648 base64 in either alphabet (standard "+/" or URL-safe "-_"), padding optional and only
// at the end, whitespace between characters skipped (line-wrapped input). Nothing on any other
// character, on a dangling 6 bits, or when the result would exceed `max_bytes`.
std::optional<std::string> decodeBase64(std::string_view text,
                                        size_t max_bytes = std::numeric_limits<size_t>::max());

}  // namespace pullagent
