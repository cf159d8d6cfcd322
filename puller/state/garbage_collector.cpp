#include "puller/state/garbage_collector.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>

#include <nlohmann/json.hpp>
#include <system_error>

#include "base/atomic_file.h"
#include "base/bounded_read.h"
#include "base/confined_root.h"
#include "base/json_reader.h"
#include "base/unique_fd.h"
#include "puller/oci/manifest.h"
#include "puller/snapshot/chain_id.h"
#include "puller/snapshot/snapshot_store.h"
#include "puller/state/bundle_roots.h"
#include "puller/state/last_use.h"
#include "puller/store/content_store.h"
#include "puller/store/provenance.h"

namespace pullagent::puller {
namespace fs = std::filesystem;
namespace {

std::string readSmall(const fs::path& path, int64_t limit = kMaxManifestSize) {
  auto text = readRegularFile(path, static_cast<size_t>(limit));
  return text ? std::move(text.value()) : std::string();
}

// What kept images need: blobs by hex digest, layer snapshots by chain id.
struct Live {
  std::set<std::string> blobs;
  std::set<Digest> snapshots;
  std::set<std::string> named;  // every blob a kept manifest names, discarded layers too
};

// The snapshots of an image config's layer chain.
void markConfig(const std::string& config_text, Live& live) {
  if (auto config = parseImageConfig(config_text)) {
    for (const auto& chain : chainIds(config->diff_ids))
      live.snapshots.insert(chain);
  }
}

// The blobs a manifest needs (itself, its config and its layers) and its layers' snapshots.
// With `discard_unpacked_in`, a layer whose snapshot is there needs no blob any more.
void markManifest(const fs::path& blobs, const Digest& digest, Live& live,
                  const SnapshotStore* discard_unpacked_in) {
  live.blobs.insert(digest.hex());
  auto parsed = parseManifest(readSmall(blobs / digest.hex()), "");
  if (!parsed)
    return;
  if (auto* manifest = std::get_if<ImageManifest>(&parsed.value())) {
    live.blobs.insert(manifest->config.digest.hex());
    const std::string config_text =
        readSmall(blobs / manifest->config.digest.hex(), kMaxConfigSize);
    std::vector<Digest> chain;
    if (auto config = parseImageConfig(config_text);
        config && config->diff_ids.size() == manifest->layers.size()) {
      chain = chainIds(config->diff_ids);
    }
    for (size_t i = 0; i < manifest->layers.size(); ++i) {
      live.named.insert(manifest->layers[i].digest.hex());
      if (discard_unpacked_in != nullptr && i < chain.size() &&
          discard_unpacked_in->has(chain[i])) {
        continue;
      }
      live.blobs.insert(manifest->layers[i].digest.hex());
    }
    markConfig(config_text, live);
  }
}

// Removes the snapshots no kept image uses, and what interrupted runs left there.
Status collectSnapshots(const StateDir& state, const std::set<Digest>& live, GcReport& report) {
  const SnapshotStore snapshots(state.snapshots());
  snapshots.removeLeftovers();
  ASSIGN_OR_RETURN(auto present, snapshots.list());
  for (const auto& chain : present) {
    if (live.count(chain) != 0) {
      ++report.snapshots_kept;
      report.snapshot_bytes += diskUsage(snapshots.dir(chain));
      continue;
    }
    spdlog::info("gc: removing snapshot {}", chain.hex());
    auto freed = snapshots.remove(chain);
    if (!freed) {
      spdlog::warn("gc: {}", freed.error().describe());
      continue;
    }
    ++report.snapshots_removed;
    report.bytes_freed += *freed;
  }
  return {};
}

// Opens the directory `name` inside `parent`, never through a symbolic link: a state dir whose
// images/ or blobs/ was replaced by a link must not make gc delete what the link points at.
Result<UniqueFd> openDirectoryAt(int parent, const char* name, const fs::path& shown) {
  UniqueFd fd(::openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ELOOP || errno == ENOTDIR) {
      return makeError(ErrorCode::kPermissionDenied,
                       shown.string() +
                           " is not a directory of its own (a symbolic link?): "
                           "not collected");
    }
    return errnoError(errno, "open", shown);
  }
  return fd;
}

constexpr std::string_view kTrashPrefix = ".trash-";

// Removes images/<name> crash-safely: renamed aside first (one atomic step: the image is gone
// from its published name whole), then deleted. A gc killed midway leaves .trash-<name>, which
// the next gc finishes; never a half-deleted tree under a published name.
Status removeImage(int images, const std::string& name) {
  const std::string trash = std::string(kTrashPrefix) + name;
  if (::renameat(images, name.c_str(), images, trash.c_str()) != 0)
    return errnoError(errno, "rename aside", name);
  return ConfinedRoot::removeAt(images, trash);
}

// The content store's blobs directory, opened without following a link at any step.
Result<UniqueFd> openBlobsDir(const StateDir& state_dir) {
  UniqueFd state(::open(state_dir.root().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!state.valid())
    return errnoError(errno, "open", state_dir.root());
  const fs::path blobs = ContentStore::blobsDir(state_dir.content());
  ASSIGN_OR_RETURN(auto content,
                   openDirectoryAt(state.get(), StateDir::kContent, state_dir.content()));
  ASSIGN_OR_RETURN(auto parent, openDirectoryAt(content.get(), "blobs", blobs.parent_path()));
  return openDirectoryAt(parent.get(), "sha256", blobs);
}

}  // namespace

std::set<Digest> blobsNeeded(const StateDir& state, const std::set<Digest>& images,
                             bool snapshots_suffice) {
  const SnapshotStore snapshots(state.snapshots());
  const fs::path blobs = ContentStore::blobsDir(state.content());
  Live live;
  for (const auto& image : images)
    markManifest(blobs, image, live, snapshots_suffice ? &snapshots : nullptr);
  std::set<Digest> needed;
  for (const auto& hex : live.blobs) {
    if (auto digest = Digest::parse("sha256:" + hex))
      needed.insert(*digest);
  }
  return needed;
}

Result<std::vector<StoredBlob>> storedBlobs(const StateDir& state, const std::set<Digest>& blobs) {
  ASSIGN_OR_RETURN(auto dir, openBlobsDir(state));
  std::vector<StoredBlob> found;
  for (const auto& digest : blobs) {
    struct stat info {};
    if (::fstatat(dir.get(), digest.hex().c_str(), &info, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISREG(info.st_mode)) {
      found.push_back({digest, static_cast<int64_t>(info.st_blocks) * 512});
    }
  }
  std::sort(found.begin(), found.end(), [](const StoredBlob& a, const StoredBlob& b) {
    return a.bytes != b.bytes ? a.bytes > b.bytes : a.digest < b.digest;
  });
  return found;
}

Result<std::vector<StoredBlob>> unpackedLayerBlobs(const StateDir& state,
                                                   const std::set<Digest>& images) {
  std::set<Digest> unpacked = blobsNeeded(state, images, false);
  for (const auto& digest : blobsNeeded(state, images, true))
    unpacked.erase(digest);
  return storedBlobs(state, unpacked);
}

Result<int64_t> removeBlob(const StateDir& state, const Digest& blob) {
  ASSIGN_OR_RETURN(auto dir, openBlobsDir(state));
  struct stat info {};
  if (::fstatat(dir.get(), blob.hex().c_str(), &info, AT_SYMLINK_NOFOLLOW) != 0)
    return errnoError(errno, "stat", ContentStore::blobsDir(state.content()) / blob.hex());
  if (::unlinkat(dir.get(), blob.hex().c_str(), 0) != 0)
    return errnoError(errno, "remove", ContentStore::blobsDir(state.content()) / blob.hex());
  return static_cast<int64_t>(info.st_blocks) * 512;
}

Result<GcReport> collectGarbage(const StateDir& state_dir, const std::set<Digest>& keep,
                                bool keep_all, bool discard_unpacked_layers) {
  GcReport report;
  const SnapshotStore snapshot_store(state_dir.snapshots());
  const SnapshotStore* discard = discard_unpacked_layers ? &snapshot_store : nullptr;
  const fs::path blobs = ContentStore::blobsDir(state_dir.content());
  Live live;
  std::set<std::string> kept_images;

  UniqueFd state(::open(state_dir.root().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!state.valid())
    return errnoError(errno, "open", state_dir.root());
  if (auto images = openDirectoryAt(state.get(), StateDir::kImages, state_dir.images())) {
    ASSIGN_OR_RETURN(auto names, ConfinedRoot::list(images->get(), "images"));
    for (const auto& name : names) {
      if (name.starts_with(kTrashPrefix)) {
        (void)ConfinedRoot::removeAt(images->get(), name);  // a gc that was killed midway
        continue;
      }
      auto digest = Digest::parse("sha256:" + name);
      if (!digest)
        continue;  // staging directories, lock files and strangers are not ours to judge here
      if (keep_all || keep.count(digest.value()) != 0) {
        kept_images.insert(name);
        markManifest(blobs, digest.value(), live, discard);
        // The config the image was published with, too: its snapshots stay even if a blob
        // went missing from the store.
        markConfig(readSmall(state_dir.images() / name / kPublishedConfigFile, kMaxConfigSize),
                   live);
        continue;
      }
      spdlog::info("gc: removing image {}", name);
      if (auto status = removeImage(images->get(), name); !status) {
        spdlog::warn("gc: {}", status.error().describe());
        continue;
      }
      ++report.images_removed;
    }
  } else if (images.error().code != ErrorCode::kNotFound) {
    return images.error();
  }
  for (const auto& digest : keep) {
    kept_images.insert(digest.hex());
    markManifest(blobs, digest, live, discard);
  }
  {
    std::set<Digest> kept;
    for (const auto& hex : kept_images) {
      if (auto digest = Digest::parse("sha256:" + hex))
        kept.insert(*digest);
    }
    LastUse(state_dir).keepOnly(kept);  // an image gone has no use left to remember
  }

  auto content = openDirectoryAt(state.get(), StateDir::kContent, state_dir.content());
  if (!content)
    return content.error().code == ErrorCode::kNotFound ? Result<GcReport>(report)
                                                        : Result<GcReport>(content.error());
  // index.json: keep the entries of kept images (and mark the indexes they came through).
  const fs::path index_path = state_dir.content() / "index.json";
  auto index = parseJson(readSmall(index_path), "index.json");
  if (index && index->is_object()) {
    nlohmann::json remaining = nlohmann::json::array();
    if (auto entries = JsonReader(index.value(), "index.json")["manifests"].elements()) {
      for (const auto& entry : entries.value()) {
        auto text = entry["digest"].string();
        auto digest = text ? Digest::parse(text.value()) : Result<Digest>(text.error());
        if (digest && (keep_all || kept_images.count(digest->hex()) != 0)) {
          markManifest(blobs, digest.value(), live, discard);
          remaining.push_back(entry.raw());
        }
      }
    }
    (*index)["manifests"] = remaining;
    RETURN_IF_ERROR(writeFileAtomic(index_path, index->dump(2) + "\n"));
  }

  ASSIGN_OR_RETURN(auto blobs_parent,
                   openDirectoryAt(content->get(), "blobs", blobs.parent_path()));
  ASSIGN_OR_RETURN(auto blobs_dir, openDirectoryAt(blobs_parent.get(), "sha256", blobs));
  ASSIGN_OR_RETURN(auto names, ConfinedRoot::list(blobs_dir.get(), "blobs"));
  for (const auto& name : names) {
    if (live.blobs.count(name) != 0)
      continue;
    struct stat info {};
    if (::fstatat(blobs_dir.get(), name.c_str(), &info, AT_SYMLINK_NOFOLLOW) != 0 ||
        S_ISDIR(info.st_mode)) {
      continue;
    }
    if (::unlinkat(blobs_dir.get(), name.c_str(), 0) == 0) {
      ++report.blobs_removed;
      // The disk it took, as snapshots and eviction count it.
      report.bytes_freed += S_ISREG(info.st_mode) ? static_cast<int64_t>(info.st_blocks) * 512 : 0;
    }
  }
  // A blob's provenance stays while its bytes do or a kept image names it (a discarded layer's
  // record is how its snapshot is proven to be the layer).
  ProvenanceStore provenance(state_dir.provenance());
  if (auto recorded = provenance.list()) {
    for (const auto& digest : recorded.value()) {
      if (live.blobs.count(digest.hex()) != 0 || live.named.count(digest.hex()) != 0) {
        ++report.records_kept;
      } else if (provenance.remove(digest)) {
        ++report.records_removed;
      }
    }
  } else {
    spdlog::warn("gc: {}", recorded.error().describe());
  }
  // Bundles published outside the state dir over its snapshots keep theirs while they use them.
  live.snapshots.merge(BundleRoots(state_dir).collectLive());
  RETURN_IF_ERROR(collectSnapshots(state_dir, live.snapshots, report));
  return report;
}

}  // namespace pullagent::puller
