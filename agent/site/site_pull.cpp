#include "agent/site/site_pull.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "agent/common/progress.h"
#include "agent/site/registry_credentials.h"
#include "agent/site/site_route.h"

namespace pullagent::agent {
namespace {

class PhaseTimer {
 public:
  PhaseTimer(const Clock& clock, SitePullEvents& events)
      : clock_(clock), events_(events), start_(clock.now()) {}
  void done(const std::string& phase, const std::string& what) {
    auto now = clock_.now();
    events_.phaseDone(phase, std::chrono::duration_cast<std::chrono::milliseconds>(now - start_),
                      what);
    start_ = now;
  }
  Error failed(const std::string& phase, Error error) {
    events_.phaseFailed(phase, error);
    return error;
  }

 private:
  const Clock& clock_;
  SitePullEvents& events_;
  std::chrono::steady_clock::time_point start_;
};

// Serialises the events of a site's concurrent container pulls, naming the container in what
// they say when the site has several.
class ContainerEvents final : public SitePullEvents {
 public:
  ContainerEvents(SitePullEvents& inner, std::mutex& mutex, std::string prefix)
      : inner_(inner), mutex_(mutex), prefix_(std::move(prefix)) {}
  void phaseDone(const std::string& phase, std::chrono::milliseconds took,
                 const std::string& what) override {
    std::lock_guard lock(mutex_);
    inner_.phaseDone(phase, took, prefix_ + what);
  }
  void phaseFailed(const std::string& phase, const Error& error) override {
    std::lock_guard lock(mutex_);
    inner_.phaseFailed(phase, error);
  }
  puller::PullObserver* observerFor(const SiteContainer& container) override {
    std::lock_guard lock(mutex_);
    return inner_.observerFor(container);
  }

