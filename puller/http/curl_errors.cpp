#include "puller/http/curl_errors.h"

#include <string>

namespace pullagent::puller {

Error curlError(CURLcode code, std::string_view what, std::string_view detail) {
  ErrorCode mapped = ErrorCode::kInternal;
  std::string text = detail.empty() ? curl_easy_strerror(code) : std::string(detail);
  switch (code) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR:  // also a reset during the handshake
    case CURLE_AGAIN:
      mapped = ErrorCode::kUnavailable;
      break;
    case CURLE_OPERATION_TIMEDOUT:
      mapped = ErrorCode::kTimeout;
      break;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_ISSUER_ERROR:
      mapped = ErrorCode::kUntrusted;
      text = "TLS verification failed: " + text;
      break;
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
      mapped = ErrorCode::kInvalidArgument;
      break;
    case CURLE_OUT_OF_MEMORY:
      // curl 7.88 reports response headers past its own cap as "out of memory": that is the
      // peer's doing, not ours.
      if (text.find("header") != std::string::npos) {
        mapped = ErrorCode::kProtocol;
        text = "response headers too large: " + text;
      } else {
        mapped = ErrorCode::kResourceExhausted;
      }
      break;
    default:
      break;
  }
  return makeError(mapped, std::string(what) + ": " + text, static_cast<int>(code));
}

Status checkSetopt(CURLcode code, std::string_view option) {
  if (code == CURLE_OK)
    return {};
  return makeError(
      ErrorCode::kInternal,
      "curl_easy_setopt(" + std::string(option) + ") failed: " + curl_easy_strerror(code),
      static_cast<int>(code));
}

}  // namespace pullagent::puller
