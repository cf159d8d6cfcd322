#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "agent/daemon/metrics.h"
#include "agent/daemon/refresh_broker.h"
#include "agent/daemon/site_attempt.h"
#include "agent/daemon/site_webhook_keys.h"
#include "agent/daemon/sites_directory.h"
#include "agent/site/site_state.h"
#include "base/clock.h"
#include "base/random.h"

namespace pullagent::agent {

struct ReconcilerOptions {
  int max_concurrent = 2;
  // An attempt holds one of max_concurrent slots for at most `slot`: then waiting sites start
  // beside it, so a few slow or hostile registries cannot hold every slot. max_running bounds
  // the attempts (threads) in all.
  std::chrono::seconds slot{60};
  int max_running = 8;
  std::chrono::seconds initial_backoff{10};
  std::chrono::seconds max_backoff{300};
  // A site file missing from a healthy scan is acted on (state removed, image collectable) only
  // once it stayed away this long: a file replaced non-atomically comes back in time.
  std::chrono::seconds removal_grace{30};
  // Sites with continuous deployment check their tag this often (jittered ±20%).
  std::chrono::seconds tag_poll_interval{300};
  // The sites a previous run published re-resolve their tags when loaded (the agent config's
  // refreshOnStart; off here so that tests opt in).
  bool refresh_on_start = false;
  // A slot measures work, not waiting: an attempt that received less than kSlotWorkBytes more
  // in this long counts as past its slot time, so that sites whose registries trickle or hang
  // cannot keep an honest one waiting for `slot`. (Unpacking after the last byte then no longer
  // holds a slot either: more attempts may run, up to max_running.)
  std::chrono::seconds slot_idle{2};
  // Each site keeps this many previous units (its images before the last publish) while space
  // allows.
  int keep_previous = 1;
  // A signature policy is in effect (the agent config names one): a rollback is a publish like
  // any other, so the previous unit is taken again through an attempt (AttemptPlan::rollback_to)
  // and published only when the policies accept it now. Without one a rollback needs no
  // network and happens at once.
  bool rollback_verifies = false;
};

// An image the sites keep: in use by a running site, or kept while space allows (a previous
// image, a stopped site's).
struct HeldImage {
  std::string digest;
  bool in_use = false;
  std::string held_as;  // "site web", "previous image of site web", "stopped site web"
};

// The progress that counts as work for a slot: this many more bytes received.
inline constexpr int64_t kSlotWorkBytes = 256 * 1024;

// Keeps every site's published image equal to what its config asks for. The daemon's loop
// tells it what the sites directory holds (update) and lets it act (step); each attempt runs on
// its own thread, at most max_concurrent at once (attempts past their slot time no longer
// count, up to max_running), so one site's failure or slowness never delays the others for
// long, and nothing thrown inside an attempt reaches the process. A failed attempt is tried again
// after a capped exponential backoff (jittered down to half, so sites failing together do not retry
// together), or at once when the config changes; a removed site's state goes and its image becomes
// collectable. Not thread-safe: only the loop's thread calls it (workers report through `wake`).
class Reconciler {
 public:
  Reconciler(SiteAttemptRunner& runner, const Clock& clock, Random& random,
             const SiteStateStore& store, Metrics& metrics, std::function<void()> wake,
             ReconcilerOptions options);
  ~Reconciler();
  Reconciler(const Reconciler&) = delete;
  Reconciler& operator=(const Reconciler&) = delete;

  void setOptions(const ReconcilerOptions& options) { options_ = options; }
  // Where each site's own webhook key is kept as its config says (null: nowhere).
  void setWebhookKeys(SiteWebhookKeys* keys) { webhook_keys_ = keys; }
  // Why the sites directory cannot be read now ("" when it can): shown in the status line.
  void setSitesDirectoryError(std::string error) { sites_dir_error_ = std::move(error); }
  // The sites directory as scanned now.
  void update(const std::map<std::string, SiteFile>& files);
  // Applies finished attempts and starts the due ones. Returns when the next retry is due.
  std::optional<std::chrono::steady_clock::time_point> step();
  // A refresh request (`pullagent refresh`): each named site (every site when none is named)
  // re-resolves its tag now; outcomes go back through `broker` as attempts end. Sites pinned by
  // digest, and names that are no site, are answered at once.
  void refresh(const RefreshBroker::Request& request, RefreshBroker& broker);
  // Persists the progress of running pulls (the loop calls it about once a second).
  void refreshProgress();
  // The signature policy is new to this reconciler (the service started with one, or a reload
  // changed it): every published site (not stopped, not rolled back), and every site pulling
  // now, checks its image against it again, as a refresh does (the tag re-resolved, the
  // verdict taken; the published image stays while the check runs, and when it fails). Before
  // the states are loaded, it applies to them once they are.
  void recheckPublished();
  // Cancels running attempts, waits for them and records them as interrupted.
  void stopAll();

