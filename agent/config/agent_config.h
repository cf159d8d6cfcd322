#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/identity/managed_identity.h"
#include "base/error.h"
#include "base/secret.h"
#include "puller/reference/reference.h"
#include "puller/state/disk_space.h"
#include "puller/state/state_dir.h"
#include "puller/store/additional_store.h"
#include "puller/trust/trust_policy.h"

namespace pullagent::agent {

// An image the host keeps warm (the agent config's warmImages): pulled at low priority, kept
// published, never evicted. Credentials as a site's: anonymous, a managed identity, or Basic
// with the password in a file of its own (never in the agent config).
struct WarmImageConfig {
  puller::ImageRef ref;
  enum class Auth { kAnonymous, kManagedIdentity, kBasic } auth = Auth::kAnonymous;
  std::string identity_client_id;  // kManagedIdentity: empty = system-assigned
  std::string username;            // kBasic
  std::filesystem::path password_file;
};

// The agent's own configuration (/etc/pullagent/agent.json; systemd/agent.example.json).
struct AgentConfig {
  puller::StateDir state_dir;  // StateDir::kDefaultRoot unless stateDir says otherwise
  IdentityEndpoint identity;   // IMDS unless configured or IDENTITY_ENDPOINT is set
  std::string acr_audience = "https://containerregistry.azure.net";
  std::optional<std::string> ca_bundle;  // trusted in addition to the system CAs
  // Fixed addresses for names (debugging, tests): {"myreg.azurecr.io": ["10.0.0.7"]}.
  std::map<std::string, std::vector<std::string>> host_overrides;
  std::chrono::seconds connect_timeout{15};
  // The progress rule: a transfer slower than min_transfer_rate bytes/s on average over
  // stall_timeout is abandoned (and resumed).
  std::chrono::seconds stall_timeout{30};
  int64_t min_transfer_rate = 8 * 1024;
  // Whole-exchange bound for answers held in memory: manifests, configs, tokens, identity and
  // Key Vault answers.
  std::chrono::seconds document_timeout{60};
  // The seccomp profile (Docker's format) written into every bundle's config.json; "" in the
  // file: none.
  std::optional<std::filesystem::path> seccomp_profile = "/usr/share/containers/seccomp.json";
  // One site attempt (identity, secrets, pull, unpack, publish) ends after this.
  std::chrono::seconds attempt_deadline{1800};
  int concurrency = 4;
  int retries = 6;
  // A blob of at least two parts of range_part_mib comes over range_concurrency connections,
  // a range each (puller/registry/blob_ranges.h).
  int range_concurrency = 4;
  int range_part_mib = 16;
  // VNet image pulls: the VNet's DNS servers (Azure DNS unless the VNet has its own), used
  // unless the site sets WEBSITE_DNS_SERVER / WEBSITE_DNS_ALT_SERVER.
  std::vector<std::string> vnet_dns_servers = {"168.63.129.16"};
  std::chrono::milliseconds dns_timeout{2000};
  // VNet pulls only: the source address ("host!10.1.0.4") or interface ("if!vnet0") to connect
  // from, in curl's CURLOPT_INTERFACE syntax.
  std::optional<std::string> vnet_bind;
  int dns_tries = 2;

