#pragma once

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/error.h"

namespace pullagent::puller {

// The file inside a bundle published over snapshots that says how to mount its root filesystem:
// the layers' snapshot directories (bottom first) and the mount composing them, in containerd's
// form. A bundle without it has its root filesystem in rootfs/ as a plain tree.
inline constexpr const char* kRootfsMountsFile = "rootfs-mounts.json";

// A mount in containerd's form (type, source, options), as the image directory hands it to a
// container runtime: {"type":"overlay","source":"overlay","options":["index=off","lowerdir=.."]}.
struct MountSpec {
  std::string type;
  std::string source;
  std::vector<std::string> options;

  nlohmann::json toJson() const;
  static Result<MountSpec> fromJson(const nlohmann::json& json, std::string_view what);
};

// The read-only view of layer directories, listed top first: an overlay of them, or a
// read-only bind mount of a single one (overlayfs wants two lower layers without an upper).
Result<MountSpec> readOnlyView(const std::vector<std::filesystem::path>& lowers_top_first);
// A writable view: the layers below an upper directory (and overlayfs's work directory beside
// it, on the same filesystem).
Result<MountSpec> writableView(const std::vector<std::filesystem::path>& lowers_top_first,
                               const std::filesystem::path& upper,
                               const std::filesystem::path& work);

// Mounts `spec` at `target`. An overlay whose options pass one page (the kernel's limit, about
// 60 layers of state-dir paths) is mounted with its lower directories relative to their common
// parent, after a chdir there: call it from a single-threaded process or from a thread that
// entered its own mount namespace (which unshares the working directory too).
Status mountSpec(const MountSpec& spec, const std::filesystem::path& target);
Status unmount(const std::filesystem::path& target);

// Gives the calling thread a mount namespace of its own, with nothing propagating back to the
// host: the overlays it mounts to unpack a layer are seen by no other process, and vanish with
// the thread even if the process is killed midway. For a thread made for the purpose.
Status enterPrivateMountNamespace();

// Unmounts (lazily) on destruction.
class ScopedMount {
 public:
  ScopedMount() = default;
  explicit ScopedMount(std::filesystem::path target) : target_(std::move(target)) {}
  ScopedMount(ScopedMount&& other) noexcept : target_(std::exchange(other.target_, {})) {}
  ScopedMount& operator=(ScopedMount&&) = delete;
  ~ScopedMount() { (void)release(); }
  Status release();

 private:
  std::filesystem::path target_;
};

// Whether overlayfs snapshots work in `dir`'s filesystem for this process: mounts an overlay
// with an upper directory in a scratch directory there, removes a lower file through it (the
// kernel writes a whiteout device) and marks a directory opaque (a trusted.* xattr). The error
// says what failed (not root, no overlayfs, a filesystem that cannot be an upper layer).
Status probeOverlaySupport(const std::filesystem::path& dir);

}  // namespace pullagent::puller
