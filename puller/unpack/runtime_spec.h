#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

#include "base/error.h"
#include "puller/unpack/confined_root.h"

namespace pullagent::puller {

// An OCI runtime bundle config.json (runtime-spec 1.0) for an image config: the process
// (Entrypoint + Cmd, Env, WorkingDir, User resolved through the rootfs' /etc/passwd and
// /etc/group, read through the confined root), rootfs "rootfs", and what Docker gives every
// container by default and no more: its capability set, the NOFILE limit, its mounts,
// namespaces, masked and read-only paths (below); noNewPrivileges on. Enough for `runc run`.
// Not yet: Docker's seccomp profile and an AppArmor profile (the runtime's own apply).
Result<std::string> makeRuntimeSpec(std::string_view image_config, const ConfinedRoot& rootfs);

// The parts of the defaults, one per field of the spec.
nlohmann::json containerCapabilities();
nlohmann::json containerRlimits();
nlohmann::json containerMounts();
nlohmann::json containerMaskedPaths();
nlohmann::json containerReadonlyPaths();

}  // namespace pullagent::puller