 private:
  SitePullEvents& inner_;
  std::mutex& mutex_;
  std::string prefix_;
};

// A password the registry refused that came from Key Vault: name the reference (never the value)
// and what to change.
std::string keyVaultHint(const SiteContainer& container) {
  if (!container.registry_password || !container.registry_password->key_vault)
    return "";
  const KeyVaultReference& ref = *container.registry_password->key_vault;
  std::string hint = "; the registry refused the password from the Key Vault reference " +
                     ref.vault_url + " secret " + ref.secret_name;
  if (ref.version) {
    hint += " version " + *ref.version + " (" + container.password_source +
            "): the reference pins that version; update the reference or remove the version "
            "so that it follows the secret's latest value";
  } else {
    hint += " (" + container.password_source +
            ", latest version): update the secret in the vault to the registry's password";
  }
  return hint;
}

// One container's identity, secrets and pull, within the site's attempt.
Result<puller::PullOutcome> pullContainer(const SitePullServices& services, const SiteConfig& site,
                                          const SiteContainer& container, const SiteRoute& route,
                                          const ProcessEnvironment& env, SitePullEvents& events,
                                          std::chrono::steady_clock::time_point deadline,
                                          std::optional<puller::Digest> pin, bool terminal,
                                          puller::PullObserver* watch) {
  const AgentConfig& agent = services.agent;
  PhaseTimer phases(services.clock, events);
  Context ctx{&services.clock, env.stop, deadline};
  const std::string who =
      site.containers.size() > 1 || !container.name.empty()
          ? "container " + container.label() + " (" + container.image.str() + ")"
          : "";
  auto failed = [&](const std::string& phase, Error error) {
    // Past the attempt's deadline, in any phase: say which budget ended it.
    if (error.code == ErrorCode::kTimeout && services.clock.now() >= deadline)
      error.message += " (the attempt's deadline: " + attemptBudget(agent, site).said + ")";
    return phases.failed(phase, who.empty() ? error : error.context(who));
  };
  puller::PullRequest job;
  job.ref = container.image;
  job.options.concurrency = agent.concurrency;
  job.retries = agent.retries;
  job.ranges.connections = agent.range_concurrency;
  job.ranges.min_part = int64_t{agent.range_part_mib} << 20;
  job.state = agent.state_dir;
  job.stop = env.stop;
  job.privileged = env.privileged;
  job.snapshots = env.snapshots;
  job.hosts_dir = agent.registry_hosts_dir;
  job.allow_skip_verify = agent.allow_skip_verify;
  job.http_options = route.http_options;
  job.runtime.seccomp_profile = agent.seccomp_profile;
  job.unless_tag_resolves_to = std::move(pin);
  job.options.resolve_at = container.resolve_at;
  job.shared_blob_proof = agent.shared_blob_proof == "fetch" ? puller::SharedBlobProof::kFetch
                                                             : puller::SharedBlobProof::kHead;
  job.additional_stores = agent.additional_stores;
  job.signature_policy = agent.signature_policy;
  job.lazy = services.lazy;
  job.lazy_keep = services.lazy_keep;
  bool refused_by_policy = false;
  job.refused_by_signature_policy = &refused_by_policy;

  if (container.auth == RegistryAuth::kManagedIdentity) {
    auto& identity = services.identities.identity(container.identity_client_id);
    // Fetched up front so that identity problems are reported as such, not as pull failures.
    auto token = identity.token(agent.acr_audience, ctx);
    if (!token)
      return failed("identity", token.error());
    phases.done("identity", "token for the " + identity.identityName());
    job.credentials.aad = &identity;
    job.credentials.aad_resource = agent.acr_audience;
  } else if (container.auth == RegistryAuth::kBasic) {
    auto credentials =
        resolveBasicCredentials(services.identities, site, container, *route.http, ctx);
    if (!credentials)
      return failed("secrets", credentials.error());
    job.credentials.username = credentials->username;
    job.credentials.password = credentials->password;
    std::string resolved;
    for (const auto& read : credentials->read_from_key_vault)
      resolved += (resolved.empty() ? "" : ", ") + read.setting;
    phases.done("secrets", resolved.empty()
                               ? (container.name.empty() || site.kind != SiteKind::kSiteContainers
                                      ? "app settings"
                                      : "userName and passwordSecret")
                               : "from Key Vault: " + resolved);
  }

  bool not_admitted = false;
  // What admission reserved for this pull, given back when it ends (its bytes are on disk
  // then, or not at all).
  struct Reservation {
    DiskAdmission* admission = nullptr;
    int64_t bytes = 0;
    ~Reservation() {
      if (admission != nullptr && bytes > 0)
        admission->release(bytes);
    }
  } reservation{services.admission};
  if (services.admission != nullptr) {
    job.options.admit = [&](const puller::PullDemand& demand) -> Status {
      auto admitted = services.admission->admit(demand, services.low_priority);
      not_admitted = !admitted.ok();
      if (!admitted)
        return admitted.error();
      reservation.bytes = *admitted;
      return {};
    };
  }
  job.deadline = std::chrono::ceil<std::chrono::seconds>(deadline - services.clock.now());
  PullProgress progress(services.clock, terminal);
  job.observers.push_back(&progress);
  if (auto* observer = events.observerFor(container))
    job.observers.push_back(observer);
  if (watch != nullptr)
    job.observers.push_back(watch);
  puller::PullServices lent(*route.http, services.clock, services.random,
                            {services.store, services.throttle, services.tally, services.verdicts});
  auto outcome = puller::runPull(job, lent);
  if (!outcome) {
    Error error = outcome.error();
    // The seed's pitfall: a registry reachable only through its private endpoint refuses the
    // public route with 403 DENIED "... is not allowed access".
    if (!site.pull_over_vnet && error.code == ErrorCode::kPermissionDenied &&
        error.message.find("not allowed access") != std::string::npos) {
      error.message +=
          "; if the registry is only reachable through the VNet, enable "
          "vnetImagePullEnabled on the site (outboundVnetRouting.imagePullTraffic in newer "
          "API versions)";
    } else if (error.code == ErrorCode::kUnauthenticated) {
      error.message += keyVaultHint(container);
    }
    return failed(not_admitted ? kDiskPhase : refused_by_policy ? "signature" : "pull", error);
  }
  if (outcome->unchanged) {
    phases.done("pull", "unchanged: the tag still points at what was pulled");
  } else {
    phases.done("pull", std::to_string(outcome->image.layers.size()) + " layers, " +
                            std::to_string(outcome->image.blobs_downloaded) + " blobs downloaded");
  }
  return outcome;
}

// A container pulled on after a sibling failed, for the route its pull lends to the layers read
// in place of its repository (pullSite): once its registry answered for the manifest (the route
// lent, LendRouteOnManifest being called first), the rest of its pull serves no one (the
// attempt has failed) and would hold the attempt, its pull slot and the host's fill.
class StopOnceLent final : public puller::PullObserver {
 public:
  explicit StopOnceLent(const std::atomic<bool>& sibling_failed)
      : sibling_failed_(sibling_failed) {}
  void onManifest(const puller::Descriptor& /*manifest*/,
                  const std::vector<puller::Descriptor>& /*layers*/) override {
    lent_ = true;
    if (sibling_failed_)
      stop_.request_stop();
  }
  // Called once sibling_failed is set: stops the pull if it has lent already. Together with
  // onManifest (both sides write, then read the other's flag) one of them stops it.
  void siblingFailed() {
    if (lent_)
      stop_.request_stop();
  }
  bool lent() const { return lent_; }
  std::stop_source& stop() { return stop_; }

