#include "base/redact.h"

#include <algorithm>
#include <array>
#include <cctype>

namespace pullagent {

std::string redactUrl(std::string_view url) {
  std::string_view rest = url;
  std::string out;
  out.reserve(url.size());

  if (auto scheme_end = rest.find("://"); scheme_end != std::string_view::npos) {
    out.append(rest.substr(0, scheme_end + 3));
    rest.remove_prefix(scheme_end + 3);
    auto authority_end = rest.find_first_of("/?#");
    auto authority = rest.substr(0, authority_end);
    if (auto at = authority.rfind('@'); at != std::string_view::npos) {
      authority.remove_prefix(at + 1);  // never log user:password@
    }
    out.append(authority);
    rest =
        authority_end == std::string_view::npos ? std::string_view{} : rest.substr(authority_end);
  }

  if (auto hash = rest.find('#'); hash != std::string_view::npos)
    rest = rest.substr(0, hash);
  auto query_start = rest.find('?');
  out.append(rest.substr(0, query_start));
  if (query_start == std::string_view::npos)
    return out;

  std::string_view query = rest.substr(query_start + 1);
  out.push_back('?');
  bool first = true;
  while (!query.empty()) {
    auto amp = query.find('&');
    auto param = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (!first)
      out.push_back('&');
    first = false;
    auto eq = param.find('=');
    out.append(param.substr(0, eq));
    if (eq != std::string_view::npos)
      out.append("=REDACTED");
  }
  return out;
}

std::string redactHeader(std::string_view name, std::string_view value) {
  static constexpr std::array<std::string_view, 12> kSafe = {"accept",
                                                             "content-type",
                                                             "content-length",
                                                             "content-range",
                                                             "range",
                                                             "docker-content-digest",
                                                             "retry-after",
                                                             "location-host",
                                                             "www-authenticate",
                                                             "user-agent",
                                                             "docker-distribution-api-version",
                                                             "etag"};
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (lower == "location")
    return redactUrl(value);
  if (std::find(kSafe.begin(), kSafe.end(), lower) != kSafe.end())
    return std::string(value);
  return "REDACTED";
}

namespace {

// Length of the valid UTF-8 sequence at the start of `text`, or 0.
size_t utf8Length(std::string_view text) {
  const auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(0);
  size_t length = 0;
  uint32_t min = 0;
  if (lead >= 0xc2 && lead <= 0xdf) {
    length = 2;
    min = 0x80;
  } else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3;
    min = 0x800;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4;
    min = 0x10000;
  } else {
    return 0;
  }
  if (text.size() < length)
    return 0;
  uint32_t code = lead & (0x7fu >> length);
  for (size_t i = 1; i < length; ++i) {
    if ((byte(i) & 0xc0) != 0x80)
      return 0;
    code = (code << 6) | (byte(i) & 0x3fu);
  }
  if (code < min || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff))
    return 0;
  // C1 controls (U+0080..U+009F) act as escape sequences on some terminals.
  if (code >= 0x80 && code <= 0x9f)
    return 0;
  return length;
}

}  // namespace

std::string safeEscaped(std::string_view text, size_t max) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  size_t i = 0;
  while (i < text.size() && i < max) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out.push_back(static_cast<char>(c));
      ++i;
    } else if (c == '\\') {
      out += "\\\\";
      ++i;
    } else if (c == '\n') {
      out += "\\n";
      ++i;
    } else if (c == '\r') {
      out += "\\r";
      ++i;
    } else if (c == '\t') {
      out += "\\t";
      ++i;
    } else if (size_t length = c >= 0x80 ? utf8Length(text.substr(i)) : 0; length > 0) {
      out.append(text.substr(i, length));
      i += length;
    } else {
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
      ++i;
    }
  }
  if (i < text.size())
    out += "...(" + std::to_string(text.size()) + " bytes)";
  return out;
}

std::string safeQuoted(std::string_view text, size_t max) {
  return "\"" + safeEscaped(text, max) + "\"";
}

}  // namespace pullagent
