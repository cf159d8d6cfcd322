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

}  // namespace pullagent
