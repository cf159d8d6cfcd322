#include "agent/daemon/reconciler.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <set>

#include "agent/site/disk_admission.h"
#include "puller/reference/reference.h"
#include "puller/state/published_image.h"
#include "puller/state/state_dir.h"

namespace pullagent::agent {
namespace {

std::vector<PublishedImage> unitOf(const SiteAttemptResult& result) {
  std::vector<PublishedImage> unit;
  if (result.published)
    unit.push_back(*result.published);
  unit.insert(unit.end(), result.sidecars.begin(), result.sidecars.end());
  return unit;
}

std::set<std::string> digestsOf(const std::vector<PublishedImage>& unit) {
  std::set<std::string> digests;
  for (const auto& image : unit)
    digests.insert(image.digest);
  return digests;
}

}  // namespace

struct Reconciler::Attempt {
  SiteActivity activity;
  std::stop_source stop;
  std::atomic<bool> done{false};
  SiteAttemptResult result;
  std::chrono::steady_clock::time_point started;
  // The last time the attempt was seen doing work, and its progress then.
  std::chrono::steady_clock::time_point last_work;
  int64_t work_bytes = 0;
  // A refresh: the published unit whose tags are checked (empty: not a refresh), and the main
  // image's digest then (what "updated from" names).
  std::vector<PublishedImage> refresh_of;
  bool hold = false;  // refresh_of at its digests: a check at start (AttemptPlan::hold)
  // It took the site's check at start (hold or not): a failure or cancel owes it again, since
  // it may have ended before lending the route.
  bool start_check = false;
  // A rollback awaiting the policies' verdict (empty: not one): the unit it goes back to; or,
  // with `recheck`, the rolled-back unit published now, decided again under a new policy.
  std::vector<PublishedImage> rollback_to;
  bool recheck = false;
  uint64_t policy_generation = 0;  // Reconciler::policy_generation_ when it started
  std::string from;
  std::vector<std::pair<uint64_t, RefreshBroker*>> waiting;
  std::jthread thread;  // declared last: joined before the rest is destroyed
};

Reconciler::Reconciler(SiteAttemptRunner& runner, const Clock& clock, Random& random,
                       const SiteStateStore& store, Metrics& metrics, std::function<void()> wake,
                       ReconcilerOptions options)
    : runner_(runner),
      clock_(clock),
      random_(random),
      store_(store),
      metrics_(metrics),
      wake_(std::move(wake)),
      options_(options) {}

Reconciler::~Reconciler() {
  stopAll();
  // Refreshes still queued on a site are answered: nobody waits for ever, and their requests
  // free their share of the broker.
  for (auto& [name, site] : sites_) {
    for (const auto& [id, broker] : std::exchange(site.refresh_waiting, {}))
      broker->record(id, {name, RefreshOutcome::kFailed, {}, {}, "the service was reconfigured"});
  }
}

void Reconciler::save(Site& site) {
  site.state.updated_at = clock_.wallNow();
  if (auto status = store_.write(site.state); !status)
    spdlog::warn("cannot record the state of site {}: {}", site.state.site,
                 status.error().describe());
}

void Reconciler::schedulePoll(Site& site) {
  const bool pinned = pinnedByDigest(site.state);
  if (!site.state.continuous_deployment || pinned || !site.state.published ||
      site.state.rolled_back) {
    site.next_poll.reset();
    return;
  }
  const double jitter = 0.8 + 0.4 * std::clamp(random_.uniform(), 0.0, 1.0);
  site.next_poll = clock_.now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                      options_.tag_poll_interval * jitter);
}

std::optional<std::chrono::steady_clock::time_point> Reconciler::duePolls() {
  std::optional<std::chrono::steady_clock::time_point> next;
  const auto now = clock_.now();
  for (auto& [name, site] : sites_) {
    if (!site.next_poll || site.attempt || site.removed || site.refresh_due || site.file.stopped)
      continue;
    if (*site.next_poll > now) {
      next = next ? std::min(*next, *site.next_poll) : *site.next_poll;
      continue;
    }
    site.next_poll.reset();  // set again when the check ends
    site.refresh_due = true;
    site.next_attempt = now;
  }
  return next;
}

void Reconciler::recheckPublished() {
  if (!loaded_) {
    recheck_on_load_ = true;  // the states are read at the first update
    return;
  }
  const auto now = clock_.now();
  ++policy_generation_;
  for (auto& [name, site] : sites_) {
    // A rolled-back site does not follow its tag: its unit is decided again by digest.
    if (site.state.rolled_back && options_.rollback_verifies && !site.removed &&
        !site.file.stopped && site.state.published) {
      site.verify_due = true;
      site.next_attempt = now;
      continue;
    }
    // A running attempt may have taken its verdict under the old policy: it is checked again
    // once it ends.
    if (site.removed || site.file.stopped || site.state.rolled_back ||
        (!site.state.published && !site.attempt)) {
      continue;
    }
    site.next_poll.reset();  // set again when the check ends
    site.refresh_due = true;
    site.next_attempt = now;
  }
}

