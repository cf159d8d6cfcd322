#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "base/error.h"
#include "puller/oci/digest.h"

namespace pullagent {
class JsonReader;
}

namespace pullagent::puller {

namespace media_type {
inline constexpr std::string_view kDockerManifest =
    "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr std::string_view kDockerManifestList =
    "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr std::string_view kOciManifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr std::string_view kOciIndex = "application/vnd.oci.image.index.v1+json";
inline constexpr std::string_view kDockerConfig = "application/vnd.docker.container.image.v1+json";
inline constexpr std::string_view kOciConfig = "application/vnd.oci.image.config.v1+json";
// The Accept header of a manifest request: all four, so no registry down-converts to schema 1.
inline constexpr std::string_view kManifestAccept =
    "application/vnd.docker.distribution.manifest.v2+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";
}  // namespace media_type

// Size caps for documents held in memory (containerd's MaxManifestSize is about the same).
inline constexpr int64_t kMaxManifestSize = 4 * 1024 * 1024;
inline constexpr int64_t kMaxConfigSize = 4 * 1024 * 1024;

struct Platform {
  std::string os;
  std::string architecture;
  std::string variant;
  std::string os_version;

  // "linux/amd64", "linux/arm/v7", "linux/arm64/v8".
  static Result<Platform> parse(std::string_view text);
  // containerd's normalisation: x86_64 -> amd64, aarch64 -> arm64 (v8 dropped), armhf -> arm/v7,
  // arm without variant -> arm/v7, amd64/v1 -> amd64 ...
  Platform normalized() const;
  std::string str() const;
};

struct Descriptor {
  std::string media_type;
  Digest digest;
  int64_t size = 0;
  std::optional<Platform> platform;
  std::map<std::string, std::string> annotations;
  std::vector<std::string> urls;
};

struct ImageManifest {
  std::string media_type;
  Descriptor config;
  std::vector<Descriptor> layers;
};

struct ImageIndex {
  std::string media_type;
  std::vector<Descriptor> manifests;
};

using ManifestDocument = std::variant<ImageManifest, ImageIndex>;

// Parses an image manifest or an index/manifest list. `content_type` is the response's
// Content-Type (parameters ignored). Refused: schema 1, unknown types, a document that is both
// an index and a manifest, a mediaType field that contradicts the Content-Type, descriptors
// with bad digests or negative sizes, layers of a type that is not a layer.
Result<ManifestDocument> parseManifest(std::string_view bytes, std::string_view content_type);

// One descriptor object (mediaType, digest, size, platform, annotations, urls), typed: errors
// name the JSON path under `value`.
Result<Descriptor> parseDescriptor(const JsonReader& value);

bool isIndexMediaType(std::string_view type);
bool isManifestMediaType(std::string_view type);
bool isLayerMediaType(std::string_view type);

// The index entry for `want`: exact (normalised) os/architecture/variant first, then the
// compatible lower variants (amd64 v3 -> v2 -> v1, arm v7 -> v6 -> v5), first entry wins among
// equals; attestation entries are never chosen.
Result<Descriptor> selectPlatform(const ImageIndex& index, const Platform& want);

// The parts of an image config the puller checks.
struct ImageConfigSummary {
  std::string os;
  std::string architecture;
  std::vector<Digest> diff_ids;
};
Result<ImageConfigSummary> parseImageConfig(std::string_view bytes);

}  // namespace pullagent::puller
