#pragma once

#include <chrono>
#include <mutex>
#include <vector>

#include "base/clock.h"
#include "base/context.h"

namespace pullagent::testing {

// Time that moves only when told to. sleepFor() advances it and records the requested wait, so
// backoff and token expiry are asserted exactly without sleeping.
class FakeClock final : public Clock {
 public:
  std::chrono::steady_clock::time_point now() const override;
  std::chrono::system_clock::time_point wallNow() const override;
  bool sleepFor(std::chrono::milliseconds duration, std::stop_token stop) const override;

  void advance(std::chrono::milliseconds by);
  // A call's context on this clock: no deadline, never stopped.
  Context context() const { return Context{this, {}, std::nullopt}; }
  std::vector<std::chrono::milliseconds> sleeps() const;

 private:
  mutable std::mutex mutex_;
  mutable std::chrono::milliseconds elapsed_{0};
  mutable std::vector<std::chrono::milliseconds> sleeps_;
};

}  // namespace pullagent::testing
