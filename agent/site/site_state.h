#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "puller/state/state_dir.h"

namespace pullagent::agent {

// True for names the agent takes as sites: "<site>.json" with a site name of letters, digits,
// '.', '_' and '-' (App Service site names are stricter), not starting with '.', so editors'
// and atomic writers' temporary files are ignored.
bool isSiteFileName(const std::string& file_name);

// Where a site stands. Written by the daemon to <state>/sites/<site>.json (atomically) as it
// changes, read by `pullagent status` and by the daemon when it starts again.
enum class SitePhase {
  kPending,      // new or changed config, waiting for a pull slot
  kPulling,      // a pull is running
  kPublished,    // the published image is what the config asks for
  kFailed,       // the last attempt failed; another follows at next_attempt_at
  kInterrupted,  // the agent stopped during a pull; the next start resumes it
  kStopped,      // the site is stopped ("state": "Stopped"): no pull, no tag check
};

std::string_view toString(SitePhase phase);
std::optional<SitePhase> parseSitePhase(std::string_view text);

struct SiteProgress {
  int layers_done = 0;
  int layers_total = 0;
  int64_t bytes_done = 0;
  int64_t bytes_total = 0;
  bool operator==(const SiteProgress&) const = default;
};

struct PublishedImage {
  std::string image;          // the reference the config asked for ("myreg.azurecr.io/app:v1")
  std::string digest;         // manifest digest ("sha256:...")
  std::string path;           // the bundle: <state>/images/<hex>
  std::string config_sha256;  // of the site config it was pulled for
  std::chrono::system_clock::time_point at;
  // What the reference resolved to when this image was pulled: the index's digest for a
  // multi-platform image, else the manifest's. A tag still pointing there has not moved.
  std::string resolved_digest;
  std::string container;  // the sitecontainer or Compose service; "" for a DOCKER| site
  // The signature policies' verdict when it was published ("" without a policy): what
  // accepted it ("Notary signature sha256:… by \"CN=…\" (…, level strict)").
  std::string signature;
};

// One container of a site with several (sitecontainers, Compose), as its pull goes.
struct ContainerActivity {
  std::string name;
  std::string image;
  std::string phase = "pending";  // pending, pulling, ready, unchanged, failed
  SiteProgress progress;
  bool operator==(const ContainerActivity&) const = default;
};

struct SiteError {
  std::string phase;  // config, identity, secrets, pull
  std::string message;
  std::chrono::system_clock::time_point at;
};

struct SiteState {
  std::string site;  // the config file's name without .json
  std::string config_file;
  std::string config_sha256;  // of the config file's bytes; never the config itself (secrets)
  std::string image;          // what the config asks for; empty when it cannot be read
  SitePhase phase = SitePhase::kPending;
  SiteProgress progress;
  int attempts = 0;  // failed attempts since the config changed or a pull succeeded
  std::optional<SiteError> last_error;
  std::optional<PublishedImage> published;  // stays until a newer image is complete
  // The other containers of the published unit (sidecars, Compose services): `published` is
  // the main container's; all of them were replaced together, when every one was ready.
  std::vector<PublishedImage> sidecars;
  // The units the site published before, newest first (the agent's keepPreviousImages of
  // them), each as publishedUnit gives it: kept while space allows.
  std::vector<std::vector<PublishedImage>> previous;
  // `pullagent rollback` put the site back on a previous unit: it stays there (no tag check, no
  // refresh on start) until its config changes or a refresh is asked for.
  bool rolled_back = false;
  // The last attempt's containers, for a site with several (`progress` is their sum).
  std::vector<ContainerActivity> containers;
  std::optional<std::chrono::system_clock::time_point> last_attempt_at;
  std::optional<std::chrono::system_clock::time_point> next_attempt_at;
  // When the image's tag was last resolved at the registry (a pull, or a check that it moved).
  std::optional<std::chrono::system_clock::time_point> last_checked_at;
  // DOCKER_ENABLE_CI=true in the config the last attempt read: the tag is polled.
  bool continuous_deployment = false;
  std::chrono::system_clock::time_point updated_at;
};

// The images the site's config asks for: each container's (a site with several), else `image`.
std::vector<std::string> siteImages(const SiteState& state);
// True when every image of the site is pinned by digest: no tag to follow.
bool pinnedByDigest(const SiteState& state);

// Every image of the published unit: `published`, then the sidecars.
std::vector<PublishedImage> publishedUnit(const SiteState& state);

std::string siteStateJson(const SiteState& state);
Result<SiteState> parseSiteState(std::string_view json_text);

// "2026-11-27T08:00:00Z"
std::string formatUtc(std::chrono::system_clock::time_point at);

// The state files of a state directory: <state>/sites/<site>.json.
class SiteStateStore {
 public:
  explicit SiteStateStore(const puller::StateDir& state) : state_(state), dir_(state.sites()) {}
  const puller::StateDir& stateDir() const { return state_; }
  const std::filesystem::path& dir() const { return dir_; }
  Status write(const SiteState& state) const;
  Status remove(const std::string& site) const;
  // Every readable state, by site name; unreadable files are skipped with a warning.
  std::vector<SiteState> readAll() const;

 private:
  puller::StateDir state_;
  std::filesystem::path dir_;
};

}  // namespace pullagent::agent
