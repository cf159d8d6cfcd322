#pragma once

#include <filesystem>

#include "base/error.h"
#include "base/unique_fd.h"
#include "puller/state/state_dir.h"

namespace pullagent::puller {

// The state directory's lock: pulls hold it shared, garbage collection exclusively, so a blob a
// running pull has fetched but not yet published is never collected.
class StateLock {
 public:
  enum class Mode { kShared, kExclusive };
  static Result<StateLock> acquire(const StateDir& state, Mode mode);
  // Without waiting: kUnavailable while another holder has it (the daemon's collection skips a
  // turn rather than stall its loop behind a debugging pull).
  static Result<StateLock> tryAcquire(const StateDir& state, Mode mode);

 private:
  explicit StateLock(UniqueFd fd) : fd_(std::move(fd)) {}
  static Result<StateLock> lock(const StateDir& state, Mode mode, bool wait);
  UniqueFd fd_;
};

}  // namespace pullagent::puller
