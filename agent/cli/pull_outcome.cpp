#include "agent/cli/pull_outcome.h"

#include <cstdio>
#include <string>

#include "agent/common/progress.h"

namespace pullagent::agent {

void printOutcome(const puller::ImageRef& ref, const puller::PullOutcome& outcome) {
  const auto& image = outcome.image;
  const std::string not_needed =
      image.blobs_not_needed > 0
          ? ", " + std::to_string(image.blobs_not_needed) + " not needed (unpacked already)"
          : "";
  std::printf(
      "pulled %s\n  digest:     %s\n  media type: %s\n  layers:     %zu\n  blobs:      %d "
      "downloaded, %d already present%s\n  downloaded: %s (%lld bytes transferred)\n  time:       "
      "%.2f s\n  published:  %s\n",
      ref.str().c_str(), image.manifest.digest.str().c_str(), image.manifest.media_type.c_str(),
      image.layers.size(), image.blobs_downloaded, image.blobs_present, not_needed.c_str(),
      humanBytes(image.bytes_downloaded).c_str(), static_cast<long long>(outcome.transferred),
      outcome.seconds, outcome.published.c_str());
  if (outcome.snapshots_reused + outcome.snapshots_unpacked > 0) {
    std::printf(
        "  snapshots:  %d reused, %d unpacked (%d side by side, %d over the layers below)\n",
        outcome.snapshots_reused, outcome.snapshots_unpacked,
        outcome.snapshots_unpacked - outcome.snapshots_over_lower, outcome.snapshots_over_lower);
  }
}

}  // namespace pullagent::agent
