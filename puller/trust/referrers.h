#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "puller/oci/manifest.h"

namespace pullagent::puller {

// A manifest that refers to a subject, as a referrers index lists it.
struct Referrer {
  Descriptor descriptor;
  std::string artifact_type;
};

// At most this many referrers are read per subject: a registry that lists thousands of
// signatures (a hostile one, or years of re-signing) costs a bounded number of requests.
inline constexpr size_t kMaxReferrers = 32;

// An OCI image index as the referrers API answers it, or as the tag schema's "sha256-<hex>"
// tag stores it: manifests[] with artifactType. Only entries whose artifactType is
// `artifact_type` are kept; more than kMaxReferrers are cut, newest last as registries append.
// kProtocol errors name the JSON path.
Result<std::vector<Referrer>> parseReferrers(std::string_view bytes, std::string_view artifact_type,
                                             size_t* cut = nullptr);

// An OCI artifact manifest that refers to a subject (a signature): its type (artifactType, or
// the config's media type as artifacts were written before OCI 1.1), its layers and subject.
struct ArtifactManifest {
  std::string artifact_type;
  std::vector<Descriptor> layers;
  std::optional<Descriptor> subject;
};
Result<ArtifactManifest> parseArtifactManifest(std::string_view bytes);

// The tag under which the referrers tag schema keeps a subject's referrers index.
std::string referrersTag(const Digest& subject);

}  // namespace pullagent::puller
