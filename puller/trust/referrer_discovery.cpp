#include "puller/trust/referrer_discovery.h"

#include "puller/trust/referrers.h"

namespace pullagent::puller {

Result<std::vector<AttachedArtifact>> discoverReferrers(RegistryClient& registry,
                                                        const Descriptor& subject,
                                                        const ArtifactQuery& query,
                                                        const Context& ctx,
                                                        SignatureReasons& skipped) {
  const std::string type(query.artifact_type);
  const std::string kind(query.kind);
  std::vector<AttachedArtifact> found;
  std::vector<std::string> pages;
  std::string where;
  ASSIGN_OR_RETURN(auto listed, registry.fetchReferrers(subject.digest, type, ctx));
  if (listed) {
    pages = std::move(*listed);
    where = "the referrers of " + subject.digest.str();
  } else {
    // No referrers API: the tag schema's index, which `notation sign` writes then.
    const std::string tag = referrersTag(subject.digest);
    auto fetched = registry.fetchManifest(tag, std::nullopt, ctx);
    if (!fetched) {
      if (fetched.error().code == ErrorCode::kNotFound)
        return found;
      return fetched.error().context(kind + "s of " + subject.digest.str());
    }
    pages.push_back(std::move(fetched->bytes));
    where = "the tag " + tag;
  }
  size_t read = 0;
  for (const auto& page : pages) {
    size_t cut = 0;
    auto referrers = parseReferrers(page, type, &cut);
    if (!referrers) {
      skipped.add(where + " is not a referrers index (" + referrers.error().message + ")");
      continue;
    }
    if (cut > 0)
      skipped.add(std::to_string(cut) + " older " + kind + "s in " + where + " were not read");
    for (const auto& referrer : *referrers) {
      if (read == kMaxReferrers) {
        skipped.add(kind + "s in " + where + " past " + std::to_string(kMaxReferrers) +
                    " were not read");
        return found;
      }
      ++read;
      const Digest& digest = referrer.descriptor.digest;
      if (referrer.descriptor.size > kMaxManifestSize) {
        skipped.add(kind + " " + digest.str() + ": a manifest of " +
                    std::to_string(referrer.descriptor.size) + " bytes");
        continue;
      }
      auto fetched = registry.fetchManifest(digest.str(), digest, ctx);
      if (!fetched) {
        if (fetched.error().code == ErrorCode::kCancelled ||
            fetched.error().code == ErrorCode::kTimeout)
          return fetched.error();
        skipped.add(kind + " " + digest.str() + ": " + fetched.error().message);
        continue;
      }
      auto manifest = parseArtifactManifest(fetched->bytes);
      if (!manifest) {
        skipped.add(kind + " " + digest.str() + ": " + manifest.error().message);
        continue;
      }
      if (manifest->artifact_type != type) {
        skipped.add(kind + " " + digest.str() + ": its manifest is of the type \"" +
                    manifest->artifact_type.substr(0, 80) + "\", not a " + kind);
        continue;
      }
      if (!manifest->subject || manifest->subject->digest != subject.digest) {
        skipped.add(kind + " " + digest.str() + ": its subject is not " + subject.digest.str());
        continue;
      }
      if (manifest->layers.size() != 1) {
        skipped.add(kind + " " + digest.str() + ": " + std::to_string(manifest->layers.size()) +
                    " layers, not one");
        continue;
      }
      const Descriptor& layer = manifest->layers.front();
      if (layer.size <= 0 || layer.size > query.max_layer_size) {
        skipped.add(kind + " " + digest.str() + ": a layer of " + std::to_string(layer.size) +
                    " bytes (at most " + std::to_string(query.max_layer_size / 1024) + " KiB)");
        continue;
      }
      found.push_back({subject, digest, layer});
    }
  }
  return found;
}

}  // namespace pullagent::puller
