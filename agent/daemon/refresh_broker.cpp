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
    case RefreshOutcome::kUnknown:
      return "unknown";
  }
  return "pending";
}

bool RefreshBroker::Tracked::done() const {
  return begun && std::none_of(sites.begin(), sites.end(), [](const SiteRefresh& site) {
           return site.outcome == RefreshOutcome::kPending;
         });
}

void RefreshBroker::forgetFinished() {
  while (order_.size() >= kMaxRequests) {
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

std::optional<uint64_t> RefreshBroker::submit(std::vector<std::string> sites) {
  std::lock_guard lock(mutex_);
  forgetFinished();
  if (order_.size() >= kMaxRequests)
    return std::nullopt;
  const uint64_t id = next_id_++;
  submitted_.push_back({id, std::move(sites), std::nullopt});
  requests_[id];  // known and not begun: pending until the loop takes it
  order_.push_back(id);
  if (wake_)
    wake_();
  return id;
}

std::optional<uint64_t> RefreshBroker::submitPush(PushEvent push) {
  std::lock_guard lock(mutex_);
  forgetFinished();
  if (order_.size() >= kMaxRequests)
    return std::nullopt;
  const uint64_t id = next_id_++;
  submitted_.push_back({id, {}, std::move(push)});
  requests_[id];
  order_.push_back(id);
  if (wake_)
    wake_();
  return id;
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
