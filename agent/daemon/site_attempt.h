#pragma once

#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include "agent/daemon/site_webhook_keys.h"
#include "agent/site/site_state.h"

namespace pullagent::agent {

// A running attempt's live view, written by its worker thread, read by the daemon's loop.
class SiteActivity {
 public:
  void setImage(const std::string& image) {
    std::lock_guard lock(mutex_);
    image_ = image;
  }
  void update(const SiteProgress& progress) {
    std::lock_guard lock(mutex_);
    progress_ = progress;
  }
  // A site with several containers: each one's phase and progress; the site's is their sum.
  void setContainers(std::vector<ContainerActivity> containers) {
    std::lock_guard lock(mutex_);
    containers_ = std::move(containers);
  }
  void updateContainer(size_t index, const SiteProgress& progress) {
    std::lock_guard lock(mutex_);
    if (index >= containers_.size())
      return;
    containers_[index].progress = progress;
    progress_ = {};
    for (const auto& container : containers_) {
      progress_.layers_done += container.progress.layers_done;
      progress_.layers_total += container.progress.layers_total;
      progress_.bytes_done += container.progress.bytes_done;
      progress_.bytes_total += container.progress.bytes_total;
    }
  }
  void setContainerPhase(size_t index, const std::string& phase) {
    std::lock_guard lock(mutex_);
    if (index < containers_.size())
      containers_[index].phase = phase;
  }
  std::vector<ContainerActivity> containers() const {
    std::lock_guard lock(mutex_);
    return containers_;
  }
  std::string image() const {
    std::lock_guard lock(mutex_);
    return image_;
  }
  SiteProgress progress() const {
    std::lock_guard lock(mutex_);
    return progress_;
  }

 private:
  mutable std::mutex mutex_;
  std::string image_;
  SiteProgress progress_;
  std::vector<ContainerActivity> containers_;
};

// What one attempt at a site's pull ended with.
struct SiteAttemptResult {
  // kUnchanged: a refresh found the tag where it was; nothing was pulled.
  enum class Kind { kPublished, kUnchanged, kFailed, kCancelled };
  Kind kind = Kind::kFailed;
  std::string image;                   // what the config asked for; empty when it could not be read
  std::string config_sha256;           // of the config bytes the attempt read
  bool continuous_deployment = false;  // DOCKER_ENABLE_CI in that config
  // The site's own webhook key from that config (its publishing credentials, hashed).
  std::optional<SiteWebhookKeys::Key> webhook_key;
  std::optional<PublishedImage> published;  // the main container's
  std::vector<PublishedImage> sidecars;     // the unit's other containers'
  std::optional<SiteError> error;
  // Released once the result is recorded in the site's state: the runner keeps the state dir's
  // lock shared through it, so a `pullagent gc` never sees a published image no state names.
  std::shared_ptr<void> hold_until_recorded;
};

// What an attempt is asked for beyond pulling what the site's config names.
struct AttemptPlan {
  // A refresh of a published unit whose config did not change (empty: none). A container whose
  // tag still points where it did is not pulled, its image stays in the unit; when none moved,
  // nothing is pulled (kUnchanged).
  std::vector<PublishedImage> refresh_of;
  // A rollback under a signature policy (empty: none): this unit, the site's previous one and
  // on the host, is taken again by digest under each image's own name, with the credentials of
  // the site's config as it reads now, so that the policies in effect now decide it like any
  // publish; nothing else is pulled. kPublished when they accept it.
  std::vector<PublishedImage> rollback_to;
  // refresh_of is a check at start (needsCheckAtStart), not a refresh: each container stays at
  // the digest it was published at, whatever its tag says now. Its registry is still asked
  // (which lends layers read in place their route), and an image whose in-place layers are no
  // longer served is published again at that digest.
  bool hold = false;
};

// Runs one attempt: reads the site's config afresh and pulls and publishes its image. The
// daemon's runner does real pulls; tests script it.
class SiteAttemptRunner {
 public:
  virtual ~SiteAttemptRunner() = default;
  virtual SiteAttemptResult run(const std::string& site, const std::filesystem::path& config,
                                SiteActivity& activity, std::stop_token stop,
                                const AttemptPlan& plan) = 0;
  // Whether a site an earlier process published needs its registry once more when this process
  // starts, whatever refreshOnStart says and even when it is pinned by digest: its image is
  // read in place from mounts that did not survive the restart, or from mounts that did but
  // wait for a route to fetch the rest of their layers.
  virtual bool needsCheckAtStart(const SiteState& /*published*/) const { return false; }
};

}  // namespace pullagent::agent
