#include "puller/trust/referrers.h"

#include "base/json_reader.h"

namespace pullagent::puller {
namespace {

constexpr std::string_view kEmptyConfig = "application/vnd.oci.empty.v1+json";

// What both documents begin with: an object, schemaVersion 2, and (when given) `expected_type`.
Status checkHeader(const JsonReader& root, std::string_view expected_type) {
  if (!root.isObject())
    return root.typeError("an object");
  ASSIGN_OR_RETURN(auto version, root["schemaVersion"].integer());
  if (version != 2)
    return root["schemaVersion"].error("expected 2");
  ASSIGN_OR_RETURN(auto type, root["mediaType"].optionalString());
  if (type && *type != expected_type)
    return root["mediaType"].error("expected " + std::string(expected_type));
  return {};
}

}  // namespace

std::string referrersTag(const Digest& subject) {
  return "sha256-" + subject.hex();
}

Result<std::vector<Referrer>> parseReferrers(std::string_view bytes, std::string_view artifact_type,
                                             size_t* cut) {
  ASSIGN_OR_RETURN(auto doc, parseJson(bytes, "referrers index", ErrorCode::kProtocol, 16));
  const JsonReader root(doc, "referrers index");
  RETURN_IF_ERROR(checkHeader(root, media_type::kOciIndex));
  std::vector<Referrer> referrers;
  if (root["manifests"].missing())
    return referrers;
  ASSIGN_OR_RETURN(auto entries, root["manifests"].elements());
  size_t over = 0;
  for (const auto& entry : entries) {
    ASSIGN_OR_RETURN(auto descriptor, parseDescriptor(entry));
    ASSIGN_OR_RETURN(auto kind, entry["artifactType"].optionalString());
    if (kind.value_or("") != artifact_type)
      continue;
    referrers.push_back({std::move(descriptor), std::move(*kind)});
  }
  if (referrers.size() > kMaxReferrers) {
    // The newest are at the end: re-signing appends.
    over = referrers.size() - kMaxReferrers;
    referrers.erase(referrers.begin(), referrers.begin() + static_cast<std::ptrdiff_t>(over));
  }
  if (cut != nullptr)
    *cut = over;
  return referrers;
}

Result<ArtifactManifest> parseArtifactManifest(std::string_view bytes) {
  ASSIGN_OR_RETURN(auto doc, parseJson(bytes, "signature manifest", ErrorCode::kProtocol, 16));
  const JsonReader root(doc, "signature manifest");
  RETURN_IF_ERROR(checkHeader(root, media_type::kOciManifest));
  ArtifactManifest manifest;
  ASSIGN_OR_RETURN(auto config, parseDescriptor(root["config"]));
  ASSIGN_OR_RETURN(auto artifact_type, root["artifactType"].optionalString());
  if (artifact_type)
    manifest.artifact_type = *artifact_type;
  else if (config.media_type != kEmptyConfig)
    manifest.artifact_type = config.media_type;
  ASSIGN_OR_RETURN(auto layers, root["layers"].elements());
  for (const auto& layer : layers) {
    ASSIGN_OR_RETURN(auto descriptor, parseDescriptor(layer));
    manifest.layers.push_back(std::move(descriptor));
  }
  if (!root["subject"].missing()) {
    ASSIGN_OR_RETURN(manifest.subject, parseDescriptor(root["subject"]));
  }
  return manifest;
}

}  // namespace pullagent::puller
