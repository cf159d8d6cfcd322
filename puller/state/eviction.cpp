#include "puller/state/eviction.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>

#include "puller/snapshot/snapshot_store.h"
#include "puller/state/garbage_collector.h"

namespace pullagent::puller {

void sortForEviction(std::vector<EvictionCandidate>& candidates) {
  std::sort(candidates.begin(), candidates.end(),
            [](const EvictionCandidate& a, const EvictionCandidate& b) {
              if (a.last_used != b.last_used)
                return a.last_used < b.last_used;  // nullopt (never used) first
              return a.image < b.image;
            });
}

Result<EvictionReport> evict(const StateDir& state, const EvictionPlan& plan) {
  EvictionReport report;
  auto done = [&] { return report.freed >= plan.bytes; };
  if (done())
    return report;

  std::set<Digest> kept = plan.protect;
  kept.insert(plan.keep.begin(), plan.keep.end());
  for (const auto& candidate : plan.candidates)
    kept.insert(candidate.image);
  ASSIGN_OR_RETURN(auto blobs, unpackedLayerBlobs(state, kept));
  for (const auto& blob : blobs) {
    if (done())
      return report;
    auto freed = removeBlob(state, blob.digest);
    if (!freed) {
      spdlog::warn("eviction: {}", freed.error().describe());
      continue;
    }
    report.freed += *freed;
    report.items.push_back({"unpacked-layer-blob", blob.digest.str(), *freed});
  }

  for (const auto& candidate : plan.candidates) {
    if (done())
      break;
    if (plan.protect.count(candidate.image) != 0)
      continue;
    const int64_t image_bytes = diskUsage(state.image(candidate.image));
    kept.erase(candidate.image);
    ASSIGN_OR_RETURN(auto collected,
                     collectGarbage(state, kept, false, plan.discard_unpacked_layers));
    struct stat info {};
    const bool gone = ::lstat(state.image(candidate.image).c_str(), &info) != 0;
    // Counted only if it went (gc warns and goes on when it cannot remove a tree).
    const int64_t freed = (gone ? image_bytes : 0) + collected.bytes_freed;
    spdlog::info("eviction: removed image {} ({}), freeing {} bytes", candidate.image.str(),
                 candidate.kept_as, freed);
    report.freed += freed;
    report.items.push_back(
        {"unused-image", candidate.image.str() + " (" + candidate.kept_as + ")", freed});
  }
  return report;
}

}  // namespace pullagent::puller
