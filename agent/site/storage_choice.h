#pragma once

#include <filesystem>
#include <string>

#include "base/error.h"
#include "puller/state/state_dir.h"

namespace pullagent::agent {

// How images in a state dir keep their root filesystems: "overlay" (each layer unpacked once
// into a shared snapshot, images composed with overlayfs), "flat" (a plain tree per image) or
// "auto" (overlay where it works: as root, with overlayfs able to use the state dir's
// filesystem as an upper layer). Says which, and why, in one log line.
// True for snapshots; an error when "overlay" is asked for and cannot work here.
Result<bool> chooseSnapshots(const std::string& mode, const puller::StateDir& state_dir,
                             bool privileged);

// Whether `mode` is one of the three.
bool isStorageMode(const std::string& mode);

}  // namespace pullagent::agent
