#include "agent/site/storage_choice.h"

#include <spdlog/spdlog.h>

#include "puller/snapshot/overlay_mount.h"
#include "puller/snapshot/snapshot_store.h"

namespace pullagent::agent {

bool isStorageMode(const std::string& mode) {
  return mode == "auto" || mode == "overlay" || mode == "flat";
}

Result<bool> chooseSnapshots(const std::string& mode, const puller::StateDir& state_dir,
                             bool privileged) {
  auto flat = [&](const std::string& why) {
    spdlog::info("storage: a plain root filesystem tree per image ({})", why);
    return false;
  };
  if (mode == "flat")
    return flat("storage \"flat\"");
  if (!isStorageMode(mode))
    return makeError(ErrorCode::kInvalidArgument,
                     "storage \"" + mode + "\" is not auto, overlay or flat");
  Status usable;
  if (!privileged) {
    usable = makeError(ErrorCode::kPermissionDenied, "overlay snapshots need root");
  } else {
    puller::SnapshotStore snapshots(state_dir.snapshots());
    usable = snapshots.prepare();
    if (usable)
      usable = puller::probeOverlaySupport(snapshots.root());
  }
  if (!usable) {
    if (mode == "overlay")
      return usable.error().context("storage \"overlay\"");
    return flat("overlayfs is not usable here: " + usable.error().describe());
  }
  spdlog::info("storage: each layer unpacked once into {}, images composed with overlayfs",
               state_dir.snapshots().string());
  return true;
}

}  // namespace pullagent::agent
