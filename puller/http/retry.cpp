#include "puller/http/retry.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <ctime>
#include <string>

namespace pullagent::puller {

std::optional<std::chrono::milliseconds> parseRetryAfter(
    std::string_view value, std::chrono::system_clock::time_point now) {
  while (!value.empty() && std::isspace(static_cast<unsigned char>(value.front()))) {
    value.remove_prefix(1);
  }
  while (!value.empty() && std::isspace(static_cast<unsigned char>(value.back()))) {
    value.remove_suffix(1);
  }
  if (value.empty())
    return std::nullopt;
  if (std::all_of(value.begin(), value.end(),
                  [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; })) {
    // Huge numbers overflow from_chars: treat them as "very long", the caller caps it.
    unsigned long long seconds = 0;
    auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
    if (ec == std::errc::result_out_of_range || seconds > 10'000'000ULL) {
      seconds = 10'000'000ULL;
    } else if (ec != std::errc() || ptr != value.data() + value.size()) {
      return std::nullopt;
    }
    return std::chrono::milliseconds(static_cast<long long>(seconds) * 1000);
  }
  std::string text(value);
  for (const char* format :
       {"%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"}) {
    std::tm parts{};
    const char* end = ::strptime(text.c_str(), format, &parts);
    if (end == nullptr || *end != '\0')
      continue;
    auto when = fromUnixSeconds(static_cast<double>(::timegm(&parts)));
    if (!when)  // before 1970 or centuries ahead: as long as we ever wait, the caller caps it
      return std::chrono::milliseconds(static_cast<long long>(10'000'000) * 1000);
    return std::chrono::milliseconds(secondsUntil(*when, now));
  }
  return std::nullopt;
}

std::chrono::milliseconds backoffDelay(const RetryPolicy& policy, int attempt, double jitter) {
  auto ceiling = policy.initial_backoff;
  for (int i = 1; i < attempt && ceiling < policy.max_backoff; ++i)
    ceiling *= 2;
  ceiling = std::min(ceiling, policy.max_backoff);
  jitter = std::clamp(jitter, 0.0, 1.0);
  auto floor = ceiling / 10;
  auto span = static_cast<double>((ceiling - floor).count());
  return floor + std::chrono::milliseconds(static_cast<long long>(span * jitter));
}

std::chrono::milliseconds retryDelay(const RetryPolicy& policy, const Error& error, int attempt,
                                     double jitter) {
  if (error.retry_after)
    return std::min(*error.retry_after, policy.max_retry_after);
  return backoffDelay(policy, attempt, jitter);
}

Status retryLoop(const RetryPolicy& policy, Clock& clock, Random& random, const Context& ctx,
                 std::string_view what, const std::function<AttemptOutcome(int attempt)>& attempt) {
  int failures = 0;
  for (int number = 1;; ++number) {
    AttemptOutcome outcome = attempt(number);
    if (outcome.status)
      return outcome.status;
    const Error& error = outcome.status.error();
    if (!isRetryable(error))
      return error;
    failures = outcome.made_progress ? 1 : failures + 1;
    if (failures >= policy.max_attempts) {
      return error.context("giving up after " + std::to_string(failures) + " attempts");
    }
    auto delay = retryDelay(policy, error, failures, random.uniform());
    if (auto left = ctx.remaining(); left && *left < delay) {
      return error.context("per-pull deadline reached");
    }
    // The error already says what failed and where; `what` names the operation if it does not.
    spdlog::warn("{} (attempt {}); retrying in {} ms", error.describe(), number, delay.count());
    (void)what;
    if (!clock.sleepFor(delay, ctx.stop))
      return makeError(ErrorCode::kCancelled, "stop requested");
  }
}

}  // namespace pullagent::puller