  int running() const;
  // True while a site pull runs or a site waits for a slot (warm pulls give way).
  bool sitesBusy() const;
  // While held, no new attempt starts (running ones go on): the disk keeper waits for a turn
  // between pulls.
  void holdStarts(bool hold) { hold_starts_ = hold; }
  // "pulling site-a: 3/5 layers, 120/300 MB; site-b ..." or a summary when idle.
  std::string statusLine() const;
  // Manifest digests of every site's published image.
  std::set<std::string> publishedDigests() const;
  // Every image the sites keep, each once (in use wins): what garbage collection keeps, and
  // what eviction may take (those not in use).
  std::vector<HeldImage> heldImages() const;
  // `pullagent rollback SITE`: the site's previous unit published again, if it is still on the
  // host; the unit it leaves becomes the previous one. At once, or, with rollback_verifies,
  // once an attempt has had the signature policies accept it again (the answer goes to
  // `broker` then; nullopt here).
  std::optional<SiteRefresh> rollback(const std::string& name, RefreshBroker* broker = nullptr,
                                      uint64_t id = 0);
  // Eviction made room: sites waiting for space are tried again now.
  void spaceMade();
  // True once after something became collectable (a replaced image, a removed site).
  bool takeCollectable();
  // True once after a site published an image (whose layer blobs may then be discarded).
  bool takePublished();

 private:
  struct Attempt;
  struct Site;
  // The rollback's unit made to stand as published (a second rollback goes forward again).
  SiteRefresh applyRollback(const std::string& name, Site& site, std::vector<PublishedImage> unit);
  // A rollback attempt ended: applied when the policies accepted the unit, else the site stays.
  void finishRollback(const std::string& name, Site& site, Attempt& attempt);
  struct Site {
    SiteState state;
    SiteFile file;
    bool removed = false;
    // Since when the site file is missing from healthy scans; removed after the grace period.
    std::optional<std::chrono::steady_clock::time_point> absent_since;
    std::string failed_sha256;  // the config the last failure was for
    // A refresh is due (asked for, or a failed one to retry with backoff), and who waits for it.
    bool refresh_due = false;
    // Its published image needs the registry once at this process's start, at the digests it
    // was published at (SiteAttemptRunner::needsCheckAtStart, AttemptPlan::hold); a refresh
    // due as well goes first and does it too.
    bool start_check_due = false;
    // When a site with continuous deployment next checks its tag (unset: not polled).
    std::optional<std::chrono::steady_clock::time_point> next_poll;
    std::vector<std::pair<uint64_t, RefreshBroker*>> refresh_waiting;
    // A rolled-back unit to be decided again (the signature policy changed): an attempt takes
    // it by digest (AttemptPlan::rollback_to), and a refusal is recorded; its tag is not
    // followed.
    bool verify_due = false;
    std::chrono::steady_clock::time_point next_attempt{};
    // Its last attempt fits once eviction makes room: tried again when spaceMade() says so.
    bool waiting_for_space = false;
    std::unique_ptr<Attempt> attempt;
  };

  bool wanted(const Site& site) const;
  // The directory of an image published in the state dir, found by its digest (never by a
  // path a state file holds); empty when it is not there (evicted, never published).
  std::filesystem::path imageOnHost(const PublishedImage& image) const;
  bool publishedOnHost(const Site& site) const;
  // The phase of a site with nothing to do: published, or stopped.
  static SitePhase restingPhase(const Site& site) {
    return site.file.stopped ? SitePhase::kStopped : SitePhase::kPublished;
  }
  // Schedules the next tag check of a site with continuous deployment, from now.
  void schedulePoll(Site& site);
  // Sites whose poll is due get a refresh; returns when the next poll is due.
  std::optional<std::chrono::steady_clock::time_point> duePolls();
  // Refreshes still waiting on a site that goes away are answered as failed.
  void answerRemoved(const std::string& name, Site& site);
  void removeAbsentSites(std::optional<std::chrono::steady_clock::time_point>& next);
  // `rollback_to`: a rollback's attempt (AttemptPlan::rollback_to), not a pull of the config's
  // images.
  void start(const std::string& name, Site& site, std::vector<PublishedImage> rollback_to = {});
  void finish(const std::string& name, Site& site);
  // Records the unit a publish replaced among the site's previous ones (keep_previous of them).
  void keepPrevious(Site& site, const std::vector<PublishedImage>& replaced,
                    const std::set<std::string>& now_published);
  void save(Site& site);

  SiteAttemptRunner& runner_;
  const Clock& clock_;
  Random& random_;
  const SiteStateStore& store_;
  Metrics& metrics_;
  std::function<void()> wake_;
  ReconcilerOptions options_;
  SiteWebhookKeys* webhook_keys_ = nullptr;
  std::map<std::string, Site> sites_;
  std::string sites_dir_error_;
  bool loaded_ = false;
  bool recheck_on_load_ = false;  // recheckPublished() came before the states were read
  // Counts recheckPublished(): a rollback decided under an earlier policy does not land.
  uint64_t policy_generation_ = 0;
  bool collectable_ = false;
  bool published_ = false;
  bool stopping_ = false;
  bool hold_starts_ = false;
};

}  // namespace pullagent::agent
