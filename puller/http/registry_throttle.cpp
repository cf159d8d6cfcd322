#include "puller/http/registry_throttle.h"

#include <algorithm>

namespace pullagent::puller {
namespace {

// A paused admit sleeps in slices so that a stop or deadline is seen soon, and a slot waiter
// looks again at least this often (a pause may have ended meanwhile).
constexpr std::chrono::milliseconds kSlice{50};

}  // namespace

RegistryThrottle::Permit::Permit(Permit&& other) noexcept
    : owner_(std::exchange(other.owner_, nullptr)), host_(std::move(other.host_)) {}

RegistryThrottle::Permit& RegistryThrottle::Permit::operator=(Permit&& other) noexcept {
  if (this != &other) {
    if (owner_ != nullptr)
      owner_->release(host_);
    owner_ = std::exchange(other.owner_, nullptr);
    host_ = std::move(other.host_);
  }
  return *this;
}

RegistryThrottle::Permit::~Permit() {
  if (owner_ != nullptr)
    owner_->release(host_);
}

void RegistryThrottle::setDefaultLimit(int max_in_flight) {
  {
    std::lock_guard lock(mutex_);
    default_limit_ = std::max(max_in_flight, 0);
  }
  slot_freed_.notify_all();
}

void RegistryThrottle::setLimit(const std::string& host, int max_in_flight) {
  {
    std::lock_guard lock(mutex_);
    hosts_[host].limit = std::max(max_in_flight, 0);
  }
  slot_freed_.notify_all();
}

Result<RegistryThrottle::Permit> RegistryThrottle::admit(const std::string& host,
                                                         const Context& ctx) {
  const auto started = clock_.now();
  std::unique_lock lock(mutex_);
  while (true) {
    if (auto done = ctx.check(); !done)
      return done.error();
    Host& state = hosts_[host];
    const auto now = clock_.now();
    if (state.paused_until > now) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(state.paused_until - now);
      lock.unlock();
      clock_.sleepFor(std::min(left, kSlice), ctx.stop);
      lock.lock();
      continue;
    }
    const int limit = state.limit.value_or(default_limit_);
    if (limit > 0 && state.in_flight >= limit) {
      slot_freed_.wait_for(lock, kSlice);
      continue;
    }
    ++state.in_flight;
    state.stats.waited +=
        std::chrono::duration_cast<std::chrono::milliseconds>(clock_.now() - started);
    return Permit(this, host);
  }
}

void RegistryThrottle::pause(const std::string& host, std::chrono::milliseconds delay) {
  std::lock_guard lock(mutex_);
  Host& state = hosts_[host];
  state.paused_until = std::max(state.paused_until, clock_.now() + delay);
  ++state.stats.pauses;
}

bool RegistryThrottle::paused(const std::string& host) const {
  std::lock_guard lock(mutex_);
  auto found = hosts_.find(host);
  return found != hosts_.end() && found->second.paused_until > clock_.now();
}

RegistryThrottle::HostStats RegistryThrottle::stats(const std::string& host) const {
  std::lock_guard lock(mutex_);
  auto found = hosts_.find(host);
  if (found == hosts_.end())
    return {};
  HostStats stats = found->second.stats;
  stats.in_flight = found->second.in_flight;
  return stats;
}

void RegistryThrottle::release(const std::string& host) {
  {
    std::lock_guard lock(mutex_);
    auto found = hosts_.find(host);
    if (found != hosts_.end() && found->second.in_flight > 0)
      --found->second.in_flight;
  }
  slot_freed_.notify_all();  // waiters of every host share it
}

}  // namespace pullagent::puller
