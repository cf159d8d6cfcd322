#include "agent/cli/gc_command.h"

#include <spdlog/spdlog.h>

#include <cstdio>
#include <iostream>
#include <sstream>

#include "agent/cli/state_dir_option.h"
#include "agent/common/args.h"
#include "agent/common/exit_codes.h"
#include "agent/common/log_options.h"
#include "agent/common/progress.h"
#include "agent/site/site_state.h"
#include "agent/site/warm_records.h"
#include "puller/state/garbage_collector.h"
#include "puller/state/state_lock.h"

namespace pullagent::agent {
namespace {

constexpr const char* kGcUsage =
    R"(usage: pullagent gc [--state DIR] [--keep DIGEST[,DIGEST...]] [--discard-unpacked-layers]

Removes published images under DIR/images that are not kept, then every blob no remaining image
uses. Kept: the images the service's sites publish (DIR/sites/*.json) and those in --keep; when
there are no sites and no --keep, every image (a state dir used by `pullagent pull` alone).
  --state DIR     state directory (default: the agent config's stateDir, else
                  /var/lib/pullagent); it must exist
  --config FILE   agent config naming the state dir (default /etc/pullagent/agent.json)
  --keep LIST     manifest digests (sha256:...) of more images to keep
  --discard-unpacked-layers
                  also remove the blobs of layers unpacked into their snapshots (pulls reuse
                  the snapshots without them; content/ is no longer a whole OCI layout)
)";

}  // namespace

namespace {

int runGc(const ParsedArgs& args, const ProcessEnvironment& /*env*/,
          const Environment& environment) {
  auto chosen = existingStateDir(args, environment);
  if (!chosen) {
    spdlog::error("gc: {}", chosen.error().describe());
    return exitCodeFor(chosen.error());
  }
  const puller::StateDir state = chosen.value();
  std::set<puller::Digest> keep;
  if (auto list = args.option("keep")) {
    std::stringstream items(*list);
    std::string item;
    while (std::getline(items, item, ',')) {
      auto digest = puller::Digest::parse(item);
      if (!digest) {
        spdlog::error("--keep: {}", digest.error().message);
        return kExitUsage;
      }
      keep.insert(digest.value());
    }
  }
  auto lock = puller::StateLock::acquire(state, puller::StateLock::Mode::kExclusive);
  if (!lock) {
    spdlog::error("gc failed: {}", lock.error().describe());
    return exitCodeFor(lock.error());
  }
  // Read under the lock: the service records a site's new image before it lets go of its share.
  const auto sites = SiteStateStore(state).readAll();
  auto keepImage = [&](const PublishedImage& image) {
    if (auto digest = puller::Digest::parse(image.digest))
      keep.insert(digest.value());
  };
  for (const auto& site : sites) {
    for (const auto& image : publishedUnit(site))  // the main container's and the sidecars'
      keepImage(image);
    for (const auto& unit : site.previous) {  // kept for a rollback; eviction decides on them
      for (const auto& image : unit)
        keepImage(image);
    }
  }
  for (const auto& [image, record] : readWarmRecords(state)) {  // the service's warm images
    if (auto digest = puller::Digest::parse(record.digest))
      keep.insert(digest.value());
  }
  const bool keep_all = sites.empty() && !args.option("keep");
  auto report = puller::collectGarbage(state, keep, keep_all, args.flag("discard-unpacked-layers"));
  if (!report) {
    spdlog::error("gc failed: {}", report.error().describe());
    return exitCodeFor(report.error());
  }
  std::printf("removed %d images, %d layer snapshots and %d blobs, freed %s\n",
              report->images_removed, report->snapshots_removed, report->blobs_removed,
              humanBytes(report->bytes_freed).c_str());
  if (report->snapshots_kept > 0) {
    std::printf("kept %d layer snapshots, %s on disk\n", report->snapshots_kept,
                humanBytes(report->snapshot_bytes).c_str());
  }
  std::printf(
      "provenance: %d records kept (who served each blob, what each layer decompresses "
      "to: pullagent images shows what each image is proven for), %d removed\n",
      report->records_kept, report->records_removed);
  return kExitOk;
}

}  // namespace

const Command& gcCommand() {
  static const Command command{"gc",
                               "[--state DIR] [--keep DIGEST,...]",
                               "remove images, snapshots and blobs no longer kept",
                               kGcUsage,
                               {"state", "config", "keep"},
                               {"discard-unpacked-layers"},
                               0,
                               0,
                               {},
                               true,
                               runGc};
  return command;
}

}  // namespace pullagent::agent
