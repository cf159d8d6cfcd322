#include "puller/trust/verdict_cache.h"

namespace pullagent::puller {

// Bounded: when full, the verdicts of other policies go first (a changed policy never matches
// them again), then all.
constexpr size_t kMaxVerdicts = 4096;

std::string VerdictCache::key(const TrustPolicy& policy, const ImageRef& ref, const Digest& digest,
                              const std::string& platform) {
  return policy.verdictKey() + " " + ref.str() + " " + digest.str() + " " + platform;
}

bool VerdictCache::accepted(const TrustPolicy& policy, const ImageRef& ref, const Digest& digest,
                            const std::string& platform, std::time_t now) const {
  std::lock_guard lock(mutex_);
  const auto found = accepted_.find(key(policy, ref, digest, platform));
  return found != accepted_.end() && (!found->second || now < *found->second);
}

void VerdictCache::remember(const TrustPolicy& policy, const ImageRef& ref, const Digest& digest,
                            const std::string& platform, std::optional<std::time_t> holds_until) {
  std::lock_guard lock(mutex_);
  const std::string prefix = policy.verdictKey() + " ";
  if (accepted_.size() >= kMaxVerdicts) {
    // Keep only this policy's verdicts; if they alone fill it, start over.
    for (auto it = accepted_.begin(); it != accepted_.end();)
      it = it->first.compare(0, prefix.size(), prefix) == 0 ? std::next(it) : accepted_.erase(it);
    if (accepted_.size() >= kMaxVerdicts)
      accepted_.clear();
  }
  accepted_.insert_or_assign(key(policy, ref, digest, platform), holds_until);
}

void VerdictCache::count(const std::string& result, const std::string& check) {
  std::lock_guard lock(mutex_);
  ++counts_[{result, check}];
}

VerdictCache::Counts VerdictCache::takeCounts() {
  std::lock_guard lock(mutex_);
  return std::exchange(counts_, {});
}

}  // namespace pullagent::puller
