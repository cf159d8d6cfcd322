#include "base/clock.h"

#include <condition_variable>
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

}  // namespace pullagent
