#pragma once

#include <string>
#include <string_view>

#include "base/error.h"
#include "puller/unpack/confined_root.h"

namespace pullagent::puller {

// An OCI runtime bundle config.json (runtime-spec 1.0) for an image config: the process
// (Entrypoint + Cmd, Env, WorkingDir, User resolved through the rootfs' /etc/passwd and
// /etc/group, read through the confined root), the usual namespaces and mounts, rootfs
// "rootfs". Enough for `runc run`.
Result<std::string> makeRuntimeSpec(std::string_view image_config, const ConfinedRoot& rootfs);

}  // namespace pullagent::puller
