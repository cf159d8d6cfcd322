#include "agent/daemon/daemon.h"

#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <iostream>

#include "agent/common/args.h"
#include "agent/common/exit_codes.h"
#include "agent/common/log_options.h"
#include "agent/common/progress.h"
#include "agent/config/config_files.h"
#include "agent/daemon/control_server.h"
#include "agent/daemon/disk_keeper.h"
#include "agent/daemon/metrics.h"
#include "agent/daemon/metrics_server.h"
#include "agent/daemon/reconciler.h"
#include "agent/daemon/refresh_broker.h"
#include "agent/daemon/site_runner.h"
#include "agent/daemon/sites_directory.h"
#include "agent/daemon/systemd_notifier.h"
#include "agent/daemon/warm_images.h"
#include "agent/daemon/webhook_server.h"
#include "agent/site/storage_choice.h"
#include "puller/state/state_lock.h"

namespace pullagent::agent {
namespace {

using std::chrono::steady_clock;

constexpr const char* kUsage = R"(usage: pullagent [--config AGENT.json] [--log-format FMT]

Runs the agent as a service: watches the agent config's sitesDir (one SITE.json per site, the
site's ARM or `az webapp show` JSON) and keeps each site's image pulled and published under
stateDir. SIGHUP reloads the agent config; SIGTERM stops, keeping partial downloads to resume.
  --config FILE      agent config (default /etc/pullagent/agent.json; defaults if it is absent)
  --log-level LEVEL  trace, debug, info (default), warn, error
  --log-format FMT   journal (default under systemd), text or json
)";

// Files that change in bursts (an editor, a deployment writing several sites) settle first.
constexpr auto kDebounce = std::chrono::milliseconds(200);
constexpr auto kStatusInterval = std::chrono::seconds(1);
// The longest new site attempts wait for the disk keeper's turn between pulls.
constexpr auto kMaxHold = std::chrono::seconds(60);

ReconcilerOptions reconcilerOptions(const AgentConfig& agent) {
  return {agent.max_concurrent_pulls,
          agent.pull_slot,
          agent.max_running_pulls,
          agent.retry_initial_backoff,
          agent.retry_max_backoff,
          agent.site_removal_grace,
          agent.tag_poll_interval,
          agent.refresh_on_start,
          agent.pull_slot_idle,
          agent.keep_previous_images,
          agent.signature_policy != nullptr};
}

std::string monotonicUsec() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return std::to_string(static_cast<long long>(now.tv_sec) * 1000000 + now.tv_nsec / 1000);
}

void drainEventFd(int fd) {
  uint64_t count = 0;
  while (::read(fd, &count, sizeof count) > 0) {
  }
}

class Daemon {
 public:
  Daemon(const ProcessEnvironment& env, const std::map<std::string, std::string>& environment,
         std::optional<std::string> config_path)
      : env_(env),
        environment_(environment),
        config_path_(std::move(config_path)),
        notifier_(SystemdNotifier::fromProcess()),
        wake_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)),
        runner_(clock_, random_, metrics_, env.privileged) {}

  int run();

 private:
  Status configure(AgentConfig agent);
  void reload();
  void wake() {
    uint64_t one = 1;
    if (::write(wake_.get(), &one, sizeof one) < 0) {
      // Only fails when the counter is saturated, which also wakes the loop.
    }
  }
  void rescan();
  // Between pulls: garbage collection when something became collectable, and the disk check
  // (eviction above the high watermark or for a pull waiting for space) when due.
  void housekeep();
  void reportStatus(bool force);
  void learnWebhookKeys(const std::map<std::string, SiteFile>& sites);

  const ProcessEnvironment& env_;
  const std::map<std::string, std::string>& environment_;
  std::optional<std::string> config_path_;
  SystemClock clock_;
  SystemRandom random_;
  Metrics metrics_;
  SystemdNotifier notifier_;
  UniqueFd wake_;
  SitePullRunner runner_;
  DiskKeeper disk_{metrics_};
  WarmImages warm_{clock_, random_, metrics_, env_.privileged, [this] { wake(); }};
  AgentConfig agent_;
  std::unique_ptr<SiteStateStore> store_;
  // Before the reconciler: refreshes it has not answered yet point at it.
  RefreshBroker refreshes_{[this] { wake(); }};
  // The sites' own webhook keys, kept by the reconciler, read by the webhook server.
  SiteWebhookKeys site_webhooks_;
  std::map<std::string, std::string> webhook_key_files_;  // the file hash each key was read from
  std::unique_ptr<Reconciler> reconciler_;
  std::unique_ptr<MetricsServer> metrics_server_;
  // `pullagent diagnose SITE` in the service; before the control server, which points at it.
  DiagnosisRunner diagnoses_{clock_, random_};
  std::unique_ptr<ControlServer> control_server_;
  std::unique_ptr<WebhookServer> webhook_server_;
  SitesWatcher watcher_;
  std::string last_status_;
  std::string sites_dir_error_;  // why the last scan failed; empty while it reads
  bool collect_pending_ = false;
  // Since when new site attempts wait for the disk keeper's turn.
  std::optional<steady_clock::time_point> held_since_;
};

