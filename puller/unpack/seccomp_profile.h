#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <set>
#include <string>
#include <string_view>

#include "base/error.h"

namespace pullagent::puller {

// Where Debian keeps the default seccomp profile of the containers tools (package
// golang-github-containers-common, a dependency of skopeo and podman): containers/common's
// descendant of Docker's default profile, in Docker's format.
inline constexpr const char* kDefaultSeccompProfile = "/usr/share/containers/seccomp.json";

// What a profile is specialised for: the machine's architecture in Go's names ("amd64",
// "arm64"), the capabilities the container is granted, the running kernel ("6.1.0-13-amd64").
struct SeccompTarget {
  std::string arch;
  std::set<std::string> capabilities;
  std::string kernel;
};

// The target of this machine for the given capabilities.
SeccompTarget hostSeccompTarget(std::set<std::string> capabilities);

// Turns a profile in Docker's format (defaultAction, archMap, syscalls with includes/excludes by
// capability, architecture and minimum kernel) into the OCI runtime spec's `linux.seccomp` for
// `target`, the way Docker does when it starts a container: a rule whose includes are not all
// met, or whose excludes are, is left out. Where the profile is more permissive than Docker's
// default (containers/common's allows keyctl, mount, unshare and namespace flags to clone), the
// result is narrowed to Docker's: no keyrings, and without CAP_SYS_ADMIN no mounts, no setns and
// no new namespaces. The profile is read as input: wrong types are errors.
Result<nlohmann::json> ociSeccomp(std::string_view profile, const SeccompTarget& target);

// Reads and converts the profile at `path` for this machine.
Result<nlohmann::json> loadSeccomp(const std::filesystem::path& path,
                                   const std::set<std::string>& capabilities);

}  // namespace pullagent::puller
