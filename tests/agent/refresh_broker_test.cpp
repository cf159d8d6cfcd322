#include "agent/daemon/refresh_broker.h"

#include <gtest/gtest.h>

namespace pullagent::agent {
namespace {

TEST(RefreshBroker, CarriesARequestFromTheEndpointToTheLoopAndItsOutcomesBack) {
  int woken = 0;
  RefreshBroker broker([&] { ++woken; });
  auto id = broker.submit({"web", "api"});
  ASSERT_TRUE(id.has_value());
  EXPECT_EQ(woken, 1);
  // Not yet taken by the loop: pending, not done.
  ASSERT_TRUE(broker.status(*id).has_value());
  EXPECT_FALSE(broker.status(*id)->done);

  auto taken = broker.take();
  ASSERT_EQ(taken.size(), 1u);
  EXPECT_EQ(taken[0].id, *id);
  EXPECT_EQ(taken[0].sites, (std::vector<std::string>{"web", "api"}));
  EXPECT_TRUE(broker.take().empty());

  broker.begin(*id, {"web", "api"});
  broker.record(*id, {"web", RefreshOutcome::kUpdated, "sha256:1", "sha256:2", ""});
  auto half = broker.status(*id);
  EXPECT_FALSE(half->done);
  EXPECT_EQ(half->sites[0].outcome, RefreshOutcome::kUpdated);
  EXPECT_EQ(half->sites[1].outcome, RefreshOutcome::kPending);
  broker.record(*id, {"api", RefreshOutcome::kFailed, "sha256:3", "", "registry down"});
  EXPECT_TRUE(broker.status(*id)->done);
  EXPECT_EQ(toString(broker.status(*id)->sites[1].outcome), "failed");

  EXPECT_FALSE(broker.status(*id + 100).has_value());
}

TEST(RefreshBroker, EveryRequestIsDoneOnceBegunEvenWithNoSites) {
  RefreshBroker broker(nullptr);
  auto id = broker.submit({});
  ASSERT_TRUE(id.has_value());
  EXPECT_TRUE(broker.take().at(0).sites.empty());
  broker.begin(*id, {});
  EXPECT_TRUE(broker.status(*id)->done);
}

TEST(RefreshBroker, KeepsABoundedNumberOfRequestsForgettingFinishedOnesFirst) {
  RefreshBroker broker(nullptr);
  std::vector<uint64_t> ids;
  for (size_t i = 0; i < RefreshBroker::kMaxRequests; ++i)
    ids.push_back(broker.submit({"web"}).value());
  // All still running: the next is refused.
  EXPECT_FALSE(broker.submit({"web"}).has_value());
  // One finishes: it is forgotten to make room, the others stay.
  broker.begin(ids[5], {"web"});
  broker.record(ids[5], {"web", RefreshOutcome::kUnchanged, "sha256:1", "", ""});
  auto next = broker.submit({"web"});
  ASSERT_TRUE(next.has_value());
  EXPECT_FALSE(broker.status(ids[5]).has_value());
  EXPECT_TRUE(broker.status(ids[0]).has_value());
}

}  // namespace
}  // namespace pullagent::agent
