#include "agent/common/exit_codes.h"

namespace pullagent::agent {

int exitCodeFor(const Error& error) {
  switch (error.code) {
    case ErrorCode::kInvalidArgument:
    case ErrorCode::kUnsupported:
      return kExitUsage;
    case ErrorCode::kUnauthenticated:
    case ErrorCode::kPermissionDenied:
      return kExitAuth;
    case ErrorCode::kNotFound:
      return kExitNotFound;
    case ErrorCode::kUnavailable:
    case ErrorCode::kTimeout:
      return kExitTransient;
    case ErrorCode::kDigestMismatch:
    case ErrorCode::kProtocol:
    case ErrorCode::kUntrusted:
      return kExitIntegrity;
    case ErrorCode::kCancelled:
    case ErrorCode::kResourceExhausted:
    case ErrorCode::kInternal:
      break;
  }
  return kExitFailure;
}

}  // namespace pullagent::agent
