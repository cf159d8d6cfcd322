#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "agent/config/agent_config.h"
#include "agent/daemon/metrics.h"
#include "agent/daemon/reconciler.h"
#include "agent/site/disk_admission.h"
#include "puller/state/disk_meter.h"

namespace pullagent::agent {

// Keeps the state dir's disk below the agent config's watermarks (docs/storage.md, "Disk is
// finite"). The daemon's loop tells it which images the sites hold (noteUse, every turn) and,
// between pulls with the state lock held exclusively, lets it collect and evict (housekeep):
// above the high mark, or when a pull waits for space, it evicts what may go (the layer blobs of
// made snapshots, then images no running site uses, least recently used first) until below the
// low mark, one item at a time. It owns the admission every site's pull asks before its first
// byte, and tells it what eviction could free. Only the loop's thread calls it.
class DiskKeeper {
 public:
  explicit DiskKeeper(Metrics& metrics) : metrics_(metrics) {}

  // A (re)loaded agent config. Returns the admission the pulls of that config ask.
  std::shared_ptr<DiskAdmission> configure(const AgentConfig& agent);
  // Records the last use of every image that entered or left use since the last call (all in
  // use, on the first), and learns how much disk layers take unpacked from images seen in use
  // for the first time.
  void noteUse(const std::vector<HeldImage>& held, std::chrono::system_clock::time_point now);
  // True when a check is due: its interval passed, or a pull waits for space.
  bool due(std::chrono::steady_clock::time_point now);
  std::chrono::steady_clock::time_point nextCheck() const { return next_check_; }
  // True when the disk was above a high mark at the last check with something left to evict
  // and a check is due, or a pull waits for space: it needs a turn with no pull running.
  bool needsTurn(std::chrono::steady_clock::time_point now);
  // With the state lock held exclusively and no pull running: garbage collection first when
  // `collect` (keeping every held image), then the check. Returns true when pulls waited for
  // space (they may be tried again now).
  bool housekeep(const std::vector<HeldImage>& held, bool collect,
                 std::chrono::steady_clock::time_point now);

 private:
  void learnRatio(const puller::Digest& image);
  // Returns whether `wanted` bytes fit now (below the high mark, or on the disk with nothing
  // left to evict).
  bool check(const std::vector<HeldImage>& held, int64_t wanted);

  Metrics& metrics_;
  puller::StateDir state_;
  puller::DiskWatermarks marks_;
  bool discard_unpacked_layers_ = false;
  std::chrono::seconds interval_{60};
  puller::DiskMeter meter_;
  std::shared_ptr<DiskAdmission> admission_;
  std::optional<std::set<std::string>> in_use_;  // as of the last noteUse
  std::chrono::steady_clock::time_point next_check_{};
  bool above_high_ = false;  // at the last check, after its eviction, with something evictable
};

}  // namespace pullagent::agent
