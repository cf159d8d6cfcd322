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
  for (size_t i = 0; i < RefreshBroker::kMaxRefreshRequests; ++i)
    ids.push_back(broker.submit({"web" + std::to_string(i)}).value());
  // All still running: the next is refused.
  EXPECT_FALSE(broker.submit({"other"}).has_value());
  // One finishes: there is room again, and the finished one can still be read back.
  broker.begin(ids[5], {"web5"});
  broker.record(ids[5], {"web5", RefreshOutcome::kUnchanged, "sha256:1", "", ""});
  auto next = broker.submit({"other"});
  ASSERT_TRUE(next.has_value());
  EXPECT_TRUE(broker.status(ids[5]).has_value());
  EXPECT_TRUE(broker.status(ids[0]).has_value());
  broker.begin(*next, {});
  // Finished requests beyond the bound are forgotten, the oldest first.
  for (size_t i = 0; i < 2 * RefreshBroker::kMaxRequests; ++i) {
    auto id = broker.submit({"later" + std::to_string(i)});
    ASSERT_TRUE(id.has_value()) << i;
    broker.begin(*id, {});
  }
  EXPECT_FALSE(broker.status(ids[5]).has_value());
  EXPECT_TRUE(broker.status(ids[0]).has_value());  // unfinished: kept
}

TEST(RefreshBroker, TheSameRequestWhileUnfinishedIsCoalesced) {
  RefreshBroker broker(nullptr);
  const auto first = broker.submit({"web", "api"}).value();
  for (int i = 0; i < 1000; ++i)
    EXPECT_EQ(broker.submit({"api", "web"}).value(), first);
  const PushEvent push{"myreg.azurecr.io", "app", "v1"};
  const auto pushed = broker.submitPush(push).value();
  for (int i = 0; i < 1000; ++i)
    EXPECT_EQ(broker.submitPush(push).value(), pushed);
  EXPECT_EQ(broker.take().size(), 2u);
  // Once finished, the same request is a new one.
  broker.begin(first, {"web"});
  broker.record(first, {"web", RefreshOutcome::kUnchanged, "sha256:1", "", ""});
  EXPECT_NE(broker.submit({"web", "api"}).value(), first);
}

// Once the loop has begun a request, the same request is queued anew (a second push of a tag
// may name a new digest); a push is done once begun (its sender does not wait), so a site whose
// tag check hangs holds no push capacity; repository names cannot be spliced into each other.
TEST(RefreshBroker, ABegunRequestIsNotJoinedAndABegunPushHoldsNoShare) {
  RefreshBroker broker(nullptr);
  const PushEvent push{"reg.io", "app", "v1"};
  const auto first = broker.submitPush(push).value();
  broker.take();
  broker.begin(first, {"web"});
  EXPECT_TRUE(broker.status(first)->done);
  const auto second = broker.submitPush(push).value();
  EXPECT_NE(second, first);
  broker.take();
  broker.begin(second, {"web"});
  for (size_t i = 0; i < 10 * RefreshBroker::kMaxPushesPerRepository; ++i) {
    auto id = broker.submitPush({"reg.io", "app", "t" + std::to_string(i)});
    ASSERT_TRUE(id.has_value()) << i;
    broker.take();
    broker.begin(*id, {"web"});
  }
  // Root's refresh waits for its outcomes, and is not done until they are recorded.
  const auto refresh = broker.submit({"web"}).value();
  broker.take();
  broker.begin(refresh, {"web"});
  EXPECT_FALSE(broker.status(refresh)->done);
  // ("reg.io/x", "y") and ("reg.io", "x/y") are different repositories, each with its share.
  for (size_t i = 0; i < RefreshBroker::kMaxPushesPerRepository; ++i)
    ASSERT_TRUE(broker.submitPush({"reg.io/x", "y", "t" + std::to_string(i)}).has_value());
  EXPECT_TRUE(broker.submitPush({"reg.io", "x/y", "t0"}).has_value());
}

// One tenant's pushes (its tag check hanging) fill its own share: another repository's pushes
// and root's refresh still get through.
TEST(RefreshBroker, OneRepositorysPushesCannotTakeAnothersCapacity) {
  RefreshBroker broker(nullptr);
  for (size_t i = 0; i < RefreshBroker::kMaxPushesPerRepository; ++i)
    ASSERT_TRUE(broker.submitPush({"reg.io", "hostile", "t" + std::to_string(i)}).has_value());
  for (int i = 0; i < 100; ++i)
    EXPECT_FALSE(broker.submitPush({"reg.io", "hostile", "x" + std::to_string(i)}).has_value());
  EXPECT_TRUE(broker.submitPush({"reg.io", "honest", "v2"}).has_value());
  EXPECT_TRUE(broker.submit({}).has_value());
  // However many repositories the pushes name, root's refresh keeps its own share.
  for (size_t i = 0; i < 2 * RefreshBroker::kMaxPushRequests; ++i)
    (void)broker.submitPush({"reg.io", "repo" + std::to_string(i), "v1"});
  EXPECT_TRUE(broker.submit({"web"}).has_value());
}

}  // namespace
}  // namespace pullagent::agent
