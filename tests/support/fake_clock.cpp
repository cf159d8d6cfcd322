#include "tests/support/fake_clock.h"

namespace pullagent::testing {

namespace {
// A fixed, recognisable epoch: 2026-01-01T00:00:00Z.
constexpr std::chrono::seconds kWallEpoch{1767225600};
}  // namespace

std::chrono::steady_clock::time_point FakeClock::now() const {
  std::lock_guard lock(mutex_);
  return std::chrono::steady_clock::time_point(elapsed_);
}

std::chrono::system_clock::time_point FakeClock::wallNow() const {
  std::lock_guard lock(mutex_);
  return std::chrono::system_clock::time_point(kWallEpoch) + elapsed_;
}

bool FakeClock::sleepFor(std::chrono::milliseconds duration, std::stop_token stop) const {
  std::lock_guard lock(mutex_);
  sleeps_.push_back(duration);
  elapsed_ += duration;
  return !stop.stop_requested();
}

void FakeClock::advance(std::chrono::milliseconds by) {
  std::lock_guard lock(mutex_);
  elapsed_ += by;
}

std::vector<std::chrono::milliseconds> FakeClock::sleeps() const {
  std::lock_guard lock(mutex_);
  return sleeps_;
}

}  // namespace pullagent::testing
