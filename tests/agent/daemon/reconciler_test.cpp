#include "agent/daemon/reconciler.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <deque>
#include <set>
#include <thread>

#include "agent/site/disk_admission.h"
#include "puller/state/state_dir.h"
#include "tests/support/fake_clock.h"
#include "tests/support/temp_dir.h"

namespace pullagent::agent {
namespace {

using std::chrono::seconds;
using testing::FakeClock;
using testing::TempDir;

// Attempts that end the way the test says: each waits until a result is queued for its site
// (or until it is stopped, then it reports itself cancelled).
class ScriptedRunner final : public SiteAttemptRunner {
 public:
  SiteAttemptResult run(const std::string& site, const std::filesystem::path&,
                        SiteActivity& activity, std::stop_token stop,
                        const AttemptPlan& plan) override {
    const auto& refresh_of = plan.refresh_of;
    std::unique_lock lock(mutex_);
    ++calls_[site];
    rollback_to_[site] = plan.rollback_to;
    unless_[site] = refresh_of.empty() ? std::nullopt
                                       : std::optional<std::string>(refresh_of[0].resolved_digest);
    refresh_of_[site] = refresh_of;
    hold_[site] = plan.hold;
    activity_[site] = &activity;
    ++running_;
    max_running_ = std::max(max_running_, running_);
    changed_.wait(lock, stop, [&] { return !queued_[site].empty(); });
    --running_;
    activity_.erase(site);
    if (queued_[site].empty()) {
      SiteAttemptResult cancelled;
      cancelled.kind = SiteAttemptResult::Kind::kCancelled;
      return cancelled;
    }
    SiteAttemptResult result = queued_[site].front();
    queued_[site].pop_front();
    if (!result.sidecars.empty()) {  // a unit: its containers, as the real runner shows them
      std::vector<ContainerActivity> containers;
      for (const auto& image : std::vector{*result.published})
        containers.push_back({image.container, image.image, "ready", {}});
      for (const auto& image : result.sidecars)
        containers.push_back({image.container, image.image, "ready", {}});
      activity.setContainers(std::move(containers));
    }
    return result;
  }
  void push(const std::string& site, SiteAttemptResult result) {
    {
      std::lock_guard lock(mutex_);
      queued_[site].push_back(std::move(result));
    }
    changed_.notify_all();
  }
  int calls(const std::string& site) {
    std::lock_guard lock(mutex_);
    return calls_[site];
  }
  // The running attempt of `site` reports this much received.
  void progress(const std::string& site, int64_t bytes) {
    std::lock_guard lock(mutex_);
    activity_.at(site)->update(SiteProgress{0, 1, bytes, 1 << 30});
  }
  bool isRunning(const std::string& site) {
    std::lock_guard lock(mutex_);
    return activity_.count(site) != 0;
  }
  int maxRunning() {
    std::lock_guard lock(mutex_);
    return max_running_;
  }
  // The unit the last attempt of `site` was to refresh.
  std::vector<PublishedImage> refreshOf(const std::string& site) {
    std::lock_guard lock(mutex_);
    return refresh_of_[site];
  }
  // The unit the last attempt of `site` was to take again for a rollback.
  std::vector<PublishedImage> rollbackTo(const std::string& site) {
    std::lock_guard lock(mutex_);
    return rollback_to_[site];
  }
  // What the last attempt of `site` was told the main tag resolved to (a refresh), if anything.
  std::optional<std::string> unless(const std::string& site) {
    std::lock_guard lock(mutex_);
    return unless_[site];
  }
  // Whether the last attempt of `site` held its unit at its digests (a check at start).
  bool held(const std::string& site) {
    std::lock_guard lock(mutex_);
    return hold_[site];
  }
  bool needsCheckAtStart(const SiteState& published) const override {
    return check_at_start.count(published.site) != 0;
  }
  // The sites whose published images need their registry when a process starts (set before).
  std::set<std::string> check_at_start;

 private:
  std::mutex mutex_;
  std::condition_variable_any changed_;
  std::map<std::string, std::deque<SiteAttemptResult>> queued_;
  std::map<std::string, int> calls_;
  std::map<std::string, std::optional<std::string>> unless_;
  std::map<std::string, std::vector<PublishedImage>> refresh_of_;
  std::map<std::string, bool> hold_;
  std::map<std::string, std::vector<PublishedImage>> rollback_to_;
  std::map<std::string, SiteActivity*> activity_;
  int running_ = 0;
  int max_running_ = 0;
};

class SetRandom final : public Random {
 public:
  double uniform() override { return value; }
  double value = 1.0;
};

SiteAttemptResult published(const std::string& sha, const std::string& digest) {
  SiteAttemptResult result;
  result.kind = SiteAttemptResult::Kind::kPublished;
  result.image = "myreg.azurecr.io/app:v1";
  result.config_sha256 = sha;
  result.published =
      PublishedImage{result.image, digest, "/state/images/x", sha, {}, digest, "", ""};
  return result;
}

SiteAttemptResult failed(const std::string& sha) {
  SiteAttemptResult result;
  result.kind = SiteAttemptResult::Kind::kFailed;
  result.config_sha256 = sha;
  result.error = SiteError{"identity", "identity not assigned", {}};
  return result;
}

class ReconcilerTest : public ::testing::Test {
 protected:
  ReconcilerTest() { reset(); }
  void reset() {
    reconciler_.reset();
    reconciler_ = std::make_unique<Reconciler>(
        runner_, clock_, random_, store_, metrics_, [] {},
        ReconcilerOptions{2, seconds(60), 8, seconds(10), seconds(40)});
  }
  std::map<std::string, SiteFile> files(std::map<std::string, std::string> shas) {
    std::map<std::string, SiteFile> result;
    for (const auto& [name, sha] : shas)
      result[name] = SiteFile{"/sites/" + name + ".json", sha};
    return result;
  }
  // Steps until no attempt is running (attempts end on their own threads).
  void settle() {
    for (int i = 0; i < 500 && reconciler_->running() != 0; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      reconciler_->step();
    }
    ASSERT_EQ(reconciler_->running(), 0);
  }
  // A publish of the image named by the real digest "sha256:<digit × 64>", the image in the
  // state dir; the state's path is never used (the digest finds the image).
  SiteAttemptResult publishedOnDisk(const std::string& sha, char digit) {
    const std::string digest = "sha256:" + std::string(64, digit);
    SiteAttemptResult result = published(sha, digest);
    result.published->path = "/elsewhere";
    const auto dir = dir_.path() / "images" / digest.substr(7);
    std::filesystem::create_directories(dir);
    testing::writeFile(dir / puller::kPublishedMarker, "");
    return result;
  }
  std::optional<SiteState> state(const std::string& site) {
    for (auto& each : store_.readAll()) {
      if (each.site == site)
        return each;
    }
    return std::nullopt;
  }

