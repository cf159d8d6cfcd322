#include "agent/cli/images_command.h"

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "agent/cli/state_dir_option.h"
#include "agent/common/args.h"
#include "agent/common/exit_codes.h"
#include "agent/common/log_options.h"
#include "agent/common/progress.h"
#include "agent/site/site_state.h"
#include "agent/site/warm_records.h"
#include "base/redact.h"
#include "puller/state/last_use.h"
#include "puller/state/published_image.h"
#include "puller/store/image_sources.h"

namespace pullagent::agent {
namespace {

constexpr const char* kImagesUsage =
    R"(usage: pullagent images [--config AGENT.json | --state DIR] [--json]

Lists the images published in the state dir: how each keeps its root filesystem (overlay:
layer snapshots shared with other images; flat: a tree of its own; lazy: overlay with layers
still read in place, until the service promotes them), the disk it uses alone
(OWN: its bundle and the snapshots no other image uses) and shares (SHARED: snapshots other
images use too, counted in full for each), when a site last used it (the order eviction
follows, oldest first), the sites that hold it (SITES: "web" publishes it, "web:stopped" is a
stopped site's, "web:previous" is kept for a rollback while space allows, "warm" is one of the
agent config's warmImages, never evicted), and the registry
repositories it is proven for (PROVEN FOR: every blob of it was served by that repository, or
shown to be there; a pull from any other source proves the blobs again before it shares them;
"-" for an image published before sources were recorded, which its next pull proves again).
  --config FILE   agent config naming the state dir (default /etc/pullagent/agent.json)
  --state DIR     the state dir itself
  --json          the same as JSON (bytes as numbers)
)";

// "flat", "overlay", or "lazy": over snapshots with some layers still read in place.
const char* storageOf(const puller::ImageDiskUsage& image) {
  if (image.flat)
    return "flat";
  return image.layers_in_place > 0 ? "lazy" : "overlay";
}

// The sites holding each image, by manifest digest: "web" (published), "web:stopped" (the
// published image of a stopped site), "web:previous" (kept for a rollback while space allows),
// "warm" (a warm image the service pulled).
std::map<std::string, std::vector<std::string>> sitesByImage(const puller::StateDir& state) {
  std::map<std::string, std::vector<std::string>> sites;
  auto add = [&](const SiteState& site, const PublishedImage& image, const char* how) {
    auto& names = sites[image.digest];
    const std::string name =
        (image.container.empty() ? site.site : site.site + "/" + image.container) + how;
    if (std::find(names.begin(), names.end(), name) == names.end())
      names.push_back(name);
  };
  for (const auto& site : SiteStateStore(state).readAll()) {
    const bool stopped = site.phase == SitePhase::kStopped;
    for (const auto& image : publishedUnit(site))
      add(site, image, stopped ? ":stopped" : "");
    for (const auto& unit : site.previous) {
      for (const auto& image : unit)
        add(site, image, ":previous");
    }
  }
  for (const auto& [image, record] : readWarmRecords(state)) {
    auto& names = sites[record.digest];
    if (std::find(names.begin(), names.end(), "warm") == names.end())
      names.push_back("warm");
  }
  return sites;
}

std::string lastUsedText(const std::optional<std::chrono::system_clock::time_point>& at) {
  return at ? formatUtc(*at) : "-";
}

std::string joined(const std::vector<std::string>& names) {
  std::string text;
  for (const auto& name : names)
    text += (text.empty() ? "" : ",") + safeEscaped(name);
  return text.empty() ? "-" : text;
}

}  // namespace

namespace {

int runImages(const ParsedArgs& args, const ProcessEnvironment& /*env*/,
              const Environment& environment) {
  auto state = existingStateDir(args, environment);
  if (!state) {
    std::cerr << "pullagent images: " << state.error().describe() << "\n";
    return exitCodeFor(state.error());
  }
  auto usage = puller::stateDiskUsage(state.value());
  if (!usage) {
    std::cerr << "pullagent images: " << usage.error().describe() << "\n";
    return exitCodeFor(usage.error());
  }
  const auto sites = sitesByImage(state.value());
  const puller::LastUse last_use(state.value());
  const puller::ProvenanceStore provenance(state->provenance());
  auto sourcesOf = [&](const puller::Digest& digest) {
    std::vector<std::string> names;
    for (const auto& source : puller::imageSources(state->content(), provenance, digest))
      names.push_back(source.str());
    return names;
  };
  auto sitesOf = [&](const puller::Digest& digest) {
    auto found = sites.find(digest.str());
    return found == sites.end() ? std::vector<std::string>{} : found->second;
  };

  if (args.flag("json")) {
    auto images = nlohmann::json::array();
    for (const auto& image : usage->images) {
      images.push_back({{"digest", image.digest.str()},
                        {"storage", storageOf(image)},
                        {"layers", image.layers},
                        {"layersInPlace", image.layers_in_place},
                        {"ownBytes", image.own_bytes},
                        {"sharedBytes", image.shared_bytes},
                        {"sites", sitesOf(image.digest)},
                        {"lastUsed", last_use.read(image.digest)
                                         ? nlohmann::json(lastUsedText(last_use.read(image.digest)))
                                         : nlohmann::json(nullptr)},
                        {"provenFor", sourcesOf(image.digest)}});
    }
    const nlohmann::json out = {{"images", images},
                                {"snapshots",
                                 {{"count", usage->snapshots},
                                  {"bytes", usage->snapshot_bytes},
                                  {"shared", usage->shared_snapshots},
                                  {"sharedBytes", usage->shared_snapshot_bytes}}},
                                {"blobBytes", usage->blob_bytes}};
    std::cout << out.dump(2) << "\n";
    return kExitOk;
  }
  std::printf("%-20s %-8s %6s %10s %10s  %-20s  %-20s %s\n", "IMAGE", "STORAGE", "LAYERS", "OWN",
              "SHARED", "LAST USED", "SITES", "PROVEN FOR");
  for (const auto& image : usage->images) {
    std::printf("sha256:%-13s %-8s %6zu %10s %10s  %-20s  %-20s %s\n",
                image.digest.hex().substr(0, 12).c_str(), storageOf(image), image.layers,
                humanBytes(image.own_bytes).c_str(), humanBytes(image.shared_bytes).c_str(),
                lastUsedText(last_use.read(image.digest)).c_str(),
                joined(sitesOf(image.digest)).c_str(), joined(sourcesOf(image.digest)).c_str());
  }
  std::printf(
      "snapshots: %d holding %s, %d of them (%s) shared by more than one image; "
      "blobs: %s\n",
      usage->snapshots, humanBytes(usage->snapshot_bytes).c_str(), usage->shared_snapshots,
      humanBytes(usage->shared_snapshot_bytes).c_str(), humanBytes(usage->blob_bytes).c_str());
  return kExitOk;
}

}  // namespace

const Command& imagesCommand() {
  static const Command command{"images",
                               "[--state DIR] [--json]",
                               "the published images and the disk each uses",
                               kImagesUsage,
                               {"config", "state"},
                               {"json"},
                               0,
                               0,
                               {},
                               true,
                               runImages};
  return command;
}

}  // namespace pullagent::agent
