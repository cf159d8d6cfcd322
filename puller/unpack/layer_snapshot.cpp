#include "puller/unpack/layer_snapshot.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <optional>

#include "base/confined_root.h"
#include "puller/snapshot/overlay_mount.h"
#include "puller/unpack/image_unpacker.h"
#include "puller/unpack/staging.h"

namespace pullagent::puller {
namespace fs = std::filesystem;
namespace {

Status makeDirectory(const fs::path& path, mode_t mode) {
  if (::mkdir(path.c_str(), mode) != 0)
    return errnoError(errno, "create", path);
  ::chmod(path.c_str(), mode);  // not narrowed by the umask
  return {};
}

// The kernel already wrote a whiteout for every lower entry the opaque directory hid; the
// xattr says the same in one word, as the snapshot form of an OCI opaque directory.
Status markOpaque(const fs::path& upper, const std::vector<std::string>& dirs) {
  if (dirs.empty())
    return {};
  ASSIGN_OR_RETURN(auto root, ConfinedRoot::open(upper));
  for (const auto& dir : dirs) {
    ASSIGN_OR_RETURN(auto parts, ConfinedRoot::split(dir));
    auto found = root.openDirectory(parts, parts.size(), /*create=*/false);
    if (!found)
      continue;  // not in this layer's upper directory: nothing below it to hide
    UniqueFd fd(::openat(found->get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd.valid() || ::fsetxattr(fd.get(), "trusted.overlay.opaque", "y", 1, 0) != 0)
      return errnoError(errno, "mark opaque", upper / dir);
  }
  return {};
}

void removeScratch(const fs::path& dir) {
  UniqueFd parent(::open(dir.parent_path().c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (parent.valid())
    (void)ConfinedRoot::removeAt(parent.get(), dir.filename().native());
}

// The snapshot of `chain` exists: it is this layer's if the agent recorded that the blob
// decompresses to `diff_id`, or it does so now.
Status proveSnapshotIsTheLayer(const ContentStore& store, ProvenanceStore& provenance,
                               const Descriptor& layer, const Digest& diff_id,
                               const LayerLimits& limits) {
  if (auto record = provenance.read(layer.digest); record && record->diff_id == diff_id)
    return {};
  ASSIGN_OR_RETURN(auto actual, layerDiffId(store, layer, limits));
  if (actual != diff_id) {
    return makeError(ErrorCode::kDigestMismatch, "layer " + layer.digest.str() +
                                                     " decompresses to " + actual.str() +
                                                     ", the image config says " + diff_id.str());
  }
  return provenance.recordDiffId(layer.digest, actual);
}

}  // namespace

Result<LayerSnapshot> ensureLayerSnapshot(const SnapshotStore& snapshots, const ContentStore& store,
                                          ProvenanceStore& provenance,
                                          const std::vector<Digest>& chain, const Descriptor& layer,
                                          const Digest& diff_id, size_t index, ApplyOptions options,
                                          const std::stop_token& stop, SnapshotMethod method) {
  if (index >= chain.size())
    return makeError(ErrorCode::kInternal, "layer index beyond the image's chain");
  ASSIGN_OR_RETURN(auto lock, snapshots.lock(chain[index], stop));
  LayerSnapshot result;
  if (snapshots.has(chain[index])) {
    RETURN_IF_ERROR(proveSnapshotIsTheLayer(store, provenance, layer, diff_id, options.limits));
    result.reused = true;
    return result;
  }
  const fs::path target = snapshots.dir(chain[index]);
  removeStaleStaging(target);  // a run killed while making it; we hold its lock
  ASSIGN_OR_RETURN(auto staging, Staging::create(target, 0700));
  const fs::path upper = staging.dir() / "fs";
  RETURN_IF_ERROR(makeDirectory(upper, 0755));

  options.overlay_lower = true;
  // The bottom layer has nothing below it: applied as it is, it is standalone already.
  const bool over_lower = index > 0 && method == SnapshotMethod::kOverLowerLayers;
  options.standalone_upper = index > 0 && method == SnapshotMethod::kStandalone;
  fs::path apply_root = upper;
  std::optional<ScopedMount> mounted;
  if (over_lower) {
    for (size_t below = 0; below < index; ++below) {
      if (!snapshots.has(chain[below])) {
        return makeError(ErrorCode::kInternal,
                         "the snapshot below layer " + std::to_string(index) + " is missing");
      }
    }
    const auto lowers = snapshots.lowerDirs(chain, index);
    const fs::path work = staging.dir() / "work";
    apply_root = staging.dir() / "merged";
    RETURN_IF_ERROR(makeDirectory(work, 0700));
    RETURN_IF_ERROR(makeDirectory(apply_root, 0700));
    ASSIGN_OR_RETURN(auto spec, writableView(lowers, upper, work));
    RETURN_IF_ERROR(mountSpec(spec, apply_root));
    mounted.emplace(apply_root);
  }
  {
    ASSIGN_OR_RETURN(auto root, ConfinedRoot::open(apply_root));
    ASSIGN_OR_RETURN(result.applied, unpackLayer(store, layer, diff_id, index, root, options));
  }
  if (result.applied.needs_lower_layers)
    return result;  // the staging directory goes; the layer is made over its lower layers
  if (over_lower) {
    RETURN_IF_ERROR(mounted->release());
    removeScratch(staging.dir() / "work");
    removeScratch(staging.dir() / "merged");
  }
  RETURN_IF_ERROR(markOpaque(upper, result.applied.opaque_dirs));
  // Recorded before the snapshot appears: no snapshot is there without its proof.
  RETURN_IF_ERROR(provenance.recordDiffId(layer.digest, diff_id));
  RETURN_IF_ERROR(staging.publish());
  return result;
}

}  // namespace pullagent::puller
