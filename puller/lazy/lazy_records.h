#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "base/error.h"
#include "puller/oci/manifest.h"
#include "puller/store/provenance.h"
#include "puller/unpack/layer_applier.h"

namespace pullagent::puller {

// What a bundle published over lazy layers needs to be switched to ordinary snapshots.
struct LazyBundle {
  std::filesystem::path dir;  // the bundle: its rootfs-mounts.json is rewritten
  BlobSource source;          // the registry and repository its lazy layers come from
  std::vector<Descriptor> layers;
  std::vector<Digest> diff_ids;
  ApplyOptions apply;          // as the pull unpacked its other layers
  std::vector<Digest> served;  // the layers the pull had served here (LazyLayerHost::serve)
  std::chrono::steady_clock::time_point next_try{};  // after a failed promotion
  int failures = 0;
};

// What a LazyLayerHost keeps on disk so that the next process goes on where it stopped
// (docs/lazy.md, "Restarts"): for each layer it serves, the layer and its FUSE connection
// (layer.json beside the layer's cache/ and mnt/), and each bundle it will promote. Nothing
// here is a secret; all of it is the host's own (the state dir is root's), and still checked
// as input: a record that does not read is dropped with its layer or bundle.
struct LazyLayerRecord {
  // What the mount's node ids and INIT depend on: the format of LayerTree (node ids are its
  // indexes) and the libfuse that negotiated the INIT. A record of another is not served on.
  static constexpr int kFormat = 1;
  int format = kFormat;
  int libfuse = 0;  // fuse_version()
  BlobSource source;
  Descriptor layer;         // with its TOC digest annotation
  std::string init;         // the INIT request the kernel sent the first server
  unsigned connection = 0;  // the connection's number under /sys/fs/fuse/connections
};
Status writeLayerRecord(const std::filesystem::path& layer_dir, const LazyLayerRecord& record);
Result<LazyLayerRecord> readLayerRecord(const std::filesystem::path& layer_dir);

// Bundles are kept in `dir`, one file each, named by the bundle directory's hash. What is kept:
// the bundle, its source, layers, diff_ids, the layers served, and ApplyOptions::privileged
// (the pipeline sets nothing else).
Status writeBundleRecord(const std::filesystem::path& dir, const LazyBundle& bundle);
void removeBundleRecord(const std::filesystem::path& dir, const std::filesystem::path& bundle);
std::vector<LazyBundle> readBundleRecords(const std::filesystem::path& dir);

}  // namespace pullagent::puller
