#include "base/base64.h"

#include <cstdint>

namespace pullagent {
namespace {

int valueOf(char c) {
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if (c == '+' || c == '-')
    return 62;
  if (c == '/' || c == '_')
    return 63;
  return -1;
}

}  // namespace

std::string encodeBase64(std::string_view bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  uint32_t bits = 0;
  int count = 0;
  for (char c : bytes) {
    bits = (bits << 8) | static_cast<unsigned char>(c);
    count += 8;
    while (count >= 6) {
      count -= 6;
      out.push_back(kAlphabet[(bits >> count) & 63]);
    }
  }
  if (count > 0)
    out.push_back(kAlphabet[(bits << (6 - count)) & 63]);
  while (out.size() % 4 != 0)
    out.push_back('=');
  return out;
}

std::optional<std::string> decodeBase64(std::string_view text, size_t max_bytes) {
  std::string out;
  uint32_t bits = 0;
  int count = 0;
  size_t padding = 0;
  for (char c : text) {
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
      continue;
    if (c == '=') {
      ++padding;
      continue;
    }
    const int value = valueOf(c);
    if (value < 0 || padding > 0)
      return std::nullopt;
    bits = (bits << 6) | static_cast<uint32_t>(value);
    count += 6;
    if (count >= 8) {
      count -= 8;
      if (out.size() == max_bytes)
        return std::nullopt;
      out.push_back(static_cast<char>((bits >> count) & 0xff));
    }
  }
  if (padding > 2 || count >= 6)
    return std::nullopt;
  return out;
}

}  // namespace pullagent
