#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "agent/daemon/metrics.h"
#include "agent/daemon/reconciler.h"
#include "agent/daemon/site_runner.h"
#include "agent/site/site_pull.h"
#include "agent/site/warm_records.h"
#include "base/clock.h"
#include "base/random.h"
#include "puller/state/state_lock.h"
#include "puller/trust/verdict_cache.h"

namespace pullagent::agent {

// The agent config's warmImages, kept pulled and published in the state dir so that a site
// that asks for one later starts from local bytes (App Service pre-caches its common base
// images on workers the same way). Low priority: a warm pull runs only while no site pull runs
// or waits; a site pull that wants to start pauses it at once (its partial downloads stay in
// the store's ingest and the next warm pull resumes them). Each is pulled when missing and its
// tag checked every tagPollIntervalSeconds; what was pulled is recorded (WarmRecords) so that a
// restart keeps them held. Warm images are in use for eviction: never evicted. Under a signature
// policy, each pull takes its verdict (counted in the metrics as the sites' are) and keeps it,
// as a site does, so that a tag check that finds the tag where it was costs no signature
// request while the verdict holds. Only the loop's thread calls it; one pull runs at a time, on
// a thread of its own.
class WarmImages {
 public:
  WarmImages(Clock& clock, Random& random, Metrics& metrics, bool privileged,
             std::function<void()> wake)
      : clock_(clock),
        random_(random),
        metrics_(metrics),
        privileged_(privileged),
        wake_(std::move(wake)) {}
  ~WarmImages() { stop(); }
  WarmImages(const WarmImages&) = delete;
  WarmImages& operator=(const WarmImages&) = delete;

  // A (re)loaded agent config. A pull running for an image no longer listed is stopped.
  void configure(std::shared_ptr<DaemonServices> services);
  // Every turn of the loop: applies a finished pull; pauses the running one while `sites_busy`
  // (a site pull runs or waits); else starts the next due one. Returns when the next is due.
  std::optional<std::chrono::steady_clock::time_point> step(bool sites_busy);
  // The warm images on the host: in use (never evicted), held as "warm image <ref>".
  std::vector<HeldImage> held() const;
  bool running() const { return pull_ != nullptr; }
  // Stops a running pull and waits for it.
  void stop();

 private:
  struct Pull {
    std::string image;  // as configured (ref.str())
    std::stop_source stop;
    std::atomic<bool> done{false};
    bool paused = false;  // stopped for a site pull, not failed
    Result<SitePullOutcome> outcome{makeError(ErrorCode::kCancelled, "not run")};
    // The state dir's lock, shared, from the pull until its record is written: a `pullagent gc`
    // never sees the image before warm.json names it.
    std::optional<puller::StateLock> lock;
    std::jthread thread;  // last: joined before the rest goes
  };
  struct Due {
    std::chrono::steady_clock::time_point at{};
    int failures = 0;
  };

  void start(const WarmImageConfig& image);
  void finish();
  // Keeps the records of the images configured (an image taken off the list is forgotten, and
  // collected once no site uses it).
  void pruneRecords();
  bool onHost(const WarmRecord& record) const;

  Clock& clock_;
  Random& random_;
  Metrics& metrics_;
  const bool privileged_;
  std::function<void()> wake_;
  std::shared_ptr<DaemonServices> services_;
  WarmRecords records_;
  std::map<std::string, Due> due_;  // by image as configured
  // The warm pulls' signature verdicts (thread-safe: taken on the pull's thread).
  puller::VerdictCache verdicts_;
  std::unique_ptr<Pull> pull_;
};

}  // namespace pullagent::agent