 private:
  const std::atomic<bool>& sibling_failed_;
  std::atomic<bool> lent_{false};
  std::stop_source stop_;
};

}  // namespace

AttemptBudget attemptBudget(const AgentConfig& agent, const SiteConfig& site) {
  if (site.start_time_limit && *site.start_time_limit < agent.attempt_deadline) {
    return {*site.start_time_limit, "WEBSITES_CONTAINER_START_TIME_LIMIT = " +
                                        std::to_string(site.start_time_limit->count()) + " s"};
  }
  return {agent.attempt_deadline,
          "attemptDeadlineSeconds = " + std::to_string(agent.attempt_deadline.count()) + " s"};
}

void SitePullEvents::routeChosen(const std::string& route) {
  spdlog::info("the pull's hosts are resolved by the {}", route);
}

std::string describeAuth(const SiteContainer& container) {
  switch (container.auth) {
    case RegistryAuth::kManagedIdentity:
      return container.identity_client_id.empty()
                 ? "system-assigned managed identity"
                 : "user-assigned managed identity " + container.identity_client_id;
    case RegistryAuth::kBasic:
      return container.name.empty() ? "registry credentials from app settings"
                                    : "registry credentials (" + container.password_source + ")";
    case RegistryAuth::kAnonymous:
      break;
  }
  return "anonymous";
}

bool SitePullOutcome::unchanged() const {
  return std::all_of(containers.begin(), containers.end(),
                     [](const auto& entry) { return entry.second.unchanged; });
}

Result<SitePullOutcome> pullSite(const SitePullServices& services, const SiteConfig& site,
                                 const ProcessEnvironment& env, SitePullEvents& events,
                                 const TagPins& pins) {
  PhaseTimer phases(services.clock, events);
  auto route = siteRoute(services.agent, services.clock, services.system_resolver, site);
  if (!route)
    return phases.failed("config", route.error());
  events.routeChosen(route->said);
  // Shared: lazy pulling keeps the route (its resolver and HTTP client) after the attempt, for
  // the layers it reads in place.
  const auto shared_route = std::make_shared<SiteRoute>(std::move(route.value()));
  SitePullServices container_services = services;
  if (services.lazy != nullptr) {
    container_services.lazy_keep =
        std::make_shared<std::pair<std::shared_ptr<SiteRoute>, std::shared_ptr<const void>>>(
            shared_route, services.lazy_keep);
  }
  for (const auto& note : site.notes)
    spdlog::info("{}", note);
  // The whole attempt (identity, secrets, pull, unpack, publish) has one deadline, so that no
  // registry or identity endpoint can hold a site, or a pull slot, for ever.
  const auto deadline = services.clock.now() + attemptBudget(services.agent, site).seconds;
  const size_t count = site.containers.size();
  std::vector<std::optional<Result<puller::PullOutcome>>> outcomes(count);
  std::mutex events_mutex;
  // The first container to fail stops its siblings: the site cannot start without it, and they
  // would hold the attempt (and a pull slot) to its deadline. Their partial downloads stay for
  // the retry. A stop of the whole attempt (SIGTERM, the site removed) reaches them too.
  // Except a container whose layers, served on from an earlier process, wait for the route only
  // a pull of its repository lends (at its manifest): its running container reads them now, and
  // a broken sidecar must not leave those reads without a registry until an attempt gets that
  // far. Such a container pulls on until it has lent that route (StopOnceLent).
  std::stop_source siblings;
  std::atomic<bool> sibling_failed{false};
  std::vector<std::unique_ptr<StopOnceLent>> lenders(count);
  for (size_t i = 0; i < count && count > 1 && services.lazy != nullptr; ++i) {
    const auto& image = site.containers[i].image;
    if (services.lazy->awaitsRoute({image.domain, image.repository}))
      lenders[i] = std::make_unique<StopOnceLent>(sibling_failed);
  }
  std::stop_callback forward_stop(env.stop, [&] {
    siblings.request_stop();
    for (auto& lender : lenders) {
      if (lender)
        lender->stop().request_stop();
    }
  });
  std::optional<size_t> first_failure;
  {
    // Every container at once: they share the store's blobs and snapshots, and the site is ready
    // when the slowest is.
    std::vector<std::jthread> pulls;
    for (size_t i = 0; i < count; ++i) {
      const SiteContainer& container = site.containers[i];
      std::optional<puller::Digest> pin;
      if (auto it = pins.find(container.label()); it != pins.end())
        pin = it->second;
      ProcessEnvironment container_env = env;
      container_env.stop = lenders[i] ? lenders[i]->stop().get_token() : siblings.get_token();
      pulls.emplace_back([&, i, pin, container_env] {
        ContainerEvents container_events(events, events_mutex,
                                         count > 1 ? site.containers[i].label() + ": " : "");
        outcomes[i] = pullContainer(container_services, site, site.containers[i], *shared_route,
                                    container_env, container_events, deadline, pin,
                                    count == 1 && env.stderr_is_terminal, lenders[i].get());
        std::lock_guard lock(events_mutex);
        if (!outcomes[i]->ok() && !first_failure && !env.stop.stop_requested()) {
          first_failure = i;
          if (count > 1) {
            spdlog::warn("{} failed: stopping the site's other containers",
                         site.containers[i].label());
          }
          siblings.request_stop();
          sibling_failed = true;
          for (size_t j = 0; j < count; ++j) {
            if (!lenders[j] || j == i)
              continue;
            lenders[j]->siblingFailed();
            if (!lenders[j]->lent()) {
              spdlog::info(
                  "{} pulls on until its registry answers for the manifest: its layers read in "
                  "place wait for the route it lends",
                  site.containers[j].label());
            }
          }
        }
        events.containerDone(site.containers[i], *outcomes[i]);
      });
    }
  }
  SitePullOutcome result;
  if (first_failure) {
    // The container whose failure stopped the others decides the error; the others' are logged.
    for (size_t j = 0; j < count; ++j) {
      if (j != *first_failure && !outcomes[j]->ok())
        spdlog::warn("also stopped or failed: {}", outcomes[j]->error().describe());
    }
    return outcomes[*first_failure]->error();
  }
  for (size_t i = 0; i < count; ++i) {
    // The first failing container in the site's order decides the error; the others' are logged.
    if (!outcomes[i]->ok()) {
      for (size_t j = i + 1; j < count; ++j) {
        if (!outcomes[j]->ok())
          spdlog::warn("also failed: {}", outcomes[j]->error().describe());
      }
      return outcomes[i]->error();
    }
    result.containers.emplace_back(site.containers[i], std::move(outcomes[i]->value()));
  }
  return result;
}

}  // namespace pullagent::agent
