#include "puller/lazy/link_estimate.h"

#include <gtest/gtest.h>

namespace pullagent::puller::estargz {
namespace {

constexpr uint64_t kFloor = uint64_t{64} << 10;
constexpr uint64_t kCeiling = uint64_t{4} << 20;
constexpr uint64_t kMiB = uint64_t{1} << 20;

TEST(LinkEstimate, TheFloorUntilRoundTripAndRateAreBothMeasured) {
  LinkEstimate link;
  EXPECT_EQ(link.bytesPerRoundTrip(kFloor, kCeiling), kFloor);
  link.observe(100, 0.010);  // a round trip, no rate yet
  EXPECT_EQ(link.bytesPerRoundTrip(kFloor, kCeiling), kFloor);
  EXPECT_EQ(link.bytesPerRoundTrip(kFloor, 0), 0u);  // max 0: never widened
}

TEST(LinkEstimate, TheProductOfTheShortestRoundTripAndTheFastestLargeFetch) {
  constexpr uint64_t kSmallFloor = uint64_t{4} << 10;
  LinkEstimate link;
  link.observe(4 * kMiB, 0.100);  // 41.9 MB/s, no round trip yet
  EXPECT_EQ(link.bytesPerRoundTrip(kSmallFloor, kCeiling), kSmallFloor);
  link.observe(100, 0.020);  // a round trip of 20 ms
  EXPECT_NEAR(static_cast<double>(link.bytesPerRoundTrip(kSmallFloor, kCeiling)),
              0.020 * 4 * kMiB / 0.1, 1024);
  link.observe(100, 0.005);  // a shorter round trip wins
  EXPECT_NEAR(static_cast<double>(link.bytesPerRoundTrip(kSmallFloor, kCeiling)),
              0.005 * 4 * kMiB / 0.1, 1024);
  link.observe(1 * kMiB, 0.030);  // slower than the fastest: 25 ms of it were the round trip
  EXPECT_NEAR(static_cast<double>(link.bytesPerRoundTrip(kSmallFloor, kCeiling)),
              0.005 * 4 * kMiB / 0.1, 1024);
  link.observe(1 * kMiB, 0.0301);  // 5.1 ms of round trip left: not shorter
  link.observe(2 * kMiB, 0.025);   // a faster one: 83.9 MB/s
  EXPECT_NEAR(static_cast<double>(link.bytesPerRoundTrip(kSmallFloor, kCeiling)),
              0.005 * 2 * kMiB / 0.025, 1024);
  EXPECT_EQ(link.bytesPerRoundTrip(kSmallFloor, 128 << 10), uint64_t{128} << 10);  // ceiling
  EXPECT_EQ(link.bytesPerRoundTrip(kCeiling, kCeiling), kCeiling);                 // floor
  EXPECT_NEAR(static_cast<double>(link.bytesPerRoundTrip(kFloor, kCeiling)), 419430, 1024);
}

}  // namespace
}  // namespace pullagent::puller::estargz