void Reconciler::answerRemoved(const std::string& name, Site& site) {
  for (const auto& [id, broker] : std::exchange(site.refresh_waiting, {}))
    broker->record(id, {name, RefreshOutcome::kFailed, {}, {}, "the site was removed"});
}

bool Reconciler::wanted(const Site& site) const {
  return !site.removed && !site.file.stopped &&
         (!site.state.published || site.state.published->config_sha256 != site.file.sha256 ||
          site.refresh_due || site.start_check_due || site.verify_due);
}

void Reconciler::update(const std::map<std::string, SiteFile>& files) {
  if (!loaded_) {
    // What the previous run knew: published images stay published (and kept by gc) across
    // restarts, and a site whose config did not change is not pulled again.
    for (auto& state : store_.readAll()) {
      Site site;
      site.state = std::move(state);
      site.file.sha256 = site.state.config_sha256;
      schedulePoll(site);
      const bool pinned = pinnedByDigest(site.state);
      // The published image serves while the tag is checked.
      if (options_.refresh_on_start && site.state.published && !pinned && !site.state.rolled_back)
        site.refresh_due = true;
      else if (site.state.published && !site.state.rolled_back &&
               runner_.needsCheckAtStart(site.state))
        site.start_check_due = true;
      sites_.emplace(site.state.site, std::move(site));
    }
    loaded_ = true;
    if (std::exchange(recheck_on_load_, false))
      recheckPublished();
  }
  const auto now = clock_.now();
  for (const auto& [name, file] : files) {
    auto [it, added] = sites_.try_emplace(name);
    Site& site = it->second;
    const bool changed = added || site.file.sha256 != file.sha256 || site.removed;
    // Started again: stopped when last seen, or (a state the previous run wrote) recorded so.
    const bool starts =
        !added && !file.stopped && (site.file.stopped || site.state.phase == SitePhase::kStopped);
    site.removed = false;
    site.file = file;
    site.state.site = name;
    site.state.config_file = file.path.string();
    if (!changed) {
      // A state left as "pulling" by a process that died after publishing says so no longer.
      if (!site.attempt && !wanted(site) && site.state.phase != restingPhase(site)) {
        site.state.phase = restingPhase(site);
        save(site);
      }
      continue;
    }
    site.state.config_sha256 = file.sha256;
    if (!added)
      site.state.rolled_back = false;  // a new config is followed again
    if (file.stopped) {
      // A stopped site costs nothing: no pull, no tag check; its image stays published.
      spdlog::info("site {}: stopped{}", name, site.attempt ? "; cancelling its pull" : "");
      if (site.attempt)
        site.attempt->stop.request_stop();
      site.next_poll.reset();
      site.refresh_due = false;
      for (const auto& [id, broker] : std::exchange(site.refresh_waiting, {})) {
        broker->record(id, {name, RefreshOutcome::kStopped, "", "", {}});
      }
      site.state.phase = SitePhase::kStopped;
      site.state.next_attempt_at.reset();
      save(site);
      continue;
    }
    if (starts && site.state.published) {
      // Started again: its tag is checked, as App Service pulls when it starts a container;
      // an image eviction took while it was stopped is pulled again, even by digest.
      if (!publishedOnHost(site))
        site.state.published->config_sha256.clear();
      else if (!pinnedByDigest(site.state))
        site.refresh_due = true;
    }
    if (site.attempt) {
      spdlog::info("site {}: config changed during a pull; starting over with the new one", name);
      site.attempt->stop.request_stop();
    } else if (wanted(site)) {
      spdlog::info("site {}: {}", name, added ? "new site" : "config changed");
      site.next_attempt = now;  // a fixed config is tried at once, whatever the backoff was
      site.state.attempts = 0;
      site.state.next_attempt_at.reset();
      site.state.phase = SitePhase::kPending;
      save(site);
    } else if (site.state.phase != restingPhase(site)) {
      site.state.phase = restingPhase(site);
      save(site);
    }
  }
  for (auto& [name, site] : sites_) {
    if (files.count(name) != 0) {
      site.absent_since.reset();
    } else if (!site.removed && !site.absent_since) {
      spdlog::info("site {}: its file is gone; removing it in {} s unless it comes back", name,
                   options_.removal_grace.count());
      site.absent_since = now;
    }
  }
  metrics_.setSites(static_cast<int>(files.size()));
}

