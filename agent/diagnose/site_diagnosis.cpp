#include "agent/diagnose/site_diagnosis.h"

#include <sys/statvfs.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "agent/diagnose/container_walk.h"
#include "agent/diagnose/step_log.h"
#include "agent/site/site_pull.h"
#include "agent/site/site_route.h"
#include "agent/site/site_state.h"
#include "puller/state/disk_space.h"
#include "puller/state/unpack_ratio.h"

namespace pullagent::agent {
namespace {

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

// host.state-dir: writable, with room for what the pulls would write (compressed blobs and their
// unpacked layers, as admission predicts them).
void stateDirStep(const AgentConfig& agent, StepLog& log, int64_t compressed, bool sized) {
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
  const double ratio = puller::UnpackRatio(agent.state_dir).ratio();
  const auto needed =
      static_cast<int64_t>(std::ceil(static_cast<double>(compressed) * (1.0 + ratio)));
  std::string said = root.string() +
                     (existing == root ? "" : " (not made yet; " + existing.string() + " is)") +
                     " writable, " + bytesText(space->available) + " free";
  if (!sized) {
    log.ok("host.state-dir", said + "; the images' size is not known (no manifest was read)");
    return;
  }
  said += ", the images need up to " + bytesText(needed) + " (" + bytesText(compressed) +
          " compressed, unpacked at " + std::to_string(ratio).substr(0, 4) + "x)";
  if (space->available < needed) {
    log.failed("host.state-dir", makeError(ErrorCode::kResourceExhausted, said),
               "free " + bytesText(needed - space->available) + " on the filesystem of " +
                   root.string() + " (pullagent gc, or a larger disk), or move stateDir");
    return;
  }
  log.ok("host.state-dir", said);
}

// host.published: what the site runs now, read from its state file (never written).
void publishedStep(const AgentConfig& agent, const std::string& site_key, StepLog& log,
                   const Clock& clock) {
  log.begin();
  const auto file = agent.state_dir.sites() / (site_key + ".json");
  std::ifstream in(file);
  if (!in) {
    log.ok("host.published",
           "nothing published for " + site_key + " yet (" + file.string() + " does not exist)");
    return;
  }
  std::stringstream text;
  text << in.rdbuf();
  auto state = parseSiteState(text.str());
  if (!state) {
    log.failed("host.published", state.error().context(file.string()),
               "the service rewrites the file at its next attempt; remove it if it persists");
    return;
  }
  std::string said = "phase " + std::string(toString(state->phase));
  if (state->published) {
    said += ", published " + state->published->image + " (" + state->published->digest + ") " +
            ageText(clock.wallNow() - state->published->at) + " ago";
  } else {
    said += ", nothing published yet";
  }
  if (state->last_error)
    said += "; last error (" + state->last_error->phase + "): " + state->last_error->message;
  log.ok("host.published", said);
}

}  // namespace

Diagnosis diagnoseSite(const DiagnoseServices& services, const SiteConfig& site,
                       const std::string& site_key, const std::stop_token& stop) {
  Diagnosis diagnosis;
  diagnosis.site = site_key;
  StepLog site_log(diagnosis, services.clock, "");
  const AttemptBudget budget = attemptBudget(services.agent, site);
  Context ctx{&services.clock, stop, services.clock.now() + budget.seconds};

  std::string said = std::string(toString(site.kind)) + ": ";
  for (const auto& container : site.containers)
    said += (container.is_main ? "" : ", ") + container.label() + " " + container.image.str();
  said += "; bounded by " + budget.said;
  site_log.ok("site.config", said);

  site_log.begin();
  auto route = siteRoute(services.agent, services.clock, services.system_resolver, site);
  if (!route) {
    site_log.failed("site.route", route.error(),
                    "correct the site's DNS settings (dnsConfiguration, WEBSITE_DNS_SERVER) or "
                    "the agent's vnetDnsServers");
    return diagnosis;
  }
  site_log.ok("site.route", route->said);

  int64_t compressed = 0;
  bool sized = true;
  for (const auto& container : site.containers) {
    StepLog log(diagnosis, services.clock, container.label());
    ContainerFindings found = walkContainer(services, site, container, *route, log, ctx);
    compressed += found.compressed_bytes;
    sized = sized && found.manifest_read;
  }
  stateDirStep(services.agent, site_log, compressed, sized);
  publishedStep(services.agent, site_key, site_log, services.clock);
  return diagnosis;
}

}  // namespace pullagent::agent