  // The daemon.
  std::filesystem::path sites_dir = "/etc/pullagent/sites";  // one <site>.json per site
  int max_concurrent_pulls = 2;                              // sites pulling at once
  // Fairness: an attempt holds its slot for at most pull_slot; after that, waiting sites start
  // beside it, up to max_running_pulls attempts in all (a bound on threads).
  std::chrono::seconds pull_slot{60};
  // A slot measures work, not waiting: an attempt that received less than 256 KiB more in this
  // long lets waiting sites start beside it, as one past its slot time does
  // (so that sites whose registries trickle or hang cannot keep an honest one waiting).
  std::chrono::seconds pull_slot_idle{2};
  int max_running_pulls = 8;
  std::chrono::seconds rescan_interval{60};
  // A site file missing from the directory is acted on (state removed, image collected) only
  // after it stayed away this long.
  std::chrono::seconds site_removal_grace{30};  // safety net beside inotify
  // A failed site pull is retried after initial, doubling up to max (the config re-read first).
  std::chrono::seconds retry_initial_backoff{10};
  std::chrono::seconds retry_max_backoff{300};
  // Prometheus metrics: "127.0.0.1:9464", "[::1]:9464" or "unix:/run/pullagent/metrics.sock".
  std::optional<std::string> metrics_address;
  // The control endpoint (`pullagent refresh`): a unix socket only root can open.
  std::filesystem::path control_socket = "/run/pullagent/control.sock";
  // Sites with continuous deployment (DOCKER_ENABLE_CI=true) have their tag checked this often
  // (jittered ±20%, so that hosts and sites do not poll together).
  std::chrono::seconds tag_poll_interval{300};
  // A start of the service re-resolves every published site's tag (as a worker restart does on
  // App Service), the published image serving meanwhile; false trusts what is published.
  bool refresh_on_start = true;
  // How images keep their root filesystems: "auto", "overlay" or "flat"
  // (agent/site/storage_choice.h).
  std::string storage = "auto";
  // Lazy pulling (issue 28, docs/lazy.md): "estargz" publishes an image whose layers are all
  // eStargz at once, over FUSE mounts that read them in place, then fills them in the
  // background and promotes the image to ordinary snapshots; "off" pulls every image whole.
  // The service alone (it holds the mounts), over overlay snapshots, as root.
  std::string lazy_pulling = "off";
  // After each publish over snapshots, gc drops the blobs of layers unpacked into their
  // snapshots (containerd's discard_unpacked_layers): less disk, but no resume or flat publish
  // from them, and content/ no longer a whole OCI layout. Pulls reuse the snapshots without
  // fetching those blobs.
  bool discard_unpacked_layers = false;
  // How a site proves it may use a blob the host holds from another repository of its own
  // registry: "head" (a HEAD with the site's token, one request) or "fetch" (strict: downloaded
  // again, so that no registry can tell from the requests what other sites hold). Blobs from
  // another registry are always fetched again (puller/pipeline/blob_reuse.h).
  std::string shared_blob_proof = "head";
  // Registry webhooks over TCP ("10.0.0.4:8099"), for registries that cannot reach the control
  // socket; every request must carry webhookSecret ("Authorization: Bearer <secret>", or
  // "?secret=<secret>" for Docker Hub, which cannot send headers). Off unless set.
  std::optional<std::string> webhook_address;
  std::optional<Secret> webhook_secret;

  // Mirrors, the way containerd is configured: a config_path directory of
  // <registry host>/hosts.toml (and _default/), as /etc/containerd/certs.d. Unset: every
  // image comes from its registry.
  std::optional<std::filesystem::path> registry_hosts_dir;
  // hosts.toml's skip_verify = true is refused unless this is set.
  bool allow_skip_verify = false;
  // Requests in flight to one registry host from all sites together; 0: no cap. A 429 or 503
  // with Retry-After from a host pauses every pull to it whatever this is.
  int max_requests_per_registry = 0;
  // One registry's "slow down" (429/503 with Retry-After) pauses every site's pulls to it;
  // false: each pull backs off on its own (as containerd does), for comparison.
  bool share_registry_throttle = true;

  // Disk (docs/storage.md, "Disk is finite"): above a high watermark (of the state dir's
  // filesystem, df's Use%, or of the state dir's own bytes), images no running site uses are
  // evicted, least recently used first, until below the low ones; checked before each pull
  // (admission), after each publish and every disk_check_interval.
  puller::DiskWatermarks disk_watermarks;
  std::chrono::seconds disk_check_interval{60};
  // Each site keeps this many previous images (units, with sidecars) while space allows.
  int keep_previous_images = 1;
  // Pulled when no site pull runs or waits (a site pull that wants to start pauses them),
  // re-checked every tag_poll_interval, never evicted.
  std::vector<WarmImageConfig> warm_images;
  // Read-only image stores (a state dir or OCI layout, mounted read-only), consulted before the
  // network for the registries each lists.
  std::vector<puller::AdditionalStore> additional_stores;
  // The host's signature policies: a containers-policy.json(5) (the file `signaturePolicy`
  // names) and a Notation configuration (the directory `notationDir` names, as
  // ~/.config/notation). Every site's and warm image is checked against them before its first
  // layer, at every pull. Unset: images are not checked.
  std::shared_ptr<const puller::TrustPolicy> signature_policy;
};

// Parses agent.json; `environment` supplies IDENTITY_ENDPOINT / IDENTITY_HEADER (App Service
// sets them) when the file names no identity endpoint. Errors name the JSON path. A key that
// is not a setting is an error.
Result<AgentConfig> parseAgentConfig(std::string_view json_text,
                                     const std::map<std::string, std::string>& environment);

// Every setting of the agent config, nested ones dotted ("identity.kind"). docs/service.md's
// reference lists exactly these (tests/agent/config/settings_docs_test.cpp).
std::vector<std::string> agentConfigKeys();

}  // namespace pullagent::agent
