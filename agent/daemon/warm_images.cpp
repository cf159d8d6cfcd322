#include "agent/daemon/warm_images.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "agent/site/site_pull.h"
#include "base/bounded_read.h"
#include "puller/state/published_image.h"
#include "puller/state/state_dir.h"

namespace pullagent::agent {
namespace {

constexpr size_t kMaxPasswordFileBytes = 4096;

// Logs a warm pull's phases as the journal's other lines do.
class WarmEvents final : public SitePullEvents {
 public:
  explicit WarmEvents(std::string image) : image_(std::move(image)) {}
  void phaseDone(const std::string& phase, std::chrono::milliseconds took,
                 const std::string& what) override {
    spdlog::info("warm image {}: {} done in {} ms: {}", image_, phase, took.count(), what);
  }
  void phaseFailed(const std::string&, const Error&) override {}
  void routeChosen(const std::string&) override {}

 private:
  std::string image_;
};

// The one-container site a warm image is pulled as: its reference and its credentials.
Result<SiteConfig> warmSite(const WarmImageConfig& image) {
  SiteContainer container;
  container.image = image.ref;
  switch (image.auth) {
    case WarmImageConfig::Auth::kAnonymous:
      break;
    case WarmImageConfig::Auth::kManagedIdentity:
      container.auth = RegistryAuth::kManagedIdentity;
      container.identity_client_id = image.identity_client_id;
      break;
    case WarmImageConfig::Auth::kBasic: {
      // Read at each pull: a rotated password is picked up without a reload.
      auto password = readRegularFile(image.password_file, kMaxPasswordFileBytes, Links::kFollow);
      if (!password)
        return password.error().context("warm image " + image.ref.str() + ": passwordFile");
      std::string text = std::move(password.value());
      while (!text.empty() && (text.back() == '\n' || text.back() == '\r'))
        text.pop_back();
      container.auth = RegistryAuth::kBasic;
      container.registry_username = SettingValue{Secret(image.username), std::nullopt};
      container.registry_password = SettingValue{Secret(std::move(text)), std::nullopt};
      container.password_source = "warmImages passwordFile " + image.password_file.string();
      break;
    }
  }
  SiteConfig site;
  site.name = "warm";
  site.linux_fx_version = "DOCKER|" + image.ref.str();
  site.containers.push_back(std::move(container));
  return site;
}

}  // namespace

void WarmImages::configure(std::shared_ptr<DaemonServices> services) {
  const bool new_state = !services_ || services->agent.state_dir != services_->agent.state_dir;
  services_ = std::move(services);
  if (new_state) {
    stop();
    records_ = readWarmRecords(services_->agent.state_dir);
    due_.clear();
  }
  const auto& images = services_->agent.warm_images;
  if (pull_ && std::none_of(images.begin(), images.end(), [&](const WarmImageConfig& image) {
        return image.ref.str() == pull_->image;
      })) {
    stop();
  }
  pruneRecords();
}

void WarmImages::pruneRecords() {
  const auto& images = services_->agent.warm_images;
  const size_t before = records_.size();
  std::erase_if(records_, [&](const auto& entry) {
    return std::none_of(images.begin(), images.end(), [&](const WarmImageConfig& image) {
      return image.ref.str() == entry.first;
    });
  });
  if (records_.size() != before) {
    if (auto status = writeWarmRecords(services_->agent.state_dir, records_); !status)
      spdlog::warn("cannot record the warm images: {}", status.error().describe());
  }
}

bool WarmImages::onHost(const WarmRecord& record) const {
  auto digest = puller::Digest::parse(record.digest);
  return digest && puller::isPublished(services_->agent.state_dir, *digest);
}

std::optional<std::chrono::steady_clock::time_point> WarmImages::step(bool sites_busy) {
  if (pull_ && pull_->done) {
    finish();
    // Not the next one in the same turn: the loop gets its turn between pulls (gc, eviction).
    return clock_.now();
  }
  if (!services_)
    return std::nullopt;
  if (pull_) {
    if (sites_busy && !pull_->paused) {
      spdlog::info("warm image {}: paused for site pulls (partial downloads kept)", pull_->image);
      pull_->paused = true;
      pull_->stop.request_stop();
    }
    return std::nullopt;  // its end wakes the loop
  }
  const auto now = clock_.now();
  std::optional<std::chrono::steady_clock::time_point> next;
  for (const auto& image : services_->agent.warm_images) {
    const std::string name = image.ref.str();
    auto [it, added] = due_.try_emplace(name);
    if (added) {
      auto record = records_.find(name);
      if (record != records_.end() && onHost(record->second)) {
        // Checked again a poll interval after the last check, as a site's tag is.
        const auto since = clock_.wallNow() - record->second.checked_at;
        const auto wait = services_->agent.tag_poll_interval -
                          std::chrono::duration_cast<std::chrono::seconds>(since);
        it->second.at = now + std::max(std::chrono::seconds(0), wait);
        if (image.ref.digest)
          it->second.at = std::chrono::steady_clock::time_point::max();  // a digest never moves
      }
    }
    if (it->second.at > now) {
      if (it->second.at != std::chrono::steady_clock::time_point::max())
        next = next ? std::min(*next, it->second.at) : it->second.at;
      continue;
    }
    if (sites_busy)
      return now + std::chrono::seconds(1);  // come back when the sites are done
    start(image);
    return std::nullopt;
  }
  return next;
}

void WarmImages::start(const WarmImageConfig& image) {
  pull_ = std::make_unique<Pull>();
  pull_->image = image.ref.str();
  TagPins pins;
  auto record = records_.find(pull_->image);
  // A tag check only for an image still on the host: one that went is pulled whole.
  if (record != records_.end() && !image.ref.digest && onHost(record->second)) {
    if (auto digest = puller::Digest::parse(record->second.resolved_digest))
      pins.emplace("main", *digest);
  }
  spdlog::info("warm image {}: {}", pull_->image, pins.empty() ? "pulling" : "checking its tag");
  pull_->thread = std::jthread([this, image, pins, services = services_, pull = pull_.get()] {
    if (auto lock = puller::StateLock::acquire(services->agent.state_dir,
                                               puller::StateLock::Mode::kShared)) {
      pull->lock = std::move(lock.value());
    }  // else the pull's own acquire reports the problem
    auto site = warmSite(image);
    if (!site) {
      pull->outcome = site.error();
    } else {
      ProcessEnvironment env;
      env.stop = pull->stop.get_token();
      env.privileged = privileged_;
      env.snapshots = services->snapshots;
      SitePullServices pull_services{services->agent,
                                     clock_,
                                     random_,
                                     *services->identities,
                                     services->system_resolver,
                                     services->store.get(),
                                     nullptr,
                                     nullptr,
                                     services->admission.get(),
                                     true,
                                     &verdicts_,
                                     nullptr,  // warm images are pulled whole
                                     nullptr};
      WarmEvents events(pull->image);
      try {
        pull->outcome = pullSite(pull_services, site.value(), env, events, pins);
      } catch (const std::exception& e) {
        pull->outcome = makeError(ErrorCode::kInternal, std::string("unexpected: ") + e.what());
      }
    }
    pull->done = true;
    wake_();
  });
}

void WarmImages::finish() {
  std::unique_ptr<Pull> pull = std::move(pull_);
  pull->thread.join();
  for (const auto& [labels, count] : verdicts_.takeCounts())
    metrics_.signatureVerifications(labels.first, labels.second, count);
  Due& due = due_[pull->image];
  const auto now = clock_.now();
  if (pull->paused && !pull->outcome.ok() && pull->outcome.error().code == ErrorCode::kCancelled) {
    due.at = now;  // resumed as soon as the sites are done
    return;
  }
  if (!pull->outcome.ok()) {
    ++due.failures;
    const auto& agent = services_->agent;
    const auto backoff = std::min<std::chrono::seconds>(
        agent.retry_initial_backoff * (int64_t{1} << std::min(due.failures - 1, 20)),
        agent.retry_max_backoff);
    due.at = now + backoff;
    spdlog::warn("warm image {}: {}; trying again in {} s", pull->image,
                 pull->outcome.error().describe(), backoff.count());
    return;
  }
  due.failures = 0;
  auto configured =
      std::find_if(services_->agent.warm_images.begin(), services_->agent.warm_images.end(),
                   [&](const WarmImageConfig& image) { return image.ref.str() == pull->image; });
  if (configured == services_->agent.warm_images.end())
    return;  // taken off the list while it was pulled
  // A digest never moves: checked again only when the service starts.
  due.at = configured->ref.digest ? std::chrono::steady_clock::time_point::max()
                                  : now + services_->agent.tag_poll_interval;
  WarmRecord& record = records_[pull->image];
  record.checked_at = clock_.wallNow();
  const auto& [container, pulled] = pull->outcome->containers.front();
  if (!pulled.unchanged) {
    record.digest = pulled.image.manifest.digest.str();
    record.resolved_digest =
        (pulled.image.index ? pulled.image.index->digest : pulled.image.manifest.digest).str();
    spdlog::info("warm image {}: ready ({})", pull->image, record.digest);
  }
  if (auto status = writeWarmRecords(services_->agent.state_dir, records_); !status)
    spdlog::warn("cannot record the warm images: {}", status.error().describe());
}

std::vector<HeldImage> WarmImages::held() const {
  std::vector<HeldImage> images;
  if (!services_)
    return images;
  for (const auto& image : services_->agent.warm_images) {
    auto record = records_.find(image.ref.str());
    if (record != records_.end())
      images.push_back({record->second.digest, true, "warm image " + record->first});
  }
  return images;
}

void WarmImages::stop() {
  if (!pull_)
    return;
  pull_->stop.request_stop();
  pull_->thread.join();
  pull_.reset();
}

}  // namespace pullagent::agent
