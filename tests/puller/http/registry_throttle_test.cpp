// One registry's "slow down" heard by every pull: pauses shared by all callers, caps on requests
// in flight, and waits that a stop ends.
#include "puller/http/registry_throttle.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "tests/support/fake_clock.h"

namespace pullagent::puller {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(RegistryThrottle, APauseHoldsEveryCallerOfThatHostOnly) {
  testing::FakeClock clock;
  RegistryThrottle throttle(clock);
  Context ctx{&clock, {}, std::nullopt};
  const auto start = clock.now();
  throttle.pause("acr.io", seconds(3));
  {
    auto other = throttle.admit("other.io", ctx);  // another registry is not held
    ASSERT_TRUE(other.ok());
    EXPECT_EQ(clock.now(), start);
  }
  auto first = throttle.admit("acr.io", ctx);
  ASSERT_TRUE(first.ok());
  EXPECT_GE(clock.now() - start, seconds(3));
  // A later pause of one second does not shorten a longer one still in force.
  throttle.pause("acr.io", seconds(10));
  throttle.pause("acr.io", seconds(1));
  const auto second_start = clock.now();
  auto second = throttle.admit("acr.io", ctx);
  ASSERT_TRUE(second.ok());
  EXPECT_GE(clock.now() - second_start, seconds(10));
  EXPECT_EQ(throttle.stats("acr.io").pauses, 3);
  EXPECT_GE(throttle.stats("acr.io").waited, seconds(13));
}

TEST(RegistryThrottle, AStopOrDeadlineEndsTheWait) {
  testing::FakeClock clock;
  RegistryThrottle throttle(clock);
  throttle.pause("acr.io", seconds(60));
  Context deadline{&clock, {}, clock.now() + seconds(5)};
  auto late = throttle.admit("acr.io", deadline);
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.error().code, ErrorCode::kTimeout);
  std::stop_source stop;
  stop.request_stop();
  Context stopped{&clock, stop.get_token(), std::nullopt};
  auto cancelled = throttle.admit("acr.io", stopped);
  ASSERT_FALSE(cancelled.ok());
  EXPECT_EQ(cancelled.error().code, ErrorCode::kCancelled);
}

TEST(RegistryThrottle, AtMostTheCapInFlightAndAReleasedSlotIsTakenAtOnce) {
  SystemClock clock;
  RegistryThrottle throttle(clock);
  throttle.setLimit("acr.io", 2);
  Context ctx{&clock, {}, std::nullopt};
  std::atomic<int> running{0};
  std::atomic<int> most{0};
  std::vector<std::thread> pulls;
  for (int i = 0; i < 8; ++i) {
    pulls.emplace_back([&] {
      auto permit = throttle.admit("acr.io", ctx);
      ASSERT_TRUE(permit.ok());
      const int now = ++running;
      int seen = most.load();
      while (now > seen && !most.compare_exchange_weak(seen, now)) {
      }
      std::this_thread::sleep_for(milliseconds(5));
      --running;
    });
  }
  for (auto& pull : pulls)
    pull.join();
  EXPECT_LE(most.load(), 2);  // how many overlapped is up to the scheduler; never more than 2
  EXPECT_EQ(throttle.stats("acr.io").in_flight, 0);
  {
    // Two at once are admitted without waiting; a third waits (here until its deadline).
    auto one = throttle.admit("acr.io", ctx);
    auto two = throttle.admit("acr.io", ctx);
    ASSERT_TRUE(one.ok() && two.ok());
    Context soon{&clock, {}, clock.now() + milliseconds(100)};
    EXPECT_FALSE(throttle.admit("acr.io", soon).ok());
  }
  // Permits move; the moved-from one releases nothing.
  auto permit = throttle.admit("acr.io", ctx);
  ASSERT_TRUE(permit.ok());
  RegistryThrottle::Permit moved = std::move(permit.value());
  EXPECT_EQ(throttle.stats("acr.io").in_flight, 1);
}

TEST(RegistryThrottle, TheDefaultCapHoldsEveryHostWithoutOneOfItsOwn) {
  SystemClock clock;  // a slot is waited for in real time
  RegistryThrottle throttle(clock);
  throttle.setDefaultLimit(1);
  throttle.setLimit("big.io", 3);
  Context ctx{&clock, {}, std::nullopt};
  auto first = throttle.admit("acr.io", ctx);
  ASSERT_TRUE(first.ok());
  // A second request to acr.io has no slot: with a deadline it gives up instead of waiting.
  Context soon{&clock, {}, clock.now() + milliseconds(200)};
  auto second = throttle.admit("acr.io", soon);
  ASSERT_FALSE(second.ok());
  std::vector<RegistryThrottle::Permit> big;
  for (int i = 0; i < 3; ++i) {
    auto permit = throttle.admit("big.io", ctx);
    ASSERT_TRUE(permit.ok());
    big.push_back(std::move(permit.value()));
  }
  EXPECT_EQ(throttle.stats("big.io").in_flight, 3);
}

TEST(RegistryThrottle, PausedSaysWhetherAHostsQuietIsStillInForce) {
  testing::FakeClock clock;
  RegistryThrottle throttle(clock);
  EXPECT_FALSE(throttle.paused("acr.io"));
  throttle.pause("acr.io", seconds(2));
  EXPECT_TRUE(throttle.paused("acr.io"));
  EXPECT_FALSE(throttle.paused("other.io"));
  clock.advance(seconds(3));
  EXPECT_FALSE(throttle.paused("acr.io"));
}

}  // namespace
}  // namespace pullagent::puller
