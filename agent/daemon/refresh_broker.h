#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/daemon/push_event.h"

namespace pullagent::agent {

// How one site's refresh ended (or that it has not yet).
enum class RefreshOutcome {
  kPending,    // queued or running
  kUnchanged,  // the tag still points at the published image: nothing pulled
  kUpdated,    // the tag moved: the new image is published
  kFailed,     // the check or the pull failed; the published image stays
  kPinned,     // the site names a digest: nothing to refresh
  kStopped,    // the site is stopped: no registry request until it starts
  kUnknown,    // no such site
};

std::string_view toString(RefreshOutcome outcome);

struct SiteRefresh {
  std::string site;
  RefreshOutcome outcome = RefreshOutcome::kPending;
  std::string from;   // the published digest before
  std::string to;     // the published digest after (kUpdated)
  std::string error;  // kFailed
};

// Refresh requests between the control endpoint (its HTTP threads) and the daemon's loop: the
// endpoint submits and reads back, the loop takes what was submitted and records outcomes.
//
// Requests are coalesced: one that asks for what a request not yet taken by the loop asks (the
// same sites, the same push) gets that request's id, so a flood of one request costs nothing
// more (once the loop has begun a request, a new one is queued: what it asks may have changed
// since, as a second push of a tag does). Pushes and sites' own webhooks are not waited for by
// their sender: they are done once the loop has begun them (the sites' refreshes run on, merged
// per site), so they hold capacity only while queued, and a tenant whose tag check hangs holds
// nobody's share. Capacity is split so that no source of requests takes another's: root's
// `pullagent refresh` (the control socket, which waits for outcomes) has kMaxRefreshRequests
// unfinished requests of its own, pushes kMaxPushRequests queued, one repository (or one site's
// webhook) at most kMaxPushesPerRepository of those. A submit beyond its share is refused;
// finished requests are kept for reading back, the oldest forgotten first.
class RefreshBroker {
 public:
  static constexpr size_t kMaxRefreshRequests = 16;
  static constexpr size_t kMaxPushRequests = 48;
  static constexpr size_t kMaxPushesPerRepository = 2;
  static constexpr size_t kMaxRequests = kMaxRefreshRequests + kMaxPushRequests;

  // `wake` tells the daemon's loop that a request is waiting (it may be called on any thread).
  explicit RefreshBroker(std::function<void()> wake) : wake_(std::move(wake)) {}

  // A request for these sites (empty: every site). Its id, or nothing when full.
  std::optional<uint64_t> submit(std::vector<std::string> sites);
  // A registry's push: the sites with continuous deployment on that image and tag.
  std::optional<uint64_t> submitPush(PushEvent push);
  // A site's own webhook (authenticated by that site's publishing credentials): a refresh of
  // that site alone, from the pushes' share, the site's requests counting as one repository's.
  std::optional<uint64_t> submitSiteWebhook(const std::string& site);
  // Root's `pullagent rollback SITE`: the site's previous image republished at once, from the
  // share of root's refreshes; read back as a refresh is.
  std::optional<uint64_t> submitRollback(const std::string& site);

  struct Request {
    uint64_t id = 0;
    std::vector<std::string> sites;  // empty: every site (unless `push` says which)
    std::optional<PushEvent> push;
    // Its sender waits for each site's outcome (root's refresh); else it is done once begun.
    bool awaited = true;
    bool rollback = false;  // `sites` (one) goes back to its previous image, nothing pulled
  };
  // The loop: what was submitted since the last call.
  std::vector<Request> take();
  // The loop: which sites a request covers (sets it for "every site"), all pending.
  void begin(uint64_t id, const std::vector<std::string>& sites);
  // The loop: how one site of a request ended.
  void record(uint64_t id, const SiteRefresh& refresh);

  struct Status {
    bool done = false;  // every site has an outcome (the loop has begun the request)
    std::vector<SiteRefresh> sites;
  };
  // A request as it stands; nothing for an id never given or long forgotten.
  std::optional<Status> status(uint64_t id) const;

 private:
  void forgetFinished();

  std::function<void()> wake_;
  mutable std::mutex mutex_;
  uint64_t next_id_ = 1;
  std::vector<Request> submitted_;
  struct Tracked {
    bool begun = false;
    std::vector<SiteRefresh> sites;
    std::string key;         // what it asks: equal keys coalesce while unfinished
    bool push = false;       // a registry push (else root's refresh)
    std::string repository;  // a push's registry/repository: its share of the pushes
    bool awaited = true;
    bool done() const;
  };
  // An unfinished request asking `key`, or the share `push`/`repository` has left; the id of the
  // request to answer with (coalesced or new), or nothing when the share is full.
  std::optional<uint64_t> admit(Request request, std::string key, bool push,
                                std::string repository);
  std::map<uint64_t, Tracked> requests_;
  std::deque<uint64_t> order_;  // ids, oldest first
};

}  // namespace pullagent::agent
