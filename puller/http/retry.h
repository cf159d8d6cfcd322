#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string_view>

#include "base/clock.h"
#include "base/context.h"
#include "base/error.h"
#include "base/random.h"

namespace pullagent::puller {

struct RetryPolicy {
  int max_attempts = 6;  // attempts without progress before a transient error becomes final
  std::chrono::milliseconds initial_backoff{250};
  std::chrono::milliseconds max_backoff{std::chrono::seconds(15)};
  // A server's Retry-After is honoured up to this; absurd values (a day, a year) are capped.
  std::chrono::milliseconds max_retry_after{std::chrono::seconds(60)};
};

// Retry-After: delay-seconds or an HTTP-date (IMF-fixdate, RFC 850, asctime). Past dates mean
// "now" (0); unparseable values give nullopt.
std::optional<std::chrono::milliseconds> parseRetryAfter(std::string_view value,
                                                         std::chrono::system_clock::time_point now);

// "Full jitter" exponential backoff: uniform in [0, min(max, initial * 2^(attempt-1))], never
// below a tenth of that ceiling so retries don't hammer. `attempt` starts at 1.
std::chrono::milliseconds backoffDelay(const RetryPolicy& policy, int attempt, double jitter);

// The wait before the next attempt after `error`: the server's Retry-After (capped) if it gave
// one, else the backoff.
std::chrono::milliseconds retryDelay(const RetryPolicy& policy, const Error& error, int attempt,
                                     double jitter);

// What one attempt of a retry loop reports: its outcome and whether it got further than the
// attempt before (a resumed blob that received bytes), which resets the count of attempts.
struct AttemptOutcome {
  AttemptOutcome() = default;                            // success
  AttemptOutcome(Status outcome, bool progress = false)  // NOLINT: implicit, as Status is
      : status(std::move(outcome)), made_progress(progress) {}
  AttemptOutcome(Error error) : status(std::move(error)) {}  // NOLINT: implicit, as Status is
  Status status;
  bool made_progress = false;
};

// Runs `attempt` (given the 1-based attempt number) until it succeeds, fails permanently, runs
// out of attempts without progress, or the context ends.
Status retryLoop(const RetryPolicy& policy, Clock& clock, Random& random, const Context& ctx,
                 std::string_view what, const std::function<AttemptOutcome(int attempt)>& attempt);

}  // namespace pullagent::puller
