#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>

#include "base/error.h"

namespace pullagent::puller {

// A filesystem's space as `df` counts it: used = blocks - free blocks, available = what an
// unprivileged writer may still use, and the percentage df's "Use%" shows,
// used / (used + available). Blocks reserved for root are neither (the agent does not plan on
// them: the host's other containers and the kernel need them more).
struct DiskSpace {
  int64_t used = 0;
  int64_t available = 0;
  double usedPercent() const {
    const int64_t whole = used + available;
    return whole <= 0 ? 0.0 : 100.0 * static_cast<double>(used) / static_cast<double>(whole);
  }
};

Result<DiskSpace> diskSpaceOf(const std::filesystem::path& path);

// When the state dir's disk is full enough to evict (the agent config's diskHigh/Low
// settings): above `high_percent` of its filesystem, or above `high_bytes` used by the state dir
// itself, evict until below both low marks.
struct DiskWatermarks {
  int high_percent = 85;
  int low_percent = 80;
  std::optional<int64_t> high_bytes;  // the state dir's own budget; with low_bytes
  std::optional<int64_t> low_bytes;
};

// The bytes to free to bring the filesystem and the state dir below their low marks, when
// either is above its high mark; 0 when neither is.
int64_t bytesToRelieve(const DiskSpace& space, int64_t state_bytes, const DiskWatermarks& marks);

// The bytes a pull may still write: what the filesystem has available, and no more than the
// state dir's budget leaves.
int64_t roomLeft(const DiskSpace& space, int64_t state_bytes, const DiskWatermarks& marks);

// The bytes that may be written before the filesystem reaches its high mark (within roomLeft).
int64_t roomBelowHigh(const DiskSpace& space, int64_t state_bytes, const DiskWatermarks& marks);

}  // namespace pullagent::puller