Status Daemon::configure(AgentConfig agent) {
  bool fresh_reconciler = false;  // made by this call: no site of it was checked yet
  ASSIGN_OR_RETURN(auto services, DaemonServices::create(agent, clock_, random_));
  ASSIGN_OR_RETURN(services->snapshots,
                   chooseSnapshots(agent.storage, agent.state_dir, env_.privileged));
  if (agent.metrics_address != agent_.metrics_address || !metrics_server_) {
    // The new endpoint first: if it cannot listen, the old one keeps serving.
    std::unique_ptr<MetricsServer> server;
    if (agent.metrics_address) {
      auto started =
          MetricsServer::start(*agent.metrics_address, [this] { return metrics_.render(); });
      if (!started)
        return started.error();
      server = std::move(started.value());
      spdlog::info("metrics at http://{}/metrics", server->address());
    }
    metrics_server_ = std::move(server);
  }
  if (agent.control_socket != agent_.control_socket || !control_server_) {
    // As with the metrics: the new socket first, the old one kept if it cannot listen.
    ASSIGN_OR_RETURN(auto control,
                     ControlServer::start(agent.control_socket.string(), refreshes_, diagnoses_));
    spdlog::info("control socket at {}", control->address());
    control_server_ = std::move(control);
  }
  if (agent.webhook_address != agent_.webhook_address ||
      agent.webhook_secret != agent_.webhook_secret) {
    std::unique_ptr<WebhookServer> server;
    if (agent.webhook_address) {
      ASSIGN_OR_RETURN(server, WebhookServer::start(*agent.webhook_address, *agent.webhook_secret,
                                                    refreshes_, site_webhooks_));
      spdlog::info("registry webhooks at http://{}/v1/webhooks/{{acr,dockerhub}}, sites' own at {}",
                   server->address(), kSiteWebhookPath);
    }
    webhook_server_ = std::move(server);
  }
  if (!store_ || agent.state_dir != agent_.state_dir) {
    // A new state dir means new site states: stop the pulls into the old one, then start from
    // what the new one records.
    reconciler_.reset();
    store_ = std::make_unique<SiteStateStore>(agent.state_dir);
    reconciler_ = std::make_unique<Reconciler>(
        runner_, clock_, random_, *store_, metrics_, [this] { wake(); }, reconcilerOptions(agent));
    fresh_reconciler = true;
    reconciler_->setWebhookKeys(&site_webhooks_);
  }
  reconciler_->setOptions(reconcilerOptions(agent));
  // Every (re)load arms the watcher afresh: SIGHUP mends a watch on a directory that was
  // replaced in a way inotify could not follow.
  watcher_ = SitesWatcher::create(agent.sites_dir);
  // Last, once nothing can fail: the disk keeper and the warm images follow the state dir the
  // sites and the lock are on.
  services->admission = disk_.configure(agent);
  warm_.configure(services);
  diagnoses_.setServices(services);
  runner_.setServices(std::move(services));
  // Every published image is checked under a policy the reconciler has not seen: at start (a
  // policy added or changed while the service was down), after a reload that changed the file
  // or a key (another hash), and on a new state dir.
  const auto policyHash = [](const AgentConfig& config) {
    return config.signature_policy ? config.signature_policy->hash().str() : std::string();
  };
  if (agent.signature_policy && (fresh_reconciler || policyHash(agent) != policyHash(agent_))) {
    spdlog::info("signature policy {}: every published site's image is checked against it",
                 agent.signature_policy->document());
    reconciler_->recheckPublished();
  }
  agent_ = std::move(agent);
  return {};
}

