#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/error.h"

namespace pullagent::puller {

// What a host may be asked (containerd's capabilities).
enum HostCapability : uint8_t {
  kCapabilityPull = 1,     // blobs and manifests by digest
  kCapabilityResolve = 2,  // a tag to a digest
  kCapabilityPush = 4,     // read and ignored: a puller never pushes
};

// One endpoint a registry's content can come from: a mirror, or the origin (the last one).
struct RegistryHost {
  std::string scheme = "https";
  std::string host;          // host[:port]
  std::string path = "/v2";  // the API root (override_path: as written, without /v2 added)
  uint8_t capabilities = kCapabilityPull | kCapabilityResolve | kCapabilityPush;
  std::vector<std::filesystem::path> ca_files;
  // Client certificate and key; an empty key: the key is in the certificate's file.
  std::vector<std::pair<std::filesystem::path, std::filesystem::path>> client_pairs;
  std::optional<bool> skip_verify;
  std::vector<std::pair<std::string, std::string>> headers;  // in file order, one per value
  bool origin = false;
  std::string config_file;  // the hosts.toml it came from, for messages (empty: none)

  bool can(HostCapability capability) const { return (capabilities & capability) != 0; }
};

// containerd's hosts.toml, for the registry `registry` ("host[:port]", as image references
// name it), from the directory `base_dir` it lies in (relative ca/client paths are relative to
// it): the [host."..."] entries in file order, then the origin (`server`, else the registry
// itself over https; docker.io's is registry-1.docker.io). Errors name the file's key path.
Result<std::vector<RegistryHost>> parseHostsToml(std::string_view text,
                                                 const std::filesystem::path& base_dir,
                                                 std::string_view registry);

// The hosts for `registry` from a containerd config_path directory (/etc/containerd/certs.d):
// <dir>/<host>_<port>_/hosts.toml, <dir>/<host:port>/hosts.toml, then <dir>/_default/hosts.toml;
// without any, the registry alone. A directory without hosts.toml but with Docker-style
// certificate files (*.crt CAs, *.cert + *.key client pairs) configures the origin's TLS, as
// containerd does.
Result<std::vector<RegistryHost>> loadRegistryHosts(const std::filesystem::path& config_dir,
                                                    std::string_view registry);

}  // namespace pullagent::puller
