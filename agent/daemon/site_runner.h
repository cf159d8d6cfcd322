#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>

#include "agent/config/agent_config.h"
#include "agent/daemon/metrics.h"
#include "agent/daemon/site_attempt.h"
#include "agent/site/disk_admission.h"
#include "agent/site/identity_pool.h"
#include "base/clock.h"
#include "base/random.h"
#include "puller/http/http_client.h"
#include "puller/http/registry_throttle.h"
#include "puller/lazy/lazy_host.h"
#include "puller/store/content_store.h"
#include "puller/trust/verdict_cache.h"
#include "resolver/static_hosts_resolver.h"
#include "resolver/system_resolver.h"

namespace pullagent::agent {

// What the daemon's pulls share: the agent config and the identity endpoint's client and token
// sources. Rebuilt on SIGHUP; attempts already running keep the set they started with.
struct DaemonServices {
  AgentConfig agent;
  resolver::SystemResolver system_resolver;
  std::unique_ptr<resolver::StaticHostsResolver> identity_resolver;
  std::unique_ptr<puller::HttpClient> identity_http;
  std::unique_ptr<IdentityPool> identities;
  // One store for every site's pulls: a blob two sites want is fetched by one, awaited by the
  // other in-process, and never hashed twice.
  std::unique_ptr<puller::ContentStore> store;
  // Images published over layer snapshots (the agent config's `storage`, decided at load).
  bool snapshots = false;
  // Admission before each pull's first byte (the daemon's DiskKeeper owns what it knows).
  std::shared_ptr<DiskAdmission> admission;

  static Result<std::shared_ptr<DaemonServices>> create(AgentConfig agent, Clock& clock,
                                                        Random& random);
};

// The daemon's attempts: the site's config read afresh, then pullSite() with its progress fed
// to the activity and its phases to the metrics.
class SitePullRunner final : public SiteAttemptRunner {
 public:
  SitePullRunner(Clock& clock, Random& random, Metrics& metrics, bool privileged);

  ~SitePullRunner() override;
  void setServices(std::shared_ptr<DaemonServices> services);
  // The eStargz layers read in place, when the agent config turns lazy pulling on (null until
  // a pull needs it or systemd gave back mounts to serve on, or when it cannot be used).
  const puller::LazyLayerHost* lazyHost() const;
  bool needsCheckAtStart(const SiteState& published) const override;
  SiteAttemptResult run(const std::string& site, const std::filesystem::path& config,
                        SiteActivity& activity, std::stop_token stop,
                        const AttemptPlan& plan) override;

 private:
  Clock& clock_;
  Random& random_;
  Metrics& metrics_;
  const bool privileged_;
  // One registry host's "slow down" holds every site's pulls to it; kept across reloads.
  puller::RegistryThrottle throttle_;
  // What the signature policy accepted: a tag that did not move, under the same policy, is not
  // decided again (keyed by the policy's hash, so a reload with another policy decides anew).
  puller::VerdictCache verdicts_;
  std::mutex mutex_;
  std::shared_ptr<DaemonServices> services_;
  // Attempts running now: the lazy host's background fill waits while any is.
  std::atomic<int> running_{0};
  // Lazy pulling: the host and the stores it uses, made on the first pull that wants it and
  // kept across reloads (its mounts are what running containers read). Declared last: it goes
  // first, while the throttle, verdicts and clock its clients use are still there.
  // The FUSE connections of the layers an earlier process served, which systemd kept across
  // the restart (FdStore): the host is made at once to serve them on.
  std::map<std::string, UniqueFd> kept_fuse_;
  struct Lazy;
  std::unique_ptr<Lazy> lazy_;
  std::atomic<puller::LazyLayerHost*> lazy_host_{nullptr};  // lazy_'s, read without mutex_
  puller::LazyLayerHost* lazyFor(const DaemonServices& services);
  void dropKeptFuse(const char* why);  // the kept mounts cannot be served on
  void dropKeptFuseLocked(const char* why);
  // Whether this process's lazy host serves the mount of a layer read in place.
  std::function<bool(const std::filesystem::path&)> servedHere() const;
};

}  // namespace pullagent::agent
