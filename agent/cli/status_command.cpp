#include "agent/cli/status_command.h"

#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "agent/cli/state_dir_option.h"
#include "agent/common/args.h"
#include "agent/common/exit_codes.h"
#include "agent/common/log_options.h"
#include "agent/common/progress.h"
#include "agent/site/site_state.h"
#include "base/redact.h"
#include "puller/lazy/lazy_layer.h"
#include "puller/state/published_image.h"

namespace pullagent::agent {
namespace {

constexpr const char* kStatusUsage =
    R"(usage: pullagent status [SITE] [--config AGENT.json | --state DIR] [--json]

Shows what the agent recorded for each site: the image asked for, the phase, progress, the
published image and the last error; for a site with sidecars or Compose services, a line per
container (its phase in the last attempt, its image, what the published unit serves for it).
A site published over layers still read in place (lazy pulling) shows "lazy, N % fetched".
  --config FILE   agent config naming the state dir (default /etc/pullagent/agent.json)
  --state DIR     the state dir itself
  --json          the recorded states as a JSON array
)";

std::string shortDigest(const std::string& digest) {
  auto colon = digest.find(':');
  return colon == std::string::npos ? digest : digest.substr(colon + 1, 12);
}

std::string progressText(const SiteProgress& progress) {
  return std::to_string(progress.layers_done) + "/" + std::to_string(progress.layers_total) +
         " layers " + humanBytes(progress.bytes_done) + "/" + humanBytes(progress.bytes_total);
}

// A published image with layers still read in place (lazy pulling): how much of them the
// service's caches hold. Only caches of this state dir's lazy host are read.
std::optional<std::string> lazyText(const puller::StateDir& state_dir, const SiteState& state) {
  if (!state.published)
    return std::nullopt;
  auto rootfs = puller::publishedRootfs(state.published->path);
  if (!rootfs || rootfs->in_place.empty())
    return std::nullopt;
  int64_t held = 0;
  int64_t size = 0;
  for (const auto& [index, dir] : rootfs->in_place) {
    if (!puller::isLazyLayerPath(state_dir, dir))
      continue;
    const auto fill =
        puller::estargz::LazyLayer::cacheFill(dir.parent_path().parent_path() / "cache");
    // Each at most 2^62 (cacheFill): the sums stay far from overflowing for any real count.
    held += std::min(fill.held, int64_t{1} << 50);
    size += std::min(fill.size, int64_t{1} << 50);
  }
  const double percent =
      size > 0 ? 100.0 * static_cast<double>(held) / static_cast<double>(size) : 0;
  return "lazy, " + std::to_string(static_cast<int>(percent)) + " % fetched";
}

std::string progressText(const puller::StateDir& state_dir, const SiteState& state) {
  if (state.phase == SitePhase::kPulling)
    return progressText(state.progress);
  return lazyText(state_dir, state).value_or("-");
}

// The site's image; for a site with several containers, how many (each has its line below).
std::string imageColumn(const SiteState& state) {
  if (!state.containers.empty())
    return std::to_string(state.containers.size()) + " containers:";
  return state.image.empty() ? "-" : safeEscaped(state.image, 200);
}

// A site with several containers: a line for each under the site's, with the phase of its last
// attempt and the image the published unit serves for it.
void printContainers(const SiteState& state) {
  std::vector<ContainerActivity> containers = state.containers;
  const auto unit = publishedUnit(state);
  if (containers.empty()) {
    for (const auto& image : unit) {
      if (!image.container.empty())
        containers.push_back({image.container, image.image, "ready", {}});
    }
  }
  for (const auto& container : containers) {
    std::string digest = "-";
    for (const auto& image : unit) {
      if (image.container == container.name)
        digest = shortDigest(image.digest);
    }
    const bool pulling = state.phase == SitePhase::kPulling && container.phase == "pulling";
    std::printf("  %-18s %-12s %-44s %-12s %-20s %-26s %s\n",
                safeEscaped("- " + container.name, 18).c_str(),
                safeEscaped(container.phase, 12).c_str(), safeEscaped(container.image, 200).c_str(),
                safeEscaped(digest).c_str(), "",
                pulling ? progressText(container.progress).c_str() : "-", "");
  }
}

std::string detail(const SiteState& state) {
  std::string text;
  if (state.last_error)
    text = state.last_error->phase + ": " + state.last_error->message;
  if (state.phase == SitePhase::kFailed && state.next_attempt_at) {
    text = "attempt " + std::to_string(state.attempts) + ", next at " +
           formatUtc(*state.next_attempt_at) + "; " + text;
  }
  // The published image is still what the site runs: say so, and what failed (also while the
  // next try runs).
  if (state.published && state.last_error) {
    const bool refresh = state.published->config_sha256 == state.config_sha256;
    text = "serving " + state.published->digest + "; " +
           (refresh ? "refresh" : "pull of the changed config") + " failed at " +
           formatUtc(state.last_error->at) + ": " + text;
  }
  return text.empty() ? "-" : text;
}

}  // namespace

namespace {

int runStatus(const ParsedArgs& args, const ProcessEnvironment& /*env*/,
              const Environment& environment) {
  auto found = existingStateDir(args, environment);
  if (!found) {
    std::cerr << "pullagent status: " << found.error().describe() << "\n";
    return exitCodeFor(found.error());
  }
  const puller::StateDir state_dir(std::filesystem::absolute(found->root()));
  std::vector<SiteState> states = SiteStateStore(state_dir).readAll();
  if (!args.positionals.empty()) {
    const std::string& wanted = args.positionals[0];
    std::erase_if(states, [&](const SiteState& state) { return state.site != wanted; });
    if (states.empty()) {
      std::cerr << "pullagent status: no site " << safeQuoted(wanted) << " in "
                << safeQuoted(state_dir.sites().string()) << "\n";
      return kExitNotFound;
    }
  }
  if (args.flag("json")) {
    auto array = nlohmann::json::array();
    for (const auto& state : states)
      array.push_back(nlohmann::json::parse(siteStateJson(state)));
    std::cout << array.dump(2) << "\n";
    return kExitOk;
  }
  std::printf("%-20s %-12s %-44s %-12s %-20s %-26s %s\n", "SITE", "PHASE", "IMAGE", "PUBLISHED",
              "LAST CHECKED", "PROGRESS", "LAST ERROR");
  // Images and errors carry tenants' strings: escaped, so that none can drive the terminal.
  for (const auto& state : states) {
    std::printf("%-20s %-12s %-44s %-12s %-20s %-26s %s\n", safeEscaped(state.site).c_str(),
                std::string(toString(state.phase)).c_str(), imageColumn(state).c_str(),
                state.published ? safeEscaped(shortDigest(state.published->digest)).c_str() : "-",
                state.last_checked_at ? formatUtc(*state.last_checked_at).c_str() : "-",
                progressText(state_dir, state).c_str(), safeEscaped(detail(state), 2000).c_str());
    if (state.published && !state.published->signature.empty())
      std::printf("  signature: %s\n", safeEscaped(state.published->signature, 2000).c_str());
    printContainers(state);
  }
  return kExitOk;
}

}  // namespace

const Command& statusCommand() {
  static const Command command{"status",
                               "[SITE] [--json]",
                               "what the service recorded for each site",
                               kStatusUsage,
                               {"config", "state"},
                               {"json"},
                               0,
                               1,
                               {},
                               true,
                               runStatus};
  return command;
}

}  // namespace pullagent::agent