  TempDir dir_{"reconciler"};
  FakeClock clock_;
  SetRandom random_;  // 1.0 unless a test says otherwise: the backoff is the whole ceiling
  SiteStateStore store_{puller::StateDir(dir_.path())};
  Metrics metrics_;
  ScriptedRunner runner_;
  std::unique_ptr<Reconciler> reconciler_;
};

SiteAttemptResult unchanged() {
  SiteAttemptResult result;
  result.kind = SiteAttemptResult::Kind::kUnchanged;
  return result;
}

// `pullagent refresh`: the attempt is told what the tag resolved to; its outcome goes back to
// the broker; a failure keeps the published image and is tried again with backoff.
TEST_F(ReconcilerTest, ARefreshChecksTheTagAndSaysWhatHappened) {
  RefreshBroker broker(nullptr);
  reconciler_->update(files({{"web", "a"}}));
  reconciler_->step();
  runner_.push("web", published("a", "sha256:d1"));
  settle();
  EXPECT_FALSE(runner_.unless("web").has_value());  // a first pull is no refresh

  auto refresh = [&](std::vector<std::string> sites) {
    const uint64_t id = broker.submit(std::move(sites)).value();
    for (const auto& request : broker.take())
      reconciler_->refresh(request, broker);
    reconciler_->step();
    return id;
  };
  const uint64_t first = refresh({"web", "nope"});
  EXPECT_FALSE(broker.status(first)->done);
  runner_.push("web", unchanged());
  settle();
  EXPECT_EQ(runner_.unless("web"), "sha256:d1");
  auto outcome = broker.status(first).value();
  ASSERT_TRUE(outcome.done);
  EXPECT_EQ(outcome.sites[0].outcome, RefreshOutcome::kUnchanged);
  EXPECT_EQ(outcome.sites[1].outcome, RefreshOutcome::kUnknown);
  EXPECT_EQ(state("web")->phase, SitePhase::kPublished);
  EXPECT_TRUE(state("web")->last_checked_at.has_value());
  EXPECT_EQ(runner_.calls("web"), 2);

  const uint64_t second = refresh({});
  runner_.push("web", published("a", "sha256:d2"));
  settle();
  auto moved = broker.status(second).value();
  ASSERT_TRUE(moved.done);
  EXPECT_EQ(moved.sites.at(0).outcome, RefreshOutcome::kUpdated);
  EXPECT_EQ(moved.sites[0].from, "sha256:d1");
  EXPECT_EQ(moved.sites[0].to, "sha256:d2");

  const uint64_t third = refresh({"web"});
  runner_.push("web", failed("a"));
  settle();
  EXPECT_EQ(runner_.unless("web"), "sha256:d2");
  auto down = broker.status(third).value();
  ASSERT_TRUE(down.done);
  EXPECT_EQ(down.sites[0].outcome, RefreshOutcome::kFailed);
  EXPECT_NE(down.sites[0].error.find("identity not assigned"), std::string::npos);
  EXPECT_EQ(state("web")->published->digest, "sha256:d2");  // still serving
  EXPECT_EQ(state("web")->phase, SitePhase::kFailed);
  // Tried again once the backoff passed, as a refresh again.
  clock_.advance(seconds(11));
  reconciler_->step();
  EXPECT_EQ(reconciler_->running(), 1);
  runner_.push("web", unchanged());
  settle();
  EXPECT_EQ(runner_.calls("web"), 5);
  EXPECT_EQ(state("web")->phase, SitePhase::kPublished);
  EXPECT_FALSE(state("web")->last_error.has_value());
}

// DOCKER_ENABLE_CI=true: the tag is checked every tagPollInterval (jittered); a site without
// it is never polled.
TEST_F(ReconcilerTest, ASiteWithContinuousDeploymentPollsItsTag) {
  reconciler_ = std::make_unique<Reconciler>(
      runner_, clock_, random_, store_, metrics_, [] {},
      ReconcilerOptions{2, seconds(60), 8, seconds(10), seconds(40), seconds(30), seconds(100)});
  reconciler_->update(files({{"ci", "a"}, {"plain", "b"}}));
  reconciler_->step();
  SiteAttemptResult with_ci = published("a", "sha256:d1");
  with_ci.continuous_deployment = true;
  runner_.push("ci", with_ci);
  runner_.push("plain", published("b", "sha256:d2"));
  settle();
  EXPECT_TRUE(state("ci")->continuous_deployment);

  // random 1.0: the interval stretched to its +20%, 120 s.
  clock_.advance(seconds(119));
  reconciler_->step();
  EXPECT_EQ(reconciler_->running(), 0);
  clock_.advance(seconds(2));
  reconciler_->step();
  EXPECT_EQ(reconciler_->running(), 1);
  SiteAttemptResult same = unchanged();
  same.config_sha256 = "a";
  same.continuous_deployment = true;
  runner_.push("ci", same);
  settle();
  EXPECT_EQ(runner_.unless("ci"), "sha256:d1");
  EXPECT_EQ(runner_.calls("ci"), 2);
  EXPECT_EQ(runner_.calls("plain"), 1);
  // And again one interval after that check.
  clock_.advance(seconds(121));
  reconciler_->step();
  EXPECT_EQ(reconciler_->running(), 1);
  runner_.push("ci", same);
  settle();
  EXPECT_EQ(runner_.calls("ci"), 3);
  EXPECT_EQ(runner_.calls("plain"), 1);
}

// A site with sidecars: the whole unit is what a refresh checks, a main container pinned by
// digest does not make the site pinned while a sidecar follows a tag, and a registry push to the
// sidecar's tag reaches the site.
TEST_F(ReconcilerTest, ASidecarUnitFollowsTheTagsOfAnyOfItsContainers) {
  RefreshBroker broker(nullptr);
  reconciler_->update(files({{"shop", "a"}}));
  reconciler_->step();
  SiteAttemptResult unit;
  unit.kind = SiteAttemptResult::Kind::kPublished;
  unit.image = "web=myreg.azurecr.io/web@sha256:m1 logs=myreg.azurecr.io/logs:v1";
  unit.config_sha256 = "a";
  unit.continuous_deployment = true;
  unit.published = PublishedImage{"myreg.azurecr.io/web@sha256:m1",
                                  "sha256:m1",
                                  "/s/images/m1",
                                  "a",
                                  {},
                                  "sha256:m1",
                                  "web",
                                  ""};
  unit.sidecars = {PublishedImage{
      "myreg.azurecr.io/logs:v1", "sha256:l1", "/s/images/l1", "a", {}, "sha256:l1", "logs", ""}};
  runner_.push("shop", unit);
  settle();
  ASSERT_EQ(state("shop")->sidecars.size(), 1u);
  EXPECT_EQ(state("shop")->containers.size(), 2u);
  EXPECT_FALSE(pinnedByDigest(*state("shop")));

  const uint64_t id = broker.submitPush({"myreg.azurecr.io", "logs", "v1"}).value();
  for (const auto& request : broker.take())
    reconciler_->refresh(request, broker);
  reconciler_->step();
  EXPECT_EQ(reconciler_->running(), 1);
  SiteAttemptResult moved = unit;
  moved.sidecars[0].digest = "sha256:l2";
  runner_.push("shop", moved);
  settle();
  // The refresh was told the whole unit; the new one replaced it, the old sidecar collectable.
  const auto refreshed = runner_.refreshOf("shop");
  ASSERT_EQ(refreshed.size(), 2u);
  EXPECT_EQ(refreshed[1].container, "logs");
  EXPECT_EQ(refreshed[1].resolved_digest, "sha256:l1");
  EXPECT_EQ(state("shop")->sidecars[0].digest, "sha256:l2");
  EXPECT_EQ(state("shop")->published->digest, "sha256:m1");
  EXPECT_TRUE(broker.status(id)->done);
  EXPECT_TRUE(reconciler_->takeCollectable());
  EXPECT_EQ(reconciler_->publishedDigests(), (std::set<std::string>{"sha256:m1", "sha256:l2"}));

  // A push to a tag no container follows reaches nobody.
  broker.submitPush({"myreg.azurecr.io", "web", "v9"});
  for (const auto& request : broker.take())
    reconciler_->refresh(request, broker);
  reconciler_->step();
  EXPECT_EQ(reconciler_->running(), 0);
}

TEST_F(ReconcilerTest, ANewSiteIsPulledOnceAndAnUnchangedOneIsLeftAlone) {
  reconciler_->update(files({{"web", "a"}}));
  reconciler_->step();
  EXPECT_EQ(reconciler_->running(), 1);
  EXPECT_EQ(state("web")->phase, SitePhase::kPulling);
  runner_.push("web", published("a", "sha256:1"));
  settle();
  EXPECT_EQ(state("web")->phase, SitePhase::kPublished);
  EXPECT_EQ(state("web")->published->digest, "sha256:1");

  reconciler_->update(files({{"web", "a"}}));
  reconciler_->step();
  EXPECT_EQ(reconciler_->running(), 0);
  EXPECT_EQ(runner_.calls("web"), 1);
  EXPECT_EQ(reconciler_->publishedDigests(), std::set<std::string>{"sha256:1"});
}

TEST_F(ReconcilerTest, FailuresBackOffExponentiallyUpToTheCapAndAChangeRetriesAtOnce) {
  reconciler_->update(files({{"web", "a"}}));
  reconciler_->step();
  int attempts = 0;
  for (int expected : {10, 20, 40, 40}) {
    runner_.push("web", failed("a"));
    settle();
    EXPECT_EQ(state("web")->phase, SitePhase::kFailed);
    EXPECT_EQ(state("web")->attempts, ++attempts);
    ASSERT_TRUE(state("web")->next_attempt_at.has_value());
    clock_.advance(seconds(expected - 1));
    reconciler_->step();
    EXPECT_EQ(reconciler_->running(), 0) << "retried before " << expected << " s";
    clock_.advance(seconds(1));
    reconciler_->step();
    EXPECT_EQ(reconciler_->running(), 1) << "not retried after " << expected << " s";
  }
  // A fixed config is tried at once, with the count started over.
  runner_.push("web", failed("a"));
  settle();
  reconciler_->update(files({{"web", "b"}}));
  reconciler_->step();
  EXPECT_EQ(reconciler_->running(), 1);
  runner_.push("web", published("b", "sha256:2"));
  settle();
  EXPECT_EQ(state("web")->phase, SitePhase::kPublished);
  EXPECT_EQ(state("web")->attempts, 0);
  EXPECT_FALSE(state("web")->last_error.has_value());
}

TEST_F(ReconcilerTest, BackoffIsJitteredDownToHalfTheCeiling) {
  random_.value = 0.0;
  reconciler_->update(files({{"web", "a"}}));
  reconciler_->step();
  runner_.push("web", failed("a"));
  settle();
  clock_.advance(seconds(4));
  reconciler_->step();
  EXPECT_EQ(reconciler_->running(), 0);
  clock_.advance(seconds(1));  // 5 s: half of the 10 s ceiling
  reconciler_->step();
  EXPECT_EQ(reconciler_->running(), 1);
  runner_.push("web", failed("a"));
  settle();
}

TEST_F(ReconcilerTest, AtMostMaxConcurrentAttemptsRunAndTheRestWait) {
  reconciler_->update(files({{"a", "1"}, {"b", "1"}, {"c", "1"}}));
  reconciler_->step();
  EXPECT_EQ(reconciler_->running(), 2);
  EXPECT_EQ(state("c")->phase, SitePhase::kPending);
  runner_.push("a", published("1", "sha256:a"));
  runner_.push("b", published("1", "sha256:b"));
  runner_.push("c", published("1", "sha256:c"));
  settle();
  reconciler_->step();
  settle();
  EXPECT_LE(runner_.maxRunning(), 2);  // never more at once, however the threads interleave
  for (const char* site : {"a", "b", "c"})
    EXPECT_EQ(state(site)->phase, SitePhase::kPublished) << site;
}

TEST_F(ReconcilerTest, AttemptsPastTheirSlotTimeLetWaitingSitesStartUpToTheHardCap) {
  // "slow-a" and "slow-b" never finish on their own (registries that dribble); the others wait.
  // (Their lack of progress is left out here: slot_idle is longer than the slot.)
  reconciler_.reset();
  reconciler_ = std::make_unique<Reconciler>(
      runner_, clock_, random_, store_, metrics_, [] {},
      ReconcilerOptions{2, seconds(60), 3, seconds(10), seconds(40), seconds(30), seconds(300),
                        false, seconds(3600)});
  reconciler_->update(files({{"slow-a", "1"}, {"slow-b", "1"}, {"web", "1"}, {"zz", "1"}}));
  auto wake = reconciler_->step();
  EXPECT_EQ(reconciler_->running(), 2);
  ASSERT_TRUE(wake.has_value());  // the loop comes back when the slots' time is up
  EXPECT_EQ(*wake, clock_.now() + seconds(60));
  clock_.advance(seconds(59));
  reconciler_->step();
  EXPECT_EQ(reconciler_->running(), 2);
  clock_.advance(seconds(1));
  reconciler_->step();
  EXPECT_EQ(reconciler_->running(), 3);  // "web" starts; "zz" waits: 3 attempts in all at most
  EXPECT_EQ(state("web")->phase, SitePhase::kPulling);
  EXPECT_EQ(state("zz")->phase, SitePhase::kPending);
  runner_.push("web", published("1", "sha256:web"));
  for (int i = 0; i < 500 && state("web")->phase != SitePhase::kPublished; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    reconciler_->step();
  }
  EXPECT_EQ(state("web")->phase, SitePhase::kPublished);
  EXPECT_EQ(state("zz")->phase, SitePhase::kPulling);  // took the freed place
  for (const char* site : {"slow-a", "slow-b", "zz"})
    runner_.push(site, published("1", std::string("sha256:") + site));
  settle();
}

// A slot measures work, not waiting: an attempt that receives nothing (a registry that trickles
// or hangs) for slot_idle lets a waiting site start beside it; one that keeps working holds on.
TEST_F(ReconcilerTest, AnAttemptThatOnlyWaitsLetsAWaitingSiteStart) {
  reconciler_.reset();
  reconciler_ = std::make_unique<Reconciler>(
      runner_, clock_, random_, store_, metrics_, [] {},
      ReconcilerOptions{2, seconds(60), 8, seconds(10), seconds(40), seconds(30), seconds(300),
                        false, seconds(5)});
  reconciler_->update(files({{"a-busy", "1"}, {"b-hanging", "1"}, {"c-honest", "1"}}));
  auto wake = reconciler_->step();
  EXPECT_EQ(reconciler_->running(), 2);
  ASSERT_TRUE(wake.has_value());
  EXPECT_EQ(*wake, clock_.now() + seconds(5));  // when the first holder may turn out idle
  for (int i = 0; i < 500 && !(runner_.isRunning("a-busy") && runner_.isRunning("b-hanging"));
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  clock_.advance(seconds(3));
  runner_.progress("a-busy", kSlotWorkBytes);
  reconciler_->step();
  EXPECT_EQ(state("c-honest")->phase, SitePhase::kPending);
  clock_.advance(seconds(2));  // b-hanging: 5 s without work
  reconciler_->step();
  EXPECT_EQ(state("c-honest")->phase, SitePhase::kPulling);
  EXPECT_EQ(reconciler_->running(), 3);
  for (const char* site : {"a-busy", "b-hanging", "c-honest"})
    runner_.push(site, published("1", std::string("sha256:") + site));
  settle();
}

// A runner whose attempts throw, as a bug or an allocation failure on a hostile document would.
class ThrowingRunner final : public SiteAttemptRunner {
 public:
  SiteAttemptResult run(const std::string&, const std::filesystem::path&, SiteActivity&,
                        std::stop_token, const AttemptPlan&) override {
    throw std::runtime_error("type_error: hostile JSON");
  }
};

TEST_F(ReconcilerTest, AnExceptionInsideAnAttemptFailsOnlyThatSite) {
  ThrowingRunner throwing;
  Reconciler reconciler(
      throwing, clock_, random_, store_, metrics_, [] {},
      ReconcilerOptions{2, seconds(60), 8, seconds(10), seconds(40)});
  reconciler.update(files({{"web", "1"}}));
  reconciler.step();
  for (int i = 0; i < 500 && reconciler.running() != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    reconciler.step();
  }
  ASSERT_EQ(reconciler.running(), 0);
  auto web = state("web");
  ASSERT_TRUE(web.has_value());
  EXPECT_EQ(web->phase, SitePhase::kFailed);
  ASSERT_TRUE(web->last_error.has_value());
  EXPECT_EQ(web->last_error->phase, "internal");
  EXPECT_NE(web->last_error->message.find("hostile JSON"), std::string::npos);
}

TEST_F(ReconcilerTest, AChangeDuringAnAttemptCancelsItAndStartsOver) {
  reconciler_->update(files({{"web", "a"}}));
  reconciler_->step();
  reconciler_->update(files({{"web", "b"}}));  // the running attempt is stopped...
  for (int i = 0; i < 500 && runner_.calls("web") < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    reconciler_->step();  // ...and, once it ended, a new one starts at once
  }
  EXPECT_EQ(runner_.calls("web"), 2);
  runner_.push("web", published("b", "sha256:2"));
  settle();
  EXPECT_EQ(state("web")->phase, SitePhase::kPublished);
  EXPECT_EQ(state("web")->published->config_sha256, "b");
}

TEST_F(ReconcilerTest, ARemovedSiteLosesItsStateAndItsImageBecomesCollectable) {
  reconciler_->update(files({{"web", "a"}, {"api", "a"}}));
  reconciler_->step();
  runner_.push("web", published("a", "sha256:1"));
  runner_.push("api", published("a", "sha256:2"));
  settle();
  EXPECT_FALSE(reconciler_->takeCollectable());
  reconciler_->update(files({{"api", "a"}}));
  // Gone from a healthy scan: kept through the grace period (a file replaced non-atomically
  // comes back), then removed.
  auto wake = reconciler_->step();
  EXPECT_TRUE(state("web").has_value());
  EXPECT_FALSE(reconciler_->takeCollectable());
  EXPECT_EQ(reconciler_->publishedDigests(), (std::set<std::string>{"sha256:1", "sha256:2"}));
  ASSERT_TRUE(wake.has_value());
  EXPECT_EQ(*wake, clock_.now() + seconds(30));
  clock_.advance(seconds(30));
  reconciler_->step();
  EXPECT_FALSE(state("web").has_value());
  EXPECT_TRUE(reconciler_->takeCollectable());
  EXPECT_FALSE(reconciler_->takeCollectable());
  EXPECT_EQ(reconciler_->publishedDigests(), std::set<std::string>{"sha256:2"});
}

TEST_F(ReconcilerTest, AReplacedImageBecomesCollectable) {
  reconciler_->update(files({{"web", "a"}}));
  reconciler_->step();
  runner_.push("web", published("a", "sha256:1"));
  settle();
  reconciler_->update(files({{"web", "b"}}));
  reconciler_->step();
  runner_.push("web", published("b", "sha256:2"));
  settle();
  EXPECT_TRUE(reconciler_->takeCollectable());
  EXPECT_EQ(reconciler_->publishedDigests(), std::set<std::string>{"sha256:2"});
}

TEST_F(ReconcilerTest, StopAllRecordsRunningAttemptsAsInterrupted) {
  reconciler_->update(files({{"web", "a"}}));
  reconciler_->step();
  reconciler_->stopAll();
  EXPECT_EQ(state("web")->phase, SitePhase::kInterrupted);
  EXPECT_EQ(reconciler_->running(), 0);
}

TEST_F(ReconcilerTest, WhatWasPublishedSurvivesARestart) {
  reconciler_->update(files({{"web", "a"}, {"gone", "a"}}));
  reconciler_->step();
  runner_.push("web", published("a", "sha256:1"));
  runner_.push("gone", published("a", "sha256:9"));
  settle();
  // The process dies after publishing, before it could record that it had.
  SiteState stale = *state("web");
  stale.phase = SitePhase::kPulling;
  ASSERT_TRUE(store_.write(stale).ok());
  reset();  // a new agent process over the same state dir
  reconciler_->update(files({{"web", "a"}}));
  EXPECT_EQ(state("web")->phase, SitePhase::kPublished);
  reconciler_->step();
  EXPECT_EQ(reconciler_->running(), 0);
  EXPECT_EQ(runner_.calls("web"), 1);
  clock_.advance(seconds(30));  // removed while the agent was down: after the grace period
  reconciler_->step();
  EXPECT_EQ(reconciler_->publishedDigests(), std::set<std::string>{"sha256:1"});
  EXPECT_FALSE(state("gone").has_value());
  EXPECT_TRUE(reconciler_->takeCollectable());
}

// refreshOnStart: a new process checks every published tag once, the image serving meanwhile.
TEST_F(ReconcilerTest, AStartReResolvesPublishedTagsWhenAsked) {
  reconciler_->update(files({{"web", "a"}}));
  reconciler_->step();
  runner_.push("web", published("a", "sha256:1"));
  settle();
  ReconcilerOptions options{2, seconds(60), 8, seconds(10), seconds(40)};
  options.refresh_on_start = true;
  reconciler_ = std::make_unique<Reconciler>(
      runner_, clock_, random_, store_, metrics_, [] {}, options);
  reconciler_->update(files({{"web", "a"}}));
  reconciler_->step();
  EXPECT_EQ(reconciler_->running(), 1);
  EXPECT_EQ(reconciler_->publishedDigests(), std::set<std::string>{"sha256:1"});
  runner_.push("web", unchanged());
  settle();
  EXPECT_EQ(runner_.unless("web"), "sha256:1");
  EXPECT_EQ(state("web")->phase, SitePhase::kPublished);
  reconciler_->step();
  EXPECT_EQ(reconciler_->running(), 0);
}

// A site whose published image needs its registry at start (read in place from mounts that did
// not survive the last process, or waiting for a route) is checked then at the digests it was
// published at (AttemptPlan::hold: a moved tag is not followed), pinned by digest or on a tag,
// without refreshOnStart; a failed check is tried again as one. Another site is left alone.
// With refreshOnStart, a site on a tag is refreshed as usual instead (following its tag).
TEST_F(ReconcilerTest, AStartChecksASiteWhoseImageNeedsItsRegistryAtItsDigests) {
  const std::string d1 = "sha256:" + std::string(64, '1');
  reconciler_->update(files({{"pinned", "a"}, {"tagged", "a"}, {"plain", "a"}}));
  reconciler_->step();
  for (const std::string name : {"pinned", "tagged", "plain"}) {
    SiteAttemptResult result = published("a", d1);
    if (name != "tagged") {
      result.image = "myreg.azurecr.io/app@" + d1;
      result.published->image = result.image;
    }
    runner_.push(name, result);
  }
  settle();
  ASSERT_TRUE(pinnedByDigest(*state("pinned")));
  ASSERT_FALSE(pinnedByDigest(*state("tagged")));
  runner_.check_at_start = {"pinned", "tagged"};
  reset();  // a new process, refreshOnStart off
  reconciler_->update(files({{"pinned", "a"}, {"tagged", "a"}, {"plain", "a"}}));
  reconciler_->step();
  EXPECT_EQ(reconciler_->running(), 2);
  runner_.push("pinned", unchanged());
  runner_.push("tagged", failed("a"));
  settle();
  EXPECT_EQ(runner_.calls("pinned"), 2);
  EXPECT_EQ(runner_.unless("pinned"), d1);  // checked, not pulled again
  EXPECT_TRUE(runner_.held("pinned"));
  EXPECT_TRUE(runner_.held("tagged"));
  EXPECT_EQ(runner_.calls("plain"), 1);
  EXPECT_EQ(state("pinned")->phase, SitePhase::kPublished);
  clock_.advance(seconds(60));  // the failed check's backoff
  reconciler_->step();
  runner_.push("tagged", unchanged());
  settle();
  EXPECT_EQ(runner_.calls("tagged"), 3);
  EXPECT_TRUE(runner_.held("tagged"));  // tried again as a check, not as a refresh

  ReconcilerOptions options{2, seconds(60), 8, seconds(10), seconds(40)};
  options.refresh_on_start = true;
  reconciler_ = std::make_unique<Reconciler>(
      runner_, clock_, random_, store_, metrics_, [] {}, options);
  reconciler_->update(files({{"pinned", "a"}, {"tagged", "a"}, {"plain", "a"}}));
  reconciler_->step();
  runner_.push("pinned", unchanged());
  runner_.push("tagged", unchanged());
  settle();
  EXPECT_TRUE(runner_.held("pinned"));
  EXPECT_FALSE(runner_.held("tagged"));
  EXPECT_EQ(runner_.calls("plain"), 1);
}

TEST_F(ReconcilerTest, ASiteFileBackWithinTheGracePeriodIsNeitherRemovedNorPulledAgain) {
  reconciler_->update(files({{"web", "a"}}));
  reconciler_->step();
  runner_.push("web", published("a", "sha256:1"));
  settle();
  reconciler_->update(files({}));
  clock_.advance(seconds(29));
  reconciler_->step();
  reconciler_->update(files({{"web", "a"}}));
  clock_.advance(seconds(60));
  reconciler_->step();
  EXPECT_EQ(state("web")->phase, SitePhase::kPublished);
  EXPECT_EQ(runner_.calls("web"), 1);
  EXPECT_FALSE(reconciler_->takeCollectable());
}

// "state": "Stopped": no attempt at all (no pull, no tag poll, no refresh), the published
// image kept; a pull running when the site stops is cancelled; starting it again checks the tag.
TEST_F(ReconcilerTest, AStoppedSiteCostsNoAttemptAndStartingItChecksItsTag) {
  reconciler_ = std::make_unique<Reconciler>(
      runner_, clock_, random_, store_, metrics_, [] {},
      ReconcilerOptions{2, seconds(60), 8, seconds(10), seconds(40), seconds(30), seconds(100)});
  auto stopped = [&](std::map<std::string, std::string> shas, std::set<std::string> which) {
    auto result = files(std::move(shas));
    for (const auto& name : which)
      result[name].stopped = true;
    return result;
  };
  reconciler_->update(stopped({{"web", "a"}, {"new", "n"}}, {"new"}));
  reconciler_->step();
  EXPECT_FALSE(runner_.isRunning("new"));
  EXPECT_EQ(state("new")->phase, SitePhase::kStopped);
  const std::string d1 = "sha256:" + std::string(64, 'd');
  SiteAttemptResult with_ci = published("a", d1);
  with_ci.continuous_deployment = true;
  runner_.push("web", with_ci);
  settle();
  const auto image_dir = dir_.path() / "images" / d1.substr(7);  // on the host
  std::filesystem::create_directories(image_dir);
  testing::writeFile(image_dir / puller::kPublishedMarker, "");

  reconciler_->update(stopped({{"web", "s"}, {"new", "n"}}, {"web", "new"}));
  EXPECT_EQ(state("web")->phase, SitePhase::kStopped);
  RefreshBroker broker(nullptr);
  const uint64_t id = broker.submit({"web"}).value();
  for (const auto& request : broker.take())
    reconciler_->refresh(request, broker);
  EXPECT_EQ(broker.status(id)->sites.at(0).outcome, RefreshOutcome::kStopped);
  for (int i = 0; i < 5; ++i) {  // several poll intervals: no attempt
    clock_.advance(seconds(200));
    reconciler_->step();
    EXPECT_EQ(reconciler_->running(), 0);
  }
  EXPECT_EQ(runner_.calls("web"), 1);
  EXPECT_EQ(runner_.calls("new"), 0);
  EXPECT_EQ(reconciler_->publishedDigests(), std::set<std::string>{d1});
  EXPECT_NE(reconciler_->statusLine().find("2 stopped"), std::string::npos);

  // Started again with the config it was published for: the tag is checked.
  reconciler_->update(stopped({{"web", "a"}, {"new", "n"}}, {"new"}));
  reconciler_->step();
  EXPECT_EQ(reconciler_->running(), 1);
  for (int i = 0; i < 500 && !runner_.isRunning("web"); ++i)  // its thread has begun
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(runner_.unless("web"), d1);
  // Stopped in the middle of that: the attempt is cancelled and the image stays.
  reconciler_->update(stopped({{"web", "s2"}, {"new", "n"}}, {"web", "new"}));
  settle();
  EXPECT_EQ(state("web")->phase, SitePhase::kStopped);
  EXPECT_EQ(state("web")->published->digest, d1);
  clock_.advance(seconds(400));
  reconciler_->step();
  EXPECT_EQ(reconciler_->running(), 0);

  // Eviction took its image while it was stopped, and the service restarted: starting it
  // pulls it whole (no refresh against a tag that has not moved).
  std::filesystem::remove_all(image_dir);
  reset();
  reconciler_->update(stopped({{"web", "s2"}, {"new", "n"}}, {"web", "new"}));
  reconciler_->update(stopped({{"web", "a"}, {"new", "n"}}, {"new"}));
  reconciler_->step();
  EXPECT_EQ(reconciler_->running(), 1);
  for (int i = 0; i < 500 && !runner_.isRunning("web"); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_FALSE(runner_.unless("web").has_value());
  runner_.push("web", published("a", d1));
  settle();
}

// keepPreviousImages: a publish keeps the unit it replaced (newest first, as many as asked);
// the images held say which are in use and which may be evicted.
TEST_F(ReconcilerTest, ASiteKeepsItsPreviousImagesWhichAreHeldButNotInUse) {
  ReconcilerOptions options{2, seconds(60), 8, seconds(10), seconds(40)};
  options.keep_previous = 2;
  reconciler_ = std::make_unique<Reconciler>(
      runner_, clock_, random_, store_, metrics_, [] {}, options);
  auto digest = [](char c) { return "sha256:" + std::string(64, c); };
  for (const auto& [sha, c] :
       std::vector<std::pair<std::string, char>>{{"a", '1'}, {"b", '2'}, {"c", '3'}, {"d", '4'}}) {
    reconciler_->update(files({{"web", sha}}));
    reconciler_->step();
    runner_.push("web", published(sha, digest(c)));
    settle();
  }
  ASSERT_EQ(state("web")->previous.size(), 2u);
  EXPECT_EQ(state("web")->previous[0].at(0).digest, digest('3'));
  EXPECT_EQ(state("web")->previous[1].at(0).digest, digest('2'));
  EXPECT_TRUE(reconciler_->takeCollectable());  // the first fell off
  auto held = reconciler_->heldImages();
  ASSERT_EQ(held.size(), 3u);
  EXPECT_EQ(held[0].digest, digest('2'));
  EXPECT_FALSE(held[0].in_use);
  EXPECT_EQ(held[0].held_as, "previous image of site web");
  EXPECT_TRUE(held[2].in_use);
  EXPECT_EQ(held[2].held_as, "site web");

  // Back to an earlier image: it is current, not previous any more.
  reconciler_->update(files({{"web", "b"}}));
  reconciler_->step();
  runner_.push("web", published("b", digest('2')));
  settle();
  ASSERT_EQ(state("web")->previous.size(), 2u);
  EXPECT_EQ(state("web")->previous[0].at(0).digest, digest('4'));
  EXPECT_EQ(state("web")->previous[1].at(0).digest, digest('3'));

  // A stopped site's image is held, not in use; another site using it keeps it in use.
  reconciler_->update([&] {
    auto result = files({{"web", "s"}, {"api", "x"}});
    result["web"].stopped = true;
    return result;
  }());
  reconciler_->step();
  for (const auto& image : reconciler_->heldImages()) {
    if (image.digest == digest('2')) {
      EXPECT_FALSE(image.in_use);
      EXPECT_EQ(image.held_as, "stopped site web");
    }
  }
  runner_.push("api", published("x", digest('2')));
  settle();
  for (const auto& image : reconciler_->heldImages()) {
    if (image.digest == digest('2')) {
      EXPECT_TRUE(image.in_use) << image.held_as;
    }
  }
}

// A pull that fits once eviction makes room is no failure: no backoff, tried again as soon as
// the daemon says space was made.
TEST_F(ReconcilerTest, ASiteWaitingForSpaceIsTriedAgainOnceSpaceIsMade) {
  reconciler_->update(files({{"web", "a"}}));
  reconciler_->step();
  SiteAttemptResult waiting = failed("a");
  waiting.error = SiteError{kDiskPhase, std::string(kWaitingForSpace) + "needs 2 GB", {}};
  runner_.push("web", waiting);
  settle();
  EXPECT_EQ(state("web")->phase, SitePhase::kPending);
  EXPECT_NE(reconciler_->statusLine().find("1 waiting for space"), std::string::npos);
  clock_.advance(seconds(5));
  reconciler_->step();
  EXPECT_EQ(reconciler_->running(), 0);  // not before space is made (or the backoff passed)
  reconciler_->spaceMade();
  reconciler_->step();
  EXPECT_EQ(reconciler_->running(), 1);
  // Waiting again: no longer tried at once when space is made, but after the backoff (a site
  // whose pulls keep asking for room has the host evict for it no faster than that).
  runner_.push("web", waiting);
  settle();
  reconciler_->spaceMade();
  reconciler_->step();
  EXPECT_EQ(reconciler_->running(), 0);
  clock_.advance(seconds(21));
  reconciler_->step();
  EXPECT_EQ(reconciler_->running(), 1);
  runner_.push("web", published("a", "sha256:1"));
  settle();
  EXPECT_EQ(state("web")->phase, SitePhase::kPublished);
  EXPECT_EQ(state("web")->attempts, 0);
}

// `pullagent rollback`: the previous unit again at once, no pull; it stays until the config
// changes; an image eviction took cannot be rolled back to.
TEST_F(ReconcilerTest, ARollbackPublishesThePreviousImageAtOnceAndHoldsItUntilTheConfigChanges) {
  const std::string one = "sha256:" + std::string(64, '1');
  const std::string two = "sha256:" + std::string(64, '2');
  RefreshBroker broker(nullptr);
  auto roll = [&](const std::string& site) {
    const uint64_t id = broker.submitRollback(site).value();
    for (const auto& request : broker.take())
      reconciler_->refresh(request, broker);
    return broker.status(id).value().sites.at(0);
  };
  EXPECT_EQ(roll("nope").outcome, RefreshOutcome::kUnknown);
  reconciler_->update(files({{"web", "a"}}));
  reconciler_->step();
  runner_.push("web", publishedOnDisk("a", '1'));
  settle();
  EXPECT_NE(roll("web").error.find("keeps no previous image"), std::string::npos);
  reconciler_->update(files({{"web", "b"}}));
  reconciler_->step();
  runner_.push("web", publishedOnDisk("b", '2'));
  settle();

  auto back = roll("web");
  EXPECT_EQ(back.outcome, RefreshOutcome::kUpdated) << back.error;
  EXPECT_EQ(back.from, two);
  EXPECT_EQ(back.to, one);
  EXPECT_EQ(state("web")->published->digest, one);
  EXPECT_EQ(state("web")->published->path, (dir_.path() / "images" / one.substr(7)).string());
  EXPECT_TRUE(state("web")->rolled_back);
  EXPECT_EQ(state("web")->previous.at(0).at(0).digest, two);
  clock_.advance(seconds(600));
  reconciler_->step();
  EXPECT_EQ(reconciler_->running(), 0);  // held there: the config did not change
  EXPECT_EQ(runner_.calls("web"), 2);
  reset();  // a restart keeps it there too
  reconciler_->update(files({{"web", "b"}}));
  reconciler_->step();
  EXPECT_EQ(reconciler_->running(), 0);

  // Forward again; then the image it would go back to is evicted.
  EXPECT_EQ(roll("web").to, two);
  std::filesystem::remove_all(dir_.path() / "images" / one.substr(7));
  EXPECT_NE(roll("web").error.find("no longer on the host"), std::string::npos);
  EXPECT_EQ(state("web")->published->digest, two);

  // A new config is followed again.
  reconciler_->update(files({{"web", "c"}}));
  reconciler_->step();
  EXPECT_EQ(reconciler_->running(), 1);
  runner_.push("web", publishedOnDisk("c", '3'));
  settle();
  EXPECT_FALSE(state("web")->rolled_back);
}

// Under a signature policy a rollback is a publish like any other: an attempt takes the
// previous unit again (AttemptPlan::rollback_to) and it lands only when the policies accept it;
// refused, the site stays on its image and nothing is retried.
TEST_F(ReconcilerTest, UnderASignaturePolicyARollbackLandsOnlyOnceThePoliciesAcceptItAgain) {
  ReconcilerOptions options{2, seconds(60), 8, seconds(10), seconds(40)};
  options.rollback_verifies = true;
  reconciler_->setOptions(options);
  const std::string one = "sha256:" + std::string(64, '1');
  const std::string two = "sha256:" + std::string(64, '2');
  RefreshBroker broker(nullptr);
  reconciler_->update(files({{"web", "a"}}));
  reconciler_->step();
  runner_.push("web", publishedOnDisk("a", '1'));
  settle();
  reconciler_->update(files({{"web", "b"}}));
  reconciler_->step();
  runner_.push("web", publishedOnDisk("b", '2'));
  settle();
  auto ask = [&] {
    const uint64_t id = broker.submitRollback("web").value();
    for (const auto& request : broker.take())
      reconciler_->refresh(request, broker);
    return id;
  };

  // Refused: the answer says why, the site stays on two, and no attempt follows.
  uint64_t id = ask();
  EXPECT_EQ(reconciler_->running(), 1);
  for (int i = 0; i < 500 && !runner_.isRunning("web"); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_EQ(runner_.rollbackTo("web").size(), 1u);
  EXPECT_EQ(runner_.rollbackTo("web")[0].digest, one);
  EXPECT_TRUE(runner_.refreshOf("web").empty());
  SiteAttemptResult refused;
  refused.kind = SiteAttemptResult::Kind::kFailed;
  refused.config_sha256 = "b";  // the attempt read the config as it is
  refused.error = SiteError{"signature", "refused by the signature policy p: unsigned", {}};
  runner_.push("web", refused);
  settle();
  auto answer = broker.status(id).value().sites.at(0);
  EXPECT_EQ(answer.outcome, RefreshOutcome::kFailed);
  EXPECT_EQ(answer.error,
            "its previous image was not published again: signature: refused by the signature "
            "policy p: unsigned");
  EXPECT_EQ(state("web")->published->digest, two);
  EXPECT_FALSE(state("web")->rolled_back);
  EXPECT_EQ(state("web")->phase, SitePhase::kPublished);
  clock_.advance(seconds(600));
  reconciler_->step();
  EXPECT_EQ(reconciler_->running(), 0);
  EXPECT_EQ(runner_.calls("web"), 3);

  // Accepted: it lands as a rollback does.
  id = ask();
  runner_.push("web", publishedOnDisk("b", '1'));
  settle();
  answer = broker.status(id).value().sites.at(0);
  EXPECT_EQ(answer.outcome, RefreshOutcome::kUpdated) << answer.error;
  EXPECT_EQ(answer.to, one);
  EXPECT_EQ(state("web")->published->digest, one);
  EXPECT_TRUE(state("web")->rolled_back);
  EXPECT_EQ(state("web")->previous.at(0).at(0).digest, two);

  // A new policy decides the rolled-back unit again, by digest; a refusal is recorded and the
  // image stays (its tag is not followed).
  reconciler_->recheckPublished();
  reconciler_->step();
  EXPECT_EQ(reconciler_->running(), 1);
  for (int i = 0; i < 500 && !runner_.isRunning("web"); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_EQ(runner_.rollbackTo("web").size(), 1u);
  EXPECT_EQ(runner_.rollbackTo("web")[0].digest, one);
  runner_.push("web", refused);
  settle();
  EXPECT_EQ(state("web")->published->digest, one);
  EXPECT_TRUE(state("web")->rolled_back);
  ASSERT_TRUE(state("web")->last_error);
  EXPECT_EQ(state("web")->last_error->phase, "signature");
  clock_.advance(seconds(600));
  reconciler_->step();
  EXPECT_EQ(reconciler_->running(), 0);  // not retried until the policy changes again

  // A rollback whose config changes meanwhile does not land; the new config is pulled.
  id = ask();
  for (int i = 0; i < 500 && !runner_.isRunning("web"); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  const int calls = runner_.calls("web");
  reconciler_->update(files({{"web", "c"}}));
  // The rollback's attempt is stopped and answered; the new config's starts at once.
  for (int i = 0; i < 500 && runner_.calls("web") == calls; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    reconciler_->step();
  }
  answer = broker.status(id).value().sites.at(0);
  EXPECT_EQ(answer.outcome, RefreshOutcome::kFailed);
  EXPECT_NE(answer.error.find("changed while the previous image was decided"), std::string::npos)
      << answer.error;
  EXPECT_EQ(state("web")->published->digest, one);
  EXPECT_EQ(reconciler_->running(), 1);
  for (int i = 0; i < 500 && !runner_.isRunning("web"); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_TRUE(runner_.rollbackTo("web").empty());
  runner_.push("web", publishedOnDisk("c", '3'));
  settle();
  EXPECT_EQ(state("web")->published->digest, "sha256:" + std::string(64, '3'));
  EXPECT_FALSE(state("web")->rolled_back);
}

TEST_F(ReconcilerTest, AnUnreadableSitesDirectoryIsSaidInTheStatusLine) {
  reconciler_->setSitesDirectoryError("not found: read the sites directory /x");
  EXPECT_NE(reconciler_->statusLine().find("sites directory unreadable"), std::string::npos);
  reconciler_->setSitesDirectoryError("");
  EXPECT_EQ(reconciler_->statusLine().find("unreadable"), std::string::npos);
}

}  // namespace
}  // namespace pullagent::agent