void Reconciler::start(const std::string& name, Site& site,
                       std::vector<PublishedImage> rollback_to) {
  site.attempt = std::make_unique<Attempt>();
  Attempt& attempt = *site.attempt;
  attempt.started = clock_.now();
  attempt.last_work = attempt.started;
  if (site.state.published)
    attempt.from = site.state.published->digest;
  attempt.policy_generation = policy_generation_;
  if (!rollback_to.empty()) {
    // A refresh asked for meanwhile stays due, and its askers wait for it: the rollback ends
    // it when it lands (applyRollback), else the refresh follows.
    attempt.rollback_to = std::move(rollback_to);
  } else {
    // Only the tag can have moved: the config is the one the published image was pulled for.
    if (site.state.published && (site.refresh_due || site.start_check_due) &&
        site.state.published->config_sha256 == site.file.sha256) {
      attempt.refresh_of = publishedUnit(site.state);
      attempt.hold = !site.refresh_due;
    }
    attempt.start_check = site.start_check_due;
    site.refresh_due = false;
    site.start_check_due = false;
    attempt.waiting = std::exchange(site.refresh_waiting, {});
  }
  site.waiting_for_space = false;
  site.state.phase = SitePhase::kPulling;
  site.state.progress = {};
  site.state.last_attempt_at = clock_.wallNow();
  site.state.next_attempt_at.reset();
  save(site);
  attempt.thread = std::jthread([this, name, path = site.file.path, &attempt] {
    // Crash isolation at the site boundary: whatever one site's attempt throws (a bug, an
    // allocation failure on a hostile document) fails that attempt, never the daemon.
    try {
      attempt.result =
          runner_.run(name, path, attempt.activity, attempt.stop.get_token(),
                      AttemptPlan{attempt.refresh_of, attempt.rollback_to, attempt.hold});
    } catch (const std::exception& e) {
      attempt.result = SiteAttemptResult{};
      attempt.result.kind = SiteAttemptResult::Kind::kFailed;
      attempt.result.error =
          SiteError{"internal", std::string("unexpected failure: ") + e.what(), clock_.wallNow()};
    } catch (...) {
      attempt.result = SiteAttemptResult{};
      attempt.result.kind = SiteAttemptResult::Kind::kFailed;
      attempt.result.error = SiteError{"internal", "unexpected failure", clock_.wallNow()};
    }
    attempt.done = true;
    wake_();
  });
  metrics_.setPullsInFlight(running());
}

