#include "agent/daemon/refresh_broker.h"

#include <algorithm>
#include <utility>

namespace pullagent::agent {

std::string_view toString(RefreshOutcome outcome) {
  switch (outcome) {
    case RefreshOutcome::kPending:
      return "pending";
    case RefreshOutcome::kUnchanged:
      return "unchanged";
    case RefreshOutcome::kUpdated:
      return "updated";
    case RefreshOutcome::kFailed:
      return "failed";
    case RefreshOutcome::kPinned:
      return "pinned";
    case RefreshOutcome::kStopped:
      return "stopped";
    case RefreshOutcome::kUnknown:
      return "unknown";
  }
  return "pending";
}

bool RefreshBroker::Tracked::done() const {
  return begun &&
         (!awaited || std::none_of(sites.begin(), sites.end(), [](const SiteRefresh& site) {
           return site.outcome == RefreshOutcome::kPending;
         }));
}

void RefreshBroker::forgetFinished() {
  while (order_.size() > kMaxRequests) {
    auto finished = std::find_if(order_.begin(), order_.end(), [this](uint64_t id) {
      auto found = requests_.find(id);
      return found != requests_.end() && found->second.done();
    });
    if (finished == order_.end())
      return;
    requests_.erase(*finished);
    order_.erase(finished);
  }
}

std::optional<uint64_t> RefreshBroker::admit(Request request, std::string key, bool push,
                                             std::string repository) {
  std::lock_guard lock(mutex_);
  size_t unfinished = 0;
  size_t of_repository = 0;
  for (const auto& [id, tracked] : requests_) {
    if (tracked.done())
      continue;
    if (tracked.key == key && !tracked.begun)
      return id;  // asked already and still queued: this one answers both
    if (tracked.push == push) {
      ++unfinished;
      if (push && tracked.repository == repository)
        ++of_repository;
    }
  }
  if (unfinished >= (push ? kMaxPushRequests : kMaxRefreshRequests) ||
      (push && of_repository >= kMaxPushesPerRepository)) {
    return std::nullopt;
  }
  const uint64_t id = next_id_++;
  request.id = id;
  request.awaited = !push;
  submitted_.push_back(std::move(request));
  Tracked& tracked = requests_[id];  // known and not begun: pending until the loop takes it
  tracked.key = std::move(key);
  tracked.push = push;
  tracked.repository = std::move(repository);
  tracked.awaited = !push;
  order_.push_back(id);
  forgetFinished();
  if (wake_)
    wake_();
  return id;
}

std::optional<uint64_t> RefreshBroker::submit(std::vector<std::string> sites) {
  std::vector<std::string> sorted = sites;
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  std::string key = "refresh";
  for (const auto& site : sorted)
    key += "\n" + site;
  return admit(Request{0, std::move(sites), std::nullopt}, std::move(key), false, "");
}

std::optional<uint64_t> RefreshBroker::submitPush(PushEvent push) {
  // Each field with its length: ("h/x", "y") is not ("h", "x/y"), whatever a payload holds.
  auto field = [](const std::string& text) { return std::to_string(text.size()) + ":" + text; };
  std::string repository = field(push.host) + field(push.repository);
  std::string key = "push " + repository + field(push.tag);
  return admit(Request{0, {}, std::move(push)}, std::move(key), true, std::move(repository));
}

std::optional<uint64_t> RefreshBroker::submitSiteWebhook(const std::string& site) {
  return admit(Request{0, {site}, std::nullopt}, "site " + site, true, "site " + site);
}

std::optional<uint64_t> RefreshBroker::submitRollback(const std::string& site) {
  Request request{0, {site}, std::nullopt};
  request.rollback = true;
  return admit(std::move(request), "rollback\n" + site, false, "");
}

std::vector<RefreshBroker::Request> RefreshBroker::take() {
  std::lock_guard lock(mutex_);
  return std::exchange(submitted_, {});
}

void RefreshBroker::begin(uint64_t id, const std::vector<std::string>& sites) {
  std::lock_guard lock(mutex_);
  auto found = requests_.find(id);
  if (found == requests_.end())
    return;
  found->second.begun = true;
  found->second.sites.clear();
  for (const auto& site : sites)
    found->second.sites.push_back(SiteRefresh{site, RefreshOutcome::kPending, {}, {}, {}});
}

void RefreshBroker::record(uint64_t id, const SiteRefresh& refresh) {
  std::lock_guard lock(mutex_);
  auto found = requests_.find(id);
  if (found == requests_.end())
    return;
  for (auto& site : found->second.sites) {
    if (site.site == refresh.site)
      site = refresh;
  }
}

std::optional<RefreshBroker::Status> RefreshBroker::status(uint64_t id) const {
  std::lock_guard lock(mutex_);
  auto found = requests_.find(id);
  if (found == requests_.end())
    return std::nullopt;
  return Status{found->second.done(), found->second.sites};
}

}  // namespace pullagent::agent
