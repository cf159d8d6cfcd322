#include "puller/http/url.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <charconv>

#include "base/redact.h"
#include "base/unique_handle.h"

namespace pullagent::puller {
namespace {

using CurlUrl = UniqueHandle<CURLU, curl_url_cleanup>;
using CurlString = UniqueHandle<char, curl_free>;

std::string part(CURLU* handle, CURLUPart which, unsigned flags = 0) {
  char* raw = nullptr;
  if (curl_url_get(handle, which, &raw, flags) != CURLUE_OK)
    return {};
  CurlString owned(raw);
  return std::string(raw);
}

Result<Url> fromHandle(CURLU* handle, std::string_view original) {
  Url url;
  url.scheme = part(handle, CURLUPART_SCHEME);
  std::transform(url.scheme.begin(), url.scheme.end(), url.scheme.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (url.scheme != "https" && url.scheme != "http") {
    return makeError(ErrorCode::kInvalidArgument,
                     "URL " + redactUrl(original) + ": scheme must be http or https");
  }
  url.host = part(handle, CURLUPART_HOST);
  if (url.host.size() >= 2 && url.host.front() == '[' && url.host.back() == ']') {
    url.host = url.host.substr(1, url.host.size() - 2);
  }
  std::transform(url.host.begin(), url.host.end(), url.host.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (url.host.empty()) {
    return makeError(ErrorCode::kInvalidArgument, "URL " + redactUrl(original) + " has no host");
  }
  std::string port = part(handle, CURLUPART_PORT, CURLU_DEFAULT_PORT);
  std::from_chars(port.data(), port.data() + port.size(), url.port);
  url.target = part(handle, CURLUPART_PATH);
  if (url.target.empty())
    url.target = "/";
  std::string query = part(handle, CURLUPART_QUERY);
  if (!query.empty())
    url.target += "?" + query;
  return url;
}

}  // namespace

Result<Url> Url::parse(std::string_view text) {
  CurlUrl handle(curl_url());
  if (!handle)
    return makeError(ErrorCode::kInternal, "out of memory");
  std::string copy(text);
  if (curl_url_set(handle.get(), CURLUPART_URL, copy.c_str(), 0) != CURLUE_OK) {
    return makeError(ErrorCode::kInvalidArgument, "malformed URL " + redactUrl(text));
  }
  return fromHandle(handle.get(), text);
}

Result<Url> Url::resolve(std::string_view base, std::string_view reference) {
  CurlUrl handle(curl_url());
  if (!handle)
    return makeError(ErrorCode::kInternal, "out of memory");
  std::string base_copy(base);
  std::string ref_copy(reference);
  if (curl_url_set(handle.get(), CURLUPART_URL, base_copy.c_str(), 0) != CURLUE_OK ||
      curl_url_set(handle.get(), CURLUPART_URL, ref_copy.c_str(), 0) != CURLUE_OK) {
    return makeError(ErrorCode::kProtocol, "malformed redirect target " + redactUrl(reference));
  }
  return fromHandle(handle.get(), reference);
}

std::string Url::hostPort() const {
  std::string out = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return out + ":" + std::to_string(port);
}

std::string Url::origin() const {
  return scheme + "://" + hostPort();
}

std::string Url::str() const {
  return origin() + target;
}

std::string resolvePinEntry(const std::string& host, int port,
                            const std::vector<std::string>& addresses) {
  std::string entry = host + ":" + std::to_string(port) + ":";
  for (size_t i = 0; i < addresses.size(); ++i) {
    const auto& address = addresses[i];
    entry += (i > 0 ? "," : "") +
             (address.find(':') != std::string::npos ? "[" + address + "]" : address);
  }
  return entry;
}

std::string urlEncode(std::string_view value) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char raw : value) {
    auto c = static_cast<unsigned char>(raw);
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0x0f]);
    }
  }
  return out;
}

}  // namespace pullagent::puller