void Reconciler::finish(const std::string& name, Site& site) {
  std::unique_ptr<Attempt> attempt = std::move(site.attempt);
  attempt->thread.join();
  if (!attempt->rollback_to.empty()) {
    metrics_.setPullsInFlight(running());  // before the rollback is answered
    finishRollback(name, site, *attempt);
    return;
  }
  SiteAttemptResult& result = attempt->result;
  const double seconds = std::chrono::duration<double>(clock_.now() - attempt->started).count();
  if (!result.image.empty())
    site.state.image = result.image;
  site.state.progress = attempt->activity.progress();
  site.state.containers = attempt->activity.containers();
  const auto now = clock_.now();
  const bool was_refresh = !attempt->refresh_of.empty();
  if (!result.config_sha256.empty()) {
    site.state.continuous_deployment = result.continuous_deployment;
    if (webhook_keys_ != nullptr && !site.removed)
      webhook_keys_->set(name, result.webhook_key);
  }
  SiteRefresh answer{name, RefreshOutcome::kFailed, attempt->from, {}, {}};
  switch (result.kind) {
    case SiteAttemptResult::Kind::kUnchanged: {
      site.state.rolled_back = false;  // a refresh was asked for: the tag is followed again
      site.state.last_checked_at = clock_.wallNow();
      site.state.attempts = 0;
      site.state.last_error.reset();
      site.failed_sha256.clear();
      site.state.phase = wanted(site) ? SitePhase::kPending : SitePhase::kPublished;
      site.next_attempt = now;
      answer.outcome = RefreshOutcome::kUnchanged;
      spdlog::info("site {}: {} has not moved", name, site.state.image);
      break;
    }
    case SiteAttemptResult::Kind::kPublished: {
      metrics_.pullFinished("success", seconds);
      published_ = true;
      const auto before = digestsOf(publishedUnit(site.state));
      const auto after = digestsOf(unitOf(result));
      if (!std::includes(after.begin(), after.end(), before.begin(), before.end()))
        collectable_ = true;  // an image it replaced
      keepPrevious(site, publishedUnit(site.state), after);
      site.state.rolled_back = false;
      site.state.published = result.published;
      site.state.sidecars = result.sidecars;
      site.state.last_checked_at = clock_.wallNow();
      answer.to = result.published ? result.published->digest : "";
      answer.outcome =
          answer.to == attempt->from ? RefreshOutcome::kUnchanged : RefreshOutcome::kUpdated;
      site.state.attempts = 0;
      site.state.last_error.reset();
      site.failed_sha256.clear();
      site.state.phase = wanted(site) ? SitePhase::kPending : SitePhase::kPublished;
      site.next_attempt = now;
      break;
    }
    case SiteAttemptResult::Kind::kFailed: {
      metrics_.pullFinished("failure", seconds);
      site.state.last_error = result.error;
      const bool waits = result.error && result.error->phase == kDiskPhase &&
                         result.error->message.find(kWaitingForSpace) != std::string::npos;
      answer.error = result.error ? result.error->phase + ": " + result.error->message : "failed";
      // A failed refresh is tried again with the usual backoff; the published image stays.
      site.refresh_due = site.refresh_due || (was_refresh && !attempt->hold);
      site.start_check_due = site.start_check_due || attempt->start_check;
      if (result.config_sha256 != site.file.sha256 && !result.config_sha256.empty()) {
        // The config changed while this attempt ran: the new one deserves a try now.
        site.state.phase = SitePhase::kPending;
        site.next_attempt = now;
        break;
      }
      ++site.state.attempts;
      const int doublings = std::min(site.state.attempts - 1, 20);
      const auto ceiling = std::min<std::chrono::seconds>(
          options_.initial_backoff * (int64_t{1} << doublings), options_.max_backoff);
      const auto backoff = std::chrono::duration_cast<std::chrono::seconds>(
          ceiling * (0.5 + 0.5 * std::clamp(random_.uniform(), 0.0, 1.0)));
      site.failed_sha256 = site.file.sha256;
      site.next_attempt = now + backoff;
      site.state.next_attempt_at = clock_.wallNow() + backoff;
      if (waits) {
        // It fits once eviction makes room: tried again as soon as that is done when this is
        // its first trouble (spaceMade), else after the backoff: a site whose pulls keep
        // asking for room (a manifest claiming sizes it never serves) cannot have the host
        // evict other sites' kept images for it faster than any failing pull is retried.
        site.waiting_for_space = true;
        site.state.phase = SitePhase::kPending;
        spdlog::info("site {}: {}", name, result.error->message);
        break;
      }
      site.state.phase = SitePhase::kFailed;
      metrics_.retryScheduled();
      spdlog::warn(
          "Pull image failed for site {} ({} phase): {}; retrying in {} s (attempt {}); "
          "`pullagent diagnose {}` checks every step of its route",
          name, result.error ? result.error->phase : "?",
          result.error ? result.error->message : "unknown error", backoff.count(),
          site.state.attempts, name);
      break;
    }
    case SiteAttemptResult::Kind::kCancelled:
      metrics_.pullFinished("cancelled", seconds);
      site.state.phase = stopping_ ? SitePhase::kInterrupted : SitePhase::kPending;
      site.next_attempt = now;
      site.refresh_due = site.refresh_due || (was_refresh && !attempt->hold);
      site.start_check_due = site.start_check_due || attempt->start_check;
      answer.error = stopping_ ? "the service is stopping" : "cancelled: the site changed";
      break;
  }
  if (was_refresh && !attempt->hold && result.kind != SiteAttemptResult::Kind::kCancelled)
    metrics_.tagChecked(std::string(toString(answer.outcome)));
  if (!stopping_ && !site.refresh_due)
    schedulePoll(site);
  if (site.file.stopped && !site.removed)
    site.state.phase = SitePhase::kStopped;  // stopped during the attempt: nothing follows
  if (site.removed)
    collectable_ = collectable_ || site.state.published.has_value();
  else
    save(site);
  metrics_.setPullsInFlight(running());
  // Answered last: a caller told its refresh is done finds the site's state and the metrics
  // saying so (the answer is read on the control server's thread).
  for (const auto& [id, broker] : attempt->waiting)
    broker->record(id, answer);
}

std::filesystem::path Reconciler::imageOnHost(const PublishedImage& image) const {
  auto digest = puller::Digest::parse(image.digest);
  if (!digest)
    return {};
  if (!puller::isPublished(store_.stateDir(), *digest))
    return {};
  return store_.stateDir().image(*digest);
}

