#pragma once

#include <chrono>
#include <optional>
#include <stop_token>

#include "base/clock.h"
#include "base/error.h"

namespace pullagent {

// What every blocking call takes: a stop token (SIGTERM) and an optional deadline.
struct Context {
  const Clock* clock = nullptr;
  std::stop_token stop;
  std::optional<std::chrono::steady_clock::time_point> deadline;

  bool stopRequested() const { return stop.stop_requested(); }
  bool expired() const { return deadline && clock->now() >= *deadline; }

  // kCancelled or kTimeout when the call should give up now.
  Status check() const {
    if (stopRequested())
      return makeError(ErrorCode::kCancelled, "stop requested");
    if (expired())
      return makeError(ErrorCode::kTimeout, "deadline exceeded");
    return {};
  }

  std::optional<std::chrono::milliseconds> remaining() const {
    if (!deadline)
      return std::nullopt;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - clock->now());
    return left.count() > 0 ? left : std::chrono::milliseconds(0);
  }
};

}  // namespace pullagent
