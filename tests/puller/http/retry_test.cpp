#include "puller/http/retry.h"

#include <gtest/gtest.h>

#include "tests/support/fake_clock.h"
#include "tests/support/fixed_random.h"

namespace pullagent::puller {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// Wed, 21 Oct 2015 07:28:00 GMT
const auto kNow = std::chrono::system_clock::from_time_t(1445412480);

struct RetryAfterCase {
  std::string value;
  std::optional<milliseconds> expected;
  friend void PrintTo(const RetryAfterCase& c, std::ostream* out) { *out << '"' << c.value << '"'; }
};

class RetryAfterParses : public ::testing::TestWithParam<RetryAfterCase> {};

TEST_P(RetryAfterParses, SecondsAndHttpDates) {
  EXPECT_EQ(parseRetryAfter(GetParam().value, kNow), GetParam().expected) << GetParam().value;
}

INSTANTIATE_TEST_SUITE_P(
    Table, RetryAfterParses,
    ::testing::Values(RetryAfterCase{"120", milliseconds(120000)},
                      RetryAfterCase{" 0 ", milliseconds(0)},
                      RetryAfterCase{"Wed, 21 Oct 2015 07:28:30 GMT", milliseconds(30000)},
                      RetryAfterCase{"Wednesday, 21-Oct-15 07:29:00 GMT", milliseconds(60000)},
                      RetryAfterCase{"Wed Oct 21 07:28:10 2015", milliseconds(10000)},
                      RetryAfterCase{"Tue, 20 Oct 2015 07:28:00 GMT", milliseconds(0)},
                      RetryAfterCase{"99999999999999999999999", milliseconds(10'000'000'000)},
                      RetryAfterCase{"-5", std::nullopt}, RetryAfterCase{"soon", std::nullopt},
                      RetryAfterCase{"", std::nullopt}));

TEST(Backoff, GrowsExponentiallyWithinBounds) {
  RetryPolicy policy;
  policy.initial_backoff = milliseconds(100);
  policy.max_backoff = milliseconds(1000);
  EXPECT_EQ(backoffDelay(policy, 1, 1.0), milliseconds(100));
  EXPECT_EQ(backoffDelay(policy, 2, 1.0), milliseconds(200));
  EXPECT_EQ(backoffDelay(policy, 3, 1.0), milliseconds(400));
  EXPECT_EQ(backoffDelay(policy, 10, 1.0), milliseconds(1000));
  EXPECT_EQ(backoffDelay(policy, 10, 0.0), milliseconds(100));  // a tenth of the ceiling
}

TEST(Backoff, RetryAfterIsHonouredButCapped) {
  RetryPolicy policy;
  policy.max_retry_after = seconds(60);
  Error error = makeError(ErrorCode::kUnavailable, "429");
  error.retry_after = seconds(5);
  EXPECT_EQ(retryDelay(policy, error, 1, 0.5), seconds(5));
  error.retry_after = std::chrono::hours(24 * 365);
  EXPECT_EQ(retryDelay(policy, error, 1, 0.5), seconds(60));
}

TEST(RetryLoop, RetriesTransientErrorsThenSucceeds) {
  testing::FakeClock clock;
  testing::FixedRandom random{1.0};
  RetryPolicy policy;
  policy.initial_backoff = milliseconds(100);
  Context ctx{&clock, {}, std::nullopt};
  int calls = 0;
  auto status = retryLoop(policy, clock, random, ctx, "test", [&](int) -> AttemptOutcome {
    if (++calls < 3)
      return makeError(ErrorCode::kUnavailable, "reset");
    return {};
  });
  EXPECT_TRUE(status.ok());
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(clock.sleeps(), (std::vector<milliseconds>{milliseconds(100), milliseconds(200)}));
}

TEST(RetryLoop, PermanentErrorsFailAtOnce) {
  testing::FakeClock clock;
  testing::FixedRandom random{1.0};
  Context ctx{&clock, {}, std::nullopt};
  int calls = 0;
  auto status = retryLoop(RetryPolicy{}, clock, random, ctx, "test", [&](int) -> AttemptOutcome {
    ++calls;
    return makeError(ErrorCode::kNotFound, "MANIFEST_UNKNOWN");
  });
  EXPECT_EQ(status.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(clock.sleeps().empty());
}

TEST(RetryLoop, GivesUpAfterMaxAttemptsWithoutProgress) {
  testing::FakeClock clock;
  testing::FixedRandom random{1.0};
  RetryPolicy policy;
  policy.max_attempts = 3;
  Context ctx{&clock, {}, std::nullopt};
  int calls = 0;
  auto status = retryLoop(policy, clock, random, ctx, "test", [&](int) -> AttemptOutcome {
    ++calls;
    return makeError(ErrorCode::kUnavailable, "503");
  });
  EXPECT_EQ(status.error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(calls, 3);
}

TEST(RetryLoop, ProgressResetsTheAttemptCount) {
  testing::FakeClock clock;
  testing::FixedRandom random{1.0};
  RetryPolicy policy;
  policy.max_attempts = 2;
  Context ctx{&clock, {}, std::nullopt};
  int calls = 0;
  auto status = retryLoop(policy, clock, random, ctx, "test", [&](int) -> AttemptOutcome {
    if (++calls < 6)  // a resumed blob got further each time
      return {makeError(ErrorCode::kUnavailable, "reset"), /*progress=*/true};
    return {};
  });
  EXPECT_TRUE(status.ok());
  EXPECT_EQ(calls, 6);
}

TEST(RetryLoop, HonoursRetryAfterAndTheDeadline) {
  testing::FakeClock clock;
  testing::FixedRandom random{1.0};
  Context ctx{&clock, {}, clock.now() + seconds(10)};
  int calls = 0;
  auto status = retryLoop(RetryPolicy{}, clock, random, ctx, "test", [&](int) -> AttemptOutcome {
    ++calls;
    Error error = makeError(ErrorCode::kUnavailable, "429");
    error.retry_after = seconds(4);
    return error;
  });
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.error().code, ErrorCode::kUnavailable);  // the last failure, not a timeout
  EXPECT_NE(status.error().message.find("deadline"), std::string::npos);
  EXPECT_EQ(clock.sleeps(), (std::vector<milliseconds>{seconds(4), seconds(4)}));
  EXPECT_EQ(calls, 3);
}

}  // namespace
}  // namespace pullagent::puller
