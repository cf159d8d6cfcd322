#include "agent/site/disk_admission.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "agent/common/progress.h"
#include "puller/state/unpack_ratio.h"

namespace pullagent::agent {

DiskAdmission::DiskAdmission(puller::StateDir state, puller::DiskWatermarks marks,
                             puller::DiskMeter& meter, std::function<void()> on_refused)
    : state_(std::move(state)), marks_(marks), meter_(meter), on_refused_(std::move(on_refused)) {}

int64_t DiskAdmission::predictedBytes(const puller::PullDemand& demand) const {
  struct stat info {};
  // An image published already is reused as it is: nothing of it is unpacked again.
  const bool published =
      ::lstat((state_.image(demand.manifest) / puller::kPublishedMarker).c_str(), &info) == 0;
  const double unpacked = published ? 0.0
                                    : static_cast<double>(demand.unpack_source_bytes) *
                                          puller::UnpackRatio(state_).ratio();
  // The manifest's sizes are the registry's word: bounded, never an overflow.
  constexpr double kMax = static_cast<double>(std::numeric_limits<int64_t>::max() / 2);
  const double total =
      std::min(static_cast<double>(demand.download_bytes) + std::ceil(unpacked), kMax);
  return static_cast<int64_t>(total);
}

Result<int64_t> DiskAdmission::admit(const puller::PullDemand& demand, bool low_priority) {
  const int64_t needed = predictedBytes(demand);
  if (needed == 0)
    return int64_t{0};
  ASSIGN_OR_RETURN(auto space, puller::diskSpaceOf(state_.root()));
  const int64_t state_bytes = marks_.high_bytes ? meter_.stateBytes(state_) : 0;
  std::lock_guard lock(mutex_);
  const int64_t room =
      std::max<int64_t>(0, puller::roomLeft(space, state_bytes, marks_) - reserved_);
  const int64_t below_high =
      std::max<int64_t>(0, puller::roomBelowHigh(space, state_bytes, marks_) - reserved_);
  auto admitted = [&] {
    if (low_priority)
      return int64_t{0};
    reserved_ += needed;
    return needed;
  };
  if (needed <= below_high)
    return admitted();
  if (low_priority) {
    return makeError(ErrorCode::kResourceExhausted,
                     "image " + demand.manifest.str() +
                         " would take the disk past its high mark (" + humanBytes(needed) +
                         " needed, " + humanBytes(below_high) +
                         " below it): a warm image waits for room of its own, nothing is "
                         "evicted for it");
  }
  const std::string figures =
      "needs " + humanBytes(needed) + " (" + std::to_string(demand.layers_to_download) + " of " +
      std::to_string(demand.layers) + " layers to download, " +
      std::to_string(demand.layers_to_unpack) + " to unpack), " + humanBytes(room) + " free" +
      (marks_.high_bytes ? " within stateDirHighWatermarkBytes" : "") + ", " +
      humanBytes(evictable_) + " evictable";
  auto wait = [&]() -> Result<int64_t> {
    wanted_ = std::max(wanted_, needed);
    return makeError(ErrorCode::kResourceExhausted,
                     std::string(kWaitingForSpace) + figures + "; evicting unused images first");
  };
  if (evictable_ > 0 && needed <= below_high + evictable_)
    return wait();  // room made below the high mark first
  if (needed <= room)
    return admitted();  // above the high mark, but nothing more may go
  if (needed <= room + evictable_)
    return wait();
  if (on_refused_)
    on_refused_();
  return makeError(ErrorCode::kResourceExhausted,
                   "image " + demand.manifest.str() + " does not fit on " + state_.root().string() +
                       ": " + figures +
                       "; the published image stays. Free disk on the host, raise "
                       "stateDirHighWatermarkBytes, or move stateDir to a larger disk");
}

void DiskAdmission::release(int64_t reserved) {
  std::lock_guard lock(mutex_);
  reserved_ = std::max<int64_t>(0, reserved_ - reserved);
}

void DiskAdmission::setEvictable(int64_t bytes) {
  std::lock_guard lock(mutex_);
  evictable_ = bytes;
}

bool DiskAdmission::waiting() {
  std::lock_guard lock(mutex_);
  return wanted_ > 0;
}

int64_t DiskAdmission::takeWanted() {
  std::lock_guard lock(mutex_);
  return std::exchange(wanted_, 0);
}

}  // namespace pullagent::agent
