#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "base/confined_root.h"
#include "base/error.h"
#include "puller/unpack/seccomp_profile.h"

namespace pullagent::puller {

// An OCI runtime bundle config.json (runtime-spec 1.0) for an image config: the process
// (Entrypoint + Cmd, Env, WorkingDir, User resolved through the rootfs' /etc/passwd and
// /etc/group, read through the confined root), rootfs "rootfs", and what Docker gives every
// container by default and no more: its capability set, the NOFILE limit, its mounts,
// namespaces, masked and read-only paths (below), and Docker's seccomp profile specialised for
// those capabilities and this machine; noNewPrivileges on. Enough for `runc run`. (AppArmor and
// SELinux labels are the runtime's to apply on hosts that use them.)
struct RuntimeOptions {
  // A seccomp profile in Docker's format; nullopt: none (the runtime's default applies).
  std::optional<std::filesystem::path> seccomp_profile = kDefaultSeccompProfile;
};
Result<std::string> makeRuntimeSpec(std::string_view image_config, const ConfinedRoot& rootfs,
                                    const RuntimeOptions& options = {});

// The parts of the defaults, one per field of the spec.
nlohmann::json containerCapabilities();
nlohmann::json containerRlimits();
nlohmann::json containerMounts();
nlohmann::json containerMaskedPaths();
nlohmann::json containerReadonlyPaths();

}  // namespace pullagent::puller