void Daemon::reload() {
  notifier_.notify("RELOADING=1\nMONOTONIC_USEC=" + monotonicUsec() +
                   "\nSTATUS=reloading the agent config");
  auto agent = loadAgentConfig(config_path_, environment_);
  Status status = agent ? configure(std::move(agent.value())) : Status{agent.error()};
  if (status)
    spdlog::info("agent config reloaded");
  else
    spdlog::error("agent config not reloaded, keeping the previous one: {}",
                  status.error().describe());
  notifier_.notify("READY=1");
  rescan();
  reportStatus(true);
}

void Daemon::rescan() {
  auto sites = scanSites(agent_.sites_dir);
  if (!sites) {
    // Never "no sites": every site stays as last seen (published images kept, nothing
    // removed) until the directory reads again.
    const std::string error = sites.error().describe();
    if (error != sites_dir_error_)
      spdlog::error("sites directory unreadable, keeping every site as last seen: {}", error);
    sites_dir_error_ = error;
    reconciler_->setSitesDirectoryError(error);
    metrics_.setSitesDirectoryHealthy(false);
    return;
  }
  if (!sites_dir_error_.empty())
    spdlog::info("sites directory readable again");
  sites_dir_error_.clear();
  reconciler_->setSitesDirectoryError("");
  metrics_.setSitesDirectoryHealthy(true);
  reconciler_->update(sites.value());
  learnWebhookKeys(sites.value());
}

void Daemon::learnWebhookKeys(const std::map<std::string, SiteFile>& sites) {
  // From the config as it now reads (a new or changed file, the first scan): a site's own
  // webhook works from the start, and a rotated password stops working at once.
  for (const auto& [name, file] : sites) {
    auto known = webhook_key_files_.find(name);
    if (known != webhook_key_files_.end() && known->second == file.sha256)
      continue;
    webhook_key_files_[name] = file.sha256;
    auto site = loadSiteConfig(file.path);
    std::optional<SiteWebhookKeys::Key> key;
    if (site && site->publishing) {
      key = SiteWebhookKeys::keyOf(site->publishing->user,
                                   site->publishing->password.revealForWire());
    }
    site_webhooks_.set(name, key);
  }
}

void Daemon::housekeep() {
  const bool published = reconciler_->takePublished();
  if (reconciler_->takeCollectable() || (agent_.discard_unpacked_layers && published))
    collect_pending_ = true;
  auto held = reconciler_->heldImages();
  for (auto& image : warm_.held())
    held.push_back(std::move(image));
  disk_.noteUse(held, clock_.wallNow());
  const auto now = steady_clock::now();
  const bool check_due = disk_.due(now) || published;
  // Only between pulls (a pull holds the state lock shared, and the loop must not wait), and
  // only while the sites directory reads: what it says is what gc keeps.
  if ((!collect_pending_ && !check_due) || reconciler_->running() != 0 || warm_.running() ||
      !sites_dir_error_.empty()) {
    return;
  }
  auto lock = puller::StateLock::tryAcquire(agent_.state_dir, puller::StateLock::Mode::kExclusive);
  if (!lock)
    return;  // a `pullagent pull`/`--once` run holds it; next turn
  const bool collect = std::exchange(collect_pending_, false);
  if (disk_.housekeep(held, collect, now)) {
    reconciler_->spaceMade();
    wake();  // their attempts start at the next turn
  }
}

void Daemon::reportStatus(bool force) {
  reconciler_->refreshProgress();
  std::string status = reconciler_->statusLine();
  if (const auto* lazy = runner_.lazyHost(); lazy != nullptr) {
    const auto totals = lazy->totals();
    metrics_.lazyPulling(totals);
    if (totals.layers > 0 && totals.bytes > 0) {
      status += ", " + std::to_string(totals.layers) + " layers read in place (" +
                std::to_string(totals.bytes_held * 100 / totals.bytes) + " % fetched)";
    }
  }
  if (status != last_status_ || force) {
    notifier_.notify("STATUS=" + status);
    last_status_ = status;
  }
}

