#pragma once

#include <chrono>
#include <map>
#include <string>

#include "base/error.h"
#include "puller/state/state_dir.h"

namespace pullagent::agent {

// What the service pulled of each warm image (the agent config's warmImages), by reference as
// configured: <state>/warm.json, written atomically by the service, read by it when it starts
// and by `pullagent images`. Read as hostile: what does not parse reads as nothing pulled (the
// images are pulled again), never a crash.
struct WarmRecord {
  std::string digest;           // the manifest's
  std::string resolved_digest;  // what the reference resolved to (an index's, for a list)
  std::chrono::system_clock::time_point checked_at;  // when its tag was last resolved
};
using WarmRecords = std::map<std::string, WarmRecord>;

WarmRecords readWarmRecords(const puller::StateDir& state);
Status writeWarmRecords(const puller::StateDir& state, const WarmRecords& records);

}  // namespace pullagent::agent
