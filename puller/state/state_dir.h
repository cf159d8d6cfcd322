#pragma once

#include <filesystem>
#include <string_view>

#include "puller/oci/digest.h"

namespace pullagent::puller {

// The state directory, and the one place that knows its layout. Everything the agent keeps
// between runs lives under one root (root only, mode 0700):
//
//   content/       every blob pulled, an OCI image layout (ContentStore: blobs/, ingest/)
//   provenance/    per blob, the repositories that proved it theirs (ProvenanceStore)
//   snapshots/     each layer unpacked once, by chain id (SnapshotStore)
//   images/<hex>/  each published image, a runtime bundle, by manifest digest
//   bundle-roots/  bundles published outside over the snapshots (BundleRoots: gc roots)
//   sites/         what the service recorded for each site (agent's SiteStateStore)
//   state.lock     held shared by pulls, exclusively by gc (StateLock)
//   last-use/<hex> when each image was last used: the eviction order (LastUse)
//   unpack-ratio.json  how much disk a compressed layer takes unpacked (UnpackRatio)
//   warm.json      the warm images the service pulled (agent's WarmRecords)
//   lazy/          eStargz layers the service reads in place, per source (LazyLayerHost)
//
// Which directory a command uses is chosen by the agent (agent/cli/state_dir_option.h:
// --state, else the agent config's stateDir, else kDefaultRoot).
class StateDir {
 public:
  static constexpr std::string_view kDefaultRoot = "/var/lib/pullagent";

  StateDir() : root_(kDefaultRoot) {}
  explicit StateDir(std::filesystem::path root) : root_(std::move(root)) {}

  const std::filesystem::path& root() const { return root_; }

  std::filesystem::path content() const { return root_ / kContent; }
  std::filesystem::path provenance() const { return root_ / "provenance"; }
  std::filesystem::path snapshots() const { return root_ / "snapshots"; }
  std::filesystem::path images() const { return root_ / kImages; }
  std::filesystem::path image(const Digest& manifest) const { return images() / manifest.hex(); }
  std::filesystem::path bundleRoots() const { return root_ / "bundle-roots"; }
  std::filesystem::path sites() const { return root_ / "sites"; }
  std::filesystem::path lockFile() const { return root_ / "state.lock"; }
  std::filesystem::path lastUse() const { return root_ / "last-use"; }
  std::filesystem::path unpackRatio() const { return root_ / "unpack-ratio.json"; }
  std::filesystem::path warm() const { return root_ / "warm.json"; }
  std::filesystem::path lazy() const { return root_ / "lazy"; }

  // For walking the root through directory descriptors (gc never follows a link there).
  static constexpr const char* kContent = "content";
  static constexpr const char* kImages = "images";

  bool operator==(const StateDir&) const = default;

 private:
  std::filesystem::path root_;
};

// A published image's directory (StateDir::image, or a bundle published outside the state dir)
// holds these beside config.json and rootfs/.
// The file that says it is complete: written last, published by the same rename as the tree.
// gc, reuse and mount go by it, never by the directory alone. (A rootfs target has none: it is
// the container's root.)
inline constexpr const char* kPublishedMarker = "pullagent-published";
// The image config the image was published with (gc, `images` and `mount` read it).
inline constexpr const char* kPublishedConfigFile = "image-config.json";

}  // namespace pullagent::puller