bool Reconciler::publishedOnHost(const Site& site) const {
  const auto unit = publishedUnit(site.state);
  return std::all_of(unit.begin(), unit.end(),
                     [&](const PublishedImage& image) { return !imageOnHost(image).empty(); });
}

std::optional<SiteRefresh> Reconciler::rollback(const std::string& name, RefreshBroker* broker,
                                                uint64_t id) {
  SiteRefresh answer{name, RefreshOutcome::kFailed, {}, {}, {}};
  auto found = sites_.find(name);
  if (found == sites_.end() || found->second.removed) {
    answer.outcome = RefreshOutcome::kUnknown;
    return answer;
  }
  Site& site = found->second;
  answer.from = site.state.published ? site.state.published->digest : "";
  if (site.attempt) {
    answer.error = "the site is pulling; roll back once the pull has ended";
    return answer;
  }
  if (site.state.previous.empty()) {
    answer.error =
        "the site keeps no previous image (keepPreviousImages, or it was published "
        "once only)";
    return answer;
  }
  std::vector<PublishedImage> unit = site.state.previous.front();
  for (auto& image : unit) {
    // The image is found by its digest in this state dir, never by a path the state file
    // holds; eviction may have taken it: then only a pull brings it back.
    const auto dir = imageOnHost(image);
    if (dir.empty()) {
      answer.error = "its previous image " + image.digest +
                     " is no longer on the host (evicted for space); change the site's image "
                     "back to pull it again";
      return answer;
    }
    image.path = dir.string();
  }
  if (!options_.rollback_verifies)
    return applyRollback(name, site, std::move(unit));
  // Under a signature policy: the verdict first, then the same swap (finishRollback). The
  // attempt takes no pull slot's place in line: root asked for it now.
  spdlog::info("site {}: rolling back to {} once the signature policies accept it again", name,
               unit.front().digest);
  start(name, site, std::move(unit));
  // Read by the loop only (finishRollback), never by the attempt's thread.
  if (broker != nullptr)
    site.attempt->waiting.emplace_back(id, broker);
  return std::nullopt;
}

SiteRefresh Reconciler::applyRollback(const std::string& name, Site& site,
                                      std::vector<PublishedImage> unit) {
  SiteRefresh answer{name, RefreshOutcome::kFailed, {}, {}, {}};
  answer.from = site.state.published ? site.state.published->digest : "";
  // The unit it leaves becomes the previous one: a second rollback goes forward again.
  auto current = publishedUnit(site.state);
  site.state.previous.erase(site.state.previous.begin());
  if (!current.empty())
    site.state.previous.insert(site.state.previous.begin(), current);
  // It satisfies the config as it reads now: no pull until the config changes.
  for (auto& image : unit)
    image.config_sha256 = site.file.sha256;
  site.state.published = unit.front();
  site.state.sidecars.assign(unit.begin() + 1, unit.end());
  site.state.rolled_back = true;
  site.state.last_error.reset();
  site.state.attempts = 0;
  site.refresh_due = false;
  site.start_check_due = false;  // a rolled-back unit is not checked at start
  for (const auto& [id, broker] : std::exchange(site.refresh_waiting, {})) {
    broker->record(id, {name, RefreshOutcome::kFailed, answer.from, "",
                        "the site was rolled back before its tag was checked"});
  }
  site.next_poll.reset();
  site.state.phase = restingPhase(site);
  save(site);
  published_ = true;
  answer.outcome = RefreshOutcome::kUpdated;
  answer.to = unit.front().digest;
  spdlog::info("site {}: rolled back from {} to {}", name, answer.from, answer.to);
  return answer;
}

