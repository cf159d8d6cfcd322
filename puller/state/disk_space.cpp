#include "puller/state/disk_space.h"

#include <sys/statvfs.h>

#include <algorithm>
#include <cerrno>
#include <cmath>

namespace pullagent::puller {

Result<DiskSpace> diskSpaceOf(const std::filesystem::path& path) {
  struct statvfs info {};
  if (::statvfs(path.c_str(), &info) != 0)
    return errnoError(errno, "statvfs", path);
  const auto unit = static_cast<int64_t>(info.f_frsize);
  DiskSpace space;
  space.used = static_cast<int64_t>(info.f_blocks - info.f_bfree) * unit;
  space.available = static_cast<int64_t>(info.f_bavail) * unit;
  return space;
}

namespace {

// The used bytes of the filesystem at which it is at `percent` (df's Use%).
int64_t usedAtPercent(const DiskSpace& space, int percent) {
  const auto whole = static_cast<double>(space.used + space.available);
  return static_cast<int64_t>(std::floor(whole * percent / 100.0));
}

}  // namespace

int64_t bytesToRelieve(const DiskSpace& space, int64_t state_bytes, const DiskWatermarks& marks) {
  const bool filesystem_high = space.used > usedAtPercent(space, marks.high_percent);
  const bool budget_high = marks.high_bytes && state_bytes > *marks.high_bytes;
  if (!filesystem_high && !budget_high)
    return 0;
  int64_t needed = std::max<int64_t>(0, space.used - usedAtPercent(space, marks.low_percent));
  if (marks.low_bytes)
    needed = std::max(needed, state_bytes - *marks.low_bytes);
  return needed;
}

int64_t roomLeft(const DiskSpace& space, int64_t state_bytes, const DiskWatermarks& marks) {
  int64_t room = space.available;
  if (marks.high_bytes)
    room = std::min(room, *marks.high_bytes - state_bytes);
  return std::max<int64_t>(0, room);
}

int64_t roomBelowHigh(const DiskSpace& space, int64_t state_bytes, const DiskWatermarks& marks) {
  return std::clamp<int64_t>(usedAtPercent(space, marks.high_percent) - space.used, 0,
                             roomLeft(space, state_bytes, marks));
}

}  // namespace pullagent::puller
