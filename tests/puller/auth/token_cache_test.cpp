#include "puller/auth/token_cache.h"

#include <gtest/gtest.h>

#include "tests/support/fake_clock.h"

namespace pullagent::puller {
namespace {

using std::chrono::seconds;

TEST(TokenCache, KeyIgnoresScopeOrderAndDuplicates) {
  EXPECT_EQ(TokenCache::key("h", "s", {"b", "a", "b"}), TokenCache::key("h", "s", {"a", "b"}));
  EXPECT_NE(TokenCache::key("h", "s", {"a"}), TokenCache::key("h2", "s", {"a"}));
  EXPECT_NE(TokenCache::key("h", "s", {"a"}), TokenCache::key("h", "s2", {"a"}));
}

TEST(TokenCache, ServesUntilShortlyBeforeExpiry) {
  testing::FakeClock clock;
  TokenCache cache(clock);
  cache.put("k", Secret("t1"), seconds(300));  // refresh 30 s early (a tenth)
  EXPECT_EQ(cache.get("k"), Secret("t1"));
  clock.advance(seconds(269));
  EXPECT_EQ(cache.get("k"), Secret("t1"));
  clock.advance(seconds(1));
  EXPECT_FALSE(cache.get("k").has_value());
}

TEST(TokenCache, LongLivedTokensRefreshAMinuteEarly) {
  testing::FakeClock clock;
  TokenCache cache(clock);
  cache.put("k", Secret("t"), seconds(3600));
  clock.advance(seconds(3539));
  EXPECT_TRUE(cache.get("k").has_value());
  clock.advance(seconds(1));
  EXPECT_FALSE(cache.get("k").has_value());
}

TEST(TokenCache, InvalidateDropsOnlyTheRefusedToken) {
  testing::FakeClock clock;
  TokenCache cache(clock);
  cache.put("k", Secret("new"), seconds(300));
  cache.invalidate("k", Secret("old"));  // another thread already replaced it
  EXPECT_EQ(cache.get("k"), Secret("new"));
  cache.invalidate("k", Secret("new"));
  EXPECT_FALSE(cache.get("k").has_value());
}

}  // namespace
}  // namespace pullagent::puller