void Reconciler::finishRollback(const std::string& name, Site& site, Attempt& attempt) {
  SiteAttemptResult& result = attempt.result;
  SiteRefresh answer{name, RefreshOutcome::kFailed, attempt.from, {}, {}};
  const bool accepted = result.kind == SiteAttemptResult::Kind::kPublished &&
                        digestsOf(unitOf(result)) == digestsOf(attempt.rollback_to);
  // What the verdict was taken for still holds: the config it read (a change or a stop
  // meanwhile stopped it), the policy it was taken under, and (a rollback) the previous unit.
  const bool current =
      !site.removed && !attempt.stop.stop_requested() &&
      (result.config_sha256 == site.file.sha256 ||
       (result.config_sha256.empty() && result.kind != SiteAttemptResult::Kind::kPublished)) &&
      attempt.policy_generation == policy_generation_;
  if (attempt.recheck) {
    if (current && accepted) {
      site.state.last_error.reset();
      site.state.phase = restingPhase(site);
    } else if (current && result.kind == SiteAttemptResult::Kind::kFailed) {
      // Refused by the new policy (or the registry could not say): said in the site's state,
      // the image stays, as for a site that follows its tag.
      site.state.last_error = result.error;
      site.state.phase = SitePhase::kFailed;
      spdlog::warn(
          "site {}: its rolled-back image {} is not accepted by the signature policy "
          "now: {}",
          name, attempt.from, result.error ? result.error->message : "failed");
    } else {
      site.state.phase = restingPhase(site);
    }
  } else if (current && accepted && !site.state.previous.empty() &&
             digestsOf(site.state.previous.front()) == digestsOf(attempt.rollback_to)) {
    answer = applyRollback(name, site, attempt.rollback_to);
  } else {
    // Refused, out of date, or the registry could not say: the site stays on its image, and no
    // retry follows (the rollback was asked for once).
    if (stopping_)
      answer.error = "the service is stopping";
    else if (!current)
      answer.error =
          "cancelled: the site's config or the signature policy changed while the previous "
          "image was decided; ask again";
    else if (result.kind == SiteAttemptResult::Kind::kCancelled)
      answer.error = "cancelled: the site changed";
    else if (result.error)
      answer.error = "its previous image was not published again: " + result.error->phase + ": " +
                     result.error->message;
    else
      answer.error = "its previous image was not published again";
    spdlog::warn("site {}: rollback to {} refused: {}", name, attempt.rollback_to.front().digest,
                 answer.error);
    // A config changed meanwhile is pulled now.
    site.next_attempt = clock_.now();
    site.state.phase = wanted(site) ? SitePhase::kPending : restingPhase(site);
  }
  if (!stopping_)
    schedulePoll(site);
  if (site.file.stopped && !site.removed)
    site.state.phase = SitePhase::kStopped;
  if (site.removed)
    collectable_ = collectable_ || site.state.published.has_value();
  else
    save(site);
  for (const auto& [id, broker] : attempt.waiting)
    broker->record(id, answer);
}

void Reconciler::spaceMade() {
  const auto now = clock_.now();
  for (auto& [name, site] : sites_) {
    if (std::exchange(site.waiting_for_space, false) && !site.attempt && site.state.attempts <= 1) {
      site.next_attempt = now;
    }
  }
}

void Reconciler::keepPrevious(Site& site, const std::vector<PublishedImage>& replaced,
                              const std::set<std::string>& now_published) {
  std::vector<std::vector<PublishedImage>> previous;
  if (!replaced.empty() && digestsOf(replaced) != now_published)
    previous.push_back(replaced);
  for (const auto& unit : site.state.previous) {
    // A unit published again is current, not previous.
    if (digestsOf(unit) != now_published && digestsOf(unit) != digestsOf(replaced))
      previous.push_back(unit);
  }
  const auto keep = static_cast<size_t>(std::max(options_.keep_previous, 0));
  if (previous.size() > keep) {
    previous.resize(keep);
    collectable_ = true;
  }
  site.state.previous = std::move(previous);
}

void Reconciler::removeAbsentSites(std::optional<std::chrono::steady_clock::time_point>& next) {
  const auto now = clock_.now();
  for (auto it = sites_.begin(); it != sites_.end();) {
    Site& site = it->second;
    if (site.removed || !site.absent_since) {
      ++it;
      continue;
    }
    const auto due = *site.absent_since + options_.removal_grace;
    if (due > now) {
      next = next ? std::min(*next, due) : due;
      ++it;
      continue;
    }
    spdlog::info("site {}: removed; its image becomes collectable", it->first);
    if (webhook_keys_ != nullptr)
      webhook_keys_->erase(it->first);
    site.removed = true;
    if (site.attempt) {
      site.attempt->stop.request_stop();
      ++it;
      continue;
    }
    if (auto status = store_.remove(it->first); !status)
      spdlog::warn("site {}: {}", it->first, status.error().describe());
    collectable_ = collectable_ || site.state.published.has_value();
    answerRemoved(it->first, site);
    it = sites_.erase(it);
  }
}

