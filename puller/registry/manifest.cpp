#include "puller/registry/manifest.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>

namespace pullagent::puller {
namespace {

using nlohmann::json;

Error invalidManifest(std::string why) {
  return makeError(ErrorCode::kProtocol, "invalid manifest: " + std::move(why));
}

std::string_view stripParameters(std::string_view content_type) {
  auto semicolon = content_type.find(';');
  auto type = content_type.substr(0, semicolon);
  while (!type.empty() && type.back() == ' ')
    type.remove_suffix(1);
  return type;
}

std::optional<std::string> optionalString(const json& object, const char* name) {
  if (!object.contains(name))
    return std::nullopt;
  if (!object[name].is_string())
    return std::string("\x01");  // marks "present, wrong type"
  return object[name].get<std::string>();
}

Result<Descriptor> parseDescriptor(const json& value, const std::string& where) {
  if (!value.is_object())
    return invalidManifest(where + " is not an object");
  Descriptor descriptor;
  auto type = optionalString(value, "mediaType");
  if (!type || *type == "\x01")
    return invalidManifest(where + ".mediaType missing or not a string");
  descriptor.media_type = *type;
  if (!value.contains("digest") || !value["digest"].is_string()) {
    return invalidManifest(where + ".digest missing or not a string");
  }
  auto digest = Digest::parse(value["digest"].get<std::string>());
  if (!digest)
    return invalidManifest(where + ".digest: " + digest.error().message);
  descriptor.digest = digest.value();
  if (!value.contains("size") || !value["size"].is_number_integer() ||
      value["size"].get<int64_t>() < 0) {
    return invalidManifest(where + ".size missing or not a non-negative integer");
  }
  descriptor.size = value["size"].get<int64_t>();
  if (value.contains("platform") && value["platform"].is_object()) {
    const auto& p = value["platform"];
    Platform platform;
    platform.os = p.value("os", "");
    platform.architecture = p.value("architecture", "");
    platform.variant = p.value("variant", "");
    platform.os_version = p.value("os.version", "");
    descriptor.platform = platform;
  }
  if (value.contains("annotations") && value["annotations"].is_object()) {
    for (const auto& [key, item] : value["annotations"].items()) {
      if (item.is_string())
        descriptor.annotations[key] = item.get<std::string>();
    }
  }
  if (value.contains("urls") && value["urls"].is_array()) {
    for (const auto& item : value["urls"]) {
      if (item.is_string())
        descriptor.urls.push_back(item.get<std::string>());
    }
  }
  return descriptor;
}

bool isAttestation(const Descriptor& descriptor) {
  auto it = descriptor.annotations.find("vnd.docker.reference.type");
  if (it != descriptor.annotations.end() && it->second == "attestation-manifest")
    return true;
  return descriptor.platform && descriptor.platform->os == "unknown" &&
         descriptor.platform->architecture == "unknown";
}

// Variants acceptable for `want`, best first.
std::vector<std::string> variantPreference(const Platform& want) {
  std::vector<std::string> order{want.variant};
  auto lowerFrom = [&](char prefix, int from, int to) {
    for (int v = from - 1; v >= to; --v)
      order.push_back(std::string(1, prefix) + std::to_string(v));
  };
  if (want.architecture == "amd64" && want.variant.size() == 2 && want.variant[0] == 'v') {
    lowerFrom('v', want.variant[1] - '0', 2);
    order.push_back("");  // v1 is normalised to no variant
  } else if (want.architecture == "arm" && want.variant.size() == 2 && want.variant[0] == 'v') {
    lowerFrom('v', want.variant[1] - '0', 5);
  }
  return order;
}

}  // namespace

Result<Platform> Platform::parse(std::string_view text) {
  Platform platform;
  std::array<std::string, 3> parts;
  size_t count = 0;
  size_t start = 0;
  while (true) {
    auto slash = text.find('/', start);
    if (count == parts.size()) {
      return makeError(ErrorCode::kInvalidArgument,
                       "platform \"" + std::string(text) + "\": want OS/ARCH[/VARIANT]");
    }
    parts[count++] =
        std::string(text.substr(start, slash == text.npos ? text.npos : slash - start));
    if (slash == text.npos)
      break;
    start = slash + 1;
  }
  if (count < 2 || parts[0].empty() || parts[1].empty()) {
    return makeError(ErrorCode::kInvalidArgument,
                     "platform \"" + std::string(text) + "\": want OS/ARCH[/VARIANT]");
  }
  platform.os = parts[0];
  platform.architecture = parts[1];
  platform.variant = parts[2];
  return platform;
}

Platform Platform::normalized() const {
  Platform p = *this;
  auto lower = [](std::string s) {
    std::transform(s.begin(), s.end(), s.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
  };
  p.os = lower(p.os);
  if (p.os == "macos")
    p.os = "darwin";
  std::string arch = lower(p.architecture);
  std::string var = lower(p.variant);
  if (arch == "i386") {
    arch = "386";
    var.clear();
  } else if (arch == "x86_64" || arch == "x86-64" || arch == "amd64") {
    arch = "amd64";
    if (var == "v1")
      var.clear();
  } else if (arch == "aarch64" || arch == "arm64") {
    arch = "arm64";
    if (var == "8" || var == "v8" || var == "v8.0")
      var.clear();
    if (var == "9" || var == "v9.0")
      var = "v9";
  } else if (arch == "armhf") {
    arch = "arm";
    var = "v7";
  } else if (arch == "armel") {
    arch = "arm";
    var = "v6";
  } else if (arch == "arm") {
    if (var.empty() || var == "7")
      var = "v7";
    if (var == "5" || var == "6" || var == "8")
      var = "v" + var;
  }
  p.architecture = arch;
  p.variant = var;
  return p;
}

std::string Platform::str() const {
  return os + "/" + architecture + (variant.empty() ? "" : "/" + variant);
}

bool isIndexMediaType(std::string_view type) {
  return type == media_type::kOciIndex || type == media_type::kDockerManifestList;
}

bool isManifestMediaType(std::string_view type) {
  return type == media_type::kOciManifest || type == media_type::kDockerManifest;
}

bool isLayerMediaType(std::string_view type) {
  static constexpr std::array<std::string_view, 12> kLayers = {
      "application/vnd.oci.image.layer.v1.tar",
      "application/vnd.oci.image.layer.v1.tar+gzip",
      "application/vnd.oci.image.layer.v1.tar+zstd",
      "application/vnd.oci.image.layer.nondistributable.v1.tar",
      "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
      "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
      "application/vnd.docker.image.rootfs.diff.tar.gzip",
      "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
      "application/vnd.docker.image.rootfs.diff.tar",
      "application/vnd.docker.image.rootfs.foreign.diff.tar",
      "application/vnd.docker.image.rootfs.diff.tar.zstd",
      "application/vnd.docker.image.rootfs.diff.tar.zst"};
  return std::find(kLayers.begin(), kLayers.end(), type) != kLayers.end();
}

Result<ManifestDocument> parseManifest(std::string_view bytes, std::string_view content_type) {
  const std::string_view header_type = stripParameters(content_type);
  if (header_type == "application/vnd.docker.distribution.manifest.v1+json" ||
      header_type == "application/vnd.docker.distribution.manifest.v1+prettyjws" ||
      header_type == "text/plain") {
    return makeError(ErrorCode::kUnsupported,
                     "image manifest schema 1 is not supported (deprecated by Docker; push the "
                     "image again with a current client)");
  }
  auto doc = json::parse(bytes, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object())
    return invalidManifest("not a JSON object");
  if (doc.contains("schemaVersion") && doc["schemaVersion"] == 1) {
    return makeError(ErrorCode::kUnsupported, "image manifest schema 1 is not supported");
  }
  if (!doc.contains("schemaVersion") || doc["schemaVersion"] != 2) {
    return invalidManifest("schemaVersion must be 2");
  }
  const bool has_manifests = doc.contains("manifests");
  const bool has_image_parts = doc.contains("layers") || doc.contains("config");
  if (has_manifests && has_image_parts) {
    return invalidManifest("document has both \"manifests\" and \"layers\"/\"config\"");
  }
  auto field_type = optionalString(doc, "mediaType");
  if (field_type && *field_type == "\x01")
    return invalidManifest("mediaType is not a string");
  const bool header_known = isIndexMediaType(header_type) || isManifestMediaType(header_type);
  if (field_type && header_known && *field_type != header_type) {
    return invalidManifest("mediaType \"" + *field_type + "\" contradicts Content-Type \"" +
                           std::string(header_type) + "\"");
  }
  std::string type = field_type ? *field_type : std::string(header_type);
  if (!isIndexMediaType(type) && !isManifestMediaType(type)) {
    // OCI lets mediaType be absent; fall back to the shape only for generic content types.
    if (!type.empty() && type != "application/json" && type != "application/octet-stream") {
      return makeError(ErrorCode::kUnsupported, "unsupported manifest media type \"" + type + "\"");
    }
    type = std::string(has_manifests ? media_type::kOciIndex : media_type::kOciManifest);
  }
  if (isIndexMediaType(type) != has_manifests) {
    return invalidManifest("media type \"" + type + "\" does not match the document's shape");
  }

  if (has_manifests) {
    if (!doc["manifests"].is_array())
      return invalidManifest("manifests is not an array");
    ImageIndex index{type, {}};
    size_t i = 0;
    for (const auto& entry : doc["manifests"]) {
      auto descriptor = parseDescriptor(entry, "manifests[" + std::to_string(i++) + "]");
      if (!descriptor)
        return descriptor.error();
      index.manifests.push_back(std::move(descriptor.value()));
    }
    return ManifestDocument(std::move(index));
  }

  if (!doc.contains("config"))
    return invalidManifest("config missing");
  auto config = parseDescriptor(doc["config"], "config");
  if (!config)
    return config.error();
  if (config->size > kMaxConfigSize) {
    return makeError(ErrorCode::kResourceExhausted,
                     "image config of " + std::to_string(config->size) + " bytes exceeds the " +
                         std::to_string(kMaxConfigSize) + "-byte limit");
  }
  if (config->media_type != media_type::kDockerConfig &&
      config->media_type != media_type::kOciConfig) {
    return makeError(ErrorCode::kUnsupported, "config media type \"" + config->media_type +
                                                  "\" is not a container image config");
  }
  if (!doc.contains("layers") || !doc["layers"].is_array()) {
    return invalidManifest("layers missing or not an array");
  }
  ImageManifest manifest{type, config.value(), {}};
  size_t i = 0;
  for (const auto& entry : doc["layers"]) {
    std::string where = "layers[" + std::to_string(i++) + "]";
    auto layer = parseDescriptor(entry, where);
    if (!layer)
      return layer.error();
    if (!isLayerMediaType(layer->media_type)) {
      return makeError(ErrorCode::kUnsupported,
                       where + " has media type \"" + layer->media_type +
                           "\", which is not a container layer this agent can unpack");
    }
    manifest.layers.push_back(std::move(layer.value()));
  }
  return ManifestDocument(std::move(manifest));
}

Result<Descriptor> selectPlatform(const ImageIndex& index, const Platform& want_raw) {
  const Platform want = want_raw.normalized();
  std::vector<std::string> available;
  for (const auto& wanted_variant : variantPreference(want)) {
    for (const auto& entry : index.manifests) {
      if (isAttestation(entry) || !entry.platform)
        continue;
      if (!isManifestMediaType(entry.media_type) && !isIndexMediaType(entry.media_type))
        continue;
      Platform have = entry.platform->normalized();
      if (have.os == want.os && have.architecture == want.architecture &&
          have.variant == wanted_variant) {
        return entry;
      }
    }
  }
  for (const auto& entry : index.manifests) {
    if (entry.platform && !isAttestation(entry))
      available.push_back(entry.platform->str());
  }
  // An index with a single platform-less image manifest: take it, the config says the rest.
  if (available.empty()) {
    std::vector<const Descriptor*> images;
    for (const auto& entry : index.manifests) {
      if (isManifestMediaType(entry.media_type) && !isAttestation(entry))
        images.push_back(&entry);
    }
    if (images.size() == 1)
      return *images.front();
  }
  std::string list;
  for (const auto& name : available)
    list += (list.empty() ? "" : ", ") + name;
  return makeError(ErrorCode::kNotFound,
                   "no image for platform " + want.str() +
                       " in the index (available: " + (list.empty() ? "none" : list) + ")");
}

Result<ImageConfigSummary> parseImageConfig(std::string_view bytes) {
  auto doc = json::parse(bytes, nullptr, false);
  if (!doc.is_object())
    return makeError(ErrorCode::kProtocol, "image config is not a JSON object");
  ImageConfigSummary summary;
  summary.os = doc.value("os", "");
  summary.architecture = doc.value("architecture", "");
  if (!doc.contains("rootfs") || !doc["rootfs"].is_object() ||
      !doc["rootfs"].contains("diff_ids") || !doc["rootfs"]["diff_ids"].is_array()) {
    return makeError(ErrorCode::kProtocol, "image config has no rootfs.diff_ids array");
  }
  size_t i = 0;
  for (const auto& item : doc["rootfs"]["diff_ids"]) {
    if (!item.is_string()) {
      return makeError(ErrorCode::kProtocol,
                       "image config rootfs.diff_ids[" + std::to_string(i) + "] is not a string");
    }
    auto digest = Digest::parse(item.get<std::string>());
    if (!digest) {
      return makeError(ErrorCode::kProtocol, "image config rootfs.diff_ids[" + std::to_string(i) +
                                                 "]: " + digest.error().message);
    }
    summary.diff_ids.push_back(digest.value());
    ++i;
  }
  return summary;
}

}  // namespace pullagent::puller
