#include "puller/registry/registry_source.h"

namespace pullagent::puller {

std::string RegistrySource::describe() const {
  return std::string(origin ? "origin " : "mirror ") + scheme + "://" + host;
}

std::string_view fallbackReason(const Error& error) {
  switch (error.code) {
    case ErrorCode::kNotFound:
      return "not_found";  // Spegel's "not here": the usual, harmless case
    case ErrorCode::kUnauthenticated:
    case ErrorCode::kPermissionDenied:
      return "auth";
    case ErrorCode::kDigestMismatch:
      return "digest";
    case ErrorCode::kTimeout:
      return "timeout";
    case ErrorCode::kUntrusted:
      return "tls";
    case ErrorCode::kUnavailable:
      // 429 and 503 carry the server's wish to be left alone for a while.
      return error.retry_after ? "throttled" : "unavailable";
    case ErrorCode::kResourceExhausted:
    case ErrorCode::kProtocol:
    case ErrorCode::kUnsupported:
    case ErrorCode::kInvalidArgument:
      return "protocol";
    case ErrorCode::kCancelled:
    case ErrorCode::kInternal:
      break;
  }
  return "other";
}

void SourceTally::fallback(std::string_view reason) {
  std::lock_guard lock(mutex_);
  ++fallbacks_[std::string(reason)];
}

SourceTally::Totals SourceTally::totals() const {
  Totals totals;
  totals.origin_requests = origin_requests_.load();
  totals.mirror_requests = mirror_requests_.load();
  totals.origin_bytes = origin_bytes_.load();
  totals.mirror_bytes = mirror_bytes_.load();
  totals.throttled = std::chrono::milliseconds(throttled_ms_.load());
  std::lock_guard lock(mutex_);
  totals.fallbacks = fallbacks_;
  return totals;
}

}  // namespace pullagent::puller