std::optional<std::chrono::steady_clock::time_point> Reconciler::step() {
  std::optional<std::chrono::steady_clock::time_point> next;
  removeAbsentSites(next);
  for (auto it = sites_.begin(); it != sites_.end();) {
    Site& site = it->second;
    if (site.attempt && site.attempt->done)
      finish(it->first, site);
    if (site.removed && !site.attempt) {
      if (auto status = store_.remove(it->first); !status)
        spdlog::warn("site {}: {}", it->first, status.error().describe());
      answerRemoved(it->first, site);
      it = sites_.erase(it);
    } else {
      ++it;
    }
  }
  if (stopping_)
    return std::nullopt;
  if (auto poll = duePolls())
    next = next ? std::min(*next, *poll) : *poll;
  const auto now = clock_.now();
  auto wakeAt = [&next](std::chrono::steady_clock::time_point at) {
    next = next ? std::min(*next, at) : at;
  };
  // Attempts within their slot time that keep working hold a slot; the rest run on beside the
  // new ones. Work is sampled here: the loop comes back at least every slot_idle while sites
  // wait (below), so an attempt that works between two samples is seen doing so.
  for (auto& [name, site] : sites_) {
    if (!site.attempt)
      continue;
    Attempt& attempt = *site.attempt;
    const SiteProgress progress = attempt.activity.progress();
    // Bytes received only: layers done are no measure (an image of many tiny layers, released
    // one at a time, would keep its slot on nothing).
    if (progress.bytes_done >= attempt.work_bytes + kSlotWorkBytes) {
      attempt.work_bytes = progress.bytes_done;
      attempt.last_work = now;
    }
  }
  auto slotEnds = [&](const Site& site) {
    return std::min(site.attempt->started + options_.slot,
                    site.attempt->last_work + options_.slot_idle);
  };
  auto holdsSlot = [&](const Site& site) { return site.attempt && slotEnds(site) > now; };
  const auto holding = static_cast<int>(std::count_if(
      sites_.begin(), sites_.end(), [&](const auto& entry) { return holdsSlot(entry.second); }));
  int slots = hold_starts_
                  ? 0
                  : std::min(options_.max_concurrent - holding, options_.max_running - running());
  bool waiting = false;
  for (auto& [name, site] : sites_) {
    if (site.attempt || !wanted(site) || site.absent_since)
      continue;
    if (site.next_attempt > now) {
      wakeAt(site.next_attempt);
      continue;
    }
    if (slots <= 0) {
      waiting = true;  // pending until a slot frees: an attempt ends or outlives its slot
      continue;
    }
    --slots;
    if (site.verify_due && site.state.rolled_back && !site.refresh_due &&
        site.state.published->config_sha256 == site.file.sha256) {
      start(name, site, publishedUnit(site.state));
      site.attempt->recheck = true;  // read by the loop only (finishRollback)
    } else {
      start(name, site);
    }
    site.verify_due = false;
  }
  if (waiting) {  // come back when the first slot's time is up, or its holder may be idle
    for (const auto& [name, site] : sites_) {
      if (holdsSlot(site))
        wakeAt(slotEnds(site));
    }
  }
  return next;
}

void Reconciler::refresh(const RefreshBroker::Request& request, RefreshBroker& broker) {
  std::vector<std::string> names = request.sites;
  if (request.push) {
    // A registry's push reaches the sites that follow that image and tag (App Service: only
    // those with continuous deployment on).
    // For a site with sidecars, a push to any of its containers' tags.
    auto follows = [&](const std::string& image) {
      auto ref = puller::ImageRef::parse(image);
      return ref && ref->tag && !ref->digest && ref->domain == request.push->host &&
             ref->repository == request.push->repository && *ref->tag == request.push->tag;
    };
    for (const auto& [name, site] : sites_) {
      const auto images = siteImages(site.state);
      if (!site.removed && !site.file.stopped && !site.state.rolled_back &&
          site.state.continuous_deployment && std::any_of(images.begin(), images.end(), follows)) {
        names.push_back(name);
      }
    }
  } else if (names.empty()) {
    for (const auto& [name, site] : sites_) {
      if (!site.removed)
        names.push_back(name);
    }
  }
  broker.begin(request.id, names);
  if (request.rollback) {
    for (const auto& name : names) {
      if (auto answer = rollback(name, &broker, request.id))
        broker.record(request.id, *answer);
    }
    return;
  }
  const auto now = clock_.now();
  for (const auto& name : names) {
    auto found = sites_.find(name);
    if (found == sites_.end() || found->second.removed) {
      broker.record(request.id, {name, RefreshOutcome::kUnknown, {}, {}, {}});
      continue;
    }
    Site& site = found->second;
    const std::string from = site.state.published ? site.state.published->digest : "";
    if (site.file.stopped) {
      broker.record(request.id, {name, RefreshOutcome::kStopped, from, from, {}});
      continue;
    }
    // A digest names one image for ever: nothing to re-resolve.
    if (pinnedByDigest(site.state)) {
      broker.record(request.id, {name, RefreshOutcome::kPinned, from, from, {}});
      continue;
    }
    spdlog::info("site {}: refresh asked for", name);
    site.refresh_due = true;
    if (request.awaited)  // a push's sender does not read outcomes back
      site.refresh_waiting.emplace_back(request.id, &broker);
    if (!site.attempt)
      site.next_attempt = now;  // asked for now: the backoff of an earlier failure is waived
  }
}

