#include "agent/cli/control_client.h"

#include <curl/curl.h>

#include "base/unique_handle.h"

namespace pullagent::agent {
namespace {

using CurlEasy = UniqueHandle<CURL, curl_easy_cleanup>;
using CurlSlist = UniqueHandle<curl_slist, curl_slist_free_all>;

// Our own service's answers are small; anything larger is not it.
constexpr size_t kMaxReply = 1 << 20;

size_t collect(char* data, size_t size, size_t count, void* user) {
  auto* body = static_cast<std::string*>(user);
  if (body->size() + size * count > kMaxReply)
    return 0;  // aborts the transfer
  body->append(data, size * count);
  return size * count;
}

}  // namespace

Result<ControlReply> controlRequest(const std::string& socket_path, const std::string& method,
                                    const std::string& path, const std::string& body,
                                    std::chrono::milliseconds timeout) {
  CurlEasy easy(curl_easy_init());
  if (!easy)
    return makeError(ErrorCode::kResourceExhausted, "curl_easy_init failed");
  ControlReply reply;
  CurlSlist headers(curl_slist_append(nullptr, "Content-Type: application/json"));
  const std::string url = "http://pullagent" + path;
  CURL* curl = easy.get();
  curl_easy_setopt(curl, CURLOPT_UNIX_SOCKET_PATH, socket_path.c_str());
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_PROXY, "");
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &collect);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &reply.body);
  if (method == "POST") {
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers.get());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  }
  const CURLcode code = curl_easy_perform(curl);
  if (code != CURLE_OK) {
    const bool absent = code == CURLE_COULDNT_CONNECT;
    return makeError(absent ? ErrorCode::kUnavailable : ErrorCode::kProtocol,
                     "control socket " + socket_path + ": " + curl_easy_strerror(code) +
                         (absent ? " (is the pullagent service running?)" : ""));
  }
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &reply.status);
  return reply;
}

}  // namespace pullagent::agent
