#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <string_view>

#include "base/error.h"
#include "puller/pipeline/pull_demand.h"
#include "puller/state/disk_meter.h"
#include "puller/state/disk_space.h"
#include "puller/state/state_dir.h"

namespace pullagent::agent {

// A site error that means "the pull fits once eviction makes room": the service evicts and
// tries the site again at once, without backoff.
inline constexpr std::string_view kWaitingForSpace = "waiting for space: ";
inline constexpr const char* kDiskPhase = "disk";

// Admission before the first byte (docs/storage.md, "Disk is finite"): a pull's peak, predicted
// from its manifest (the blobs missing from the store, plus their unpacked size from the ratio
// this host learned), is weighed against the room the state dir's filesystem and budget leave,
// less what pulls admitted before it and still running reserved. A pull that fits below the
// high mark is admitted; one that would cross it while eviction could make room waits for that
// (an error starting with kWaitingForSpace); one that fits the disk only above the high mark,
// nothing being evictable, is admitted; one that cannot fit even after eviction is refused at
// once with needed, free and evictable bytes, the published image kept. Thread-safe: the pulls
// of every site ask it.
class DiskAdmission {
 public:
  DiskAdmission(puller::StateDir state, puller::DiskWatermarks marks, puller::DiskMeter& meter,
                std::function<void()> on_refused);

  // Admitted: the bytes reserved for the pull until release(), so that pulls admitted side by
  // side do not count the same room twice. Else an error: wait for space, or refused.
  // A low-priority pull (a warm image) is admitted only below the high mark, reserves nothing
  // (site pulls pause it) and never waits for space: no eviction is ever made for it.
  Result<int64_t> admit(const puller::PullDemand& demand, bool low_priority = false);
  void release(int64_t reserved);
  // What eviction could free, as the last check measured it.
  void setEvictable(int64_t bytes);
  // The most any waiting pull needs written since the last take (0: none waits): what it needs
  // in all, not the shortfall of its moment (the keeper weighs it against the disk as it is
  // when no pull runs).
  int64_t takeWanted();
  bool waiting();

  // The disk a pull will write at its peak.
  int64_t predictedBytes(const puller::PullDemand& demand) const;

 private:
  const puller::StateDir state_;
  const puller::DiskWatermarks marks_;
  puller::DiskMeter& meter_;
  std::function<void()> on_refused_;
  std::mutex mutex_;
  int64_t evictable_ = 0;
  int64_t wanted_ = 0;
  int64_t reserved_ = 0;  // by admitted pulls still running
};

}  // namespace pullagent::agent