void Reconciler::refreshProgress() {
  for (auto& [name, site] : sites_) {
    if (!site.attempt || site.removed)
      continue;
    const SiteProgress progress = site.attempt->activity.progress();
    const std::string image = site.attempt->activity.image();
    auto containers = site.attempt->activity.containers();
    if (progress == site.state.progress && containers == site.state.containers &&
        (image.empty() || image == site.state.image))
      continue;
    site.state.progress = progress;
    site.state.containers = std::move(containers);
    if (!image.empty())
      site.state.image = image;
    save(site);
  }
}

void Reconciler::stopAll() {
  stopping_ = true;
  for (auto& [name, site] : sites_) {
    if (site.attempt)
      site.attempt->stop.request_stop();
  }
  for (auto& [name, site] : sites_) {
    if (site.attempt)
      finish(name, site);
  }
}

int Reconciler::running() const {
  return static_cast<int>(std::count_if(sites_.begin(), sites_.end(), [](const auto& entry) {
    return entry.second.attempt != nullptr;
  }));
}

bool Reconciler::sitesBusy() const {
  const auto now = clock_.now();
  return std::any_of(sites_.begin(), sites_.end(), [&](const auto& entry) {
    const Site& site = entry.second;
    // A site waiting for space counts too: a warm pull must not take the room it waits for.
    return site.attempt != nullptr || (wanted(site) && site.waiting_for_space) ||
           (wanted(site) && !site.absent_since && site.next_attempt <= now);
  });
}

std::string Reconciler::statusLine() const {
  std::string line;
  int published = 0, failing = 0, stopped = 0, waiting_for_space = 0;
  for (const auto& [name, site] : sites_) {
    if (site.attempt) {
      const SiteProgress p = site.attempt->activity.progress();
      line += (line.empty() ? "pulling " : "; ") + name + ": " + std::to_string(p.layers_done) +
              "/" + std::to_string(p.layers_total) + " layers, " +
              std::to_string(p.bytes_done / 1000000) + "/" +
              std::to_string(p.bytes_total / 1000000) + " MB";
    } else if (site.state.phase == SitePhase::kPublished) {
      ++published;
    } else if (site.state.phase == SitePhase::kFailed) {
      ++failing;
    } else if (site.state.phase == SitePhase::kStopped) {
      ++stopped;
    }
    if (site.waiting_for_space && !site.attempt)
      ++waiting_for_space;
  }
  if (!sites_dir_error_.empty())
    line = "sites directory unreadable (sites kept as last seen): " + sites_dir_error_ +
           (line.empty() ? "" : "; " + line);
  if (!line.empty())
    return line;
  return "idle: " + std::to_string(sites_.size()) + " sites, " + std::to_string(published) +
         " published, " + std::to_string(failing) + " failing" +
         (stopped > 0 ? ", " + std::to_string(stopped) + " stopped" : "") +
         (waiting_for_space > 0 ? ", " + std::to_string(waiting_for_space) + " waiting for space"
                                : "");
}

std::set<std::string> Reconciler::publishedDigests() const {
  std::set<std::string> digests;
  for (const auto& [name, site] : sites_) {
    if (site.removed)
      continue;
    for (const auto& image : publishedUnit(site.state))
      digests.insert(image.digest);
  }
  return digests;
}

std::vector<HeldImage> Reconciler::heldImages() const {
  std::map<std::string, HeldImage> held;
  auto hold = [&](const std::string& digest, bool in_use, std::string held_as) {
    auto [it, added] = held.try_emplace(digest, HeldImage{digest, in_use, held_as});
    if (!added && in_use && !it->second.in_use)
      it->second = HeldImage{digest, in_use, std::move(held_as)};
  };
  for (const auto& [name, site] : sites_) {
    if (site.removed)
      continue;
    const bool running = !site.file.stopped;
    for (const auto& image : publishedUnit(site.state))
      hold(image.digest, running, (running ? "site " : "stopped site ") + name);
    for (const auto& unit : site.state.previous) {
      for (const auto& image : unit)
        hold(image.digest, false, "previous image of site " + name);
    }
  }
  std::vector<HeldImage> images;
  for (auto& [digest, image] : held)
    images.push_back(std::move(image));
  return images;
}

bool Reconciler::takeCollectable() {
  return std::exchange(collectable_, false);
}

bool Reconciler::takePublished() {
  return std::exchange(published_, false);
}

}  // namespace pullagent::agent
