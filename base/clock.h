#pragma once

#include <chrono>
#include <optional>
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

// Times that peers announce (token lifetimes, expiry instants, Retry-After) go through these
// before any arithmetic, so that 2^63 seconds or 1e308 cannot overflow a time_point.
inline constexpr std::chrono::seconds kMaxAnnouncedDuration{std::chrono::hours(24 * 366)};

// `seconds` clamped into [0, max]; NaN and negatives give 0.
std::chrono::seconds clampedSeconds(double seconds,
                                    std::chrono::seconds max = kMaxAnnouncedDuration);
// A Unix time in seconds as a time_point, or nullopt outside 1970..2200.
std::optional<std::chrono::system_clock::time_point> fromUnixSeconds(double seconds);
// How long from `now` until `when`, clamped into [0, max].
std::chrono::seconds secondsUntil(std::chrono::system_clock::time_point when,
                                  std::chrono::system_clock::time_point now,
                                  std::chrono::seconds max = kMaxAnnouncedDuration);

}  // namespace pullagent
