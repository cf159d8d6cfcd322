#pragma once

#include <optional>
#include <string>

namespace pullagent::testing {

// What a test that needs privileges can do here. Root alone is not enough: a container build
// (podman's chroot isolation) runs as root without CAP_SYS_ADMIN or CAP_MKNOD. Each returns why
// not (for GTEST_SKIP), or nothing when it can.
std::optional<std::string> cannotUseMountNamespaces();  // unshare(CLONE_NEWNS), as snapshots do
std::optional<std::string> cannotMakeDeviceNodes();     // mknod of a character device

}  // namespace pullagent::testing
