#include "puller/oci/manifest.h"

#include <algorithm>
#include <array>
#include <limits>

#include "base/json_reader.h"
#include "base/redact.h"

namespace pullagent::puller {
namespace {

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

Result<Platform> parsePlatform(const JsonReader& value) {
  Platform platform;
  for (auto [key, target] :
       {std::pair{"os", &platform.os}, std::pair{"architecture", &platform.architecture},
        std::pair{"variant", &platform.variant}, std::pair{"os.version", &platform.os_version}}) {
    ASSIGN_OR_RETURN(auto text, value[key].optionalString());
    *target = text.value_or("");
  }
  return platform;
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

Result<Descriptor> parseDescriptor(const JsonReader& value) {
  if (!value.isObject())
    return value.typeError("a descriptor object");
  Descriptor descriptor;
  ASSIGN_OR_RETURN(descriptor.media_type, value["mediaType"].string());
  ASSIGN_OR_RETURN(auto digest_text, value["digest"].string());
  auto digest = Digest::parse(digest_text);
  if (!digest)
    return value["digest"].error(digest.error().message);
  descriptor.digest = digest.value();
  ASSIGN_OR_RETURN(descriptor.size, value["size"].integer(0, std::numeric_limits<int64_t>::max()));
  if (!value["platform"].missing()) {
    if (!value["platform"].isObject())
      return value["platform"].typeError("an object");
    ASSIGN_OR_RETURN(descriptor.platform, parsePlatform(value["platform"]));
  }
  if (!value["annotations"].missing()) {
    ASSIGN_OR_RETURN(auto annotations, value["annotations"].members());
    for (const auto& [key, item] : annotations) {
      ASSIGN_OR_RETURN(descriptor.annotations[key], item.string());
    }
  }
  if (!value["urls"].missing()) {
    ASSIGN_OR_RETURN(auto urls, value["urls"].elements());
    for (const auto& item : urls) {
      ASSIGN_OR_RETURN(auto url, item.string());
      descriptor.urls.push_back(std::move(url));
    }
  }
  return descriptor;
}

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
      header_type == "application/vnd.docker.distribution.manifest.v1+prettyjws") {
    return makeError(ErrorCode::kUnsupported,
                     "image manifest schema 1 is not supported (deprecated by Docker; push the "
                     "image again with a current client)");
  }
  const bool header_known = isIndexMediaType(header_type) || isManifestMediaType(header_type);
  const bool header_generic = header_type.empty() || header_type == "application/json" ||
                              header_type == "application/octet-stream";
  auto parsed = parseJson(bytes, "manifest");
  if (!parsed && !header_known && !header_generic) {
    return makeError(ErrorCode::kUnsupported, "the registry answered with Content-Type " +
                                                  safeQuoted(header_type, 80) +
                                                  ", which is not an image manifest or index");
  }
  if (!parsed)
    return parsed.error();
  const JsonReader doc(parsed.value(), "manifest");
  if (!doc.isObject())
    return doc.typeError("an object");
  ASSIGN_OR_RETURN(auto schema, doc["schemaVersion"].integer());
  if (schema == 1)
    return makeError(ErrorCode::kUnsupported, "image manifest schema 1 is not supported");
  if (schema != 2)
    return doc["schemaVersion"].error("must be 2");
  const bool has_manifests = !doc["manifests"].missing();
  const bool has_image_parts = !doc["layers"].missing() || !doc["config"].missing();
  if (has_manifests && has_image_parts) {
    return invalidManifest("document has both \"manifests\" and \"layers\"/\"config\"");
  }
  ASSIGN_OR_RETURN(auto field_type, doc["mediaType"].optionalString());
  if (field_type && header_known && *field_type != header_type) {
    return invalidManifest("mediaType \"" + *field_type + "\" contradicts Content-Type \"" +
                           std::string(header_type) + "\"");
  }
  std::string type;
  if (field_type) {
    type = *field_type;
    if (!isIndexMediaType(type) && !isManifestMediaType(type))
      return makeError(ErrorCode::kUnsupported, "unsupported manifest media type \"" + type + "\"");
  } else if (header_known) {
    type = std::string(header_type);
  } else if (header_generic) {
    // OCI lets mediaType be absent; fall back to the shape only for generic content types.
    type = std::string(has_manifests ? media_type::kOciIndex : media_type::kOciManifest);
  } else {
    return makeError(ErrorCode::kUnsupported,
                     "the registry answered with Content-Type " + safeQuoted(header_type, 80) +
                         ", which is not an image manifest or index, and the document names "
                         "no mediaType");
  }
  if (isIndexMediaType(type) != has_manifests) {
    return invalidManifest("media type \"" + type + "\" does not match the document's shape");
  }

  if (has_manifests) {
    ASSIGN_OR_RETURN(auto entries, doc["manifests"].elements());
    ImageIndex index{type, {}};
    for (const auto& entry : entries) {
      ASSIGN_OR_RETURN(auto descriptor, parseDescriptor(entry));
      index.manifests.push_back(std::move(descriptor));
    }
    return ManifestDocument(std::move(index));
  }

  ASSIGN_OR_RETURN(auto config, parseDescriptor(doc["config"]));
  if (config.size > kMaxConfigSize) {
    return makeError(ErrorCode::kResourceExhausted,
                     "image config of " + std::to_string(config.size) + " bytes exceeds the " +
                         std::to_string(kMaxConfigSize) + "-byte limit");
  }
  if (config.media_type != media_type::kDockerConfig &&
      config.media_type != media_type::kOciConfig) {
    return makeError(ErrorCode::kUnsupported, "config media type \"" + config.media_type +
                                                  "\" is not a container image config");
  }
  ASSIGN_OR_RETURN(auto layers, doc["layers"].elements());
  ImageManifest manifest{type, std::move(config), {}};
  for (const auto& entry : layers) {
    ASSIGN_OR_RETURN(auto layer, parseDescriptor(entry));
    if (!isLayerMediaType(layer.media_type)) {
      return makeError(ErrorCode::kUnsupported,
                       entry.path() + " has media type \"" + layer.media_type +
                           "\", which is not a container layer this agent can unpack");
    }
    manifest.layers.push_back(std::move(layer));
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
  ASSIGN_OR_RETURN(auto parsed, parseJson(bytes, "image config"));
  const JsonReader doc(parsed, "image config");
  if (!doc.isObject())
    return doc.typeError("an object");
  ImageConfigSummary summary;
  ASSIGN_OR_RETURN(auto os, doc["os"].optionalString());
  ASSIGN_OR_RETURN(auto architecture, doc["architecture"].optionalString());
  summary.os = os.value_or("");
  summary.architecture = architecture.value_or("");
  ASSIGN_OR_RETURN(auto diff_ids, doc["rootfs"]["diff_ids"].elements());
  for (const auto& item : diff_ids) {
    ASSIGN_OR_RETURN(auto text, item.string());
    auto digest = Digest::parse(text);
    if (!digest)
      return item.error(digest.error().message);
    summary.diff_ids.push_back(digest.value());
  }
  return summary;
}

}  // namespace pullagent::puller
