#include "agent/daemon/diagnosis_runner.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "agent/config/config_files.h"
#include "agent/diagnose/site_diagnosis.h"

namespace pullagent::agent {
namespace {

// What the service concludes of one site, as `pullagent diagnose --site` would in its place.
Diagnosis diagnoseForService(DaemonServices& services, Clock& clock, Random& random,
                             const std::string& site, const std::stop_token& stop) {
  const auto path = services.agent.sites_dir / (site + ".json");
  auto config = loadSiteConfig(path);
  if (!config)
    return configFailure(site, config.error(),
                         "correct " + path.string() + " where the error points");
  // The identity pool's token sources are shared with the pulls (tokens are cached, not
  // duplicated); the system resolver is stateless.
  DiagnoseServices lent{services.agent, clock, random, *services.identities,
                        services.system_resolver};
  return diagnoseSite(lent, config.value(), site, site, stop);
}

}  // namespace

void DiagnosisRunner::stopAll() {
  std::list<Entry> entries;
  {
    std::lock_guard lock(mutex_);
    entries.swap(entries_);
  }
  // Outside the lock: a finishing diagnosis takes it to record its report (and finds nothing).
  for (auto& entry : entries)
    entry.thread.request_stop();
  entries.clear();  // joins
}

void DiagnosisRunner::setServices(std::shared_ptr<DaemonServices> services) {
  std::lock_guard lock(mutex_);
  services_ = std::move(services);
}

std::variant<uint64_t, DiagnosisRunner::Refusal> DiagnosisRunner::start(const std::string& site) {
  std::lock_guard lock(mutex_);
  if (!services_)
    return Refusal::kStarting;
  const auto running = std::count_if(entries_.begin(), entries_.end(),
                                     [](const Entry& entry) { return !entry.done; });
  if (static_cast<size_t>(running) >= kMaxRunning)
    return Refusal::kBusy;
  forgetOldest();
  const uint64_t id = next_id_++;
  auto record = [this, id](nlohmann::json report) {
    std::lock_guard done_lock(mutex_);
    for (auto& kept : entries_) {
      if (kept.id == id) {
        kept.report = std::move(report);
        kept.done = true;
      }
    }
  };
  // Made before the entry is listed: a thread that cannot start leaves nothing behind.
  std::jthread thread([this, site, record, services = services_](std::stop_token stop) {
    // As a site's pull: whatever one diagnosis runs into ends that diagnosis, never the service.
    try {
      record(diagnoseForService(*services, clock_, random_, site, stop).toJson());
    } catch (const std::exception& error) {
      spdlog::error("the diagnosis of site {} failed unexpectedly: {}", site, error.what());
      record(configFailure(site,
                           makeError(ErrorCode::kInternal,
                                     "an unexpected failure: " + std::string(error.what())),
                           "see the service's log")
                 .toJson());
    } catch (...) {
      spdlog::error("the diagnosis of site {} failed unexpectedly", site);
      record(configFailure(site, makeError(ErrorCode::kInternal, "an unexpected failure"),
                           "see the service's log")
                 .toJson());
    }
  });
  Entry& entry = entries_.emplace_back();
  entry.id = id;
  entry.thread = std::move(thread);
  return id;
}

std::optional<nlohmann::json> DiagnosisRunner::result(uint64_t id) {
  std::lock_guard lock(mutex_);
  for (const auto& entry : entries_) {
    if (entry.id != id)
      continue;
    if (!entry.done)
      return nlohmann::json{{"done", false}};
    return nlohmann::json{{"done", true}, {"report", entry.report}};
  }
  return std::nullopt;
}

void DiagnosisRunner::forgetOldest() {
  // Only finished entries are forgotten (their threads have ended: the join is immediate).
  while (entries_.size() >= kMaxKept) {
    auto finished = std::find_if(entries_.begin(), entries_.end(),
                                 [](const Entry& entry) { return entry.done; });
    if (finished == entries_.end())
      return;
    entries_.erase(finished);
  }
}

}  // namespace pullagent::agent
