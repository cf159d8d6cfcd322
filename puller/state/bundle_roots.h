#pragma once

#include <filesystem>
#include <set>

#include "base/error.h"
#include "puller/oci/digest.h"
#include "puller/state/state_dir.h"

namespace pullagent::puller {

// Bundles published outside the state dir (`pullagent pull --bundle DIR`) over its layer
// snapshots. The state dir's images are found by gc in images/; these are not, so each one is
// recorded as a root, <state>/bundle-roots/<sha256 of the bundle's absolute path>.json,
// {"bundle": path, "chainIds": [...]}, and gc keeps the snapshots of every root whose bundle
// still has its root filesystem over snapshots (a kRootfsMountsFile). A root whose bundle was
// removed, or republished as a plain tree, is forgotten and its snapshots become collectable.
// A bundle is kept by its path: one moved elsewhere is not.
class BundleRoots {
 public:
  explicit BundleRoots(const StateDir& state) : dir_(state.bundleRoots()) {}

  // The chain ids recorded for the bundle at `bundle` (an absolute path); none if no root.
  std::set<Digest> chains(const std::filesystem::path& bundle) const;
  // Records (replaces) the bundle's root; an empty set removes it. Written atomically.
  Status record(const std::filesystem::path& bundle, const std::set<Digest>& chains) const;
  // The chain ids every live root keeps; removes the roots of bundles that no longer use
  // snapshots. Only with the state lock held exclusively (gc).
  std::set<Digest> collectLive() const;

 private:
  std::filesystem::path fileFor(const std::filesystem::path& bundle) const;

  std::filesystem::path dir_;
};

}  // namespace pullagent::puller
