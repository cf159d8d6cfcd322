#include "puller/store/image_sources.h"

#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "base/bounded_read.h"
#include "puller/oci/manifest.h"

namespace pullagent::puller {
namespace {

constexpr int kMaxIndexDepth = 4;  // as the puller follows them

// Intersects `sources` with what `digest` is recorded for (`first`: nothing to intersect yet).
void narrow(const ProvenanceStore& provenance, const Digest& digest,
            std::optional<std::set<BlobSource>>& sources) {
  const auto record = provenance.read(digest);
  std::set<BlobSource> recorded = record ? record->sources : std::set<BlobSource>{};
  if (!sources) {
    sources = std::move(recorded);
    return;
  }
  std::set<BlobSource> kept;
  for (const auto& source : *sources) {
    if (recorded.count(source) != 0)
      kept.insert(source);
  }
  sources = std::move(kept);
}

void collect(const std::filesystem::path& blobs, const ProvenanceStore& provenance,
             const Digest& digest, const Platform* platform, int depth, bool& found,
             std::optional<std::set<BlobSource>>& sources) {
  auto text = readRegularFile(blobs / digest.hex(), static_cast<size_t>(kMaxManifestSize));
  if (!text)
    return;
  auto parsed = parseManifest(text.value(), "");
  if (!parsed)
    return;
  if (auto* manifest = std::get_if<ImageManifest>(&parsed.value())) {
    found = true;
    narrow(provenance, manifest->config.digest, sources);
    for (const auto& layer : manifest->layers)
      narrow(provenance, layer.digest, sources);
    return;
  }
  if (depth >= kMaxIndexDepth)
    return;
  const auto& index = std::get<ImageIndex>(parsed.value());
  if (platform != nullptr) {
    if (auto selected = selectPlatform(index, *platform))
      collect(blobs, provenance, selected->digest, platform, depth + 1, found, sources);
    return;
  }
  for (const auto& child : index.manifests)
    collect(blobs, provenance, child.digest, platform, depth + 1, found, sources);
}

}  // namespace

std::set<BlobSource> imageSources(const std::filesystem::path& content_root,
                                  const ProvenanceStore& provenance, const Digest& manifest,
                                  const Platform* platform) {
  bool found = false;
  std::optional<std::set<BlobSource>> sources;
  collect(ContentStore::blobsDir(content_root), provenance, manifest, platform, 0, found, sources);
  if (!found || !sources)
    return {};
  return *sources;
}

}  // namespace pullagent::puller
