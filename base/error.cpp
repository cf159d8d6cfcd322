#include "base/error.h"

#include <cerrno>
#include <cstring>

namespace pullagent {

std::string_view toString(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
      return "invalid argument";
    case ErrorCode::kNotFound:
      return "not found";
    case ErrorCode::kUnauthenticated:
      return "unauthenticated";
    case ErrorCode::kPermissionDenied:
      return "permission denied";
    case ErrorCode::kDigestMismatch:
      return "digest mismatch";
    case ErrorCode::kUnavailable:
      return "unavailable";
    case ErrorCode::kTimeout:
      return "timeout";
    case ErrorCode::kCancelled:
      return "cancelled";
    case ErrorCode::kResourceExhausted:
      return "resource exhausted";
    case ErrorCode::kProtocol:
      return "protocol error";
    case ErrorCode::kUntrusted:
      return "untrusted";
    case ErrorCode::kUnsupported:
      return "unsupported";
    case ErrorCode::kInternal:
      return "internal error";
  }
  return "unknown error";
}

std::string Error::describe() const {
  return std::string(toString(code)) + ": " + message;
}

Error Error::context(std::string_view what) const {
  Error wrapped = *this;
  wrapped.message = std::string(what) + ": " + message;
  return wrapped;
}

Error makeError(ErrorCode code, std::string message, int native) {
  return Error{code, std::move(message), native, std::nullopt};
}

bool isRetryable(const Error& error) {
  return error.code == ErrorCode::kUnavailable || error.code == ErrorCode::kTimeout;
}

Error errnoError(int err, std::string_view operation, const std::filesystem::path& path) {
  ErrorCode code = ErrorCode::kInternal;
  if (err == ENOSPC || err == EDQUOT)
    code = ErrorCode::kResourceExhausted;
  if (err == EACCES || err == EPERM || err == EROFS)
    code = ErrorCode::kPermissionDenied;
  if (err == ENOENT)
    code = ErrorCode::kNotFound;
  return makeError(code, std::string(operation) + " " + path.string() + ": " + std::strerror(err),
                   err);
}

}  // namespace pullagent