int Daemon::run() {
  auto agent = loadAgentConfig(config_path_, environment_);
  if (!agent) {
    spdlog::error("cannot start: {}", agent.error().describe());
    return kExitUsage;
  }
  if (auto status = configure(std::move(agent.value())); !status) {
    spdlog::error("cannot start: {}", status.error().describe());
    return exitCodeFor(status.error());
  }
  std::stop_callback wake_on_stop(env_.stop, [this] { wake(); });
  rescan();
  housekeep();  // what admission knows, before the first pull asks it
  reconciler_->step();
  spdlog::info("pullagent ready: sites in {}, state in {}", agent_.sites_dir.string(),
               agent_.state_dir.root().string());
  notifier_.notify("READY=1\nSTATUS=" + reconciler_->statusLine());

  const auto watchdog = notifier_.watchdogInterval();
  auto next_watchdog = steady_clock::now();
  auto next_rescan = steady_clock::now() + agent_.rescan_interval;
  auto next_status = steady_clock::now() + kStatusInterval;
  constexpr auto kNever = steady_clock::time_point::max();
  auto debounce_until = kNever;  // a burst of inotify events settles until then
  auto next_retry = kNever;
  while (!env_.stop.stop_requested()) {
    auto now = steady_clock::now();
    if (watchdog && now >= next_watchdog) {
      notifier_.notify("WATCHDOG=1");
      next_watchdog = now + *watchdog / 2;
    }
    auto deadline = std::min({next_rescan, next_status, debounce_until, next_retry});
    if (watchdog)
      deadline = std::min(deadline, next_watchdog);
    const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
    pollfd fds[3] = {
        {wake_.get(), POLLIN, 0}, {watcher_.fd(), POLLIN, 0}, {env_.reload_fd, POLLIN, 0}};
    ::poll(fds, 3, static_cast<int>(std::clamp<int64_t>(wait.count() + 1, 0, 60000)));
    if (env_.stop.stop_requested())
      break;
    drainEventFd(wake_.get());
    now = steady_clock::now();
    if (env_.reload_fd >= 0 && (fds[2].revents & POLLIN) != 0) {
      drainEventFd(env_.reload_fd);
      reload();
      next_rescan = now + agent_.rescan_interval;
    }
    if ((fds[1].revents & POLLIN) != 0 && watcher_.drain() && debounce_until == kNever)
      debounce_until = now + kDebounce;
    if (now >= debounce_until || now >= next_rescan) {
      rescan();
      debounce_until = kNever;
      next_rescan = now + agent_.rescan_interval;
    }
    for (const auto& request : refreshes_.take())
      reconciler_->refresh(request, refreshes_);
    // Above the high watermark, eviction needs a turn with no pull running: new attempts wait
    // for it (else a busy host would never get below the mark).
    // Held only while the turn can come (the sites directory reads; gc's lock is not held by a
    // command for long): never more than kMaxHold in a row.
    const bool hold = disk_.needsTurn(now) && sites_dir_error_.empty();
    if (!hold)
      held_since_.reset();
    else if (!held_since_)
      held_since_ = now;
    reconciler_->holdStarts(hold && now - *held_since_ < kMaxHold);
    next_retry = reconciler_->step().value_or(kNever);
    housekeep();
    const bool warm_gives_way = reconciler_->sitesBusy() || disk_.needsTurn(now);
    next_retry = std::min(next_retry, warm_.step(warm_gives_way).value_or(kNever));
    // Come back for the next disk check (one held back by running pulls comes with the status
    // line's turn, or when they end).
    if (disk_.nextCheck() > steady_clock::now())
      next_retry = std::min(next_retry, disk_.nextCheck());
    if (now >= next_status || reconciler_->running() == 0) {
      reportStatus(false);
      next_status = now + kStatusInterval;
    }
  }
  spdlog::info("stopping: cancelling {} pulls (partial downloads are kept)",
               reconciler_->running());
  notifier_.notify("STOPPING=1\nSTATUS=stopping");
  reconciler_->stopAll();
  warm_.stop();
  webhook_server_.reset();
  control_server_.reset();
  diagnoses_.stopAll();
  metrics_server_.reset();
  spdlog::info("stopped");
  return kExitOk;
}

}  // namespace

int runDaemon(const std::vector<std::string>& argv, const ProcessEnvironment& env,
              const std::map<std::string, std::string>& environment) {
  auto parsed = parseArgs(argv, {"config", "log-level", "log-format"}, {"help"});
  if (parsed && parsed->flag("help")) {
    std::cout << kUsage;  // asked for: on stdout, as every command's --help
    return kExitOk;
  }
  if (!parsed || !parsed->positionals.empty()) {
    if (!parsed)
      std::cerr << "pullagent: " << parsed.error().message << "\n";
    std::cerr << kUsage;
    return kExitUsage;
  }
  if (auto logging = initLoggingFromArgs(parsed.value(), env); !logging) {
    std::cerr << "pullagent: " << logging.error().message << "\n" << kUsage;
    return kExitUsage;
  }
  Daemon daemon(env, environment, parsed->option("config"));
  return daemon.run();
}

}  // namespace pullagent::agent
