#include "agent/diagnose/site_diagnosis.h"

#include <sys/statvfs.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <set>

#include "agent/diagnose/container_walk.h"
#include "agent/diagnose/step_log.h"
#include "agent/site/site_pull.h"
#include "agent/site/site_route.h"
#include "agent/site/site_state.h"
#include "base/bounded_read.h"
#include "puller/state/disk_space.h"
#include "puller/state/unpack_ratio.h"

namespace pullagent::agent {
namespace {

// The state files the service writes are small; a larger one is not read.
constexpr size_t kMaxSiteStateBytes = 1 << 20;

std::string bytesText(int64_t bytes) {
  char text[32];
  if (bytes >= 1024LL * 1024 * 1024)
    std::snprintf(text, sizeof text, "%.1f GiB", static_cast<double>(bytes) / (1 << 30));
  else if (bytes >= 1024LL * 1024)
    std::snprintf(text, sizeof text, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  else
    std::snprintf(text, sizeof text, "%lld KiB", static_cast<long long>((bytes + 1023) / 1024));
  return text;
}

std::string ageText(std::chrono::system_clock::duration age) {
  const auto minutes = std::chrono::duration_cast<std::chrono::minutes>(age).count();
  if (minutes < 120)
    return std::to_string(minutes) + " min";
  if (minutes < 48 * 60)
    return std::to_string(minutes / 60) + " h";
  return std::to_string(minutes / (24 * 60)) + " days";
}

// The state dir, or its closest existing parent when the agent has not made it yet.
std::filesystem::path existingAncestor(std::filesystem::path path) {
  std::error_code error;
  while (!path.empty() && !std::filesystem::exists(path, error) && path != path.root_path())
    path = path.parent_path();
  return path;
}

// What the service records for a site of its own, read (never written); nullopt when it has
// recorded nothing, an error when the record does not read.
Result<std::optional<SiteState>> recordedState(const AgentConfig& agent,
                                               const std::string& service_site) {
  const auto file = agent.state_dir.sites() / (service_site + ".json");
  auto text = readRegularFile(file, kMaxSiteStateBytes);
  if (!text) {
    if (text.error().code == ErrorCode::kNotFound)
      return std::optional<SiteState>();
    return text.error();
  }
  auto state = parseSiteState(text.value());
  if (!state)
    return state.error().context(file.string());
  return std::optional<SiteState>(std::move(state.value()));
}

// host.state-dir: writable, with room for what the pulls would write: the blobs the store
// lacks, and their layers unpacked at the ratio the host has learnt (as admission predicts).
void stateDirStep(const AgentConfig& agent, StepLog& log, std::optional<int64_t> missing) {
  log.begin();
  const std::filesystem::path root = agent.state_dir.root();
  const std::filesystem::path existing = existingAncestor(root);
  struct statvfs fs {};
  if (::statvfs(existing.c_str(), &fs) != 0) {
    log.failed("host.state-dir", errnoError(errno, "statvfs", existing),
               "create the state dir " + root.string() + " on a local filesystem");
    return;
  }
  if ((fs.f_flag & ST_RDONLY) != 0 || ::access(existing.c_str(), W_OK) != 0) {
    log.failed("host.state-dir",
               makeError(ErrorCode::kPermissionDenied,
                         existing.string() + " is not writable" +
                             ((fs.f_flag & ST_RDONLY) != 0 ? " (a read-only filesystem)" : "")),
               "make " + root.string() + " writable for the agent (stateDir in the agent config)");
    return;
  }
  auto space = puller::diskSpaceOf(existing);
  if (!space) {
    log.failed("host.state-dir", space.error(), "check the filesystem of " + root.string());
    return;
  }
  std::string said = root.string() +
                     (existing == root ? "" : " (not made yet; " + existing.string() + " is)") +
                     " writable, " + bytesText(space->available) + " free";
  if (!missing) {
    log.ok("host.state-dir", said + "; the images' size is not known (no manifest was read)");
    return;
  }
  const double ratio = puller::UnpackRatio(agent.state_dir).ratio();
  const double wanted = static_cast<double>(*missing) * (1.0 + ratio);
  const int64_t needed = wanted >= static_cast<double>(std::numeric_limits<int64_t>::max())
                             ? std::numeric_limits<int64_t>::max()
                             : static_cast<int64_t>(std::ceil(wanted));
  said += ", the pull needs up to " + bytesText(needed) + " (" + bytesText(*missing) +
          " of blobs the store lacks, unpacked at " + std::to_string(ratio).substr(0, 4) + "x)";
  if (space->available < needed) {
    log.failed("host.state-dir", makeError(ErrorCode::kResourceExhausted, said),
               "free " + bytesText(needed - space->available) + " on the filesystem of " +
                   root.string() + " (pullagent gc, or a larger disk), or move stateDir");
    return;
  }
  log.ok("host.state-dir", said);
}

// host.published: what the service runs for the site now.
void publishedStep(const Result<std::optional<SiteState>>& recorded,
                   const std::optional<std::string>& service_site, StepLog& log,
                   const Clock& clock) {
  log.begin();
  if (!service_site) {
    log.skipped("host.published", "not a site of the service (its file is not in sitesDir)");
    return;
  }
  if (!recorded) {
    log.warning("host.published", recorded.error().describe(),
                "the service rewrites the file at its next attempt; remove it if that fails");
    return;
  }
  if (!recorded.value()) {
    log.ok("host.published", "the service has recorded nothing for " + *service_site + " yet");
    return;
  }
  const SiteState& state = **recorded;
  std::string said = "phase " + std::string(toString(state.phase));
  if (state.published) {
    said += ", published " + state.published->image + " (" + state.published->digest + ") " +
            ageText(clock.wallNow() - state.published->at) + " ago";
  } else {
    said += ", nothing published yet";
  }
  if (state.last_error)
    said += "; last error (" + state.last_error->phase + "): " + state.last_error->message;
  log.ok("host.published", said);
}

}  // namespace

Diagnosis diagnoseSite(const DiagnoseServices& services, const SiteConfig& site,
                       const std::string& name, const std::optional<std::string>& service_site,
                       const std::stop_token& stop) {
  Diagnosis diagnosis;
  diagnosis.site = name;
  StepLog site_log(diagnosis, services.clock, "");
  const AttemptBudget budget = attemptBudget(services.agent, site);
  Context ctx{&services.clock, stop, services.clock.now() + budget.seconds};

  std::string said = std::string(toString(site.kind)) + ": ";
  for (const auto& container : site.containers)
    said += (container.is_main ? "" : ", ") + container.label() + " " + container.image.str();
  said += "; bounded by " + budget.said;
  site_log.ok("site.config", said);

  const Result<std::optional<SiteState>> recorded =
      service_site ? recordedState(services.agent, *service_site)
                   : Result<std::optional<SiteState>>(std::optional<SiteState>());
  // The images the site has published already need no room.
  std::set<std::string> published;
  if (recorded && recorded.value()) {
    for (const auto& image : publishedUnit(**recorded))
      published.insert(image.digest);
  }

  site_log.begin();
  auto route = siteRoute(services.agent, services.clock, services.system_resolver, site);
  int64_t missing = 0;
  bool sized = true;  // every container's manifest was read
  if (!route) {
    site_log.failed("site.route", route.error(),
                    "correct the site's DNS settings (dnsConfiguration, WEBSITE_DNS_SERVER) or "
                    "the agent's vnetDnsServers");
    for (const auto& container : site.containers) {
      StepLog log(diagnosis, services.clock, container.label());
      skipContainer(log, "site.route failed");
    }
    sized = false;
  } else {
    site_log.ok("site.route", route->said);
    for (const auto& container : site.containers) {
      StepLog log(diagnosis, services.clock, container.label());
      const ContainerFindings found = walkContainer(services, site, container, *route, log, ctx);
      sized = sized && found.manifest_read;
      if (found.manifest_read && !published.contains(found.manifest_digest))
        missing = std::min(missing, std::numeric_limits<int64_t>::max() - found.missing_bytes) +
                  found.missing_bytes;
    }
  }
  stateDirStep(services.agent, site_log, sized ? std::optional<int64_t>(missing) : std::nullopt);
  publishedStep(recorded, service_site, site_log, services.clock);
  return diagnosis;
}

}  // namespace pullagent::agent
