#include "base/clock.h"

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace pullagent {

std::chrono::steady_clock::time_point SystemClock::now() const {
  return std::chrono::steady_clock::now();
}

std::chrono::system_clock::time_point SystemClock::wallNow() const {
  return std::chrono::system_clock::now();
}

bool SystemClock::sleepFor(std::chrono::milliseconds duration, std::stop_token stop) const {
  std::mutex mutex;
  std::condition_variable_any wakeup;
  std::unique_lock lock(mutex);
  // Returns true when the predicate (stop requested) became true.
  return !wakeup.wait_for(lock, stop, duration, [] { return false; });
}

std::chrono::seconds clampedSeconds(double seconds, std::chrono::seconds max) {
  if (!(seconds > 0))  // also NaN
    return std::chrono::seconds(0);
  if (seconds >= static_cast<double>(max.count()))
    return max;
  return std::chrono::seconds(static_cast<int64_t>(seconds));
}

std::optional<std::chrono::system_clock::time_point> fromUnixSeconds(double seconds) {
  // system_clock counts nanoseconds in 64 bits here: it ends in 2262.
  constexpr double kYear2200 = 7258118400.0;
  if (!(seconds >= 0) || seconds > kYear2200)
    return std::nullopt;
  return std::chrono::system_clock::time_point(std::chrono::seconds(static_cast<int64_t>(seconds)));
}

std::chrono::seconds secondsUntil(std::chrono::system_clock::time_point when,
                                  std::chrono::system_clock::time_point now,
                                  std::chrono::seconds max) {
  // Both are real instants (years 1970..2200), so the difference cannot overflow.
  auto left = std::chrono::duration_cast<std::chrono::seconds>(when - now);
  return std::clamp(left, std::chrono::seconds(0), max);
}

}  // namespace pullagent
