#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

namespace pullagent {

// The closed set of failure kinds. Callers branch on the code, humans read the message.
enum class ErrorCode {
  kInvalidArgument,    // bad input: reference, config, flag, archive
  kNotFound,           // manifest, blob, repository or tag does not exist
  kUnauthenticated,    // credentials missing or rejected
  kPermissionDenied,   // authenticated but not allowed (403 DENIED)
  kDigestMismatch,     // content does not hash to what was promised
  kUnavailable,        // connection failed, 5xx, 429: transient
  kTimeout,            // connect timeout, stall, deadline
  kCancelled,          // stop requested
  kResourceExhausted,  // a size cap was exceeded, disk full
  kProtocol,           // the peer broke the protocol (bad Content-Range, bad JSON, ...)
  kUntrusted,          // TLS verification failed, insecure redirect, credential would leak
  kUnsupported,        // a valid but unsupported thing (schema 1, unknown media type)
  kInternal,           // a bug or an unexpected local failure
};

std::string_view toString(ErrorCode code);

struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;
  // The native error number of the library or syscall that failed (curl code, errno, ...), or 0.
  int native = 0;
  // A server-requested wait (Retry-After) for transient errors.
  std::optional<std::chrono::milliseconds> retry_after;

  // "not found: manifest unknown ..."
  std::string describe() const;
  // Prefixes the message with where the failure happened, keeping code and hints.
  Error context(std::string_view what) const;
};

Error makeError(ErrorCode code, std::string message, int native = 0);

// A failed system call on a path, as an Error: "<operation> <path>: <strerror>", errno kept as
// the native code; ENOENT is kNotFound, ENOSPC/EDQUOT kResourceExhausted, EACCES/EPERM/EROFS
// kPermissionDenied, anything else kInternal.
Error errnoError(int err, std::string_view operation, const std::filesystem::path& path);

// The single place that decides which failures are worth another attempt.
bool isRetryable(const Error& error);

// A std::expected-shaped result so it can become one when we move to C++23.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : state_(std::in_place_index<0>, std::move(value)) {}      // NOLINT: implicit
  Result(Error error) : state_(std::in_place_index<1>, std::move(error)) {}  // NOLINT: implicit

  bool ok() const { return state_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(state_); }
  const T& value() const& { return std::get<0>(state_); }
  T&& value() && { return std::get<0>(std::move(state_)); }
  const Error& error() const { return std::get<1>(state_); }

  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Error> state_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)) {}  // NOLINT: implicit

  bool ok() const { return !error_.has_value(); }
  explicit operator bool() const { return ok(); }
  const Error& error() const { return *error_; }

 private:
  std::optional<Error> error_;
};

using Status = Result<void>;

inline Status okStatus() {
  return {};
}

// Short-circuits on a failed Status or Result (abseil's status_macros.h is the model):
//   RETURN_IF_ERROR(file.flush());
//   ASSIGN_OR_RETURN(auto manifest, parseManifest(bytes, type));
#define RETURN_IF_ERROR(expr)                                \
  do {                                                       \
    if (auto pullagent_status_ = (expr); !pullagent_status_) \
      return pullagent_status_.error();                      \
  } while (false)

#define PULLAGENT_CONCAT_INNER_(a, b) a##b
#define PULLAGENT_CONCAT_(a, b) PULLAGENT_CONCAT_INNER_(a, b)
#define PULLAGENT_ASSIGN_OR_RETURN_(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp)                                         \
    return tmp.error();                             \
  lhs = std::move(tmp).value()
#define ASSIGN_OR_RETURN(lhs, expr) \
  PULLAGENT_ASSIGN_OR_RETURN_(PULLAGENT_CONCAT_(pullagent_result_, __LINE__), lhs, expr)

}  // namespace pullagent
