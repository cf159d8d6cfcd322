#pragma once

#include <chrono>
#include <stop_token>

namespace pullagent {

// The only door to time. Production code asks a Clock; tests inject a fake one so that token
// expiry and backoff are exact and no test sleeps on the wall clock.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual std::chrono::steady_clock::time_point now() const = 0;
  virtual std::chrono::system_clock::time_point wallNow() const = 0;
  // Sleeps for `duration` or until `stop` is requested. Returns false when stopped.
  virtual bool sleepFor(std::chrono::milliseconds duration, std::stop_token stop) const = 0;
};

class SystemClock final : public Clock {
 public:
  std::chrono::steady_clock::time_point now() const override;
  std::chrono::system_clock::time_point wallNow() const override;
  bool sleepFor(std::chrono::milliseconds duration, std::stop_token stop) const override;
};

}  // namespace pullagent
